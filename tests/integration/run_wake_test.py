#!/usr/bin/env python3
"""`quorumwatch run` with several sources, and signals (suite 'integration').

usage: python3 tests/integration/run_wake_test.py PATH/TO/quorumwatch

1. Two file sources in two folders, `poll_interval: 1h`: a line appended to
   the second source's file must be read at once, from its change
   notification (before, only the first source's notifications woke the
   reader, and the second waited for the poll interval).
2. Twenty SIGHUP reloads in a row while lines are written: the instance keeps
   running, keeps reading, and its events file and checkpoint stay intact
   JSON (a signal handler that writes to a descriptor closed by a reload and
   reused could write into either).
3. The events file on a full device (/dev/full): the failed writes are
   reported on stderr and at the stop, no checkpoint implies the events that
   were lost, and a start with a writable events file writes them.

Waits poll files with generous deadlines; nothing is asserted on timing.
Prints ok/FAIL per check and "N passed, M failed"; exits 1 on any failure.
"""
import datetime
import json
import re
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

UTC = datetime.timezone.utc
DEADLINE = 30.0
BIN = None


class Failure(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Failure(what)


def wait(cond, what, timeout=DEADLINE):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise Failure("not within %d s: %s" % (timeout, what))


def stamp(t):
    return "%s.%09dZ" % (t.strftime("%Y-%m-%dT%H:%M:%S"), t.microsecond * 1000)


def tm(t):
    return t.strftime("%Y-%m-%d|%H:%M:%S.") + "%03d" % (t.microsecond // 1000)


def commit(h):
    t = datetime.datetime.now(UTC)
    return "%s stdout F I[%s] %-44s module=state height=%d num_txs=0 app_hash=AB12\n" % (
        stamp(t), tm(t), "committed state", h)


def failure():
    t = datetime.datetime.now(UTC)
    return ('%s stdout F E[%s] %-44s module=consensus err="wrong Block.Header.AppHash"\n'
            % (stamp(t), tm(t), "CONSENSUS FAILURE!!!"))


def events(path):
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                out.append(json.loads(line))
    except FileNotFoundError:
        pass
    return out


class Run:
    def __init__(self, root, cfg):
        self.root = root
        self.cfg = os.path.join(root, "quorumwatch.yaml")
        with open(self.cfg, "w") as f:
            f.write(cfg)
        self.err = open(os.path.join(root, "stderr"), "w+")
        self.p = subprocess.Popen([BIN, "run", "-c", self.cfg], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=self.err)

    def stderr(self):
        with open(os.path.join(self.root, "stderr")) as f:
            return f.read()

    def checkpoint(self):
        try:
            with open(os.path.join(self.root, "state", "checkpoint.json")) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return None

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.p.kill()
            raise Failure("no exit within %d s of SIGTERM" % DEADLINE)
        expect(rc == 0, "exit status %d after SIGTERM; stderr:\n%s" % (rc, self.stderr()[-600:]))


def config(root, dirs, poll, events=None):
    sources = "".join('  - {type: file, include: ["%s/*.log"], read_from: beginning, '
                      'poll_interval: %s}\n' % (d, poll) for d in dirs)
    return f'''sources:
{sources}streams:
  - match: {{namespace: "cosmos"}}
    chain: cosmoshub
chains:
  cosmoshub: {{family: cometbft, stall_after: 1h}}
state_dir: {root}/state
checkpoint_interval: 100ms
sinks:
  - {{type: jsonl, path: {events or root + "/events.jsonl"}}}
'''


def name(pod):
    return "%s_cosmos_gaiad-0123456789ab.log" % pod


def streams_known(run, n):
    cp = run.checkpoint()
    return cp is not None and len(cp.get("streams", cp.get("files", []))) == n


def check_second_source(tmp):
    root = os.path.join(tmp, "two")
    a, b = os.path.join(root, "a"), os.path.join(root, "b")
    os.makedirs(a)
    os.makedirs(b)
    with open(os.path.join(a, name("val-a")), "w") as f:
        f.write(commit(100))
    with open(os.path.join(b, name("val-b")), "w") as f:
        f.write(commit(100))
    run = Run(root, config(root, [a, b], "1h"))
    try:
        wait(lambda: streams_known(run, 2), "the checkpoint lists both files")
        with open(os.path.join(b, name("val-b")), "a") as f:
            f.write(commit(101) + failure())
        evpath = os.path.join(root, "events.jsonl")
        wait(lambda: any(e["event"] == "consensus_failure" and e["node"] == "val-b"
                         for e in events(evpath)),
             "consensus_failure of val-b, whose file is in the second source")
    finally:
        run.stop()


def check_reloads(tmp):
    root = os.path.join(tmp, "reloads")
    logs = os.path.join(root, "logs")
    os.makedirs(logs)
    path = os.path.join(logs, name("val-a"))
    h = 100
    with open(path, "w") as f:
        f.write(commit(h))
    run = Run(root, config(root, [logs], "100ms"))
    evpath = os.path.join(root, "events.jsonl")
    try:
        wait(lambda: streams_known(run, 1), "the checkpoint lists the file")
        # An event decided before the reloads: the stop message's count
        # must still hold it afterwards.
        with open(path, "a") as f:
            f.write(failure())
        wait(lambda: any(e["event"] == "consensus_failure" for e in events(evpath)),
             "a consensus_failure before the reloads")
        with open(path, "a") as f:
            f.write(commit(h))
        for i in range(20):
            h += 1
            with open(path, "a") as f:
                f.write(commit(h))
            run.p.send_signal(signal.SIGHUP)
            wait(lambda: run.stderr().count("reloading") >= i + 1, "reload %d is logged" % (i + 1))
        expect(run.p.poll() is None, "the instance exited; stderr:\n%s" % run.stderr()[-600:])
        h += 1
        with open(path, "a") as f:
            f.write(commit(h) + failure())
        wait(lambda: sum(e["event"] == "consensus_failure" for e in events(evpath)) >= 2,
             "a consensus_failure after the reloads")
        run.stop()
        # The count covers the whole process, reloads and all.
        decided = re.findall(r"stopped: (\d+) event\(s\) decided", run.stderr())
        expect(decided == [str(len(events(evpath)))],
               "stop message counts %r, the events file holds %d" % (decided, len(events(evpath))))
        with open(evpath, "rb") as f:
            for n, raw in enumerate(f, 1):
                try:
                    json.loads(raw)
                except ValueError:
                    raise Failure("events line %d is not JSON: %r" % (n, raw[:120]))
        cp = run.checkpoint()
        expect(cp is not None, "the checkpoint is not JSON after the reloads")
        offsets = [s["offset"] for s in cp.get("streams", cp.get("files", []))]
        expect(offsets == [os.path.getsize(path)], "checkpoint offsets %r, file size %d"
               % (offsets, os.path.getsize(path)))
    finally:
        if run.p.poll() is None:
            run.p.kill()


def check_full_device(tmp):
    root = os.path.join(tmp, "full")
    logs = os.path.join(root, "logs")
    os.makedirs(logs)
    path = os.path.join(logs, name("val-a"))
    with open(path, "w") as f:
        f.write(commit(100) + commit(101) + failure())
    run = Run(root, config(root, [logs], "100ms", events="/dev/full"))
    try:
        wait(lambda: "/dev/full" in run.stderr() and "fail" in run.stderr(),
             "a failed write of /dev/full on stderr")
        run.stop()
        expect("write(s) of the events failed" in run.stderr(),
               "the stop line says events were not written; stderr:\n%s" % run.stderr()[-600:])
        # A checkpoint may be there, but it may not imply the lost event:
        # the event is among its pending events, or its position is before
        # the failure line.
        cp = run.checkpoint()
        if cp is not None:
            pending = [e for e in cp.get("pending_events", []) if e.get("event") == "consensus_failure"]
            offsets = [st["offset"] for st in cp.get("streams", [])]
            expect(pending or all(o < os.path.getsize(path) for o in offsets),
                   "the checkpoint implies the unwritten consensus_failure: offsets %r, pending %r"
                   % (offsets, cp.get("pending_events")))
    finally:
        if run.p.poll() is None:
            run.p.kill()
    # Room again: the same state directory, a writable events file.
    evpath = os.path.join(root, "events.jsonl")
    run2 = Run(root, config(root, [logs], "100ms", events=evpath))
    try:
        wait(lambda: any(e["event"] == "consensus_failure" and e["node"] == "val-a"
                         for e in events(evpath)),
             "the consensus_failure lost on the full device is written after the restart")
    finally:
        run2.stop()


def main():
    global BIN
    if len(sys.argv) != 2:
        print("usage: run_wake_test.py PATH/TO/quorumwatch", file=sys.stderr)
        return 2
    BIN = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="qw-wake-")
    passed = failed = 0
    for label, fn in (("two sources: the second source's appends are read at once", check_second_source),
                      ("20 SIGHUP reloads: still reading, events and checkpoint intact", check_reloads),
                      ("events on a full device: reported, not checkpointed, written after a restart",
                       check_full_device)):
        try:
            fn(tmp)
            passed += 1
            print("ok   " + label, flush=True)
        except Exception as e:  # a broken check is a failed check
            failed += 1
            detail = str(e) if isinstance(e, Failure) else traceback.format_exc()
            print("FAIL %s: %s" % (label, detail), flush=True)
    if failed == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("(files kept in %s)" % tmp)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
