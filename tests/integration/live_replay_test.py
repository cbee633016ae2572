"""run == replay: `quorumwatch run` over finished files writes exactly the event
lines `quorumwatch replay --format jsonl` prints for them (suite 'integration').

docs/PIPELINE.md: replay and `run` are one pipeline (record stage, merge on
event time, detector); `run` with `read_from: beginning` over finished files
must write the same events as replay: same ids, order, times, bytes.
Replay's correctness is pinned by the golden scenarios (tests/golden); this
test pins run to replay.

1. test_golden: every golden scenario and bundled example (tests/golden/*/
   with an expected.jsonl): replay exactly as tests/golden/run_golden.py runs
   it, and one `run` over copies of the same files; the events file must
   equal replay's stdout byte for byte, and no node_stalled, chain_halted or
   ban may be later than the input's last record.
2. test_healthy: 45 minutes of three healthy CometBFT nodes, generated at
   run time and ending shortly before now: no event from replay, none from
   run (with `max_bans: 3`, and with max_bans at its default).
3. test_restarts: stopped part-way and restarted on the same state_dir (test
   hooks of docs/PIPELINE.md, `checkpoint_interval: 0s`): for each N = 1, 2,
   3, 5, 8 ... a fresh start with QW_TEST_READ_CHUNK=4096 that crashes after
   its N-th checkpoint (QW_TEST_CRASH_AFTER_CHECKPOINTS) and a restart
   without it to the end, until the run ends before N checkpoints; a series
   of graceful stops in a row (QW_TEST_STOP_AFTER_CHECKPOINTS) and real
   `kill -9`s at seeded random moments, both with smaller reads for small
   inputs (small_reads). After a crash, repeats are dropped by id (the
   first occurrence kept) and the rest must be replay's lines; after
   graceful stops nothing may repeat.
4. test_names: file names with a tab, a space, non-ASCII letters and a
   newline (raw CometBFT JSON logs, RFC 3339 stamps): one node stops
   committing for 3 minutes; replay reports it (expectations by reasoning,
   docs/DETECTION.md), run writes the same, across a SIGTERM and restarts.

Expectations come from reasoning about the inputs or, for equality, from
replay; never from run's own output. Every wait polls a condition (every
50 ms, generous deadlines); nothing is asserted on timing. The scenarios of
one part run a few at a time (most of a run's wall time is the idle
`input_outage_after` at its end): a module fixture per part starts the
selected ones together, and each test waits for its own. QW_LIVE_SEED fixes
the kill -9 seed (printed, and named in a kill -9 test's failure). A test's
note (where a stop came, repeats dropped) is printed: `-rP` shows it.

  python3 -m pytest -q -p no:cacheprovider tests/integration/live_replay_test.py --quorumwatch PATH
      [-k NAME]
"""
import concurrent.futures
import datetime
import difflib
import glob
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from harness import (MS, SECOND, UTC, Failure, QwProcess, event_time, expect, ns_of,
                     parse_event_time, read_bytes, utc, wait_for)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN = os.path.join(ROOT, "tests", "golden")
DEADLINE = 60.0  # generous: two shared cores
STOP_DEADLINE = 15.0  # SIGTERM to exit
WORKERS = 3  # scenarios at a time
LATE_KINDS = ("node_stalled", "chain_halted", "ban")
FIB = (1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987)


def wait(cond, what, timeout=DEADLINE):
    """Polls cond every 50 ms until it returns something true; a Failure
    raised by cond (a process that died) ends the wait at once."""
    return wait_for(cond, what, timeout)


# --------------------------------------------------------------------------
# Times in the inputs


STAMP_RE = re.compile(rb"(\d{4})-(\d\d)-(\d\d)[T |](\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?")
CRI_RE = re.compile(rb"^(\S+) (?:stdout|stderr) [PF] ")


def stamp_ns(m):
    """A STAMP_RE match -> ns since the epoch (no zone: UTC), or None."""
    try:
        y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
        t = datetime.datetime(y, mo, d, h, mi, s, tzinfo=UTC)
    except ValueError:
        return None
    ns = ns_of(t)
    if m.group(7):
        ns += int((m.group(7)[1:] + b"000000000")[:9])
    z = m.group(8)
    if z and z != b"Z":
        z = z.replace(b":", b"")
        off = (int(z[1:3]) * 60 + int(z[3:5])) * 60 * SECOND
        ns -= off if z[:1] == b"+" else -off
    return ns


def last_records(paths):
    """Each file's latest record time, an upper bound: a CRI line's runtime
    stamp, else the latest full stamp anywhere in a raw or docker line; a
    file without any takes its modification time (as the record stage does).
    [(path, ns, from_mtime)]. Only used to judge events "after the end"."""
    out = []
    for p in paths:
        if os.path.getsize(p) == 0:
            continue  # no record at all
        file_best = None
        with open(p, "rb") as f:
            for line in f:
                m = CRI_RE.match(line)
                cands = []
                if m:
                    sm = STAMP_RE.fullmatch(m.group(1))
                    if sm:
                        cands = [stamp_ns(sm)]
                else:
                    cands = [stamp_ns(sm) for sm in STAMP_RE.finditer(line)]
                for t in cands:
                    if t is not None and (file_best is None or t > file_best):
                        file_best = t
        if file_best is None:
            out.append((p, os.stat(p).st_mtime_ns, True))
        else:
            out.append((p, file_best, False))
    return out


def last_record_ns(paths):
    return max((ns for _, ns, _ in last_records(paths)), default=0)


def file_ends(paths):
    """Where each input ends, for a failure message: a file ending long
    before the others, or timed by its modification time, is where replay
    (which retires a node when its file ends) and run (whose files never
    end) can part."""
    return "\n  input files end at:\n" + "\n".join(
        "    %s  %s%s" % (event_time(ns), os.path.basename(p)[:60], "  (no stamp: its modification time)" if mt else "")
        for p, ns, mt in sorted(last_records(paths), key=lambda x: x[1]))


# --------------------------------------------------------------------------
# Events: replay's stdout and run's events file, as lines of bytes


def event_lines(data, what):
    """Complete lines (bytes, without the newline) and their JSON objects."""
    if data and not data.endswith(b"\n"):
        raise Failure("%s: the last line has no newline (a partial write?): %r" % (what, data[-200:]))
    lines = data.split(b"\n")[:-1] if data else []
    objs = []
    for n, line in enumerate(lines, 1):
        try:
            o = json.loads(line)
        except ValueError:
            raise Failure("%s line %d is not JSON: %r" % (what, n, line[:300]))
        if not isinstance(o, dict) or not isinstance(o.get("id"), str) or not o["id"]:
            raise Failure("%s line %d is not an event with an id: %r" % (what, n, line[:300]))
        objs.append(o)
    return lines, objs


def show_diff(want, got, n=40):
    a = [l.decode("utf-8", "replace") for l in want]
    b = [l.decode("utf-8", "replace") for l in got]
    d = list(difflib.unified_diff(a, b, "replay --format jsonl", "run: events.jsonl", lineterm="", n=1))
    more = len(d) - n
    d = d[:n] + (["... %d more diff line(s)" % more] if more > 0 else [])
    return "\n".join("    " + x for x in d)


def same_events(want_data, got_data, repeats):
    """run's events (got) against replay's stdout (want), byte for byte, in
    order. repeats: "forbid" (no crash: the lines must be replay's exactly)
    or "drop" (after a crash, lines read again give their events again with
    the same id, README "quorumwatch run": repeats are dropped by id, the
    first occurrence kept, and the rest must be replay's lines exactly).
    Replay itself prints distinct events with one id in a few examples
    (several missed_precommit of one slot in examples_eos, examples_solana):
    for such an id only a line identical to an earlier one is a repeat.
    Returns (repeats dropped, repeats whose bytes differ from the first
    occurrence: allowed, since a consumer drops by id, but reported)."""
    want, want_objs = event_lines(want_data, "replay stdout")
    got, objs = event_lines(got_data, "run's events file")
    kept, repeated, differing = got, 0, 0
    if repeats == "drop":
        per_id = {}
        for o in want_objs:
            per_id[o["id"]] = per_id.get(o["id"], 0) + 1
        seen = {}
        kept = []
        for line, o in zip(got, objs):
            first = seen.get(o["id"])
            if first is not None and (line in first or per_id.get(o["id"], 0) <= 1):
                repeated += 1
                differing += line not in first
                continue
            seen.setdefault(o["id"], set()).add(line)
            kept.append(line)
    if kept != want:
        extra = []
        if repeats == "forbid":
            counts = {}
            for line in want:
                counts[line] = counts.get(line, 0) + 1
            for line in got:
                counts[line] = counts.get(line, 0) - 1
            extra = [l for l, c in counts.items() if c < 0]
        raise Failure("run's events differ from replay's (%d line(s) vs replay's %d%s%s):\n%s" % (
            len(kept), len(want), ", after dropping %d repeat(s) by id" % repeated if repeated else "",
            "; run wrote %d line(s) more often than replay prints them (no crash: none may repeat)"
            % len(extra) if extra else "", show_diff(want, kept)))
    return repeated, differing


def repeats_note(repeated, differing):
    return "%d repeated event(s) dropped by id%s" % (
        repeated, " (%d of them not byte-identical to the first occurrence)" % differing if differing else "")


def not_late(data, last_ns, what):
    """No node_stalled, chain_halted or ban after the input's last record:
    time moves only with records, so silence after the end is never judged."""
    _, objs = event_lines(data, what)
    limit = -(-last_ns // MS) * MS  # events carry milliseconds
    for o in objs:
        if o.get("event") in LATE_KINDS and parse_event_time(o["time"]) > limit:
            raise Failure("%s: %s of %r (chain %r) at %s, after the input's last record at %s: "
                          "silence after the end of the input was judged" % (
                              what, o["event"], o.get("node"), o.get("chain"), o["time"], event_time(last_ns)))


# --------------------------------------------------------------------------
# quorumwatch replay and quorumwatch run


def replay(qw, args, files, cwd, extra=()):
    args = ["replay"] + list(args) + list(extra) + ["--format", "jsonl"] + list(files)
    r = qw(*args, cwd=cwd, timeout=300)
    expect(r.rc == 0, "replay exit status %d\n  command: %s (in %s)\n  stderr: %s" % (
        r.rc, " ".join(map(shlex.quote, [qw.binary] + args)), cwd, r.stderr[-1500:]))
    return r.out


def q(s):
    """A YAML double-quoted scalar (JSON's string syntax is a subset)."""
    return json.dumps(s)


def top_level_keys(text):
    keys = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or line[0] in " \t":
            continue
        m = re.match(r"([A-Za-z_][\w-]*)\s*:(\s|$)", line)
        if not m:
            raise Failure("setup: cannot read the top-level line %r" % line)
        keys.append(m.group(1))
    return keys


def run_config(root, rules=(), base="", interval="100ms"):
    """`base`: a replay configuration (only `chains:` and `nodes:`), verbatim;
    rules: (match, chain) stream rules."""
    keys = top_level_keys(base)
    extra = [k for k in keys if k not in ("chains", "nodes")]
    if extra:
        raise Failure("setup: the replay configuration has top-level key(s) %s; only chains: and "
                      "nodes: can be included verbatim in run's configuration" % ", ".join(extra))
    text = base if not base or base.endswith("\n") else base + "\n"
    text += "# appended by live_replay_test.py\n"
    text += "sources:\n  - type: file\n    include: [%s]\n    format: auto\n    read_from: beginning\n" % q(
        os.path.join(root, "containers", "*.log"))
    if rules:
        text += "streams:\n" + "".join("  - match: %s\n    chain: %s\n" % (m, q(c)) for m, c in rules)
    text += ("state_dir: %s\ncheckpoint_interval: %s\ninput_outage_after: 2s\n"
             "sinks:\n  - {type: jsonl, path: %s}\n") % (
        q(os.path.join(root, "state")), interval, q(os.path.join(root, "events.jsonl")))
    return text


def copy_inputs(inputs, root):
    """Copies the input files into root/containers, keeping base names and
    modification times (a file's year and fallback time come from it)."""
    dest = os.path.join(root, "containers")
    os.makedirs(dest)
    out = []
    for src in inputs:
        base = os.path.basename(src)
        if base.endswith(".zst"):
            # A DaemonSet never sees compressed files: the runtime writes plain
            # ones. Replay reads a .zst as a stream; run gets the same bytes.
            base = base[:-len(".zst")]
            dst = os.path.join(dest, base)
            r = subprocess.run(["zstd", "-q", "-d", "-f", "-o", dst, src], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
            expect(r.returncode == 0, "setup: zstd -d %s: %s" % (src, r.stderr.decode("utf-8", "replace")))
        else:
            dst = os.path.join(dest, base)
            expect(not os.path.exists(dst), "setup: two input files are named %s" % base)
            shutil.copyfile(src, dst)
        expect(base.endswith(".log"), "setup: %s does not end in .log (the source's glob is *.log)" % src)
        st = os.stat(src)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
        out.append(dst)
    return out


class Live(QwProcess):
    """One folder: containers/ (the inputs), state/, events.jsonl, and the
    successive `quorumwatch run` processes on them (harness.QwProcess: the
    stderr of start N in stderr.N; QW_TEST_* variables only as start()
    gives them)."""

    def __init__(self, binary, root, config_text, files):
        super().__init__(binary, root, config_text, deadline=STOP_DEADLINE)
        self.files = files
        self.events = os.path.join(root, "events.jsonl")
        self.cp_path = os.path.join(root, "state", "checkpoint.json")

    def checkpoint(self):
        """The checkpoint, or None before the first one. It is replaced
        atomically (rename), so a read sees a whole document."""
        try:
            with open(self.cp_path, "rb") as f:
                cp = json.loads(f.read())
        except (FileNotFoundError, ValueError):
            return None
        expect(isinstance(cp, dict) and cp.get("version") in (1, 2),
               "%s: checkpoint version %r, want 1 or 2" % (self.cp_path, cp.get("version") if isinstance(cp, dict) else cp))
        return cp

    def offsets(self, cp):
        """path -> resume offset. Version 2 lists the files under "streams",
        version 1 under "files"; both are accepted."""
        entries = cp.get("streams") if cp.get("version") == 2 else cp.get("files")
        expect(isinstance(entries, list), "%s: version %d checkpoint without its %r list" % (
            self.cp_path, cp["version"], "streams" if cp["version"] == 2 else "files"))
        return {os.path.realpath(e["path"]): e["offset"] for e in entries}

    def read_bytes(self):
        """Bytes read as far as the checkpoint shows."""
        cp = self.checkpoint()
        return sum(self.offsets(cp).values()) if cp else 0

    def total_bytes(self):
        return sum(os.path.getsize(f) for f in self.files)

    def caught_up(self):
        """The checkpoint shows, for every input file, an entry with its path
        and its size as offset, and no event pending ("pending_events" empty
        or absent: version 1 has no such list)."""
        cp = self.checkpoint()
        if cp is None:
            return False
        off = self.offsets(cp)
        for f in self.files:
            if off.get(os.path.realpath(f)) != os.path.getsize(f):
                return False
        return not cp.get("pending_events")

    def outage(self):
        t = self.current_stderr()
        return t.rfind("input outage") > t.rfind("input resumed")

    def running(self, what):
        if not self.alive():
            raise Failure("run (start %d) exited with status %s %s; stderr:\n      %s" % (
                self.n, self.p.returncode, what, self.tail()))

    def finish(self):
        """Waits until the checkpoint shows every file read to its end with
        nothing pending and run reports the input outage (every stream
        silent), then SIGTERM: exit status 0."""
        def done():
            self.running("before it had read everything")
            return self.caught_up() and self.outage()
        try:
            wait(done, "start %d: every input read to its end in the checkpoint, nothing pending, "
                 "then \"input outage\" on stderr" % self.n)
        except Failure as e:
            raise Failure(str(e) + self.progress())
        self.stop()

    def progress(self):
        """What the checkpoint shows, for a failure message."""
        try:
            cp = self.checkpoint()
        except Failure as e:
            return "\n  " + str(e)
        if cp is None:
            return "\n  no checkpoint at %s; stderr:\n      %s" % (self.cp_path, self.tail())
        off = self.offsets(cp)
        rows = ["    %s  offset %s of %d" % (os.path.basename(f)[:60].encode("unicode_escape").decode(),
                                          off.get(os.path.realpath(f), "(no entry)"), os.path.getsize(f))
                for f in self.files]
        return "\n  the checkpoint (version %s) shows:\n%s\n    pending_events: %d; \"input outage\" last on " \
               "stderr: %s; stderr:\n      %s" % (cp.get("version"), "\n".join(rows),
                                              len(cp.get("pending_events") or []), self.outage(), self.tail())

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise Failure("start %d: no exit within %d s of SIGTERM; stderr:\n      %s" % (
                self.n, STOP_DEADLINE, self.tail()))
        expect(rc == 0, "start %d: exit status %d after SIGTERM; stderr:\n      %s" % (self.n, rc, self.tail()))

    def kill(self):
        self.cleanup()

    def data(self):
        return read_bytes(self.events)


def fresh(tmp, label):
    return os.path.realpath(tempfile.mkdtemp(prefix=re.sub(r"[^\w-]", "_", label) + "-", dir=tmp))


# --------------------------------------------------------------------------
# A replay reference: what `replay` is given, and run's equivalent


class Case:
    """args and files as replay gets them (in cwd), and run's stream rules
    and configuration text that say the same."""

    def __init__(self, qw, tmp, name, cwd, args, files, rules, base):
        self.qw = qw
        self.tmp = tmp
        self.name = name
        self.cwd = cwd
        self.args = args
        self.files = files
        self.rules = rules
        self.base = base
        self._want = None

    def inputs(self):
        names = [a for a in positional(self.args)] + self.files
        return [os.path.normpath(os.path.join(self.cwd, f)) for f in names]

    def want(self):
        if self._want is None:
            self._want = replay(self.qw, self.args, self.files, self.cwd)
        return self._want

    def setup(self, label, interval="100ms"):
        root = fresh(self.tmp, label)
        files = copy_inputs(self.inputs(), root)
        return Live(self.qw.binary, root, run_config(root, self.rules, self.base, interval), files)


def positional(args):
    out, i = [], 0
    while i < len(args):
        if args[i] in ("--chain", "--config", "-c"):
            i += 2
            continue
        if not args[i].startswith("-"):
            out.append(args[i])
        i += 1
    return out


def golden_case(qw, tmp, sdir):
    """As tests/golden/run_golden.py: cwd = the scenario, args via shlex
    from `args`, files = *.log and *.log.zst sorted by name."""
    name = os.path.basename(sdir)
    args = []
    if os.path.isfile(os.path.join(sdir, "args")):
        with open(os.path.join(sdir, "args"), encoding="utf-8") as f:
            args = shlex.split(f.read())
    files = sorted(os.path.basename(p) for p in
                   glob.glob(os.path.join(sdir, "*.log")) + glob.glob(os.path.join(sdir, "*.log.zst")))
    # the replay arguments, translated: --chain NAME -> a rule for every
    # stream; --chain auto (or none) -> no rule; --config FILE -> its text.
    rules, base, i = [], "", 0
    while i < len(args):
        a = args[i]
        if a == "--chain" and i + 1 < len(args):
            if args[i + 1] != "auto":
                rules = [("{}", args[i + 1])]
            i += 2
        elif a in ("--config", "-c") and i + 1 < len(args):
            with open(os.path.join(sdir, args[i + 1]), encoding="utf-8") as f:
                base = f.read()
            i += 2
        elif a.startswith("-"):
            raise Failure("setup: %s/args: replay argument %r has no translation for run" % (name, a))
        else:
            i += 1
    return Case(qw, tmp, name, sdir, args, files, rules, base)


def golden_dirs():
    return sorted(os.path.dirname(p) for p in glob.glob(os.path.join(GOLDEN, "*", "expected.jsonl")))


# --------------------------------------------------------------------------
# 1. Every golden scenario and bundled example


def check_golden(qw, tmp, sdir):
    def fn():
        case = golden_case(qw, tmp, sdir)
        want = case.want()
        live = case.setup(case.name)
        try:
            last = last_record_ns(live.files)
            not_late(want, last, "replay")
            live.start()
            live.finish()
            got = live.data()
            not_late(got, last, "run")
            try:
                same_events(want, got, "forbid")
            except Failure as e:
                raise Failure(str(e) + file_ends(live.files))
        finally:
            live.kill()
    return fn


# --------------------------------------------------------------------------
# 2. 45 minutes of three healthy nodes, generated at run time

HEALTHY_PODS = ("val-a", "val-b", "val-c")
HEALTHY_CHAINS = {
    "max_bans 3": "chains:\n  cosmoshub: {family: cometbft, require_healthy_peer: false, max_bans: 3}\n",
    "max_bans default": "chains:\n  cosmoshub: {family: cometbft, require_healthy_peer: false}\n",
}


def commit_line(logs, ns, h, rng):
    return logs.tm_line(ns, "committed state", "module=state height=%d num_txs=%d app_hash=%s" % (
        h, rng.randint(0, 12), hashlib.sha256(b"%d" % h).hexdigest().upper()), "I")


def p2p_noise(logs, ns, rng):
    peer = '"Peer{MConn{%s.%d:26656} %s out}"' % (
        rng.choice(("192.0.2", "198.51.100", "203.0.113")), rng.randint(2, 250),
        hashlib.sha1(b"%f" % rng.random()).hexdigest())
    r = rng.random()
    if r < 0.4:
        return logs.tm_line(ns, "Added peer", "module=p2p peer=" + peer, "I")
    if r < 0.7:
        return logs.tm_line(ns, "Stopping peer for error", "module=p2p peer=%s err=%s" % (
            peer, rng.choice(("EOF", '"read tcp: connection reset by peer"', '"pong timeout"'))), "E")
    return logs.tm_line(ns, "service start", 'module=p2p msg="Starting Peer service" impl=%s peer=%s' % (
        peer, peer), "I")


def gen_healthy(dest, logs):
    """Three nodes, a height every 6 s (each within a second of the block
    time), 20 p2p noise lines per block and node, 45 minutes of log time
    ending ~10 s before now. Seeded: only the times move with the clock."""
    rng = random.Random(4545)
    end = time.time_ns() - 10 * SECOND
    start = end - 45 * 60 * SECOND
    blocks = 45 * 60 // 6
    out = {pod: [] for pod in HEALTHY_PODS}
    for k in range(blocks):
        t_block = start + k * 6 * SECOND
        h = 22_000_001 + k
        for pod in HEALTHY_PODS:
            tc = t_block + rng.randint(0, 900) * MS + rng.randint(0, 999_999)
            out[pod].append(logs.cri(tc, commit_line(logs, tc, h, rng)))
            for tn in sorted(tc + rng.randint(10, 5000) * MS + rng.randint(0, 999_999) for _ in range(20)):
                out[pod].append(logs.cri(tn, p2p_noise(logs, tn, rng)))
    os.makedirs(dest)
    paths = []
    for pod in HEALTHY_PODS:
        p = os.path.join(dest, "%s_cosmos_gaiad-%s.log" % (pod, hashlib.sha256(pod.encode()).hexdigest()))
        with open(p, "w", encoding="utf-8") as f:
            f.write("".join(out[pod]))
        paths.append(p)
    return paths


def healthy_case(qw, tmp, gen_dir, label):
    cfg = os.path.join(gen_dir, "chains-%s.yaml" % label.replace(" ", "-"))
    with open(cfg, "w", encoding="utf-8") as f:
        f.write(HEALTHY_CHAINS[label])
    files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(gen_dir, "*.log")))
    return Case(qw, tmp, "healthy-45min", gen_dir, ["--chain", "cosmoshub", "--config", os.path.basename(cfg)], files,
                [('{namespace: "cosmos"}', "cosmoshub")], HEALTHY_CHAINS[label])


def check_healthy(qw, tmp, gen_dir, label):
    def fn():
        case = healthy_case(qw, tmp, gen_dir, label)
        want = case.want()
        expect(want == b"", "replay printed events for 45 healthy minutes (expected none):\n    %s" % (
            "\n    ".join(want.decode("utf-8", "replace").splitlines()[:10])))
        live = case.setup("healthy-" + label)
        try:
            live.start()
            live.finish()
            got = live.data()
            not_late(got, last_record_ns(live.files), "run")
            expect(got == b"", "run wrote events for 45 healthy minutes (expected none):\n    %s" % (
                "\n    ".join(got.decode("utf-8", "replace").splitlines()[:10])))
            same_events(want, got, "forbid")
        finally:
            live.kill()
    return fn


# --------------------------------------------------------------------------
# 3. Stopped part-way and restarted



READ_CHUNK = {"QW_TEST_READ_CHUNK": "4096"}


def small_reads(live):
    """QW_TEST_READ_CHUNK for the graceful stops and the kill -9s: 4096
    bytes per file and poll, less for small inputs (at least ~256 reads per
    file, at least 256 bytes a read). A graceful stop after the N-th
    checkpoint first drains the batches already read (up to the pool,
    threads x 4 + 4, one batch a poll here) into its last checkpoint, and
    a kill -9 aimed "while it reads" must find it still reading: with 4096
    bytes a read, a scenario of ~40 KB per file is read whole by then (seen:
    upgrade_halt's first graceful stop, at N=1, had read everything)."""
    per_file = live.total_bytes() // max(1, len(live.files))
    return {"QW_TEST_READ_CHUNK": str(max(256, min(4096, per_file // 256)))}


def finish_series(live, case, repeats):
    """A restart without any test variable, to the end; then the comparison
    with replay. Returns same_events's (repeats, differing)."""
    live.start()
    live.finish()
    got = live.data()
    not_late(got, last_record_ns(live.files), "run")
    return same_events(case.want(), got, repeats)


def exited_or_caught_up(live, what):
    return wait(lambda: "exited" if not live.alive() else ("caught up" if live.caught_up() else None),
                "start %d (%s) exits or shows every input read in its checkpoint" % (live.n, what))


def crash_series(case, label):
    """For N = 1, 2, 3, 5, 8 ...: a fresh state_dir, a start with
    QW_TEST_CRASH_AFTER_CHECKPOINTS=N and QW_TEST_READ_CHUNK=4096
    (`checkpoint_interval: 0s`: a checkpoint after every batch), which exits
    137 right after its N-th checkpoint; then a restart without the crash
    variable to the end, and replay's events after dropping repeats by id.
    The series ends with the first N the run reaches the end before: that
    start simply completes (its SIGTERM's own checkpoint may be the N-th,
    so 137 is accepted there). At least two crashes must come part-way."""
    hook = "QW_TEST_CRASH_AFTER_CHECKPOINTS"

    def fn():
        part_way, crashes, notes = [], 0, []
        for n in FIB:
            live = case.setup("%s-%d" % (label, n), interval="0s")
            try:
                live.start(**READ_CHUNK, **{hook: str(n)})
                how = exited_or_caught_up(live, "%s=%d" % (hook, n))
                if how == "caught up":
                    # read to the end before its N-th checkpoint: it simply completes
                    def done():
                        return not live.alive() or live.outage()
                    wait(done, "start 1 (%s=%d): \"input outage\" on stderr after reading everything" % (hook, n))
                    if live.alive():
                        live.p.send_signal(signal.SIGTERM)
                    try:
                        rc = live.p.wait(STOP_DEADLINE)
                    except subprocess.TimeoutExpired:
                        raise Failure("%s=%d: no exit within %d s of SIGTERM" % (hook, n, STOP_DEADLINE))
                    expect(rc in (0, 137), "%s=%d, read to the end: exit status %d after SIGTERM, want 0 (or 137 "
                           "if the stop's checkpoint was the N-th); stderr:\n      %s" % (hook, n, rc, live.tail()))
                    got = live.data()
                    not_late(got, last_record_ns(live.files), "run")
                    same_events(case.want(), got, "drop" if rc == 137 else "forbid")
                    notes.append("N=%d read everything first" % n)
                    break
                rc = live.p.returncode
                expect(rc == 137, "%s=%d: exit status %d, want 137; stderr:\n      %s" % (hook, n, rc, live.tail()))
                crashes += 1
                at = live.read_bytes()
                if not live.caught_up():
                    part_way.append(n)
                try:
                    r, d = finish_series(live, case, "drop")
                except Failure as e:
                    raise Failure("after a crash at checkpoint %d (it showed byte %d of %d read): %s" % (
                        n, at, live.total_bytes(), e))
                if r:
                    notes.append("N=%d: %s" % (n, repeats_note(r, d)))
            finally:
                live.kill()
            shutil.rmtree(live.root, ignore_errors=True)  # this N passed: its copy goes
        else:
            notes.append("still part-way at N=%d" % FIB[-1])
        expect(len(part_way) >= 2, "only %d crash(es) came before the input was read to its end (N = %s): the "
               "series did not test restarts part-way" % (len(part_way), part_way))
        return "%d crash(es), part-way at N = %s; %s" % (crashes, ", ".join(map(str, part_way)), "; ".join(notes))
    return fn


def stop_series(case, label):
    """One state_dir, successive starts with QW_TEST_STOP_AFTER_CHECKPOINTS=N
    for N = 1, 2, 3, 5, 8 ... and small reads (see small_reads; each stops
    gracefully, exit 0, after its own N-th checkpoint) while the input is
    not read to its end, then a start without test variables to the end:
    replay's events, nothing written twice. At least two stops must come
    part-way."""
    hook = "QW_TEST_STOP_AFTER_CHECKPOINTS"

    def fn():
        live = case.setup(label, interval="0s")
        try:
            part_way = 0
            for n in FIB:
                live.start(**small_reads(live), **{hook: str(n)})
                how = exited_or_caught_up(live, "%s=%d" % (hook, n))
                if how == "caught up":
                    live.p.send_signal(signal.SIGTERM)
                rc = live.p.wait(STOP_DEADLINE)
                expect(rc == 0, "start %d (%s=%d): exit status %d, want 0; stderr:\n      %s" % (
                    live.n, hook, n, rc, live.tail()))
                if how == "caught up" or live.caught_up():
                    break
                part_way += 1
            expect(part_way >= 2, "only %d start(s) with %s stopped before the input was read to its end: "
                   "the series did not test restarts part-way" % (part_way, hook))
            finish_series(live, case, "forbid")
            return "%d start(s) with the hook, %d of them stopped before the end of the input" % (
                live.n - 1, part_way)
        finally:
            live.kill()
    return fn


def kill9_series(case, label, seed, kills=3):
    """Real kill -9s while it reads (small reads, see small_reads; a
    checkpoint after every batch): each once the checkpoint shows a seeded
    random share of the input read, after a seeded jitter of 0-20 ms (the
    jitter picks the moment; it waits for nothing); then a restart without
    test variables to the end. Whether a kill came before the end of the
    input is timing: it is printed, not asserted."""
    def fn():
        rng = random.Random("%s/%s" % (seed, case.name))
        live = case.setup(label, interval="0s")
        try:
            total = live.total_bytes()
            part_way = 0
            for _ in range(kills):
                live.start(**small_reads(live))
                target = min(total - 1, live.read_bytes() + int(rng.uniform(0.03, 0.25) * total))
                wait(lambda: live.running("before the kill -9") or live.caught_up() or live.read_bytes() >= target,
                     "start %d reads up to byte %d of %d" % (live.n, target, total))
                time.sleep(rng.uniform(0, 0.02))
                expect(live.alive(), "start %d exited before the kill -9: status %s" % (live.n, live.p.returncode))
                live.p.send_signal(signal.SIGKILL)
                live.p.wait()
                if live.caught_up():
                    break
                part_way += 1
            r, d = finish_series(live, case, "drop")
            return "%d of %d kill -9 came before the end of the input; %s" % (part_way, live.n - 1, repeats_note(r, d))
        finally:
            live.kill()
    return fn


# --------------------------------------------------------------------------
# 4. File names: a tab, a space, non-ASCII letters, a newline

NAMES = ("node\ta", "node b", "n\u00f6de-\u00e7", "node\nd")
STALLER = "node\nd"
OFFSET_MS = {"node\ta": 110, "node b": 230, "n\u00f6de-\u00e7": 350, "node\nd": 470}
T0 = ns_of(datetime.datetime(2025, 6, 1, 10, 0, 0, tzinfo=UTC))
H0 = 9_000_001
# 20 heights (blocks 0-19) from every node; then STALLER commits nothing for
# 3 minutes (its last advance at block K_STOP, its next one 1.5 s after
# block K_BACK) while the others go on; then it catches up and all go on
# together to block BLOCKS - 1.
BLOCKS, K_STOP, K_BACK = 60, 19, 49


def ts_nano(ns):
    """CometBFT's JSON logger (`"ts"`): RFC 3339 with nanoseconds, trailing
    zeros trimmed (libs/log/tm_json_logger.go, kitlog.DefaultTimestampUTC)."""
    frac = ("%09d" % (ns % SECOND)).rstrip("0")
    return utc(ns).strftime("%Y-%m-%dT%H:%M:%S") + ("." + frac if frac else "") + "Z"


def tmjson(ns, msg, level, module, **fields):
    """One line of CometBFT's JSON logger, keys sorted as it writes them
    (the shape of the `committed state` test line in patterns/cometbft.yaml)."""
    o = dict(fields, _msg=msg, level=level, module=module, ts=ts_nano(ns))
    return json.dumps(o, sort_keys=True, separators=(",", ":"))


def json_commit(ns, h, rng):
    return tmjson(ns, "committed state", "info", "state", height=h, num_txs=rng.randint(0, 12),
                  app_hash=hashlib.sha256(b"%d" % h).hexdigest().upper())


def json_p2p(ns, rng):
    peer = "Peer{MConn{%s.%d:26656} %s out}" % (
        rng.choice(("192.0.2", "198.51.100", "203.0.113")), rng.randint(2, 250),
        hashlib.sha1(b"%f" % rng.random()).hexdigest())
    if rng.random() < 0.5:
        return tmjson(ns, "Added peer", "info", "p2p", peer=peer)
    return tmjson(ns, "Stopping peer for error", "error", "p2p", peer=peer,
                  err=rng.choice(("EOF", "read tcp: connection reset by peer", "pong timeout")))


def gen_names(dest):
    """Raw (not CRI) CometBFT JSON logs stamped RFC 3339 (`"ts"`, UTC), one
    per name: a height every 6 s and a p2p line 2.5 s after each block, from
    every node, STALLER included (it stops committing, not logging: its
    file goes on, so its node stays visible). STALLER commits nothing from
    block K_STOP + 1 on, then catches up 30 heights 100 ms apart from 1.5 s
    after block K_BACK; all times whole milliseconds."""
    rng = random.Random(7)
    os.makedirs(dest)
    paths = []
    for name in NAMES:
        lines = []
        for k in range(BLOCKS):
            t = T0 + k * 6 * SECOND + OFFSET_MS[name] * MS
            if name != STALLER or k <= K_STOP or k > K_BACK:
                lines.append((t, json_commit(t, H0 + k, rng)))
            lines.append((t + 2500 * MS, json_p2p(t + 2500 * MS, rng)))
        if name == STALLER:
            for j, h in enumerate(range(H0 + K_STOP + 1, H0 + K_BACK + 1)):
                t = T0 + K_BACK * 6 * SECOND + (1500 + 100 * j) * MS
                lines.append((t, json_commit(t, h, rng)))
        lines.sort(key=lambda x: x[0])
        p = os.path.join(dest, name + ".log")
        with open(p, "w", encoding="utf-8") as f:
            f.write("".join(l + "\n" for _, l in lines))
        paths.append(p)
    return paths


def names_expected():
    """docs/DETECTION.md with the CometBFT defaults (stall_after 60 s,
    max_lag 5), 6 s blocks; the node is the file's base name without .log."""
    def t_of(k, name):
        return T0 + k * 6 * SECOND + OFFSET_MS[name] * MS
    first_other = min(OFFSET_MS[n] for n in NAMES if n != STALLER)
    catch_up = T0 + K_BACK * 6 * SECOND + 1500 * MS
    ev = [
        # lagging: the first advance of another node to K_STOP + 6 leaves it
        # 6 (more than max_lag 5) behind, 36 s after its last advance
        (T0 + (K_STOP + 6) * 6 * SECOND + first_other * MS, "out_of_consensus", "warning", H0 + K_STOP,
         {"reason": "lagging"}),
        # no advance for stall_after (already out of consensus: no second
        # out_of_consensus)
        (t_of(K_STOP, STALLER) + 60 * SECOND, "node_stalled", "warning", H0 + K_STOP,
         {"stall_after": "1m00s", "last_commit": event_time(t_of(K_STOP, STALLER))}),
        # the first advance after the stall, ~3 minutes after the last one
        (catch_up, "node_recovered", "info", H0 + K_STOP + 1, {}),
        # within 5 of the head (K_BACK, committed by the others just before
        # the catch-up began): its advance to K_BACK - 5
        (catch_up + 100 * (K_BACK - 5 - K_STOP - 1) * MS, "back_in_consensus", "info", H0 + K_BACK - 5, {}),
    ]
    return [{"time": event_time(t), "event": k, "severity": s, "chain": "cosmoshub", "node": STALLER,
             "height": h, "detail": d} for t, k, s, h, d in ev]


def check_names_replay(qw, tmp, gen_dir):
    def fn():
        files = sorted(os.listdir(gen_dir))
        data = replay(qw, ["--chain", "cosmoshub"], files, gen_dir)
        _, got = event_lines(data, "replay stdout")
        want = names_expected()
        problems = []
        for i, (w, g) in enumerate(zip(want, got), 1):
            for k in ("time", "event", "severity", "chain", "node", "height"):
                if g.get(k) != w[k]:
                    problems.append("event %d: %s: got %r, want %r" % (i, k, g.get(k), w[k]))
            if "namespace" in g:
                problems.append("event %d: namespace %r on a file without a Kubernetes name" % (i, g["namespace"]))
            for k, v in w["detail"].items():
                if (g.get("detail") or {}).get(k) != v:
                    problems.append("event %d: detail.%s: got %r, want %r" % (i, k, (g.get("detail") or {}).get(k), v))
        if len(want) != len(got):
            problems.append("%d event(s), want %d" % (len(got), len(want)))
        if problems:
            raise Failure("replay --chain cosmoshub over the odd names:\n    %s\n  got:\n    %s\n  want:\n    %s" % (
                "\n    ".join(problems), "\n    ".join(l.decode("utf-8", "replace") for l in data.splitlines()),
                "\n    ".join(json.dumps(w, ensure_ascii=False) for w in want)))
        # every node, named after its file
        summary = os.path.join(fresh(tmp, "names-summary"), "summary.json")
        replay(qw, ["--chain", "cosmoshub"], files, gen_dir, extra=("--summary", summary))
        with open(summary, encoding="utf-8") as f:
            nodes = sorted(n.get("node") for n in json.load(f))
        expect(nodes == sorted(NAMES), "summary nodes %r, want %r" % (nodes, sorted(NAMES)))
    return fn


def check_names_run(qw, tmp, gen_dir, interval):
    """Start (256 bytes a poll), SIGTERM once the checkpoint shows
    progress, start again to the end, start a third time: exit 0 each time,
    replay's events, nothing written twice. Where the first stop came is
    printed, not asserted (it is timing). Twice: with the ordinary
    checkpoint_interval of section 1 (the names on any binary that runs at
    all; the input is usually read whole before the first checkpoint), and
    with 0s (a checkpoint after every batch: the SIGTERM comes part-way, so
    the restart resumes mid-file on the odd paths)."""
    def fn():
        case = Case(qw, tmp, "names", gen_dir, ["--chain", "cosmoshub"], sorted(os.listdir(gen_dir)),
                    [("{}", "cosmoshub")], "")
        want = case.want()
        live = case.setup("names", interval=interval)
        try:
            total = live.total_bytes()
            live.start(QW_TEST_READ_CHUNK="256")
            wait(lambda: live.running("before the first SIGTERM") or live.read_bytes() > 0,
                 "start 1 shows some progress in its checkpoint")
            live.stop()
            first = live.read_bytes()
            live.start()
            live.finish()
            not_late(live.data(), last_record_ns(live.files), "run")
            same_events(want, live.data(), "forbid")
            before = live.data()
            live.start()
            live.finish()
            expect(live.data() == before, "a third start over the same, finished files wrote more:\n    %s" % (
                "\n    ".join(l.decode("utf-8", "replace") for l in live.data()[len(before):].splitlines()[:10])))
            return "the first start was stopped with byte %d of %d read" % (first, total)
        finally:
            live.kill()
    return fn


# --------------------------------------------------------------------------
# The tests: one module fixture per part starts the part's selected
# scenarios together (WORKERS at a time); each test waits for its own.


class Pool:
    """Runs jobs [(key, fn)] WORKERS at a time from the start; result(key)
    waits for one: fn's return value (a note), or fn's exception."""

    def __init__(self, jobs):
        self.ex = concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS)
        self.futures = {key: self.ex.submit(fn) for key, fn in jobs}

    def result(self, key):
        return self.futures[key].result()

    def close(self):
        self.ex.shutdown(wait=True, cancel_futures=True)


def selected(request, test_name):
    """The `key` parameters of this module's selected cases of test_name, in order."""
    return [item.callspec.params["key"] for item in request.session.items
            if item.module is request.module and getattr(item, "originalname", None) == test_name
            and item.callspec.params["key"] is not None]


def show(note):
    if note:
        print("(%s)" % note)


@pytest.fixture(scope="module", autouse=True)
def zstd_installed():
    if shutil.which("zstd") is None:
        pytest.fail("zstd is needed (bad_input has a .log.zst)", pytrace=False)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return os.path.realpath(str(tmp_path_factory.mktemp("live")))


# 1


GOLDEN_KEYS = [os.path.basename(d) for d in golden_dirs()]


@pytest.fixture(scope="module")
def golden_pool(request, qw, tmp):
    pool = Pool([(k, check_golden(qw, tmp, os.path.join(GOLDEN, k)))
                 for k in selected(request, "test_golden")])
    yield pool
    pool.close()


@pytest.mark.parametrize("key", GOLDEN_KEYS or [None])
def test_golden(golden_pool, key):
    """golden/<name>: run == replay"""
    assert key is not None, "no golden scenario (tests/golden/*/expected.jsonl)"
    show(golden_pool.result(key))


# 2


@pytest.fixture(scope="module")
def healthy_dir(tmp, logs):
    d = os.path.join(tmp, "gen-healthy")
    gen_healthy(d, logs)
    return d


@pytest.fixture(scope="module")
def healthy_pool(request, qw, tmp, healthy_dir):
    pool = Pool([(k, check_healthy(qw, tmp, healthy_dir, k))
                 for k in selected(request, "test_healthy")])
    yield pool
    pool.close()


@pytest.mark.parametrize("key", list(HEALTHY_CHAINS))
def test_healthy(healthy_pool, key):
    """healthy-45min (max_bans 3 / max_bans default): no event from replay or run"""
    show(healthy_pool.result(key))


# 3

RESTART_CASES = ("healthy-45min", "examples_cosmoshub", "ban_31min", "unban", "missed_precommits",
                 "upgrade_halt")
RESTART_KINDS = ("crash", "stop", "kill9")


@pytest.fixture(scope="module")
def kill9_seed():
    seed = int(os.environ.get("QW_LIVE_SEED") or random.SystemRandom().randrange(1 << 32))
    print("(kill -9 seed %d; QW_LIVE_SEED=%d repeats it)" % (seed, seed))
    return seed


@pytest.fixture(scope="module")
def restart_pool(request, qw, tmp, kill9_seed):
    keys = selected(request, "test_restarts")
    cases = {}
    for key in keys:
        name = key.split("/")[0]
        if name in cases:
            continue
        if name == "healthy-45min":
            cases[name] = healthy_case(qw, tmp, request.getfixturevalue("healthy_dir"), "max_bans 3")
        else:
            cases[name] = golden_case(qw, tmp, os.path.join(GOLDEN, name))
    jobs = []
    for key in keys:
        name, kind = key.split("/")
        c = cases[name]
        if kind == "crash":
            jobs.append((key, crash_series(c, c.name + "-crash")))
        elif kind == "stop":
            jobs.append((key, stop_series(c, c.name + "-stop")))
        else:
            jobs.append((key, kill9_series(c, c.name + "-kill9", kill9_seed)))
    pool = Pool(jobs)
    yield pool
    pool.close()


@pytest.mark.parametrize("key", ["%s/%s" % (c, k) for c in RESTART_CASES for k in RESTART_KINDS])
def test_restarts(restart_pool, kill9_seed, key):
    """restarts/<case>: a crash after N = 1, 2, 3, 5, 8 ... checkpoints, then a
    restart (crash); graceful stops after 1, 2, 3, 5, 8 ... checkpoints in a
    row (stop); kill -9 at random moments (kill9)"""
    try:
        show(restart_pool.result(key))
    except AssertionError as e:
        if key.endswith("/kill9"):
            raise Failure("%s\n  (kill -9 seed %d; QW_LIVE_SEED=%d repeats it)"
                          % (e, kill9_seed, kill9_seed)) from None
        raise


# 4

NAMES_TESTS = {
    "replay": "replay reports the stall of %r, names JSON-escaped" % STALLER,
    "run-100ms": "run == replay, across SIGTERM and restarts",
    "run-0s": "run == replay, SIGTERM part-way (checkpoint_interval 0s) and restarts",
}


@pytest.fixture(scope="module")
def names_pool(request, qw, tmp):
    d = os.path.join(tmp, "gen-names")
    gen_names(d)
    make = {"replay": lambda: check_names_replay(qw, tmp, d),
            "run-100ms": lambda: check_names_run(qw, tmp, d, "100ms"),
            "run-0s": lambda: check_names_run(qw, tmp, d, "0s")}
    pool = Pool([(k, make[k]()) for k in selected(request, "test_names")])
    yield pool
    pool.close()


@pytest.mark.parametrize("key", list(NAMES_TESTS))
def test_names(names_pool, key):
    """names: replay reports the stall, names JSON-escaped; run == replay
    across SIGTERM and restarts (checkpoint_interval 100ms and 0s)"""
    show(names_pool.result(key))
