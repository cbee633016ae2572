"""A Kafka cluster for the integration tests: tests/tools/kafka_mock (librdkafka's mock brokers
on 127.0.0.1) driven over its stdin, and Debian's kcat as the independent client that produces
the records quorumwatch reads and reads back what it wrote. Python 3 standard library only.

  with KafkaMock(binary, topics=[("logs", 4)]) as k:
      kcat_produce(k.bootstraps, "logs", [("node-1", '{"msg": "a"}'), (None, b"\\x00\\xff")])
      kcat_consume(k.bootstraps, "logs")  # [(partition, offset, key, value)], bytes

What the mock of librdkafka 2.0.2 does and does not do is noted at the top of
tests/tools/kafka_mock.cc. In short: clients need no special property; any client that names an
unknown topic creates it with 4 partitions; consumer groups work but rebalance only after about
session.timeout.ms (default 45 s), so group members of a test use GROUP_PROPS.

Run as `python3 kafka_mock.py PATH_TO_kafka_mock` for a self-test.
"""

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

DEADLINE = 30.0  # seconds for the tool to start or answer a command (only stops a hang)

# librdkafka properties for the consumer-group members of a test against the mock: every join
# after the first waits about session.timeout.ms, and below ~3000 no join ever completes.
GROUP_PROPS = ("session.timeout.ms=6000", "heartbeat.interval.ms=500",
               "auto.offset.reset=earliest")

# Bytes that kcat -P can split on (its -D/-K take \xNN; NUL cannot be one: kcat keeps the
# delimiter as a C string). The first two that occur in no key and no value are used.
_DELIMS = [0x1e, 0x1f, 0x1d, 0x1c, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x0e, 0x0f,
           0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x7f, 0xff]


class KafkaError(AssertionError):
    """The tool or kcat failed (pytest shows it as a failed assertion)."""


def kcat_path():
    """kcat (or the older name kafkacat) on PATH, or None."""
    return shutil.which("kcat") or shutil.which("kafkacat")


def _bytes(v):
    return v.encode("utf-8") if isinstance(v, str) else bytes(v)


class KafkaMock:
    """One kafka_mock process. Its parent's death sends it SIGTERM (PR_SET_PDEATHSIG): that is
    the death of the *thread* that started it, so start it from the test's own thread (a fixture
    is fine), not from a helper thread that ends before the test does."""

    def __init__(self, binary, brokers=3, topics=()):
        self.binary = binary
        self.brokers = brokers
        self.topics = list(topics)
        self.bootstraps = None
        self.p = None
        self._lines = queue.Queue()
        self._err = None
        self._reader = None

    def start(self):
        cmd = [self.binary, "--brokers", str(self.brokers)]
        for name, partitions in self.topics:
            cmd += ["--topic", "%s:%d" % (name, partitions)]
        # stderr to a file: librdkafka may log much, and a pipe nobody reads would fill.
        self._err = tempfile.TemporaryFile()
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self._err)
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        line = self._next_line("the bootstraps line")
        if not line.startswith("bootstraps "):
            self._fail("unexpected first line %r" % line)
        self.bootstraps = line.split(" ", 1)[1]
        return self

    def _read_stdout(self):
        for raw in self.p.stdout:
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self._lines.put(None)  # EOF

    def stderr(self):
        if self._err is None:
            return ""
        self._err.seek(0)
        return self._err.read().decode("utf-8", "replace")

    def _fail(self, what):
        raise KafkaError("kafka_mock: %s (status %r); stderr tail: %r"
                         % (what, self.p.poll() if self.p else None, self.stderr()[-800:]))

    def _next_line(self, what, timeout=DEADLINE):
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self._fail("%s: none within %.0f s" % (what, timeout))
        if line is None:
            self._lines.put(None)  # stays at EOF for the next caller
            self.p.wait(5)
            self._fail("%s: the process closed its stdout" % what)
        return line

    def command(self, line):
        """Sends one command line; returns when the answer is `ok`, raises otherwise."""
        if self.p is None or self.p.poll() is not None:
            self._fail("not running before %r" % line)
        try:
            self.p.stdin.write(line.encode("utf-8") + b"\n")
            self.p.stdin.flush()
        except OSError as e:
            self._fail("%r: %s" % (line, e))
        answer = self._next_line("the answer to %r" % line)
        if answer != "ok":
            raise KafkaError("kafka_mock: %r: %s" % (line, answer))

    def create_topic(self, name, partitions):
        self.command("topic %s %d" % (name, partitions))

    def set_leader(self, topic, partition, broker_id):
        self.command("leader %s %d %d" % (topic, partition, broker_id))

    def broker_down(self, broker_id):
        self.command("down %d" % broker_id)

    def broker_up(self, broker_id):
        self.command("up %d" % broker_id)

    def stop(self):
        """`quit`, then SIGTERM and SIGKILL when it does not exit in time; returns its status."""
        if self.p is None:
            return None
        if self.p.poll() is None:
            try:
                self.p.stdin.write(b"quit\n")
                self.p.stdin.flush()
            except OSError:
                pass
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None and self.p.poll() is None:
                self.p.send_signal(sig)
            try:
                self.p.wait(10)
                break
            except subprocess.TimeoutExpired:
                continue
        for f in (self.p.stdin, self.p.stdout):
            try:
                f.close()
            except OSError:
                pass
        if self._reader is not None:
            self._reader.join(5)
        if self._err is not None:
            self._err.close()
            self._err = None
        return self.p.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def _pick_delims(records):
    seen = set()
    for key, value in records:
        if key is not None:
            seen.update(key)
        seen.update(value)
    free = [d for d in _DELIMS if d not in seen]
    if len(free) < 2:
        raise ValueError("kcat_produce: no free delimiter byte for these records")
    return free[0], free[1]


def kcat_produce(bootstraps, topic, records, partition=None, timeout=60, props=()):
    """Produces records, a list of (key or None, value) with str (UTF-8) or bytes, in order, with
    one kcat -P. Without `partition`, librdkafka's default partitioner places them
    (consistent_random: CRC32 of the key, so equal keys share a partition; null keys at random).
    A key or value may hold newlines and any byte but two (picked as delimiters, both absent from
    every key and value; kcat cannot split on NUL). An empty value is sent as an empty value, an
    empty key as an empty key; (None, empty) is refused, as kcat would drop it silently.
    props: extra librdkafka properties "name=value". Raises with kcat's stderr when kcat fails
    or some record is not delivered (kcat then exits 1)."""
    kcat = kcat_path()
    if kcat is None:
        raise KafkaError("kcat is not installed")
    recs = [(None if k is None else _bytes(k), _bytes(v)) for k, v in records]
    if not recs:
        return
    if any(k is None and not v for k, v in recs):
        raise ValueError("kcat_produce: kcat -P skips a record without key and value")
    d, kd = _pick_delims(recs)
    data = b"".join((b"" if k is None else k + bytes([kd])) + v + bytes([d]) for k, v in recs)
    cmd = [kcat, "-b", bootstraps, "-t", topic, "-P", "-D", "\\x%02x" % d, "-K", "\\x%02x" % kd]
    if partition is not None:
        cmd += ["-p", str(partition)]
    for p in props:
        cmd += ["-X", p]
    try:
        cp = subprocess.run(cmd, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise KafkaError("kcat -P %s: no exit within %.0f s; stderr: %r" % (
            topic, timeout, (e.stderr or b"").decode("utf-8", "replace")[-800:]))
    err = cp.stderr.decode("utf-8", "replace")
    # kcat exits 1 when a record was not delivered. Its "% ERROR: ... Connect to ... failed"
    # lines (a broker that is down) are librdkafka's retries, not failures.
    if cp.returncode != 0 or "Delivery failed" in err:
        raise KafkaError("kcat -P %s: status %d; stderr: %r" % (topic, cp.returncode, err[-800:]))


# Each record: a header line with the lengths (-1 for null), then the key and value bytes.
_CONSUME_FMT = "%p %o %K %S\\n%k%s"


def _parse_consumed(out):
    recs = []
    i = 0
    while i < len(out):
        nl = out.index(b"\n", i)
        p, o, kl, vl = (int(x) for x in out[i:nl].split(b" "))
        i = nl + 1
        key = None
        if kl >= 0:
            key = out[i:i + kl]
            i += kl
        value = None
        if vl >= 0:
            value = out[i:i + vl]
            i += vl
        recs.append((p, o, key, value))
    return recs


def kcat_consume(bootstraps, topic, timeout=60, props=()):
    """Everything in the topic now (kcat -C -e from the beginning of every partition), as
    (partition, offset, key, value) sorted by partition and offset; key and value are bytes or
    None (null). The topic must exist (a Metadata request would create it with 4 partitions)."""
    kcat = kcat_path()
    if kcat is None:
        raise KafkaError("kcat is not installed")
    cmd = [kcat, "-b", bootstraps, "-t", topic, "-C", "-e", "-o", "beginning", "-q",
           "-f", _CONSUME_FMT]
    for p in props:
        cmd += ["-X", p]
    try:
        cp = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise KafkaError("kcat -C %s: no exit within %.0f s; stderr: %r" % (
            topic, timeout, (e.stderr or b"").decode("utf-8", "replace")[-800:]))
    if cp.returncode != 0:
        raise KafkaError("kcat -C %s: status %d; stderr: %r" % (
            topic, cp.returncode, cp.stderr.decode("utf-8", "replace")[-800:]))
    try:
        return sorted(_parse_consumed(cp.stdout), key=lambda r: (r[0], r[1]))
    except ValueError as e:
        raise KafkaError("kcat -C %s: unparsable output (%s): %r" % (topic, e, cp.stdout[:400]))


# --------------------------------------------------------------------------
# Self-test: python3 kafka_mock.py PATH_TO_kafka_mock


def _self_test(binary):
    t0 = time.monotonic()
    with KafkaMock(binary, topics=[("selftest", 4)]) as k:
        expect_parts = k.bootstraps.split(",")
        assert len(expect_parts) == 3 and all(p.startswith("127.0.0.1:") for p in expect_parts), \
            k.bootstraps
        records = []
        for i in range(1000):
            key = "node-%d" % (i % 37)
            # Newlines, quotes and non-ASCII inside the value: the delimiters must cope.
            value = json.dumps({"i": i, "msg": "line one\nline two \"q\" \u00e9"}, indent=1)
            records.append((key, value))
        records.append((None, b"\x00binary\xff\n"))  # a null key and non-UTF-8 bytes
        kcat_produce(k.bootstraps, "selftest", records)
        got = kcat_consume(k.bootstraps, "selftest")
        assert len(got) == len(records), (len(got), len(records))
        by_key = {}
        for p, o, key, value in got:
            assert 0 <= p < 4, p
            if key is None:
                assert value == b"\x00binary\xff\n", value
                continue
            by_key.setdefault(key, set()).add(p)
        assert all(len(ps) == 1 for ps in by_key.values()), by_key
        assert len(by_key) == 37, len(by_key)
        assert len({p for p, _, _, _ in got}) > 1, "every record on one partition"
        values = sorted(json.loads(v)["i"] for _, _, key, v in got if key is not None)
        assert values == list(range(1000)), "values lost or changed"
        # Offsets per partition are 0..n-1 in order.
        for part in range(4):
            offs = [o for p, o, _, _ in got if p == part]
            assert offs == list(range(len(offs))), (part, offs[:10])

        # A balanced consumer (kcat -G) with GROUP_PROPS reads every record once.
        cmd = [kcat_path(), "-b", k.bootstraps, "-G", "selftest-group", "-e", "-q", "-f", "%k\\n"]
        for p in GROUP_PROPS:
            cmd += ["-X", p]
        cp = subprocess.run(cmd + ["selftest"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, timeout=60)
        assert cp.returncode == 0, cp.stderr[-800:]
        assert cp.stdout.count(b"node-") == 1000, cp.stdout.count(b"node-")

        k.broker_down(1)
        k.broker_up(1)
        try:
            k.broker_down(9)
        except KafkaError as e:
            assert "no broker 9" in str(e), e
        else:
            raise AssertionError("down 9 did not fail")
        k.create_topic("second", 2)
        kcat_produce(k.bootstraps, "second", [("a", "1"), ("b", "2")], partition=1)
        got2 = kcat_consume(k.bootstraps, "second")
        assert [(p, key, v) for p, _, key, v in got2] == [(1, b"a", b"1"), (1, b"b", b"2")], got2
        # After `up` the brokers serve again.
        assert len(kcat_consume(k.bootstraps, "selftest")) == len(records)
        rc = k.stop()
        assert rc == 0, (rc, k.stderr())
    print("OK (%.1f s)" % (time.monotonic() - t0))


if __name__ == "__main__":
    if len(sys.argv) != 2 or not os.access(sys.argv[1], os.X_OK):
        sys.exit("usage: kafka_mock.py PATH_TO_kafka_mock")
    if kcat_path() is None:
        sys.exit("kcat is not installed")
    _self_test(sys.argv[1])
