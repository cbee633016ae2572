#!/usr/bin/env python3
"""Live-tailing integration test of `quorumwatch run` (suite 'integration').

Long on purpose: the scenarios share one harness (a cluster of writing nodes,
the process, waits on the checkpoint); each check_* function below is one
scenario.

Usage: python3 tests/integration/run_test.py PATH/TO/quorumwatch

Starts the built binary on a temporary folder of Kubernetes-named CRI logs
(`<pod>_<namespace>_<container>-<hex>.log`) with a jsonl sink and a state
directory, and writes CometBFT "committed state" lines the way a node does
while it runs: appends, rename and copytruncate rotation, deleted and new
files, CRI partial (P/F) records, a last line without newline, a graceful
stop, a `kill -9`, and SIGHUP reloads (docs/PIPELINE.md: "The record stage",
"Ordering and time", "Checkpoints", "The file tailer"; README.md:
"`quorumwatch run`", "Configuration").

A "heartbeat" node keeps committing throughout, so the instance always
receives input: an instance whose every stream is silent reports an input
outage instead of stalls, by design.

Synchronisation is never a sleep: every wait polls the events file, the
checkpoint (state_dir/checkpoint.json: tail offsets and detector state,
written every checkpoint_interval) or the captured stderr until a condition
holds or a generous deadline passes. Absence of an event ("no stall") is
asserted once the instance's event time has provably passed the moment the
event would have had: the heartbeat's last commit time in the checkpoint is a
lower bound of the watermark, and events before the watermark are written
before the checkpoint that shows it.

Prints "ok"/"FAIL" per check and ends with "N passed, M failed"; exits 1
when anything failed. Python 3 standard library only.
"""

import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
NS = "cosmos-mainnet"
CHAIN = "cosmoshub"
STALL_S = 2  # stall_after of the chain, seconds
SECOND = 1_000_000_000
MS = 1_000_000
WRITE_PERIOD = 0.2  # the writer thread's commit period (pacing, not synchronisation)
DEADLINE = 25.0  # generous: the machine has two busy cores
HB = "hb-0"  # the heartbeat node

# --------------------------------------------------------------------------
# Harness


class Failure(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Failure(what)


def expect_eq(got, want, what):
    if got != want:
        raise Failure("%s: got %r, want %r" % (what, got, want))


class Runner:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, fn):
        try:
            fn()
        except Failure as e:
            self.failed += 1
            print("FAIL %s: %s" % (name, e), flush=True)
            return False
        except Exception:  # a broken check is a failed check, never a crash
            self.failed += 1
            print("FAIL %s: exception\n%s" % (name, traceback.format_exc()), flush=True)
            return False
        self.passed += 1
        print("ok   %s" % name, flush=True)
        return True


BIN = None
TMP = None

# --------------------------------------------------------------------------
# Times and lines


def ns_of(t):
    return (t - EPOCH) // datetime.timedelta(microseconds=1) * 1000


def ms_stamp_ns(ns):
    """RFC 3339 UTC with milliseconds, as events carry times."""
    t = EPOCH + datetime.timedelta(microseconds=ns // 1000)
    return "%s.%03dZ" % (t.strftime("%Y-%m-%dT%H:%M:%S"), (ns // MS) % 1000)


def parse_ms(s):
    """Event time string -> nanoseconds (millisecond precision)."""
    t = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return ns_of(t)


def cri_prefix(t, tag="F"):
    return "%s.%09dZ stdout %s " % (t.strftime("%Y-%m-%dT%H:%M:%S"), t.microsecond * 1000, tag)


def tm_stamp(t):
    return t.strftime("%Y-%m-%d|%H:%M:%S.") + "%03d" % (t.microsecond // 1000)


def commit_msg(t, h):
    return "I[%s] %-44s module=state height=%d num_txs=0 app_hash=AB12" % (
        tm_stamp(t), "committed state", h)


def failure_msg(t):
    return ('E[%s] %-44s module=consensus err="runtime error: invalid memory address or nil '
            'pointer dereference" stack="goroutine 140 [running]:\\n"' % (
                tm_stamp(t), "CONSENSUS FAILURE!!!"))


def log_name(pod):
    return "%s_%s_gaiad-0123456789ab.log" % (pod, NS)


def node_key(pod):
    return "%s|%s/%s" % (CHAIN, NS, pod)


# --------------------------------------------------------------------------
# The cluster: nodes writing CRI log files, a writer thread committing


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
    """Nodes of one chain. The writer thread commits the next chain height on
    every active node each WRITE_PERIOD; everything else holds `lock` while it
    changes files, so lines are never interleaved with a manipulation."""

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
            self.append(pod, cri_prefix(t) + commit_msg(t, h) + "\n")
            n.records += 1
            n.heights.append(h)
            n.last_time = t
            return h, t

    def failure(self, pod):
        """One complete CONSENSUS FAILURE record."""
        with self.lock:
            t = datetime.datetime.now(UTC)
            self.append(pod, cri_prefix(t) + failure_msg(t) + "\n")
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

    def start(self):
        def loop():
            try:
                while not self._stop.is_set():
                    self.tick()
                    self._stop.wait(WRITE_PERIOD)
            except Exception as e:  # reported by the check that owns the cluster
                self.error = "writer thread: %r" % e
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self.error:
            raise Failure(self.error)

    def hb_height(self):
        with self.lock:
            return self.nodes[HB].last_height


# --------------------------------------------------------------------------
# The process under test


def config_text(logs, root, read_from="beginning", chain_extra="", checkpoint="200ms",
                stall="2s", extra=""):
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


class Proc:
    def __init__(self, root, cluster, **cfg):
        self.root = root
        self.cluster = cluster
        self.cfg = os.path.join(root, "quorumwatch.yaml")
        self.events_path = os.path.join(root, "events.jsonl")
        self.state = os.path.join(root, "state")
        self.p = None
        self.err_lines = []
        self.err_lock = threading.Lock()
        self.write_config(**cfg)

    def write_config(self, **cfg):
        text = config_text(self.cluster.dir, self.root, **cfg)
        tmp = self.cfg + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.cfg)

    def start(self):
        self.p = subprocess.Popen([BIN, "run", "-c", self.cfg], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        proc = self.p

        def reader():
            for raw in proc.stderr:
                with self.err_lock:
                    self.err_lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
        threading.Thread(target=reader, daemon=True).start()

    def stderr(self):
        with self.err_lock:
            return "\n".join(self.err_lines)

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def signal(self, sig):
        expect(self.alive(), "process not running before signal %d; stderr:\n%s"
               % (sig, self.stderr()[-800:]))
        self.p.send_signal(sig)

    def stop(self):
        """SIGTERM: must exit 0 with a final checkpoint."""
        self.signal(signal.SIGTERM)
        try:
            rc = self.p.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise Failure("did not exit within %ds of SIGTERM" % DEADLINE)
        expect_eq(rc, 0, "exit status after SIGTERM (stderr: %r)" % self.stderr()[-400:])

    def kill9(self):
        expect(self.alive(), "process not running before kill -9")
        self.p.kill()
        self.p.wait()

    def cleanup(self):
        if self.alive():
            self.p.kill()
            self.p.wait()

    # --- observations

    def events(self):
        try:
            with open(self.events_path, "rb") as f:
                data = f.read().decode("utf-8")
        except FileNotFoundError:
            return []
        out = []
        for line in data.split("\n")[:-1]:  # only complete lines
            if line.strip():
                out.append(json.loads(line))
        return out

    def find(self, kind, pod=None, **fields):
        out = []
        for e in self.events():
            if e.get("event") != kind or (pod is not None and e.get("node") != pod):
                continue
            if all(e.get(k) == v for k, v in fields.items()):
                out.append(e)
        return out

    def checkpoint(self):
        try:
            with open(os.path.join(self.state, "checkpoint.json"), "rb") as f:
                return json.loads(f.read().decode("utf-8"))
        except (FileNotFoundError, ValueError):
            return None

    def node(self, pod, cp=None):
        cp = cp if cp is not None else self.checkpoint()
        if cp is None:
            return None
        return cp.get("detector", {}).get("nodes", {}).get(node_key(pod))

    def file_entry(self, path, cp=None):
        cp = cp if cp is not None else self.checkpoint()
        if cp is None:
            return None
        for f in cp.get("streams", cp.get("files", [])):
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
                 for f in (cp or {}).get("streams", (cp or {}).get("files", []))]
        return "checkpoint nodes=%r files=%r; events=%r; alive=%r; stderr tail=%r" % (
            nodes, files, evs[-20:], self.alive(), self.stderr()[-500:])

    # --- waiting (polling with a deadline, never a bare sleep)

    def wait(self, pred, what, timeout=DEADLINE):
        end = time.monotonic() + timeout
        while True:
            if self.cluster.error:
                raise Failure(self.cluster.error)
            r = pred()
            if r:
                return r
            if not self.alive():
                raise Failure("%s: the process exited (status %r); %s"
                              % (what, self.p.poll() if self.p else None, self.observed()))
            if time.monotonic() > end:
                raise Failure("%s: not within %.0f s; observed: %s" % (what, timeout,
                                                                      self.observed()))
            time.sleep(0.05)

    def wait_event(self, kind, pod=None, what=None, timeout=DEADLINE, **fields):
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
        event time has passed t_ns, so every event due before it is written."""
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
        p.wait(ok, "checkpoint line counters reach what was written", timeout=5)
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


def offsets_at_end(p, cp):
    """Every file in the checkpoint is the file now at its path, read to its end."""
    for f in cp.get("streams", cp.get("files", [])):
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


class Scenario:
    """A temporary folder, a cluster with a heartbeat, and a process."""

    def __init__(self, name, pods=("val-a",), pre=None, **cfg):
        self.root = os.path.join(TMP, name)
        os.makedirs(self.root)
        self.cl = Cluster(self.root)
        for pod in (HB,) + tuple(pods):
            self.cl.add(pod, create=False)
        if pre:
            pre(self.cl)  # history written before the start
        for pod in (HB,) + tuple(pods):
            self.cl.commit(pod)  # every file exists (and ends with a line) at the start
        self.p = Proc(self.root, self.cl, **cfg)

    def start(self):
        self.p.start()
        self.cl.start()

    def close(self):
        try:
            self.cl.stop()
        except Failure:
            pass
        self.p.cleanup()


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
    expect_eq(st.get("detail", {}).get("last_commit"), ms_stamp_ns(ns_of(last_t)),
              "node_stalled detail.last_commit")
    expect_eq(parse_ms(st["time"]) - parse_ms(st["detail"]["last_commit"]), stall_s * SECOND,
              "node_stalled time - last_commit (stall_after)")
    expect(not p.find("node_stalled", HB), "the heartbeat was reported stalled: %r"
           % p.find("node_stalled", HB))
    cl.set_active(pod, True)
    rec = p.wait(lambda: [e for e in p.find("node_recovered", pod)
                          if parse_ms(e["time"]) > parse_ms(st["time"])],
                 "node_recovered for %s after it resumed" % pod)[0]
    first_new = [h for h in cl.nodes[pod].heights if h > last_h][0]
    expect_eq(rec.get("height"), first_new, "node_recovered height (first commit after resuming)")
    return st, rec


# --------------------------------------------------------------------------
# Checks


def check_append(t):
    def pre(cl):
        # History present before the start: read_from end skips it.
        for h in (50, 51, 52):
            cl.commit("val-a", h)
            cl.commit(HB, h)

    def run():
        s = Scenario("append", pre=pre, read_from="end")
        try:
            p, cl = s.p, s.cl
            s.start()
            path = cl.nodes["val-a"].path
            p.wait(lambda: p.file_entry(path), "val-a's file opened")
            p.wait_caught_up("val-a")
            n = p.node("val-a")
            expect(n["first_height"] > 52, "read_from: end read the lines already present "
                   "(first_height %r)" % n["first_height"])
            stall_and_recover(p, "val-a")
            unique_ids(p.events())
        finally:
            s.close()
    t.check("1 append: appended lines read; a silent node stalls, then recovers", run)


def check_rename_rotation(t):
    def run():
        s = Scenario("rename")
        try:
            p, cl = s.p, s.cl
            s.start()
            path = cl.nodes["val-a"].path
            old_ino = os.stat(path).st_ino
            p.wait_caught_up("val-a")
            for _ in range(3):  # a few lines both before and after the rotation
                cl.tick()
            with cl.lock:
                os.rename(path, path + ".1")
                open(path, "a").close()
                rot_ns = ns_of(datetime.datetime.now(UTC))
            new_ino = os.stat(path).st_ino
            expect(new_ino != old_ino, "test setup: the new file has the old inode")
            p.wait(lambda: (p.file_entry(path) or {}).get("ino") == new_ino,
                   "checkpoint follows the new file at the same path")
            p.wait_watermark(rot_ns + (STALL_S + 1) * SECOND,
                             "event time passes the rotation + stall_after + 1 s")
            p.wait_caught_up("val-a")
            expect(not p.find("node_stalled", "val-a"),
                   "val-a reported stalled across the rotation: %r" % p.find("node_stalled", "val-a"))
            expect(not p.find("out_of_consensus", "val-a"),
                   "val-a out of consensus across the rotation: %r"
                   % p.find("out_of_consensus", "val-a"))
            # A stall and recovery in the new file: it is really followed.
            stall_and_recover(p, "val-a")
            cl.stop()
            cp = file_counts_match(p, ["val-a", HB])
            offsets_at_end(p, cp)
            expect(not [f for f in cp.get("streams", cp.get("files", [])) if f.get("path", "").endswith(".1")],
                   "the rotated file is still tailed: %r" % cp.get("streams"))
            unique_ids(p.events())
            p.stop()
        finally:
            s.close()
    t.check("2 rename rotation: new file followed, no stall, no height lost or read twice", run)


def check_copytruncate(t):
    def pre(cl):
        # A file of some size, so the truncated one stays below the offset.
        for h in range(60, 90):
            cl.commit("val-a", h)

    def run():
        s = Scenario("copytruncate", pre=pre)
        try:
            p, cl = s.p, s.cl
            s.start()
            path = cl.nodes["val-a"].path
            ino = os.stat(path).st_ino
            p.wait_caught_up("val-a")
            # logrotate copytruncate: copy, then empty in place, writer goes on.
            cl.set_active("val-a", False)
            p.wait_caught_up("val-a")
            p.wait(lambda: (p.file_entry(path) or {}).get("offset") == os.path.getsize(path),
                   "val-a read to its end before the truncation")
            with cl.lock:
                shutil.copyfile(path, path + ".1")
                with open(path, "r+") as f:
                    f.truncate(0)
                trunc_ns = ns_of(datetime.datetime.now(UTC))
                cl.nodes["val-a"].active = True
            expect_eq(os.stat(path).st_ino, ino, "test setup: truncated in place")
            p.wait_watermark(trunc_ns + (STALL_S + 1) * SECOND,
                             "event time passes the truncation + stall_after + 1 s")
            p.wait_caught_up("val-a")
            expect(not p.find("node_stalled", "val-a"),
                   "val-a reported stalled after copytruncate: %r" % p.find("node_stalled", "val-a"))
            cl.stop()
            cp = file_counts_match(p, ["val-a", HB])
            offsets_at_end(p, cp)
            unique_ids(p.events())
            p.stop()
        finally:
            s.close()
    t.check("3 copytruncate: truncated file read again from 0, no stall, nothing lost", run)


def check_delete(t):
    def run():
        s = Scenario("delete")
        try:
            p, cl = s.p, s.cl
            s.start()
            path = cl.nodes["val-a"].path
            p.wait_caught_up("val-a")
            with cl.lock:  # the pod is deleted: its node stops and its file goes
                cl.nodes["val-a"].active = False
                last_ns = cl.nodes["val-a"].last_ns()
                os.remove(path)
            p.wait(lambda: p.checkpoint() is not None and p.file_entry(path) is None,
                   "val-a's removed file no longer tailed")
            hb_before = cl.hb_height()
            p.wait_watermark(last_ns + (STALL_S + 2) * SECOND,
                             "event time passes val-a's last commit + stall_after + 2 s")
            for kind in ("node_stalled", "out_of_consensus", "ban"):
                expect(not p.find(kind, "val-a"), "%s for val-a after its file was removed "
                       "(a retired node): %r" % (kind, p.find(kind, "val-a")))
            expect(not p.find("node_stalled", HB), "heartbeat reported stalled")
            expect(not p.find("chain_halted"), "chain_halted reported: %r" % p.find("chain_halted"))
            expect((p.node(HB) or {}).get("last_height", -1) > hb_before,
                   "heartbeat still processed after the removal")
            unique_ids(p.events())
            p.stop()
        finally:
            s.close()
    t.check("4 delete: a removed file's node is retired, not stalled; heartbeat goes on", run)


def check_new_file(t):
    def run():
        s = Scenario("newfile", pods=(), read_from="end")
        try:
            p, cl = s.p, s.cl
            s.start()
            p.wait(lambda: p.file_entry(cl.nodes[HB].path), "heartbeat file opened")
            p.ensure_polled()
            with cl.lock:
                cl.add("val-b", active=False)  # the file appears with its first line
                first_h = cl.nodes["val-b"].last_height
                cl.commit("val-b")
            cl.set_active("val-b", True)
            p.wait(lambda: p.node("val-b"), "val-b (new file) in the detector state")
            p.wait_height("val-b", first_h + 2)
            expect_eq(p.node("val-b").get("first_height"), first_h,
                      "val-b first_height (a file that appears later is read from its start, "
                      "whatever read_from says)")
            stall_and_recover(p, "val-b")
            unique_ids(p.events())
            p.stop()
        finally:
            s.close()
    t.check("5 new file while running: read from its start and followed (stall reported)", run)


def check_cri_partial(t):
    s = Scenario("cri-partial")
    state = {}

    def commit_joined():
        p, cl = s.p, s.cl
        s.start()
        path = cl.nodes["val-a"].path
        p.wait_caught_up("val-a")
        cl.set_active("val-a", False)
        p.wait_caught_up("val-a")
        with cl.lock:
            n = cl.nodes["val-a"]
            h = max(cl.height, n.last_height) + 1
            cl.height = h
            tp = datetime.datetime.now(UTC)
            msg = commit_msg(tp, h)
            cut = msg.index("height=") + len("height=") + len(str(h)) - 1
            # The P part alone says height=<h without its last digit> (lower:
            # ignored); the F part alone matches nothing. Only joined is it h.
            cl.append("val-a", cri_prefix(tp, "P") + msg[:cut] + "\n")
            size_p = os.path.getsize(path)
        before = p.node("val-a")
        p.ensure_polled()
        mid = p.checkpoint()
        nm = p.node("val-a", mid)
        expect(nm["last_height"] < h, "height %d counted before its F part" % h)
        expect_eq(nm["lines_read"], before["lines_read"], "lines_read after the P part alone")
        entry = p.file_entry(path, mid)
        expect(entry["offset"] < size_p,
               "checkpoint offset %r is past the unfinished P record (file size %d): a "
               "restart would lose it" % (entry["offset"], size_p))
        with cl.lock:
            tf = datetime.datetime.now(UTC)
            cl.append("val-a", cri_prefix(tf, "F") + msg[cut:] + "\n")
            n.records += 2  # the P line and the F line
            n.heights.append(h)
            n.last_time = tp
        p.wait_height("val-a", h, "the joined P/F record's height %d" % h)
        after = p.node("val-a")
        expect_eq(after["last_height"], h, "last_height after the F part")
        expect_eq(after["lines_read"], before["lines_read"] + 2,
                  "lines_read (the P and the F line of one joined record)")
        expect_eq(after["commits"], before["commits"] + 1, "commits")
        expect_eq(after["lines_rejected"], 0, "lines_rejected")
        p.wait(lambda: (p.file_entry(path) or {}).get("offset") == os.path.getsize(path),
               "checkpoint offset at the end of the F part")
        state["h"] = h

    def failure_joined():
        p, cl = s.p, s.cl
        expect("h" in state, "needs the previous check's process")
        path = cl.nodes["val-a"].path
        with cl.lock:
            tp = datetime.datetime.now(UTC)
            msg = failure_msg(tp)
            cut = msg.index("CONSENSUS FAI") + len("CONSENSUS FAI")
            cl.append("val-a", cri_prefix(tp, "P") + msg[:cut] + "\n")
        p.ensure_polled()
        expect(not p.find("consensus_failure", "val-a"),
               "consensus_failure before the F part: %r" % p.find("consensus_failure", "val-a"))
        with cl.lock:
            tf = datetime.datetime.now(UTC)
            cl.append("val-a", cri_prefix(tf, "F") + msg[cut:] + "\n")
            cl.nodes["val-a"].records += 2  # the P line and the F line
        e = p.wait_event("consensus_failure", "val-a",
                         "consensus_failure from a record split into P and F parts")
        expect_eq(e.get("height"), state["h"] + 1, "consensus_failure height (last + 1)")
        expect_eq(e.get("severity"), "critical", "consensus_failure severity")
        expect("CONSENSUS FAILURE!!!" in e.get("detail", {}).get("line", ""),
               "detail.line is the joined record: %r" % e.get("detail"))
        cl.set_active("val-a", True)
        cl.stop()
        cp = file_counts_match(p, ["val-a", HB])
        offsets_at_end(p, cp)
        unique_ids(p.events())
        p.stop()

    try:
        t.check("6a CRI P/F across reads: a commit split in two counts once, joined", commit_joined)
        t.check("6b CRI P/F across reads: a split CONSENSUS FAILURE gives consensus_failure",
                failure_joined)
    finally:
        s.close()


def check_no_newline(t):
    def run():
        s = Scenario("no-newline")
        try:
            p, cl = s.p, s.cl
            s.start()
            path = cl.nodes["val-a"].path
            p.wait_caught_up("val-a")
            cl.set_active("val-a", False)
            p.wait_caught_up("val-a")
            before = p.node("val-a")
            with cl.lock:
                n = cl.nodes["val-a"]
                h = max(cl.height, n.last_height) + 1
                cl.height = h
                tl = datetime.datetime.now(UTC)
                line = cri_prefix(tl) + commit_msg(tl, h) + "\n"
                cut = line.index("height=") + len("height=") + len(str(h)) - 1
                size0 = os.path.getsize(path)
                cl.append("val-a", line[:cut])  # no newline yet
            p.ensure_polled()
            mid = p.checkpoint()
            nm = p.node("val-a", mid)
            expect_eq(nm["lines_read"], before["lines_read"],
                      "lines_read while the last line has no newline")
            expect(nm["last_height"] < h, "the unfinished line was counted")
            expect_eq(p.file_entry(path, mid)["offset"], size0,
                      "checkpoint offset while the last line is unfinished")
            with cl.lock:
                cl.append("val-a", line[cut:])
                n.records += 1
                n.heights.append(h)
                n.last_time = tl
            p.wait_height("val-a", h, "height %d of the completed line" % h)
            after = p.node("val-a")
            expect_eq(after["lines_read"], before["lines_read"] + 1,
                      "lines_read (the completed line once)")
            expect_eq(after["commits"], before["commits"] + 1, "commits")
            expect_eq(after["lines_rejected"], 0, "lines_rejected (no half line rejected)")
            cl.set_active("val-a", True)
            p.wait_height("val-a", h + 1)
            cl.stop()
            cp = file_counts_match(p, ["val-a", HB])
            offsets_at_end(p, cp)
            p.stop()
        finally:
            s.close()
    t.check("7 line without newline at EOF: completed later, counted once", run)


def check_restart_graceful(t):
    def pre(cl):
        for h in (50, 51, 52):
            cl.commit("val-a", h)
            cl.commit(HB, h)

    s = Scenario("restart", pre=pre, read_from="end")
    state = {}

    def restart():
        p, cl = s.p, s.cl
        s.start()
        path = cl.nodes["val-a"].path
        p.wait(lambda: p.file_entry(path), "val-a's file opened")
        p.wait_caught_up("val-a")
        first = p.node("val-a")["first_height"]
        # An event in the first run: it would come again if lines were re-read.
        with cl.lock:
            fail1_h = cl.nodes["val-a"].last_height + 1
            cl.failure("val-a")
        e1 = p.wait_event("consensus_failure", "val-a", height=fail1_h)
        p.wait_caught_up("val-a")
        p.stop()
        expect("stopped" in p.stderr(), "no 'stopped' line on stderr")
        expect(p.checkpoint() is not None, "no checkpoint.json after SIGTERM")
        # Down for longer than stall_after while both nodes go on logging
        # (read_from: end must not skip these lines: the checkpoint rules).
        with cl.lock:
            down_ns = ns_of(datetime.datetime.now(UTC))
            # A commit first: the writer thread may not have committed since
            # the first failure, and a failure at the same height is the
            # same situation (no new event).
            cl.commit("val-a")
            fail2_h = cl.nodes["val-a"].last_height + 1
            fail2_t = cl.failure("val-a")
        target = cl.hb_height() + int((STALL_S + 1) / WRITE_PERIOD) + 1
        end = time.monotonic() + DEADLINE
        while cl.hb_height() < target and time.monotonic() < end:
            time.sleep(0.05)  # waiting for the writer thread's lines
        expect(cl.hb_height() >= target, "test setup: the writer thread is stuck")
        n_err = len(p.err_lines)
        p.start()
        p.wait(lambda: any("resumed from checkpoint" in l for l in p.err_lines[n_err:]),
               "restart says it resumed from the checkpoint")
        e2 = p.wait_event("consensus_failure", "val-a", height=fail2_h,
                          what="consensus_failure for the line written while stopped "
                          "(height %d)" % fail2_h)
        expect(e2["id"] != e1["id"], "two failures at different heights share an id")
        # Stop the writers first, then wait until the checkpoint has every
        # line: a commit written after a wait could be missing from it.
        cl.stop()
        p.wait_caught_up("val-a")
        p.wait_caught_up(HB)
        # Counters: everything from the first line read, once.
        n = cl.nodes["val-a"]
        cp = p.checkpoint()
        nv = p.node("val-a", cp)
        expect_eq(nv["first_height"], first, "first_height kept across the restart")
        want_commits = len([h for h in n.heights if h >= first])
        expect_eq(nv["commits"], want_commits, "val-a commits across the restart")
        # val-a's records from its first read commit on: its commits + 2 failures.
        expect_eq(nv["lines_read"], want_commits + 2, "val-a lines_read across the restart")
        expect_eq(nv["lines_rejected"], 0, "val-a lines_rejected")
        offsets_at_end(p, cp)
        evs = p.events()
        expect_eq(len([e for e in evs if e["id"] == e1["id"]]), 1,
                  "times the first run's consensus_failure was written")
        unique_ids(evs, "events of both runs")
        state.update(down_ns=down_ns, fail2_t=fail2_t, e2=e2)

    def history_time():
        p = s.p
        expect(state, "needs the previous check's process")
        problems = []
        want = ms_stamp_ns(ns_of(state["fail2_t"]))
        if state["e2"]["time"] != want:
            problems.append("consensus_failure from the line written while stopped has time %s, "
                            "want the line's own time %s" % (state["e2"]["time"], want))
        for e in p.events():
            if e["event"] in ("node_stalled", "chain_halted") or (
                    e["event"] == "out_of_consensus"
                    and e.get("detail", {}).get("reason") != "consensus_failure"):
                problems.append("%s for %r at %s (height %r, detail %r): both nodes logged "
                                "every %.1f s while quorumwatch was down" % (
                                    e["event"], e["node"], e["time"], e.get("height"),
                                    e.get("detail"), WRITE_PERIOD))
        p.stop()
        expect(not problems, "; ".join(problems))

    try:
        t.check("8a restart after SIGTERM: lines written while stopped processed, no id twice",
                restart)
        t.check("8b restart after downtime: history judged on event time (no false stall, "
                "event at its line's time)", history_time)
    finally:
        s.close()


def check_kill9(t):
    def run():
        s = Scenario("kill9", pods=("val-a", "val-z"), checkpoint="2s",
                     chain_extra=", ban_after: 6s, stable_after: 2s, unban_after: 3s")
        try:
            p, cl = s.p, s.cl
            s.start()
            for pod in ("val-a", "val-z"):
                p.wait_caught_up(pod)
            # val-a stops: stalled, out of consensus; its ban period starts.
            cl.set_active("val-a", False)
            ooc = p.wait_event("out_of_consensus", "val-a")
            expect_eq(ooc.get("detail", {}).get("reason"), "stalled", "out_of_consensus reason")
            ooc_ns = parse_ms(ooc["time"])

            def saved():
                cp = p.checkpoint()
                n = p.node("val-a", cp)
                return cp if n and n.get("period_open") and n.get("ooc") else None
            cp_before = p.wait(saved, "a checkpoint with val-a's open ban period")
            expect_eq(p.node("val-a", cp_before)["period_start"] // MS, ooc_ns // MS,
                      "checkpoint period_start = out_of_consensus time")
            # A line after that checkpoint: its events may come again after the crash.
            with cl.lock:
                cl.failure("val-z")
                z_end = os.path.getsize(cl.nodes["val-z"].path)
            ez = p.wait_event("consensus_failure", "val-z")
            p.kill9()
            cp_used = p.checkpoint()
            z_entry = p.file_entry(cl.nodes["val-z"].path, cp_used) or {}
            reread = z_entry.get("offset", 0) < z_end
            expect(not p.find("ban", "val-a"), "test timing: ban before the crash")
            n_err = len(p.err_lines)
            p.start()
            p.wait(lambda: any("resumed from checkpoint" in l for l in p.err_lines[n_err:]),
                   "restart says it resumed from the checkpoint")
            ban = p.wait_event("ban", "val-a", timeout=DEADLINE + 10)
            d = ban.get("detail", {})
            expect(d.get("held") is None, "ban held back: %r" % d)
            expect_eq(d.get("since"), ooc["time"],
                      "ban detail.since (the out_of_consensus time before the crash)")
            expect_eq(parse_ms(ban["time"]) - ooc_ns, 6 * SECOND,
                      "ban time - out_of_consensus time (ban_after 6s, timer continued)")
            expect_eq(d.get("reason"), "stalled", "ban reason")
            # Let val-z commit again after the restart, then stop the writers.
            # Once they stop, every node stalls stall_after later (a slow
            # machine may get there before the process stops): those are new
            # situations, left out of the one-id-per-situation check below.
            p.wait_caught_up("val-z")
            writers_stopped = ns_of(datetime.datetime.now(UTC))
            cl.stop()
            problems = []
            try:
                cp = file_counts_match(p, ["val-z", HB, "val-a"])
                offsets_at_end(p, cp)
            except Failure as e:
                problems.append(str(e))
            evs = p.events()
            # Same situation, same id; a repeat is the same event again.
            by_id = {}
            for e in evs:
                prev = by_id.setdefault(e["id"], e)
                if prev is not e and prev != e:
                    diff = {k: (prev.get(k), e.get(k)) for k in set(prev) | set(e)
                            if prev.get(k) != e.get(k)}
                    problems.append("id %s (%s %s) written again with other fields: %r"
                                    % (e["id"], e["event"], e["node"], diff))
            for kind, pod in (("node_stalled", "val-a"), ("out_of_consensus", "val-a"),
                              ("ban", "val-a"), ("consensus_failure", "val-z"),
                              ("out_of_consensus", "val-z")):
                got = [(e["id"], e["time"]) for e in evs if e["event"] == kind and e["node"] == pod
                       and parse_ms(e["time"]) < writers_stopped]
                if len({i for i, _ in got}) != 1:
                    problems.append("%s for %s: %d distinct ids for one situation %r"
                                    % (kind, pod, len({i for i, _ in got}), got))
            zs = [e for e in evs if e["id"] == ez["id"]]
            if not zs:
                problems.append("val-z's consensus_failure lost")
            p.stop()
            print("     (kill -9: val-z's failure line was %s the last checkpoint; its "
                  "consensus_failure written %d time(s))"
                  % ("after" if reread else "before", len(zs)), flush=True)
            expect(not problems, "; ".join(problems))
        finally:
            s.close()
    t.check("9 restart after kill -9: same ids, nothing lost, ban timer continues", run)


def check_sighup(t):
    s = Scenario("sighup")
    state = {}

    def bad():
        p, cl = s.p, s.cl
        s.start()
        p.wait_caught_up("val-a")
        good = open(p.cfg).read()
        with open(p.cfg, "w") as f:
            f.write(good + "bogus_key: 1\n")
        n_err = len(p.err_lines)
        p.signal(signal.SIGHUP)
        line = p.wait(lambda: [l for l in p.err_lines[n_err:] if "refused" in l],
                      "stderr says the bad configuration was refused")[0]
        expect("bogus_key" in line, "the refusal names the unknown key: %r" % line)
        expect(p.alive(), "exited after a refused reload")
        # The old configuration goes on: stall_after 2s.
        st, _ = stall_and_recover(p, "val-a", STALL_S)
        expect_eq(st["detail"].get("stall_after"), "2s", "stall_after after a refused reload")
        state["first"] = st

    def good():
        p, cl = s.p, s.cl
        expect("first" in state, "needs the previous check's process")
        p.write_config(stall="3s")
        n_err = len(p.err_lines)
        p.signal(signal.SIGHUP)
        p.wait(lambda: [l for l in p.err_lines[n_err:] if "running:" in l],
               "the reloaded configuration running")
        expect(not [l for l in p.err_lines[n_err:] if "refused" in l],
               "the good configuration was refused: %r" % p.err_lines[n_err:])
        p.ensure_polled()
        st, _ = stall_and_recover(p, "val-a", 3)
        expect_eq(st["detail"].get("stall_after"), "3s", "stall_after after the reload")
        cl.stop()
        cp = file_counts_match(p, ["val-a", HB])  # state (counters) kept across the reload
        nv = p.node("val-a", cp)
        expect_eq(nv["first_height"], cl.nodes["val-a"].heights[0], "first_height after reload")
        offsets_at_end(p, cp)
        evs = p.events()
        expect_eq(len([e for e in evs if e["id"] == state["first"]["id"]]), 1,
                  "times the pre-reload node_stalled was written")
        unique_ids(evs)
        p.stop()

    try:
        t.check("10a SIGHUP with an unknown key: refused on stderr, old config keeps running", bad)
        t.check("10b SIGHUP with a new stall_after: applied, state kept", good)
    finally:
        s.close()


# --------------------------------------------------------------------------


# --------------------------------------------------------------------------
# Shared with the tests that import this harness (ban, metrics, alertmanager,
# bans_cmd)

def free_port():
    """A TCP port of 127.0.0.1 that is free now (for a server of the test or
    of quorumwatch)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def binary_of(argv, name):
    """The binary named by a test's command line (`name PATH/TO/quorumwatch`),
    as an absolute path; None, after saying why on stderr, when it is missing
    or not executable."""
    if len(argv) != 2:
        print("usage: %s PATH/TO/quorumwatch" % name, file=sys.stderr)
        return None
    path = os.path.abspath(argv[1])
    if not os.access(path, os.X_OK):
        print("not an executable: %s" % path, file=sys.stderr)
        return None
    return path


def run_parts(t, parts, *args):
    """part(t, *args) for each part; one that raises outside its checks counts
    as one failed check."""
    for part in parts:
        try:
            part(t, *args)
        except Exception:
            t.failed += 1
            print("FAIL %s: setup raised\n%s" % (part.__name__, traceback.format_exc()),
                  flush=True)


def finish(t):
    """The end of a test's main(): TMP kept (and named) when anything failed,
    removed otherwise; "N passed, M failed"; the exit status."""
    if t.failed:
        print("(files kept in %s)" % TMP)
    else:
        shutil.rmtree(TMP, ignore_errors=True)
    print("%d passed, %d failed" % (t.passed, t.failed))
    return 1 if t.failed else 0


def main():
    global BIN, TMP
    BIN = binary_of(sys.argv, "run_test.py")
    if BIN is None:
        return 2
    t = Runner()
    TMP = tempfile.mkdtemp(prefix="qw-run-")
    run_parts(t, (check_append, check_rename_rotation, check_copytruncate, check_delete,
                  check_new_file, check_cri_partial, check_no_newline, check_restart_graceful,
                  check_kill9, check_sighup))
    return finish(t)


if __name__ == "__main__":
    sys.exit(main())
