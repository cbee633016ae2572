#!/usr/bin/env python3
"""Command-line integration test of quorumwatch (suite 'integration').

Long on purpose: one file per command's outward behaviour; each part is a
function of checks (exit codes, bad input, formats, naming, chains, determinism,
patterns, timestamps) sharing the line makers at the top.

Usage: python3 tests/integration/cli_test.py PATH/TO/quorumwatch

Drives the built binary the way an operator does: exit codes, bad input,
log formats, node naming, chain selection, deterministic output, pattern
tests and timestamps. Every log is generated here into a temporary folder.
Prints one line per check and ends with "N passed, M failed"; exits 1 when
anything failed. Python 3 standard library only; no sleeps, no timing.
"""

import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback

UTC = datetime.timezone.utc
T0 = datetime.datetime(2025, 1, 2, 3, 0, 0, tzinfo=UTC)
HEX64 = "0123456789abcdef" * 4
EVENT_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
REQUIRED_EVENT_FIELDS = ("id", "time", "event", "severity", "chain", "node")

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
        self.failures = []

    def check(self, name, fn):
        try:
            fn()
        except Failure as e:
            self.failed += 1
            self.failures.append(name)
            print("FAIL %s: %s" % (name, e), flush=True)
            return
        except Exception:  # a broken check is a failed check, never a crash
            self.failed += 1
            self.failures.append(name)
            print("FAIL %s: exception\n%s" % (name, traceback.format_exc()), flush=True)
            return
        self.passed += 1
        print("ok   %s" % name, flush=True)


BIN = None
TMP = None


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


def run(*args):
    # The timeout only keeps a hung binary from hanging the suite; nothing
    # is asserted about how long a run takes.
    cp = subprocess.run([BIN] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=240)
    return Result(cp)


def new_dir(name):
    d = os.path.join(TMP, name)
    os.makedirs(d, exist_ok=True)
    return d


def write(path, data):
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def replay(files, *extra, summary=True):
    """Runs `replay`; returns (Result, summary list or None)."""
    args = ["replay"]
    spath = None
    if summary:
        spath = os.path.join(TMP, "summary-%d.json" % next(_counter))
        args += ["--summary", spath]
    args += list(extra) + list(files)
    r = run(*args)
    s = None
    if spath and os.path.exists(spath):
        with open(spath, "rb") as f:
            s = json.loads(f.read().decode("utf-8"))
    return r, s


def _count():
    i = 0
    while True:
        i += 1
        yield i


_counter = _count()


def node_of(summary, name):
    expect(summary is not None, "no summary written")
    found = [n for n in summary if n.get("node") == name]
    expect(len(found) == 1, "summary has %d entries for node %r; nodes: %r"
           % (len(found), name, [n.get("node") for n in summary]))
    return found[0]


def parse_jsonl(text, what):
    events = []
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            e = json.loads(line)
        except ValueError as ex:
            raise Failure("%s line %d is not JSON (%s): %r" % (what, i + 1, ex, line[:200]))
        expect(isinstance(e, dict), "%s line %d is not a JSON object" % (what, i + 1))
        events.append(e)
    return events


# --------------------------------------------------------------------------
# Log line makers


def at(seconds):
    return T0 + datetime.timedelta(seconds=seconds)


def rfc3339nano(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%09dZ" % (t.microsecond * 1000)


def ms_stamp(t):
    return "%s.%03dZ" % (t.strftime("%Y-%m-%dT%H:%M:%S"), t.microsecond // 1000)


def tm_plain(t, msg, fields):
    """Tendermint/CometBFT tmfmt line: I[2006-01-02|15:04:05.000] msg(44) k=v."""
    stamp = t.strftime("%Y-%m-%d|%H:%M:%S.") + "%03d" % (t.microsecond // 1000)
    return "I[%s] %-44s %s" % (stamp, msg, fields)


def commit_plain(t, h):
    return tm_plain(t, "committed state", "module=state height=%d num_txs=0 app_hash=AB" % h)


def commit_sdk(t, h):
    """Cosmos SDK console line: `3:00AM INF committed state height=5 ...`."""
    hour = t.hour % 12 or 12
    ampm = "AM" if t.hour < 12 else "PM"
    return "%d:%02d%s INF committed state height=%d module=state num_txs=0" % (
        hour, t.minute, ampm, h)


def filler_plain(t, h):
    """A line no rule takes (tx indexer)."""
    return tm_plain(t, "indexed block events", "module=txindex height=%d" % h)


def cri(t, msg, stream="stdout", tag="F"):
    return "%s %s %s %s\n" % (rfc3339nano(t), stream, tag, msg)


def docker(t, msg, stream="stdout"):
    return json.dumps({"log": msg + "\n", "stream": stream, "time": rfc3339nano(t)}) + "\n"


def raw(msg):
    return msg + "\n"


def chain_lines(heights_times, wrap, msg=commit_plain):
    return "".join(wrap(t, msg(t, h)) for h, t in heights_times)


def steady(first_height, count, start_s=0, step_s=6):
    return [(first_height + i, at(start_s + i * step_s)) for i in range(count)]


def k8s_name(pod, ns, container, idx=0):
    return "%s_%s_%s-%s.log" % (pod, ns, container, HEX64[idx:] + HEX64[:idx])


# --------------------------------------------------------------------------
# 1. Exit codes


def check_exit_codes(t):
    d = new_dir("exit")
    good = write(os.path.join(d, "good.log"),
                 chain_lines(steady(1, 5), lambda tt, m: cri(tt, m)))

    def no_args():
        r = run()
        expect_eq(r.rc, 2, "exit status without arguments (%r)" % r)
    t.check("exit: no arguments -> 2", no_args)

    def unknown_option():
        r = run("replay", "--no-such-option", good)
        expect_eq(r.rc, 2, "exit status with an unknown option (%r)" % r)
    t.check("exit: unknown option -> 2", unknown_option)

    def missing_file():
        missing = os.path.join(d, "does-not-exist.log")
        r = run("replay", missing)
        expect_eq(r.rc, 1, "exit status for a missing file (%r)" % r)
        expect(missing in r.stderr, "stderr does not name %s: %r" % (missing, r.stderr))
    t.check("exit: missing file -> 1, path in stderr", missing_file)

    def directory():
        r = run("replay", d)
        expect_eq(r.rc, 1, "exit status for a directory (%r)" % r)
        expect(d in r.stderr, "stderr does not name the directory: %r" % r.stderr)
    t.check("exit: a directory -> 1", directory)

    def bad_key():
        cfg = write(os.path.join(d, "unknown-key.yaml"),
                    "chains:\n"
                    "  cosmoshub:\n"
                    "    family: cometbft\n"
                    "    stall_aftr: 60s\n")
        r = run("replay", "-c", cfg, good)
        expect_eq(r.rc, 1, "exit status for an unknown configuration key (%r)" % r)
        expect(cfg + ":4" in r.stderr,
               "stderr does not name %s:4 (the unknown key): %r" % (cfg, r.stderr))
        expect("stall_aftr" in r.stderr, "stderr does not name the key: %r" % r.stderr)
    t.check("exit: --config with an unknown key -> 1, file:line", bad_key)

    def bad_duration():
        cfg = write(os.path.join(d, "bad-duration.yaml"),
                    "chains:\n"
                    "  cosmoshub:\n"
                    "    family: cometbft\n"
                    "    max_lag: 5\n"
                    "    stall_after: sixty seconds\n")
        r = run("replay", "-c", cfg, good)
        expect_eq(r.rc, 1, "exit status for a bad duration (%r)" % r)
        expect(cfg + ":5" in r.stderr,
               "stderr does not name %s:5 (the bad duration): %r" % (cfg, r.stderr))
    t.check("exit: --config with a bad duration -> 1, file:line", bad_duration)


# --------------------------------------------------------------------------
# 2. Bad input


def check_bad_input(t):
    d = new_dir("bad")

    def cri_garbage():
        good = [cri(tt, commit_plain(tt, h)).encode() for h, tt in steady(100, 12)]
        big_msg = "x" * 1000000  # one 1 MB line, under the 1 MiB line limit: valid
        bad = [
            b"2025-01-02T03:00:07.000000000Z stdout\n",                # truncated CRI
            b"2025-01-02T03:00:0\n",                                   # truncated stamp
            b"this is garbage, not a CRI line at all\n",               # unknown format
            b"\x00\x00\x00\x01\x02binary\x00data\xff\xfe\n",           # binary, NUL bytes
            cri(at(20), "NUL inside \x00 the message").encode(),       # NUL in a message
            cri(at(21), "x").encode().replace(b" x\n", b" bad \xc3\x28 utf8 \xff\n"),
            cri(at(22), "x").encode().replace(b" x\n", b" lone continuation \x80\x80\n"),
        ]
        lines = (good[:3] + bad[:3] + good[3:6] + [cri(at(40), big_msg).encode()]
                 + bad[3:] + good[6:])
        path = write(os.path.join(d, "garbage.log"), b"".join(lines))
        r, s = replay([path])
        expect_eq(r.rc, 0, "exit status (%r)" % r)
        n = node_of(s, "garbage")
        expect_eq(n.get("lines_read"), len(lines), "lines_read")
        expect_eq(n.get("lines_rejected"), len(bad), "lines_rejected")
        expect_eq(n.get("last_height"), 111, "last_height")
        expect_eq(n.get("first_height"), 100, "first_height")
        expect_eq(n.get("commits"), 12, "commits")
    t.check("bad input: CRI with truncated, garbage, NUL, invalid UTF-8 and 1 MB lines",
            cri_garbage)

    def over_limit():
        # A line over max_line_bytes (default 1 MiB) is cut and counted; the
        # lines after it are read as usual.
        lines = [cri(tt, commit_plain(tt, h)).encode() for h, tt in steady(1, 3)]
        lines.append(cri(at(20), "y" * (3 << 20)).encode())
        lines += [cri(tt, commit_plain(tt, h)).encode() for h, tt in steady(4, 3, 30)]
        path = write(os.path.join(d, "huge.log"), b"".join(lines))
        r, s = replay([path])
        expect_eq(r.rc, 0, "exit status (%r)" % r)
        n = node_of(s, "huge")
        expect_eq(n.get("lines_read"), 7, "lines_read")
        expect_eq(n.get("last_height"), 6, "last_height")
        expect_eq(n.get("commits"), 6, "commits")
    t.check("bad input: a 3 MB line is cut, later lines still read", over_limit)

    def empty():
        path = write(os.path.join(d, "empty.log"), b"")
        r, s = replay([path])
        expect_eq(r.rc, 0, "exit status (%r)" % r)
        n = node_of(s, "empty")
        expect_eq(n.get("lines_read"), 0, "lines_read")
        expect_eq(n.get("commits"), 0, "commits")
    t.check("bad input: empty file -> node with lines_read 0, exit 0", empty)

    def docker_truncated():
        good = [docker(tt, commit_plain(tt, h)) for h, tt in steady(50, 8)]
        trunc = '{"log":"I[2025-01-02|03:00:20.000] committed sta'
        bad = [
            trunc + "\n",                                         # truncated JSON
            '{"log":"no closing brace","stream":"stdout"\n',     # truncated JSON
            "not json at all\n",
        ]
        lines = good[:4] + bad + good[4:]
        path = write(os.path.join(d, "dock.log"), "".join(lines))
        r, s = replay([path])
        expect_eq(r.rc, 0, "exit status (%r)" % r)
        n = node_of(s, "dock")
        expect_eq(n.get("lines_read"), len(lines), "lines_read")
        expect_eq(n.get("lines_rejected"), len(bad), "lines_rejected")
        expect_eq(n.get("last_height"), 57, "last_height")
        expect_eq(n.get("commits"), 8, "commits")
    t.check("bad input: docker json-file with truncated JSON lines", docker_truncated)


# --------------------------------------------------------------------------
# 3. Formats


def check_formats(t):
    d = new_dir("formats")
    hts = steady(1000, 40)
    # Some lines that are not commits, so that lines_matched differs from lines_read.
    def with_filler(wrap):
        out = []
        for h, tt in hts:
            out.append(wrap(tt, commit_plain(tt, h)))
            out.append(wrap(tt + datetime.timedelta(seconds=1),
                            tm_plain(tt + datetime.timedelta(seconds=1), "indexed block",
                                     "module=txindex height=%d" % h)))
        return "".join(out)

    files = {
        "fcri": with_filler(cri),
        "fdocker": with_filler(docker),
        "fraw": with_filler(lambda tt, m: raw(m)),
        "fsdk": "".join(cri(tt, commit_sdk(tt, h)) + cri(tt, "%d:%02dAM INF indexed block "
                                                         "height=%d module=txindex"
                                                         % (tt.hour, tt.minute, h))
                        for h, tt in hts),
    }
    paths = {k: write(os.path.join(d, k + ".log"), v) for k, v in files.items()}
    zsrc = write(os.path.join(d, "fzst-src.log"), files["fcri"])
    zpath = os.path.join(d, "fzst.log.zst")
    zstd = shutil.which("zstd")
    if zstd:
        subprocess.run([zstd, "-q", "-19", "-f", zsrc, "-o", zpath], check=True)
    os.remove(zsrc)

    results = {}

    def one(key, path):
        def fn():
            r, s = replay([path])
            expect_eq(r.rc, 0, "exit status (%r)" % r)
            n = node_of(s, key)
            expect_eq(n.get("chain"), "cometbft", "chain")
            expect_eq(n.get("family"), "cometbft", "family")
            expect_eq(n.get("first_height"), 1000, "first_height")
            expect_eq(n.get("last_height"), 1039, "last_height")
            expect_eq(n.get("commits"), 40, "commits")
            expect_eq(n.get("lines_read"), 80, "lines_read")
            expect_eq(n.get("lines_rejected"), 0, "lines_rejected")
            expect_eq(n.get("longest_stall_seconds"), 6, "longest_stall_seconds")
            results[key] = n
        return fn

    t.check("formats: CRI", one("fcri", paths["fcri"]))
    t.check("formats: docker json-file", one("fdocker", paths["fdocker"]))
    t.check("formats: raw plain Tendermint", one("fraw", paths["fraw"]))
    t.check("formats: CRI with Cosmos SDK console lines", one("fsdk", paths["fsdk"]))

    def zst():
        expect(zstd is not None, "the zstd command is not installed")
        one("fzst", zpath)()
    t.check("formats: zstd-compressed CRI (.zst streamed)", zst)

    def same():
        keys = ("first_height", "last_height", "commits", "lines_read", "lines_matched",
                "longest_stall_seconds")
        base = {k: results.get("fcri", {}).get(k) for k in keys}
        for name, n in sorted(results.items()):
            got = {k: n.get(k) for k in keys}
            expect_eq(got, base, "summary of %s vs fcri" % name)
        expect_eq(len(results), 5, "formats that produced a summary")
    t.check("formats: every format gives the same summary", same)


# --------------------------------------------------------------------------
# 4. Naming


def check_naming(t):
    d = new_dir("naming")

    def k8s():
        p = write(os.path.join(d, k8s_name("gaiad-validator-0", "cosmos-mainnet", "gaiad")),
                  chain_lines(steady(1, 5), cri))
        r, s = replay([p])
        expect_eq(r.rc, 0, "exit status (%r)" % r)
        n = node_of(s, "gaiad-validator-0")
        expect_eq(n.get("namespace"), "cosmos-mainnet", "namespace")
        expect_eq(len(s), 1, "nodes in the summary")
    t.check("naming: Kubernetes file name -> node=pod, namespace", k8s)

    def two_containers():
        a = write(os.path.join(d, k8s_name("gaiad-1", "cosmos", "gaiad", 3)),
                  chain_lines(steady(1, 5), cri))
        b = write(os.path.join(d, k8s_name("gaiad-1", "cosmos", "cosmovisor", 7)),
                  chain_lines(steady(6, 5, 30), cri))
        r, s = replay([a, b])
        expect_eq(r.rc, 0, "exit status (%r)" % r)
        expect_eq([(n.get("node"), n.get("namespace")) for n in s], [("gaiad-1", "cosmos")],
                  "nodes in the summary")
        n = s[0]
        expect_eq(n.get("lines_read"), 10, "lines_read (both files)")
        expect_eq(n.get("last_height"), 10, "last_height")
    t.check("naming: two containers of one pod -> one node", two_containers)

    def plain_names():
        a = write(os.path.join(d, "val-a.log"), chain_lines(steady(1, 3), cri))
        b = write(os.path.join(d, "val-b.cri.log"), chain_lines(steady(1, 3), cri))
        c = write(os.path.join(d, "val-c"), chain_lines(steady(1, 3), cri))
        r, s = replay([a, b, c])
        expect_eq(r.rc, 0, "exit status (%r)" % r)
        expect_eq(sorted(n.get("node") for n in s), ["val-a", "val-b", "val-c"], "node names")
        for n in s:
            expect("namespace" not in n or n["namespace"] in (None, ""),
                   "namespace for a non-Kubernetes name: %r" % n)
    t.check("naming: other names -> base name without extensions", plain_names)

    def node_flag():
        a = write(os.path.join(d, "capture-2025-01-02.log"), chain_lines(steady(1, 3), cri))
        r, s = replay([a], "--node", "sentry-eu-1")
        expect_eq(r.rc, 0, "exit status (%r)" % r)
        expect_eq([n.get("node") for n in s], ["sentry-eu-1"], "node names")
    t.check("naming: --node NAME with one file", node_flag)

    def node_flag_two():
        a = write(os.path.join(d, "n1.log"), chain_lines(steady(1, 3), cri))
        b = write(os.path.join(d, "n2.log"), chain_lines(steady(1, 3), cri))
        r, _ = replay([a, b], "--node", "x", summary=False)
        expect_eq(r.rc, 2, "exit status (%r)" % r)
    t.check("naming: --node with two files -> exit 2", node_flag_two)


# --------------------------------------------------------------------------
# 5. --chain


def check_chain(t):
    d = new_dir("chain")
    p = write(os.path.join(d, "gaia.log"), chain_lines(steady(1, 10), cri))

    def auto():
        r, s = replay([p])
        expect_eq(r.rc, 0, "exit status (%r)" % r)
        n = node_of(s, "gaia")
        expect_eq((n.get("chain"), n.get("family")), ("cometbft", "cometbft"), "chain, family")
        expect_eq(n.get("last_height"), 10, "last_height")
    t.check("chain: auto -> chain cometbft, family cometbft", auto)

    def named():
        r, s = replay([p], "--chain", "cosmoshub")
        expect_eq(r.rc, 0, "exit status (%r)" % r)
        n = node_of(s, "gaia")
        expect_eq((n.get("chain"), n.get("family")), ("cosmoshub", "cometbft"), "chain, family")
        expect_eq(n.get("last_height"), 10, "last_height")
    t.check("chain: --chain cosmoshub -> chain cosmoshub, family cometbft", named)

    def unknown():
        words = ["lorem", "ipsum", "dolor", "sit", "amet", "quux", "frobnicate", "zebra"]
        text = "".join(cri(at(i), " ".join(words[(i + j) % len(words)] for j in range(6)))
                       for i in range(50))
        q = write(os.path.join(d, "mystery.log"), text)
        r, s = replay([q])
        expect_eq(r.rc, 0, "exit status (%r)" % r)
        expect("family unknown" in r.stderr, "stderr does not say family unknown: %r" % r.stderr)
        expect("mystery.log" in r.stderr, "stderr does not name the file: %r" % r.stderr)
        n = node_of(s, "mystery")
        expect_eq(n.get("lines_read"), 50, "lines_read")
        expect_eq(n.get("commits"), 0, "commits")
    t.check("chain: unknown stream -> 'family unknown' on stderr, exit 0", unknown)


# --------------------------------------------------------------------------
# 6. Determinism and output


FLEET = ("val-a", "val-b", "val-c")
FLEET_BLOCKS = 3000      # heights 500..3499, one every 2 s (100 minutes)
FLEET_GAP = (90, 180)    # val-c logs nothing for 90 < i < 180: 03:03:00.5 .. 03:06:00.5


def stall_fleet(d, wrap):
    """Three nodes committing every 2 s for 100 minutes, each commit followed
    by a line no rule takes. val-c is silent for 3 minutes after its commit
    of height 590 at 03:03:00.5 and comes back at the chain head (680) at
    03:06:00.5. Many commits keep the detector busy, so that matched
    batches queue up behind it (where ordering bugs show)."""
    paths = []
    for name in FLEET:
        out = []
        for i in range(FLEET_BLOCKS):
            if name == "val-c" and FLEET_GAP[0] < i < FLEET_GAP[1]:
                continue
            tt = at(i * 2 + {"val-a": 0, "val-b": 0.25, "val-c": 0.5}[name])
            h = 500 + i
            out.append(wrap(tt, commit_plain(tt, h)))
            ft = tt + datetime.timedelta(milliseconds=700)
            out.append(wrap(ft, filler_plain(ft, h + 1)))
        paths.append(write(os.path.join(d, name + ".log"), "".join(out)))
    return paths


def fleet_expected_summary():
    gap = FLEET_GAP[1] - FLEET_GAP[0] - 1
    want = {}
    for name in FLEET:
        commits = FLEET_BLOCKS - (gap if name == "val-c" else 0)
        want[name] = {"first_height": 500, "last_height": 500 + FLEET_BLOCKS - 1,
                      "commits": commits, "lines_read": 2 * commits, "lines_matched": commits,
                      "lines_rejected": 0,
                      "longest_stall_seconds": 180 if name == "val-c" else 2}
    return want


def check_determinism(t):
    d = new_dir("determinism")
    paths = stall_fleet(d, cri)
    cache = {}

    def jsonl(threads, key):
        """(Result, summary) of a jsonl replay, run once per key."""
        if key not in cache:
            spath = os.path.join(d, "summary-%s.json" % key)
            r = run("replay", "--format", "jsonl", "--threads", threads, "--summary", spath,
                    *paths)
            s = None
            if os.path.exists(spath):
                with open(spath, "rb") as f:
                    s = f.read()
            cache[key] = (r, s)
        return cache[key]

    def identical_threads():
        r1, s1 = jsonl(1, "t1")
        r4, s4 = jsonl(4, "t4")
        expect_eq(r1.rc, 0, "exit status with --threads 1 (%r)" % r1)
        expect_eq(r4.rc, 0, "exit status with --threads 4 (%r)" % r4)
        expect(len(r1.out) > 0, "no events at all with --threads 1")
        expect(r1.out == r4.out, "stdout differs between --threads 1 and --threads 4:\n%s\n---\n%s"
               % (r1.stdout[:1500], r4.stdout[:1500]))
        expect(s1 == s4, "summary differs between --threads 1 and --threads 4:\n%s\n---\n%s"
               % (s1, s4))
        t1 = run("replay", "--threads", 1, *paths)
        t4 = run("replay", "--threads", 4, *paths)
        expect(t1.rc == 0 and t4.rc == 0, "text runs failed: %r %r" % (t1, t4))
        expect(t1.out == t4.out, "text stdout differs between --threads 1 and 4:\n%s\n---\n%s"
               % (t1.stdout[-1500:], t4.stdout[-1500:]))
    t.check("determinism: --threads 1 and --threads 4 give byte-identical stdout",
            identical_threads)

    def identical_repeated():
        base_r, base_s = jsonl(1, "t1")
        runs = [(1, "t1-again"), (1, "t1-third")]
        runs += [(2, "t2-%d" % i) for i in range(6)] + [(4, "t4-%d" % i) for i in range(6)]
        bad = []
        for threads, key in runs:
            r, s = jsonl(threads, key)
            if r.rc != 0 or r.out != base_r.out or s != base_s:
                bad.append("--threads %d run %s: rc=%d, %d event lines (want %d), summary %s"
                           % (threads, key, r.rc, len(r.out.splitlines()),
                              len(base_r.out.splitlines()),
                              "same" if s == base_s else "differs: %s" % s))
        expect(not bad, "%d of %d repeated runs differ from the first --threads 1 run:\n  %s"
               % (len(bad), len(runs), "\n  ".join(bad)))
    t.check("determinism: repeated runs (threads 1, 2, 4) give byte-identical output",
            identical_repeated)

    def summary_values():
        # Every run must agree with what the logs hold, not only with each other.
        keys = ["t1", "t4", "t1-again", "t1-third"] + ["t2-%d" % i for i in range(6)]
        keys += ["t4-%d" % i for i in range(6)]
        want = fleet_expected_summary()
        for key in keys:
            threads = int(key[1])
            r, s = jsonl(threads, key)
            expect(s is not None, "run %s wrote no summary (%r)" % (key, r))
            nodes = json.loads(s.decode("utf-8"))
            for name in FLEET:
                n = node_of(nodes, name)
                got = {k: n.get(k) for k in want[name]}
                expect_eq(got, want[name], "summary of %s in run %s" % (name, key))
    t.check("determinism: every run's summary matches the logs", summary_values)

    def events_shape():
        r, _ = jsonl(1, "t1")
        events = parse_jsonl(r.stdout, "stdout")
        expect(len(events) > 0, "no events")
        for e in events:
            for k in REQUIRED_EVENT_FIELDS:
                expect(k in e, "event lacks %r: %r" % (k, e))
            expect(re.fullmatch(r"[0-9a-f]{16}", str(e["id"])) is not None, "id: %r" % e)
            expect(EVENT_TIME_RE.match(str(e["time"])) is not None, "time: %r" % e)
            expect(e["severity"] in ("info", "warning", "critical"), "severity: %r" % e)
            expect_eq(e["chain"], "cometbft", "chain of %r" % e)
        times = [e["time"] for e in events]
        expect(times == sorted(times), "events are not in time order")
        stalled = [e for e in events if e["event"] == "node_stalled"]
        expect_eq([(e["node"], e["time"], e.get("height"), e["severity"]) for e in stalled],
                  [("val-c", "2025-01-02T03:04:00.500Z", 590, "warning")], "node_stalled events")
        rec = [e for e in events if e["event"] == "node_recovered"]
        expect_eq([(e["node"], e["time"], e.get("height")) for e in rec],
                  [("val-c", "2025-01-02T03:06:00.500Z", 680)], "node_recovered events")
        halts = [e for e in events if e["event"] == "chain_halted"]
        expect_eq(halts, [], "chain_halted events (two nodes never stopped)")
        ids = [e["id"] for e in events]
        expect_eq(len(set(ids)), len(ids), "distinct event ids")
    t.check("determinism: --format jsonl lines are JSON events with the required fields",
            events_shape)

    def events_file():
        base = jsonl(1, "t1")[0].out
        ev = os.path.join(d, "events.jsonl")
        r = run("replay", "--threads", 1, "--events", ev, *paths)
        expect_eq(r.rc, 0, "exit status (%r)" % r)
        with open(ev, "rb") as f:
            data = f.read()
        expect(data == base, "--events FILE (text run) differs from --format jsonl stdout:\n%s"
               "\n---\n%s" % (data[:1000], base[:1000]))
        ev2 = os.path.join(d, "events2.jsonl")
        r2 = run("replay", "--threads", 1, "--format", "jsonl", "--events", ev2, *paths)
        with open(ev2, "rb") as f:
            expect(f.read() == r2.out, "--events FILE differs from stdout of the same run")
    t.check("determinism: --events FILE writes the same JSON lines as --format jsonl",
            events_file)

    def text_table():
        r = run("replay", *paths)
        expect_eq(r.rc, 0, "exit status (%r)" % r)
        for name in FLEET:
            rows = [ln for ln in r.stdout.splitlines() if ln.split()[:1] == [name]]
            expect(len(rows) == 1, "summary table has %d rows for %s:\n%s"
                   % (len(rows), name, r.stdout[-2000:]))
            expect("cometbft" in rows[0], "row of %s lacks the chain: %r" % (name, rows[0]))
        expect(not r.stdout.lstrip().startswith("{"), "text output looks like JSON")
    t.check("determinism: text format prints a summary table with every node", text_table)


# --------------------------------------------------------------------------
# 7. patterns test

MINI_PATTERN = """\
family: minichain
aliases: [mini]
role: node
defaults:
  stall_after: 60s
timestamps:
  - regex: '^(?P<ts>\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ) '
    layout: '%Y-%m-%dT%H:%M:%S%z'
rules:
  - name: committed
    signal: block_committed
    regex: 'mini committed block (?P<height>\\d+)'
    tests:
      - line: '2025-01-02T03:00:00Z mini committed block 42'
        source: 'generated by the integration test'
        want: {height: 42}
"""


def check_patterns(t):
    d = new_dir("patterns")

    def builtin():
        r = run("patterns", "test")
        expect_eq(r.rc, 0, "exit status (%r)" % r)
        expect("cometbft" in r.stdout, "output does not name the cometbft file: %r" % r.stdout)
        expect("FAIL" not in r.stdout + r.stderr, "a FAIL line: %r" % r)
    t.check("patterns test: built-in patterns pass", builtin)

    def good_file():
        p = write(os.path.join(d, "mini.yaml"), MINI_PATTERN)
        r = run("patterns", "test", p)
        expect_eq(r.rc, 0, "exit status for a good pattern file (%r)" % r)
    t.check("patterns test: a good pattern file passes", good_file)

    def broken(name, text, line):
        def fn():
            p = write(os.path.join(d, name + ".yaml"), text)
            r = run("patterns", "test", p)
            expect_eq(r.rc, 1, "exit status (%r)" % r)
            both = r.stdout + r.stderr
            expect("%s:%d" % (p, line) in both,
                   "output does not name %s:%d: %r" % (p, line, both))
        return fn

    lines = MINI_PATTERN.splitlines(True)
    # line numbers (1-based) in MINI_PATTERN
    rule_name_line = next(i for i, ln in enumerate(lines) if "- name: committed" in ln) + 1
    regex_line = next(i for i, ln in enumerate(lines) if "regex: 'mini" in ln) + 1
    test_line = next(i for i, ln in enumerate(lines) if "- line: " in ln) + 1

    unknown_key = "".join(lines[:rule_name_line] + ["    severity: high\n"] +
                          lines[rule_name_line:])
    t.check("patterns test: unknown key -> exit 1, file:line",
            broken("unknown-key", unknown_key, rule_name_line + 1))

    bad_regex = MINI_PATTERN.replace("'mini committed block (?P<height>\\d+)'",
                                     "'mini committed block (?P<height>\\d+'")
    t.check("patterns test: bad regex -> exit 1, file:line",
            broken("bad-regex", bad_regex, regex_line))

    no_match = MINI_PATTERN.replace("mini committed block 42", "mini finalized block 42")
    t.check("patterns test: test line that does not match -> exit 1, file:line",
            broken("no-match", no_match, test_line))

    def export_re2():
        # One regex a line, named groups stripped, usable as rg -f: each
        # pattern file rule's test line is matched by its exported regex.
        r = run("patterns", "export", "--chain", "cosmoshub")
        expect_eq(r.rc, 0, "exit status (%r)" % r)
        regexes = r.stdout.splitlines()
        expect_eq(len(regexes), 30, "exported regexes (rules in cometbft.yaml)")
        expect(all("(?P<" not in x for x in regexes), "named groups left in the export")
        import re as pyre
        hit = [x for x in regexes if pyre.search(x, "I[2021-05-05|12:03:00.156] committed state "
                                                   "module=state height=5 num_txs=0 app_hash=AB")]
        expect(len(hit) >= 1, "no exported regex matches a commit line")
    t.check("patterns export: re2 lines", export_re2)

    def export_mtail():
        r = run("patterns", "export", "--chain", "gaia", "--format", "mtail")
        expect_eq(r.rc, 0, "exit status (%r)" % r)
        expect("counter quorumwatch_lines_matched" in r.stdout, "no line counter")
        expect_eq(r.stdout.count("\ncounter rule_"), 30, "one counter per rule")
        expect_eq(r.stdout.count("++\n}"), 31, "one action per rule plus the line counter")
        bad = run("patterns", "export", "--chain", "no-such-chain")
        expect_eq(bad.rc, 1, "unknown chain exit status (%r)" % bad)
        usage = run("patterns", "export", "--chain", "gaia", "--format", "pcre")
        expect_eq(usage.rc, 2, "unknown format exit status (%r)" % usage)
    t.check("patterns export: mtail program", export_mtail)


# --------------------------------------------------------------------------
# 8. Timestamps


def check_timestamps(t):
    d = new_dir("timestamps")
    # Raw files, no runtime stamps: each line's time is its own I[...] stamp.
    # ra commits every 6 s from 03:00:00 to 03:06:00 (heights 100..160).
    ra = "".join(raw(commit_plain(tt, h)) for h, tt in steady(100, 61))
    # rb: its first line (an SDK console line, `3:00AM`, no date) has no full
    # stamp and takes the first stamp of the file (03:00:06). Heights 100..110
    # to 03:01:00, silent 3 minutes, then back at the head from 03:04:00.
    rb_lines = [raw(commit_sdk(at(6), 100))]
    rb_lines += [raw(commit_plain(tt, h)) for h, tt in steady(101, 10, 6)]
    rb_lines += [raw(commit_plain(tt, h)) for h, tt in steady(140, 21, 240)]
    a = write(os.path.join(d, "ra.log"), ra)
    b = write(os.path.join(d, "rb.log"), "".join(rb_lines))
    # The files' modification times are far from the log times: they must not be used.
    mtime = datetime.datetime(2030, 6, 1, tzinfo=UTC).timestamp()
    os.utime(a, (mtime, mtime))
    os.utime(b, (mtime, mtime))
    state = {}

    def get():
        if "r" not in state:
            spath = os.path.join(d, "summary.json")
            r = run("replay", "--format", "jsonl", "--summary", spath, a, b)
            s = None
            if os.path.exists(spath):
                with open(spath) as f:
                    s = json.load(f)
            state["r"] = (r, s)
        return state["r"]

    def message_time():
        r, s = get()
        expect_eq(r.rc, 0, "exit status (%r)" % r)
        events = parse_jsonl(r.stdout, "stdout")
        stalled = [(e["node"], e["time"], e.get("height")) for e in events
                   if e["event"] == "node_stalled"]
        expect_eq(stalled, [("rb", "2025-01-02T03:02:00.000Z", 110)], "node_stalled events")
        rec = [(e["node"], e["time"], e.get("height")) for e in events
               if e["event"] == "node_recovered"]
        expect(len(rec) == 1 and rec[0][:2] == ("rb", "2025-01-02T03:04:00.000Z"),
               "node_recovered events: %r" % rec)
        for e in events:
            expect(e["time"].startswith("2025-01-02T03:0"), "event outside the log's time: %r" % e)
        n = node_of(s, "rb")
        expect_eq(n.get("longest_stall_seconds"), 180, "longest_stall_seconds of rb")
    t.check("timestamps: raw lines use the message's own I[...] time", message_time)

    def before_first_stamp():
        r, s = get()
        n = node_of(s, "rb")
        expect_eq(n.get("first_height"), 100, "first_height of rb (its unstamped first line)")
        expect_eq(n.get("commits"), 32, "commits of rb")
        expect_eq(n.get("lines_read"), 32, "lines_read of rb")
        events = parse_jsonl(r.stdout, "stdout")
        early = [e for e in events if e["time"] < "2025-01-02T03:00:00.000Z"]
        expect_eq(early, [], "events before the first stamp")
        # A single file that starts with unstamped lines.
        c_lines = [raw(commit_sdk(at(0), 7)), raw("starting node, no stamp here")]
        c_lines += [raw(commit_plain(tt, h)) for h, tt in steady(8, 5, 6)]
        c_lines += [raw(commit_plain(tt, h)) for h, tt in steady(13, 5, 150)]
        c = write(os.path.join(d, "rc.log"), "".join(c_lines))
        os.utime(c, (mtime, mtime))
        # rd ends at 03:03:48, before rc's next deadline (its last advance
        # 03:02:54 + 60 s): rc's file ending early is not judged here.
        d_ = write(os.path.join(d, "rd.log"),
                   "".join(raw(commit_plain(tt, h)) for h, tt in steady(7, 39)))
        os.utime(d_, (mtime, mtime))
        r2, s2 = replay([c, d_], "--format", "jsonl")
        expect_eq(r2.rc, 0, "exit status (%r)" % r2)
        nc = node_of(s2, "rc")
        # 7 at 03:00:06 (first stamp), 8..12 at 03:00:06..03:00:30, 13 at 03:02:30.
        expect_eq(nc.get("longest_stall_seconds"), 120, "longest_stall_seconds of rc")
        ev2 = parse_jsonl(r2.stdout, "stdout")
        stalled = [(e["node"], e["time"], e.get("height")) for e in ev2
                   if e["event"] == "node_stalled"]
        expect_eq(stalled, [("rc", "2025-01-02T03:01:30.000Z", 12)], "node_stalled events")
    t.check("timestamps: lines before the first stamp take it", before_first_stamp)

    def time_zones():
        # Zone-less I[...] stamps written in local time UTC+2: 05:00:00 local
        # is 03:00:00Z. Heights 100..110 to 05:01:00, silent 3 minutes, back
        # at 05:04:00; the stall deadline is the last advance + 60 s.
        local = [raw(commit_plain(at(2 * 3600 + tt), h)) for h, tt in
                 [(h, s) for h, s in ((100 + i, 6 * i) for i in range(11))] +
                 [(140 + i, 240 + 6 * i) for i in range(5)]]
        z = write(os.path.join(d, "rz.log"), "".join(local))
        chain = "chains:\n  cosmoshub: {family: cometbft, timezone: \"+02:00\"}\n"
        cfg = write(os.path.join(d, "tz.yaml"), chain)
        r, _ = replay([z], "--chain", "cosmoshub", "--config", cfg, "--format", "jsonl")
        expect_eq(r.rc, 0, "exit status (%r)" % r)
        stalled = [(e["time"], e.get("height")) for e in parse_jsonl(r.stdout, "stdout")
                   if e["event"] == "node_stalled"]
        expect_eq(stalled, [("2025-01-02T03:02:00.000Z", 110)], "node_stalled with the chain's +02:00")
        # A stream rule's timezone wins over the chain's.
        cfg2 = write(os.path.join(d, "tz2.yaml"), chain +
                     "streams:\n  - {match: {}, chain: cosmoshub, timezone: \"+01:00\"}\n")
        r2, _ = replay([z], "--config", cfg2, "--format", "jsonl")
        expect_eq(r2.rc, 0, "exit status (%r)" % r2)
        stalled2 = [(e["time"], e.get("height")) for e in parse_jsonl(r2.stdout, "stdout")
                    if e["event"] == "node_stalled"]
        expect_eq(stalled2, [("2025-01-02T04:02:00.000Z", 110)], "node_stalled with the rule's +01:00")
    t.check("timestamps: the stream rule's, else the chain's timezone applies", time_zones)


# --------------------------------------------------------------------------


def main():
    global BIN, TMP
    if len(sys.argv) != 2:
        print("usage: cli_test.py PATH/TO/quorumwatch", file=sys.stderr)
        return 2
    BIN = os.path.abspath(sys.argv[1])
    if not os.access(BIN, os.X_OK):
        print("not an executable: %s" % BIN, file=sys.stderr)
        return 2
    t = Runner()
    with tempfile.TemporaryDirectory(prefix="qw-cli-") as tmp:
        TMP = tmp
        for part in (check_exit_codes, check_bad_input, check_formats, check_naming,
                     check_chain, check_determinism, check_patterns, check_timestamps):
            try:
                part(t)
            except Exception:
                t.failed += 1
                t.failures.append(part.__name__)
                print("FAIL %s: setup raised\n%s" % (part.__name__, traceback.format_exc()))
    print("%d passed, %d failed" % (t.passed, t.failed))
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
