"""Shared code of the integration tests (suite 'integration').

conftest.py hands these out as fixtures; the test files import the
constants and the plain functions from here. Python 3 standard library
only. Nothing here sleeps as a pass condition: every wait polls a condition
(a file, an endpoint, the process) every 50 ms until it holds or a generous
deadline passes.

Contents:
  - Failure and expect/expect_eq (an AssertionError: pytest reports it as a
    failed assertion);
  - times: nanoseconds since the epoch, RFC 3339 stamps, CometBFT stamps;
  - log line writers (LINES): CRI, docker json-file and raw lines, CometBFT
    `committed state` and `CONSENSUS FAILURE` messages;
  - Command: one `quorumwatch ...` run to its end;
  - QwProcess: a `quorumwatch run` process, its stderr kept in files (one
    per start), signals, a graceful stop;
  - Cluster, ClusterProc, Scenario: Kubernetes-named CRI files of one
    CometBFT chain written by a thread (a heartbeat node always commits),
    and the process tailing them with a jsonl sink and a state directory;
  - Alertmanager: Debian's prometheus-alertmanager on 127.0.0.1.
"""

import datetime
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import types
import urllib.error
import urllib.request

UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
MS = 1_000_000
SECOND = 1000 * MS
POLL = 0.05  # seconds between two looks at a condition

# --------------------------------------------------------------------------
# Failures


class Failure(AssertionError):
    """A check that does not hold (pytest shows it as a failed assertion)."""


def expect(cond, what):
    if not cond:
        raise Failure(what)


def expect_eq(got, want, what):
    if got != want:
        raise Failure("%s: got %r, want %r" % (what, got, want))


def wait_for(pred, what, timeout, observe=None, retry=False):
    """Polls pred() every POLL seconds until it returns something true, and
    returns that. Failure after `timeout` seconds (the deadline only stops a
    hang: nothing is asserted on how long it took). retry: an AssertionError
    or OSError raised by pred means "not yet" (the last one is reported at
    the deadline); otherwise it ends the wait at once. observe(): text for
    the failure message."""
    end = time.monotonic() + timeout
    last = None
    while True:
        try:
            r = pred()
        except (AssertionError, OSError) as e:
            if not retry:
                raise
            last, r = e, None
        if r:
            return r
        if time.monotonic() > end:
            raise Failure("%s: not within %.0f s%s%s" % (
                what, timeout, " (last: %s)" % last if last is not None else "",
                "; observed: " + observe() if observe else ""))
        time.sleep(POLL)


# --------------------------------------------------------------------------
# Times: a time is a datetime (microseconds) or an int of nanoseconds since
# the epoch, UTC


def ns_of(t):
    """datetime -> nanoseconds since the epoch."""
    return (t - EPOCH) // datetime.timedelta(microseconds=1) * 1000


def to_ns(t):
    return t if isinstance(t, int) else ns_of(t)


def utc(ns):
    return EPOCH + datetime.timedelta(microseconds=ns // 1000)


def now_ns():
    return ns_of(datetime.datetime.now(UTC))


def rfc3339nano(t):
    """The container runtime's stamp: RFC 3339 UTC with nanoseconds."""
    ns = to_ns(t)
    return "%s.%09dZ" % (utc(ns).strftime("%Y-%m-%dT%H:%M:%S"), ns % SECOND)


def event_time(t):
    """An event's `time`: RFC 3339 UTC with milliseconds."""
    ns = to_ns(t)
    return "%s.%03dZ" % (utc(ns).strftime("%Y-%m-%dT%H:%M:%S"), (ns // MS) % 1000)


def parse_event_time(s):
    """An event's `time` -> nanoseconds (millisecond precision)."""
    t = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return ns_of(t)


def tm_stamp(t):
    """CometBFT's plain logger: `2006-01-02|15:04:05.000`."""
    ns = to_ns(t)
    return utc(ns).strftime("%Y-%m-%d|%H:%M:%S.") + "%03d" % ((ns // MS) % 1000)


# --------------------------------------------------------------------------
# Log lines


def cri(t, msg, stream="stdout", tag="F"):
    """One CRI record (the kubelet's container log): `stamp stream P|F msg`."""
    return "%s %s %s %s\n" % (rfc3339nano(t), stream, tag, msg)


def docker(t, msg, stream="stdout"):
    """One line of Docker's json-file log driver."""
    return json.dumps({"log": msg + "\n", "stream": stream, "time": rfc3339nano(t)}) + "\n"


def raw(msg):
    return msg + "\n"


def tm_line(t, msg, fields, level="I"):
    """A CometBFT/Tendermint plain (tmfmt) line: `I[stamp] msg(44) k=v`."""
    return "%s[%s] %-44s %s" % (level, tm_stamp(t), msg, fields)


def commit_msg(t, h, num_txs=0, app_hash="AB12"):
    return tm_line(t, "committed state", "module=state height=%d num_txs=%d app_hash=%s"
                   % (h, num_txs, app_hash))


NIL_POINTER = ('module=consensus err="runtime error: invalid memory address or nil pointer '
               'dereference" stack="goroutine 140 [running]:\\n"')
WRONG_APP_HASH = 'module=consensus err="wrong Block.Header.AppHash"'


def failure_msg(t, fields=NIL_POINTER):
    return tm_line(t, "CONSENSUS FAILURE!!!", fields, level="E")


# What the `logs` fixture hands out.
LINES = types.SimpleNamespace(
    cri=cri, docker=docker, raw=raw, tm_line=tm_line, tm_stamp=tm_stamp,
    commit_msg=commit_msg, failure_msg=failure_msg, NIL_POINTER=NIL_POINTER,
    WRONG_APP_HASH=WRONG_APP_HASH, rfc3339nano=rfc3339nano, event_time=event_time)


# --------------------------------------------------------------------------
# Network


def free_port():
    """A TCP port of 127.0.0.1 that is free now (for a server of the test or
    of quorumwatch)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(url, timeout=5):
    """(status, body) of GET url; an HTTP error status is returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


# --------------------------------------------------------------------------
# quorumwatch run to its end


class Result:
    def __init__(self, cp):
        self.rc = cp.returncode
        self.out = cp.stdout
        self.err = cp.stderr

    @property
    def stdout(self):
        return self.out.decode("utf-8", "replace")

    @property
    def stderr(self):
        return self.err.decode("utf-8", "replace")

    def __repr__(self):
        return "rc=%d stderr=%r stdout=%r" % (self.rc, self.stderr[-600:], self.stdout[-600:])


class Command:
    """`qw(*args)`: runs the binary with these arguments to its end (no
    standard input) and returns a Result. The timeout only keeps a hung
    binary from hanging the suite."""

    def __init__(self, binary):
        self.binary = binary

    def __call__(self, *args, timeout=240, cwd=None, env=None):
        cmd = [self.binary] + [str(a) for a in args]
        try:
            cp = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise Failure("%s: no exit within %.0f s; stderr: %r" % (
                " ".join(cmd), timeout, (e.stderr or b"").decode("utf-8", "replace")[-400:]))
        return Result(cp)


# --------------------------------------------------------------------------
# A `quorumwatch run` process


class QwProcess:
    """`quorumwatch run -c CFG`, started (again) with start(); the stderr of
    start N goes to ROOT/stderr.N. The environment is the test's, without
    QW_TEST_* variables, plus start()'s."""

    def __init__(self, binary, root, config_text=None, deadline=30.0):
        self.binary = binary
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.cfg = os.path.join(root, "quorumwatch.yaml")
        self.deadline = deadline
        self.p = None
        self.n = 0  # starts so far
        self.args = []  # after `run -c CFG`
        self._done = []  # exited processes' stderr files
        if config_text is not None:
            self.write_config_text(config_text)

    def write_config_text(self, text):
        tmp = self.cfg + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, self.cfg)

    def err_path(self, n=None):
        return os.path.join(self.root, "stderr.%d" % (n or self.n))

    def start(self, **env):
        self.n += 1
        e = {k: v for k, v in os.environ.items() if not k.startswith("QW_TEST_")}
        e.update(env)
        with open(self.err_path(), "wb") as err:
            self.p = subprocess.Popen([self.binary, "run", "-c", self.cfg] + self.args,
                                      stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=err, env=e)

    def _read(self, n):
        try:
            with open(self.err_path(n), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def current_stderr(self):
        """The stderr of the latest start."""
        return self._read(self.n) if self.n else ""

    def tail(self):
        return "\n      ".join(self.current_stderr()[-1200:].splitlines())

    @property
    def err_lines(self):
        """The stderr lines of every start, in order; a line the running
        process is still writing (no newline yet) is left out."""
        out = []
        for n in range(1, self.n + 1):
            parts = self._read(n).split("\n")
            last = parts.pop()
            out += parts
            if last and not (n == self.n and self.alive()):
                out.append(last)
        return out

    def stderr(self):
        return "\n".join(self.err_lines)

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def signal(self, sig):
        expect(self.alive(), "process not running before signal %d; stderr:\n%s"
               % (sig, self.stderr()[-800:]))
        self.p.send_signal(sig)

    def stop(self, require_running=False):
        """SIGTERM (when it runs): it must exit 0 within the deadline."""
        if require_running:
            self.signal(signal.SIGTERM)
        elif self.alive():
            self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(self.deadline)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise Failure("did not exit within %.0f s of SIGTERM; stderr:\n%s"
                          % (self.deadline, self.stderr()[-600:]))
        expect_eq(rc, 0, "exit status after SIGTERM (stderr: %r)" % self.stderr()[-400:])

    def kill9(self):
        expect(self.alive(), "process not running before kill -9")
        self.p.kill()
        self.p.wait()

    def cleanup(self):
        if self.alive():
            self.p.kill()
        if self.p is not None:
            self.p.wait()

    def wait(self, pred, what, timeout=None, observe=None, retry=False):
        """wait_for, failing at once when the process has exited."""
        def cond():
            r = pred()
            if not r and not self.alive():
                raise Failure("%s: the process exited (status %r); stderr tail: %r"
                              % (what, self.p.poll() if self.p else None, self.stderr()[-500:]))
            return r
        return wait_for(cond, what, self.deadline if timeout is None else timeout, observe, retry)


def read_bytes(path):
    """The file's bytes (b"" without the file)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def read_events(path):
    """The complete lines of a jsonl events file, as dicts ([] without the file)."""
    try:
        with open(path, "rb") as f:
            data = f.read().decode("utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in data.split("\n")[:-1] if line.strip()]


def read_checkpoint(state_dir):
    """state_dir/checkpoint.json, or None before the first one. It is
    replaced by two renames (the current one to checkpoint.json.prev, then
    the new one into place), so a read sees a whole document, or, for a
    moment between the two, none while .prev exists: read again then."""
    path = os.path.join(state_dir, "checkpoint.json")
    for _ in range(1000):
        try:
            with open(path, "rb") as f:
                return json.loads(f.read().decode("utf-8"))
        except FileNotFoundError:
            if not os.path.exists(path + ".prev"):
                return None
            time.sleep(0.001)  # between the two renames
        except ValueError:
            return None
    return None


def checkpoint_streams(cp):
    """The tailed files of a checkpoint: "streams" (version 2) or "files" (1)."""
    return cp.get("streams", cp.get("files", []))


# --------------------------------------------------------------------------
# The live cluster: Kubernetes-named CRI files of one CometBFT chain

NS = "cosmos-mainnet"
CHAIN = "cosmoshub"
STALL_S = 2  # stall_after of the chain, seconds
WRITE_PERIOD = 0.2  # the writer thread's commit period (pacing, not synchronisation)
HB = "hb-0"  # the heartbeat node: an instance whose every stream is silent reports an outage


def log_name(pod):
    return "%s_%s_gaiad-0123456789ab.log" % (pod, NS)


def node_key(pod):
    return "%s|%s/%s" % (CHAIN, NS, pod)


class Node:
    def __init__(self, pod, path):
        self.pod = pod
        self.path = path
        self.active = False
        self.records = 0  # physical lines written (what lines_read counts)
        self.heights = []  # committed heights, in order
        self.last_time = None  # datetime of the last commit line

    @property
    def last_height(self):
        return self.heights[-1] if self.heights else -1

    def last_ns(self):
        return ns_of(self.last_time)


class Cluster:
    """Nodes of one chain in root/containers. The writer thread commits the
    next chain height on every active node each WRITE_PERIOD; everything
    else holds `lock` while it changes files, so lines are never interleaved
    with a manipulation."""

    def __init__(self, root):
        self.dir = os.path.join(root, "containers")
        os.makedirs(self.dir)
        self.lock = threading.RLock()
        self.height = 100
        self.nodes = {}
        self._stop = threading.Event()
        self._thread = None
        self.error = None

    def add(self, pod, active=True, create=True):
        with self.lock:
            n = Node(pod, os.path.join(self.dir, log_name(pod)))
            self.nodes[pod] = n
            if create:
                self.commit(pod)
            n.active = active
            return n

    def append(self, pod, text):
        with open(self.nodes[pod].path, "a") as f:
            f.write(text)

    def commit(self, pod, h=None):
        """One complete `committed state` record at height h (default: the
        current chain height, advanced when not above the node's last)."""
        with self.lock:
            n = self.nodes[pod]
            if h is None:
                if self.height <= n.last_height:
                    self.height = n.last_height + 1
                h = self.height
            t = datetime.datetime.now(UTC)
            self.append(pod, cri(t, commit_msg(t, h)))
            n.records += 1
            n.heights.append(h)
            n.last_time = t
            return h, t

    def failure(self, pod):
        """One complete CONSENSUS FAILURE record."""
        with self.lock:
            t = datetime.datetime.now(UTC)
            self.append(pod, cri(t, failure_msg(t)))
            self.nodes[pod].records += 1
            return t

    def tick(self):
        with self.lock:
            self.height += 1
            for pod, n in self.nodes.items():
                if n.active:
                    self.commit(pod, self.height)

    def set_active(self, pod, on):
        with self.lock:
            self.nodes[pod].active = on
            n = self.nodes[pod]
            return n.last_height, n.last_time

    def snapshot(self):
        with self.lock:
            return {p: (n.last_height, n.records) for p, n in self.nodes.items()}

    def start(self):
        def loop():
            try:
                while not self._stop.is_set():
                    self.tick()
                    self._stop.wait(WRITE_PERIOD)
            except Exception as e:  # reported by the wait or the check that stops it
                self.error = "writer thread: %r" % e
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self.error:
            raise Failure(self.error)

    def stop_quietly(self):
        """For teardown: a writer error is reported by the check that stops it."""
        try:
            self.stop()
        except Failure:
            pass

    def hb_height(self):
        with self.lock:
            return self.nodes[HB].last_height


def config_text(logs, root, read_from="beginning", chain_extra="", checkpoint="200ms",
                stall="2s", extra=""):
    """The configuration of a ClusterProc: the cluster's files, the chain
    (stall_after `stall`), a state directory, a jsonl sink; `extra` lines
    are appended (more sinks)."""
    return f'''sources:
  - type: file
    include: ["{logs}/*.log"]
    format: auto
    read_from: {read_from}
    poll_interval: 100ms
streams:
  - match: {{namespace: "cosmos-.*", container: "gaiad"}}
    chain: {CHAIN}
chains:
  {CHAIN}: {{family: cometbft, stall_after: {stall}, max_lag: 1000{chain_extra}}}
state_dir: {root}/state
checkpoint_interval: {checkpoint}
input_outage_after: 60s
sinks:
  - {{type: jsonl, path: {root}/events.jsonl}}
{extra}'''


class ClusterProc(QwProcess):
    """`quorumwatch run` over a Cluster's files (config_text), with waits on
    its events file and its checkpoint."""

    def __init__(self, binary, root, cluster, deadline=25.0, **cfg):
        super().__init__(binary, root, deadline=deadline)
        self.cluster = cluster
        self.events_path = os.path.join(root, "events.jsonl")
        self.state = os.path.join(root, "state")
        self.write_config(**cfg)

    def write_config(self, **cfg):
        self.write_config_text(config_text(self.cluster.dir, self.root, **cfg))

    def stop(self, require_running=True):
        """SIGTERM: must exit 0 with a final checkpoint."""
        super().stop(require_running)

    # --- observations

    def events(self):
        return read_events(self.events_path)

    def find(self, kind, pod=None, **fields):
        out = []
        for e in self.events():
            if e.get("event") != kind or (pod is not None and e.get("node") != pod):
                continue
            if all(e.get(k) == v for k, v in fields.items()):
                out.append(e)
        return out

    def checkpoint(self):
        return read_checkpoint(self.state)

    def node(self, pod, cp=None):
        cp = cp if cp is not None else self.checkpoint()
        if cp is None:
            return None
        return cp.get("detector", {}).get("nodes", {}).get(node_key(pod))

    def file_entry(self, path, cp=None):
        cp = cp if cp is not None else self.checkpoint()
        if cp is None:
            return None
        for f in checkpoint_streams(cp):
            if f.get("path") == path:
                return f
        return None

    def observed(self):
        """What the instance shows now (for failure messages)."""
        cp = self.checkpoint()
        nodes = {}
        if cp is not None:
            for k, v in cp.get("detector", {}).get("nodes", {}).items():
                nodes[k.split("/")[-1]] = {x: v.get(x) for x in (
                    "last_height", "commits", "lines_read", "lines_rejected", "stalled", "ooc")}
        evs = [(e.get("event"), e.get("node"), e.get("height")) for e in self.events()]
        files = [(os.path.basename(f.get("path", "")), f.get("offset"))
                 for f in checkpoint_streams(cp or {})]
        return "checkpoint nodes=%r files=%r; events=%r; alive=%r; stderr tail=%r" % (
            nodes, files, evs[-20:], self.alive(), self.stderr()[-500:])

    # --- waiting (polling with a deadline, never a bare sleep)

    def wait(self, pred, what, timeout=None, observe=None, retry=False):
        """Polls pred until it holds; fails when the writer thread broke, the
        process exited or the deadline passed (with what the instance shows)."""
        timeout = self.deadline if timeout is None else timeout
        end = time.monotonic() + timeout
        last = None
        while True:
            if self.cluster.error:
                raise Failure(self.cluster.error)
            try:
                r = pred()
            except (AssertionError, OSError) as e:
                if not retry:
                    raise
                last, r = e, None
            if r:
                return r
            more = " (last: %s)" % last if last is not None else ""
            if observe is not None:
                more += "; " + observe()
            if not self.alive():
                raise Failure("%s: the process exited (status %r); %s%s"
                              % (what, self.p.poll() if self.p else None, self.observed(), more))
            if time.monotonic() > end:
                raise Failure("%s: not within %.0f s; observed: %s%s" % (
                    what, timeout, self.observed(), more))
            time.sleep(POLL)

    def wait_event(self, kind, pod=None, what=None, timeout=None, **fields):
        found = self.wait(lambda: self.find(kind, pod, **fields),
                          what or "%s event for %s %r" % (kind, pod, fields), timeout)
        return found[0]

    def wait_height(self, pod, h, what=None):
        def ok():
            n = self.node(pod)
            return n is not None and n.get("last_height", -1) >= h
        self.wait(ok, what or "checkpoint shows %s at height %d" % (pod, h))

    def wait_caught_up(self, pod):
        """The checkpoint shows the node at the height last written to it."""
        h = self.cluster.nodes[pod].last_height
        self.wait_height(pod, h, "%s's last written height %d processed" % (pod, h))

    def wait_watermark(self, t_ns, what):
        """Until the heartbeat's last processed commit is later than t_ns: the
        event time has passed t_ns, so every event due before it is written
        (events before the watermark are written before the checkpoint that
        shows it)."""
        def ok():
            n = self.node(HB)
            return n is not None and (n.get("last_advance") or 0) > t_ns
        self.wait(ok, what)

    def ensure_polled(self):
        """Returns once every file has surely been read after this call: a
        heartbeat line written after the call is processed, and then one
        written after that was seen (two rounds, as one poll may have read a
        file before the call and the heartbeat's after it)."""
        for _ in range(2):
            target = self.cluster.hb_height() + 1
            self.wait_height(HB, target, "heartbeat height %d processed" % target)


class Scenario:
    """A folder with a cluster (the heartbeat HB and `pods`; `pre(cluster)`
    writes history before the start; every file ends with a line at the
    start) and a ClusterProc with configuration `cfg` (see config_text)."""

    def __init__(self, binary, root, pods=("val-a",), pre=None, deadline=25.0, **cfg):
        self.root = root
        os.makedirs(root)
        self.cl = Cluster(root)
        for pod in (HB,) + tuple(pods):
            self.cl.add(pod, create=False)
        if pre:
            pre(self.cl)
        for pod in (HB,) + tuple(pods):
            self.cl.commit(pod)
        self.p = ClusterProc(binary, root, self.cl, deadline=deadline, **cfg)

    def start(self):
        self.p.start()
        self.cl.start()

    def close(self):
        self.cl.stop_quietly()
        self.p.cleanup()


# Checks on a ClusterProc shared by run_test.py and the delivery tests


def stall_and_recover(p, pod, stall_s=STALL_S):
    """Stops `pod` (the heartbeat goes on): node_stalled at its last height,
    exactly stall_after after its last commit; then resumes it:
    node_recovered. Returns (stalled, recovered)."""
    cl = p.cluster
    p.wait_caught_up(pod)
    before = {e["id"] for e in p.find("node_stalled", pod)}
    last_h, last_t = cl.set_active(pod, False)
    st = p.wait(lambda: [e for e in p.find("node_stalled", pod) if e["id"] not in before],
                "node_stalled for %s after it stopped at height %d" % (pod, last_h))[0]
    expect_eq(st.get("height"), last_h, "node_stalled height (its last commit)")
    expect_eq(st.get("detail", {}).get("last_commit"), event_time(last_t),
              "node_stalled detail.last_commit")
    expect_eq(parse_event_time(st["time"]) - parse_event_time(st["detail"]["last_commit"]),
              stall_s * SECOND, "node_stalled time - last_commit (stall_after)")
    expect(not p.find("node_stalled", HB), "the heartbeat was reported stalled: %r"
           % p.find("node_stalled", HB))
    cl.set_active(pod, True)
    rec = p.wait(lambda: [e for e in p.find("node_recovered", pod)
                          if parse_event_time(e["time"]) > parse_event_time(st["time"])],
                 "node_recovered for %s after it resumed" % pod)[0]
    first_new = [h for h in cl.nodes[pod].heights if h > last_h][0]
    expect_eq(rec.get("height"), first_new, "node_recovered height (first commit after resuming)")
    return st, rec


def file_counts_match(p, pods):
    """After the writer has stopped: the checkpoint's counters equal what was
    written (every record read exactly once, every height counted)."""
    cl = p.cluster
    for pod in pods:
        p.wait_caught_up(pod)
    want = {pod: (cl.nodes[pod].records, len(cl.nodes[pod].heights)) for pod in pods}

    def ok():
        cp = p.checkpoint()
        return all((p.node(pod, cp) or {}).get("lines_read") == want[pod][0] for pod in pods)
    try:
        p.wait(ok, "checkpoint line counters reach what was written")
    except Failure:
        pass  # asserted below with the exact numbers
    cp = p.checkpoint()
    for pod in pods:
        n = p.node(pod, cp)
        expect(n is not None, "no detector state for %s in the checkpoint" % pod)
        expect_eq(n.get("lines_read"), want[pod][0],
                  "%s lines_read (lines written: each read exactly once)" % pod)
        expect_eq(n.get("commits"), want[pod][1], "%s commits (distinct heights written)" % pod)
        expect_eq(n.get("lines_rejected"), 0, "%s lines_rejected" % pod)
        expect_eq(n.get("last_height"), cl.nodes[pod].last_height, "%s last_height" % pod)
    return cp


def offsets_at_end(cp):
    """Every file in the checkpoint is the file now at its path, read to its end."""
    for f in checkpoint_streams(cp):
        path = f.get("path")
        expect(os.path.exists(path), "checkpoint lists %s, which does not exist" % path)
        st = os.stat(path)
        expect_eq(f.get("ino"), st.st_ino, "checkpoint inode of %s" % os.path.basename(path))
        expect_eq(f.get("offset"), st.st_size, "checkpoint offset of %s (file size)"
                  % os.path.basename(path))


def unique_ids(events, what="events"):
    seen = {}
    dups = []
    for e in events:
        i = e.get("id")
        if i in seen:
            dups.append((e.get("event"), e.get("node"), e.get("height"), e.get("time")))
        seen[i] = e
    expect(not dups, "%s: event ids written twice: %r" % (what, dups))


def stop_process(p, grace=10):
    """SIGTERM, then SIGKILL after `grace` seconds; reaped."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def file_tail(path, n):
    """The last `n` characters of a daemon's log file ("" when there is none)."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-n:]
    except OSError:
        return ""


# --------------------------------------------------------------------------
# Alertmanager (Debian's prometheus-alertmanager)

AM_BIN = "/usr/bin/prometheus-alertmanager"

AM_CONFIG = """route:
  receiver: "null"
  group_by: ["alertname"]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: "null"
"""


class Alertmanager:
    """One Alertmanager on 127.0.0.1 (a free port, no cluster gossip, a route
    to a receiver that notifies nobody), its configuration and storage in
    root/name. What it holds is read through its API v2 and /metrics."""

    def __init__(self, root, name, binary=AM_BIN, deadline=30.0):
        self.name = name
        self.binary = binary
        self.deadline = deadline
        self.dir = os.path.join(root, name)
        os.makedirs(os.path.join(self.dir, "data"))
        self.cfg = os.path.join(self.dir, "alertmanager.yml")
        with open(self.cfg, "w") as f:
            f.write(AM_CONFIG)
        self.log_path = os.path.join(self.dir, "alertmanager.log")
        self.port = None
        self.p = None
        self.log_file = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        """Starts it and waits until GET /-/ready answers 200."""
        self.port = free_port()
        self.log_file = open(self.log_path, "ab")
        self.p = subprocess.Popen(
            [self.binary, "--config.file=" + self.cfg,
             "--storage.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port,
             "--cluster.listen-address="],
            stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=subprocess.STDOUT)
        wait_for(self.ready, "%s ready on %s" % (self.name, self.url), self.deadline,
                 observe=self.log_tail)

    def ready(self):
        if self.p.poll() is not None:
            raise Failure("%s exited with status %r; log:\n%s"
                          % (self.name, self.p.returncode, self.log_tail()))
        try:
            return http_get(self.url + "/-/ready", timeout=2)[0] == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self):
        return file_tail(self.log_path, 1500)

    def alerts(self):
        """The alerts Alertmanager holds whose endsAt has not passed."""
        status, body = http_get(self.url + "/api/v2/alerts")
        expect_eq(status, 200, "%s GET /api/v2/alerts status" % self.name)
        return json.loads(body)

    def find(self, name, node=None):
        out = []
        for a in self.alerts():
            labels = a.get("labels", {})
            if labels.get("alertname") == name and (node is None or labels.get("node") == node):
                out.append(a)
        return out

    def one(self, name, node=None):
        found = self.find(name, node)
        return found[0] if len(found) == 1 else None

    def counter(self, metric, **want):
        """Sum of a counter's series whose labels include `want`."""
        status, body = http_get(self.url + "/metrics")
        expect_eq(status, 200, "%s GET /metrics status" % self.name)
        total = 0.0
        for line in body.split("\n"):
            if not line.startswith(metric):
                continue
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
            if not m or m.group(1) != metric:
                continue
            labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"', m.group(2) or ""))
            if all(labels.get(k) == v for k, v in want.items()):
                total += float(m.group(3))
        return total

    def resolved_received(self):
        return self.counter("alertmanager_alerts_received_total", status="resolved")

    def summary(self):
        try:
            return repr(sorted((a["labels"].get("alertname"), a["labels"].get("node"),
                                a.get("endsAt")) for a in self.alerts()))
        except Exception as e:  # for failure messages only
            return "(unreadable: %r)" % e

    def stop(self):
        if self.p is not None:
            stop_process(self.p)
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None
