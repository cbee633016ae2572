"""Command-line integration test of quorumwatch (suite 'integration').

Drives the built binary the way an operator does: exit codes, bad input,
log formats, node naming, chain selection, deterministic output, pattern
tests and timestamps. Every log is generated here into a temporary folder;
expected values come from reasoning about those inputs. No sleeps, no
timing.

  python3 -m pytest -q -p no:cacheprovider tests/integration/cli_test.py --quorumwatch PATH
"""

import datetime
import json
import os
import re
import shutil
import subprocess

import pytest

from harness import UTC, Failure

T0 = datetime.datetime(2025, 1, 2, 3, 0, 0, tzinfo=UTC)
HEX64 = "0123456789abcdef" * 4
EVENT_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
REQUIRED_EVENT_FIELDS = ("id", "time", "event", "severity", "chain", "node")

# --------------------------------------------------------------------------
# Helpers


def write(path, data):
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))
    return str(path)


def read_summary(path):
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


@pytest.fixture
def replay(qw, tmp_path):
    """replay(files, *extra, summary=True) -> (Result, summary list or None)."""
    counter = [0]

    def run(files, *extra, summary=True):
        args = ["replay"]
        spath = None
        if summary:
            counter[0] += 1
            spath = str(tmp_path / ("summary-%d.json" % counter[0]))
            args += ["--summary", spath]
        r = qw(*(args + list(extra) + [str(f) for f in files]))
        return r, (read_summary(spath) if spath else None)
    return run


def node_of(summary, name):
    assert summary is not None, "no summary written"
    found = [n for n in summary if n.get("node") == name]
    assert len(found) == 1, "summary has %d entries for node %r; nodes: %r" % (
        len(found), name, [n.get("node") for n in summary])
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
        assert isinstance(e, dict), "%s line %d is not a JSON object" % (what, i + 1)
        events.append(e)
    return events


# --------------------------------------------------------------------------
# Log line makers (the writers are the `logs` fixture's)


def at(seconds):
    return T0 + datetime.timedelta(seconds=seconds)


def commit_plain(logs, t, h):
    """A Tendermint/CometBFT tmfmt `committed state` line."""
    return logs.commit_msg(t, h, app_hash="AB")


def commit_sdk(t, h):
    """Cosmos SDK console line: `3:00AM INF committed state height=5 ...`."""
    hour = t.hour % 12 or 12
    ampm = "AM" if t.hour < 12 else "PM"
    return "%d:%02d%s INF committed state height=%d module=state num_txs=0" % (
        hour, t.minute, ampm, h)


def filler_plain(logs, t, h):
    """A line no rule takes (tx indexer)."""
    return logs.tm_line(t, "indexed block events", "module=txindex height=%d" % h)


def chain_lines(logs, heights_times, wrap):
    return "".join(wrap(t, commit_plain(logs, t, h)) for h, t in heights_times)


def steady(first_height, count, start_s=0, step_s=6):
    return [(first_height + i, at(start_s + i * step_s)) for i in range(count)]


def k8s_name(pod, ns, container, idx=0):
    return "%s_%s_%s-%s.log" % (pod, ns, container, HEX64[idx:] + HEX64[:idx])


# --------------------------------------------------------------------------
# 1. Exit codes


@pytest.fixture
def good_log(tmp_path, logs):
    return write(tmp_path / "good.log", chain_lines(logs, steady(1, 5), logs.cri))


def test_exit_no_arguments(qw):
    """exit: no arguments -> 2"""
    r = qw()
    assert r.rc == 2, "exit status without arguments (%r)" % r


def test_exit_unknown_option(qw, good_log):
    """exit: unknown option -> 2"""
    r = qw("replay", "--no-such-option", good_log)
    assert r.rc == 2, "exit status with an unknown option (%r)" % r


def test_exit_missing_file(qw, tmp_path):
    """exit: missing file -> 1, path in stderr"""
    missing = str(tmp_path / "does-not-exist.log")
    r = qw("replay", missing)
    assert r.rc == 1, "exit status for a missing file (%r)" % r
    assert missing in r.stderr, "stderr does not name %s: %r" % (missing, r.stderr)


def test_exit_directory(qw, tmp_path, good_log):
    """exit: a directory -> 1"""
    d = str(tmp_path)
    r = qw("replay", d)
    assert r.rc == 1, "exit status for a directory (%r)" % r
    assert d in r.stderr, "stderr does not name the directory: %r" % r.stderr


def test_exit_config_unknown_key(qw, tmp_path, good_log):
    """exit: --config with an unknown key -> 1, file:line"""
    cfg = write(tmp_path / "unknown-key.yaml",
                "chains:\n"
                "  cosmoshub:\n"
                "    family: cometbft\n"
                "    stall_aftr: 60s\n")
    r = qw("replay", "-c", cfg, good_log)
    assert r.rc == 1, "exit status for an unknown configuration key (%r)" % r
    assert cfg + ":4" in r.stderr, "stderr does not name %s:4 (the unknown key): %r" % (
        cfg, r.stderr)
    assert "stall_aftr" in r.stderr, "stderr does not name the key: %r" % r.stderr


def test_exit_config_bad_duration(qw, tmp_path, good_log):
    """exit: --config with a bad duration -> 1, file:line"""
    cfg = write(tmp_path / "bad-duration.yaml",
                "chains:\n"
                "  cosmoshub:\n"
                "    family: cometbft\n"
                "    max_lag: 5\n"
                "    stall_after: sixty seconds\n")
    r = qw("replay", "-c", cfg, good_log)
    assert r.rc == 1, "exit status for a bad duration (%r)" % r
    assert cfg + ":5" in r.stderr, "stderr does not name %s:5 (the bad duration): %r" % (
        cfg, r.stderr)


# --------------------------------------------------------------------------
# 2. Bad input


def test_bad_input_cri_garbage(replay, tmp_path, logs):
    """bad input: CRI with truncated, garbage, NUL, invalid UTF-8 and 1 MB lines"""
    cri = logs.cri
    good = [cri(tt, commit_plain(logs, tt, h)).encode() for h, tt in steady(100, 12)]
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
    path = write(tmp_path / "garbage.log", b"".join(lines))
    r, s = replay([path])
    assert r.rc == 0, "exit status (%r)" % r
    n = node_of(s, "garbage")
    assert n.get("lines_read") == len(lines), "lines_read"
    assert n.get("lines_rejected") == len(bad), "lines_rejected"
    assert n.get("last_height") == 111, "last_height"
    assert n.get("first_height") == 100, "first_height"
    assert n.get("commits") == 12, "commits"


def test_bad_input_line_over_limit(replay, tmp_path, logs):
    """bad input: a 3 MB line is cut, later lines still read"""
    # A line over max_line_bytes (default 1 MiB) is cut and counted; the
    # lines after it are read as usual.
    cri = logs.cri
    lines = [cri(tt, commit_plain(logs, tt, h)).encode() for h, tt in steady(1, 3)]
    lines.append(cri(at(20), "y" * (3 << 20)).encode())
    lines += [cri(tt, commit_plain(logs, tt, h)).encode() for h, tt in steady(4, 3, 30)]
    path = write(tmp_path / "huge.log", b"".join(lines))
    r, s = replay([path])
    assert r.rc == 0, "exit status (%r)" % r
    n = node_of(s, "huge")
    assert n.get("lines_read") == 7, "lines_read"
    assert n.get("last_height") == 6, "last_height"
    assert n.get("commits") == 6, "commits"


def test_bad_input_empty_file(replay, tmp_path):
    """bad input: empty file -> node with lines_read 0, exit 0"""
    path = write(tmp_path / "empty.log", b"")
    r, s = replay([path])
    assert r.rc == 0, "exit status (%r)" % r
    n = node_of(s, "empty")
    assert n.get("lines_read") == 0, "lines_read"
    assert n.get("commits") == 0, "commits"


def test_bad_input_docker_truncated(replay, tmp_path, logs):
    """bad input: docker json-file with truncated JSON lines"""
    good = [logs.docker(tt, commit_plain(logs, tt, h)) for h, tt in steady(50, 8)]
    trunc = '{"log":"I[2025-01-02|03:00:20.000] committed sta'
    bad = [
        trunc + "\n",                                         # truncated JSON
        '{"log":"no closing brace","stream":"stdout"\n',     # truncated JSON
        "not json at all\n",
    ]
    lines = good[:4] + bad + good[4:]
    path = write(tmp_path / "dock.log", "".join(lines))
    r, s = replay([path])
    assert r.rc == 0, "exit status (%r)" % r
    n = node_of(s, "dock")
    assert n.get("lines_read") == len(lines), "lines_read"
    assert n.get("lines_rejected") == len(bad), "lines_rejected"
    assert n.get("last_height") == 57, "last_height"
    assert n.get("commits") == 8, "commits"


# --------------------------------------------------------------------------
# 3. Formats: the same 40 commits (heights 1000..1039, every 6 s), each
# followed by a line no rule takes, in every format


@pytest.fixture(scope="module")
def format_files(tmp_path_factory, logs):
    """key -> path of the file (the node is named after it); None for fzst
    when zstd is not installed."""
    d = tmp_path_factory.mktemp("formats")
    hts = steady(1000, 40)

    def with_filler(wrap):
        out = []
        for h, tt in hts:
            out.append(wrap(tt, commit_plain(logs, tt, h)))
            t1 = tt + datetime.timedelta(seconds=1)
            out.append(wrap(t1, logs.tm_line(t1, "indexed block", "module=txindex height=%d" % h)))
        return "".join(out)

    files = {
        "fcri": with_filler(logs.cri),
        "fdocker": with_filler(logs.docker),
        "fraw": with_filler(lambda tt, m: logs.raw(m)),
        "fsdk": "".join(logs.cri(tt, commit_sdk(tt, h)) +
                        logs.cri(tt, "%d:%02dAM INF indexed block height=%d module=txindex"
                                 % (tt.hour, tt.minute, h))
                        for h, tt in hts),
    }
    paths = {k: write(d / (k + ".log"), v) for k, v in files.items()}
    zsrc = write(d / "fzst-src.log", files["fcri"])
    zpath = str(d / "fzst.log.zst")
    zstd = shutil.which("zstd")
    if zstd:
        subprocess.run([zstd, "-q", "-19", "-f", zsrc, "-o", zpath], check=True)
    os.remove(zsrc)
    paths["fzst"] = zpath if zstd else None
    return paths


@pytest.fixture(scope="module")
def format_summaries(qw, format_files, tmp_path_factory):
    """format_summaries(key) -> (Result, summary), replayed once per key."""
    d = tmp_path_factory.mktemp("format-summaries")
    cache = {}

    def get(key):
        if key not in cache:
            spath = str(d / ("%s.json" % key))
            r = qw("replay", "--summary", spath, format_files[key])
            cache[key] = (r, read_summary(spath))
        return cache[key]
    return get


def check_format(format_summaries, key):
    r, s = format_summaries(key)
    assert r.rc == 0, "exit status (%r)" % r
    n = node_of(s, key)
    assert n.get("chain") == "cometbft", "chain"
    assert n.get("family") == "cometbft", "family"
    assert n.get("first_height") == 1000, "first_height"
    assert n.get("last_height") == 1039, "last_height"
    assert n.get("commits") == 40, "commits"
    assert n.get("lines_read") == 80, "lines_read"
    assert n.get("lines_rejected") == 0, "lines_rejected"
    assert n.get("longest_stall_seconds") == 6, "longest_stall_seconds"
    return n


@pytest.mark.parametrize("key", ["fcri", "fdocker", "fraw", "fsdk"],
                         ids=["CRI", "docker json-file", "raw plain Tendermint",
                              "CRI with Cosmos SDK console lines"])
def test_format(format_summaries, key):
    """formats: CRI / docker json-file / raw plain Tendermint / CRI with Cosmos SDK lines"""
    check_format(format_summaries, key)


def test_format_zstd(format_files, format_summaries):
    """formats: zstd-compressed CRI (.zst streamed)"""
    assert format_files["fzst"] is not None, "the zstd command is not installed"
    check_format(format_summaries, "fzst")


def test_formats_same_summary(format_files, format_summaries):
    """formats: every format gives the same summary"""
    keys = ("first_height", "last_height", "commits", "lines_read", "lines_matched",
            "longest_stall_seconds")
    results = {}  # the formats whose own check passes
    for name in ("fcri", "fdocker", "fraw", "fsdk", "fzst"):
        if format_files[name] is None:
            continue
        try:
            results[name] = check_format(format_summaries, name)
        except AssertionError:
            pass
    base = {k: results.get("fcri", {}).get(k) for k in keys}
    for name, n in sorted(results.items()):
        got = {k: n.get(k) for k in keys}
        assert got == base, "summary of %s vs fcri" % name
    assert len(results) == 5, "formats that produced a summary"


# --------------------------------------------------------------------------
# 4. Naming


def test_naming_kubernetes(replay, tmp_path, logs):
    """naming: Kubernetes file name -> node=pod, namespace"""
    p = write(tmp_path / k8s_name("gaiad-validator-0", "cosmos-mainnet", "gaiad"),
              chain_lines(logs, steady(1, 5), logs.cri))
    r, s = replay([p])
    assert r.rc == 0, "exit status (%r)" % r
    n = node_of(s, "gaiad-validator-0")
    assert n.get("namespace") == "cosmos-mainnet", "namespace"
    assert len(s) == 1, "nodes in the summary"


def test_naming_two_containers_one_node(replay, tmp_path, logs):
    """naming: two containers of one pod -> one node"""
    a = write(tmp_path / k8s_name("gaiad-1", "cosmos", "gaiad", 3),
              chain_lines(logs, steady(1, 5), logs.cri))
    b = write(tmp_path / k8s_name("gaiad-1", "cosmos", "cosmovisor", 7),
              chain_lines(logs, steady(6, 5, 30), logs.cri))
    r, s = replay([a, b])
    assert r.rc == 0, "exit status (%r)" % r
    assert [(n.get("node"), n.get("namespace")) for n in s] == [("gaiad-1", "cosmos")], \
        "nodes in the summary"
    n = s[0]
    assert n.get("lines_read") == 10, "lines_read (both files)"
    assert n.get("last_height") == 10, "last_height"


def test_naming_plain_names(replay, tmp_path, logs):
    """naming: other names -> base name without extensions"""
    a = write(tmp_path / "val-a.log", chain_lines(logs, steady(1, 3), logs.cri))
    b = write(tmp_path / "val-b.cri.log", chain_lines(logs, steady(1, 3), logs.cri))
    c = write(tmp_path / "val-c", chain_lines(logs, steady(1, 3), logs.cri))
    r, s = replay([a, b, c])
    assert r.rc == 0, "exit status (%r)" % r
    assert sorted(n.get("node") for n in s) == ["val-a", "val-b", "val-c"], "node names"
    for n in s:
        assert "namespace" not in n or n["namespace"] in (None, ""), \
            "namespace for a non-Kubernetes name: %r" % n


def test_naming_node_flag(replay, tmp_path, logs):
    """naming: --node NAME with one file"""
    a = write(tmp_path / "capture-2025-01-02.log", chain_lines(logs, steady(1, 3), logs.cri))
    r, s = replay([a], "--node", "sentry-eu-1")
    assert r.rc == 0, "exit status (%r)" % r
    assert [n.get("node") for n in s] == ["sentry-eu-1"], "node names"


def test_naming_node_flag_two_files(replay, tmp_path, logs):
    """naming: --node with two files -> exit 2"""
    a = write(tmp_path / "n1.log", chain_lines(logs, steady(1, 3), logs.cri))
    b = write(tmp_path / "n2.log", chain_lines(logs, steady(1, 3), logs.cri))
    r, _ = replay([a, b], "--node", "x", summary=False)
    assert r.rc == 2, "exit status (%r)" % r


# --------------------------------------------------------------------------
# 5. --chain


@pytest.fixture
def gaia_log(tmp_path, logs):
    return write(tmp_path / "gaia.log", chain_lines(logs, steady(1, 10), logs.cri))


def test_chain_auto(replay, gaia_log):
    """chain: auto -> chain cometbft, family cometbft"""
    r, s = replay([gaia_log])
    assert r.rc == 0, "exit status (%r)" % r
    n = node_of(s, "gaia")
    assert (n.get("chain"), n.get("family")) == ("cometbft", "cometbft"), "chain, family"
    assert n.get("last_height") == 10, "last_height"


def test_chain_named(replay, gaia_log):
    """chain: --chain cosmoshub -> chain cosmoshub, family cometbft"""
    r, s = replay([gaia_log], "--chain", "cosmoshub")
    assert r.rc == 0, "exit status (%r)" % r
    n = node_of(s, "gaia")
    assert (n.get("chain"), n.get("family")) == ("cosmoshub", "cometbft"), "chain, family"
    assert n.get("last_height") == 10, "last_height"


def test_chain_unknown_stream(replay, tmp_path, logs):
    """chain: unknown stream -> 'family unknown' on stderr, exit 0"""
    words = ["lorem", "ipsum", "dolor", "sit", "amet", "quux", "frobnicate", "zebra"]
    text = "".join(logs.cri(at(i), " ".join(words[(i + j) % len(words)] for j in range(6)))
                   for i in range(50))
    q = write(tmp_path / "mystery.log", text)
    r, s = replay([q])
    assert r.rc == 0, "exit status (%r)" % r
    assert "family unknown" in r.stderr, "stderr does not say family unknown: %r" % r.stderr
    assert "mystery.log" in r.stderr, "stderr does not name the file: %r" % r.stderr
    n = node_of(s, "mystery")
    assert n.get("lines_read") == 50, "lines_read"
    assert n.get("commits") == 0, "commits"


# --------------------------------------------------------------------------
# 6. Determinism and output


FLEET = ("val-a", "val-b", "val-c")
FLEET_BLOCKS = 3000      # heights 500..3499, one every 2 s (100 minutes)
FLEET_GAP = (90, 180)    # val-c logs nothing for 90 < i < 180: 03:03:00.5 .. 03:06:00.5
REPEATED_RUNS = ([(1, "t1-again"), (1, "t1-third")] + [(2, "t2-%d" % i) for i in range(6)]
                 + [(4, "t4-%d" % i) for i in range(6)])
SUMMARY_RUN_KEYS = (["t1", "t4", "t1-again", "t1-third"] + ["t2-%d" % i for i in range(6)]
                    + ["t4-%d" % i for i in range(6)])


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, logs):
    """Three nodes committing every 2 s for 100 minutes, each commit followed
    by a line no rule takes. val-c is silent for 3 minutes after its commit
    of height 590 at 03:03:00.5 and comes back at the chain head (680) at
    03:06:00.5. Many commits keep the detector busy, so that matched
    batches queue up behind it (where ordering bugs show). Returns
    (folder, paths)."""
    d = tmp_path_factory.mktemp("determinism")
    paths = []
    for name in FLEET:
        out = []
        for i in range(FLEET_BLOCKS):
            if name == "val-c" and FLEET_GAP[0] < i < FLEET_GAP[1]:
                continue
            tt = at(i * 2 + {"val-a": 0, "val-b": 0.25, "val-c": 0.5}[name])
            h = 500 + i
            out.append(logs.cri(tt, commit_plain(logs, tt, h)))
            ft = tt + datetime.timedelta(milliseconds=700)
            out.append(logs.cri(ft, filler_plain(logs, ft, h + 1)))
        paths.append(write(d / (name + ".log"), "".join(out)))
    return d, paths


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


@pytest.fixture(scope="module")
def fleet_jsonl(qw, fleet):
    """fleet_jsonl(threads, key) -> (Result, summary bytes) of a jsonl replay
    of the fleet, run once per key."""
    d, paths = fleet
    cache = {}

    def get(threads, key):
        if key not in cache:
            spath = str(d / ("summary-%s.json" % key))
            r = qw("replay", "--format", "jsonl", "--threads", threads, "--summary", spath, *paths)
            s = None
            if os.path.exists(spath):
                with open(spath, "rb") as f:
                    s = f.read()
            cache[key] = (r, s)
        return cache[key]
    return get


def test_determinism_threads_identical(qw, fleet, fleet_jsonl):
    """determinism: --threads 1 and --threads 4 give byte-identical stdout"""
    _, paths = fleet
    r1, s1 = fleet_jsonl(1, "t1")
    r4, s4 = fleet_jsonl(4, "t4")
    assert r1.rc == 0, "exit status with --threads 1 (%r)" % r1
    assert r4.rc == 0, "exit status with --threads 4 (%r)" % r4
    assert len(r1.out) > 0, "no events at all with --threads 1"
    assert r1.out == r4.out, "stdout differs between --threads 1 and --threads 4:\n%s\n---\n%s" % (
        r1.stdout[:1500], r4.stdout[:1500])
    assert s1 == s4, "summary differs between --threads 1 and --threads 4:\n%s\n---\n%s" % (s1, s4)
    t1 = qw("replay", "--threads", 1, *paths)
    t4 = qw("replay", "--threads", 4, *paths)
    assert t1.rc == 0 and t4.rc == 0, "text runs failed: %r %r" % (t1, t4)
    assert t1.out == t4.out, "text stdout differs between --threads 1 and 4:\n%s\n---\n%s" % (
        t1.stdout[-1500:], t4.stdout[-1500:])


def test_determinism_repeated_runs_identical(fleet_jsonl):
    """determinism: repeated runs (threads 1, 2, 4) give byte-identical output"""
    base_r, base_s = fleet_jsonl(1, "t1")
    bad = []
    for threads, key in REPEATED_RUNS:
        r, s = fleet_jsonl(threads, key)
        if r.rc != 0 or r.out != base_r.out or s != base_s:
            bad.append("--threads %d run %s: rc=%d, %d event lines (want %d), summary %s"
                       % (threads, key, r.rc, len(r.out.splitlines()),
                          len(base_r.out.splitlines()),
                          "same" if s == base_s else "differs: %s" % s))
    assert not bad, "%d of %d repeated runs differ from the first --threads 1 run:\n  %s" % (
        len(bad), len(REPEATED_RUNS), "\n  ".join(bad))


@pytest.mark.parametrize("key", SUMMARY_RUN_KEYS)
def test_determinism_summary_values(fleet_jsonl, key):
    """determinism: every run's summary matches the logs (not only the other runs)"""
    want = fleet_expected_summary()
    threads = int(key[1])
    r, s = fleet_jsonl(threads, key)
    assert s is not None, "run %s wrote no summary (%r)" % (key, r)
    nodes = json.loads(s.decode("utf-8"))
    for name in FLEET:
        n = node_of(nodes, name)
        got = {k: n.get(k) for k in want[name]}
        assert got == want[name], "summary of %s in run %s" % (name, key)


def test_determinism_jsonl_event_fields(fleet_jsonl):
    """determinism: --format jsonl lines are JSON events with the required fields"""
    r, _ = fleet_jsonl(1, "t1")
    events = parse_jsonl(r.stdout, "stdout")
    assert len(events) > 0, "no events"
    for e in events:
        for k in REQUIRED_EVENT_FIELDS:
            assert k in e, "event lacks %r: %r" % (k, e)
        assert re.fullmatch(r"[0-9a-f]{16}", str(e["id"])) is not None, "id: %r" % e
        assert EVENT_TIME_RE.match(str(e["time"])) is not None, "time: %r" % e
        assert e["severity"] in ("info", "warning", "critical"), "severity: %r" % e
        assert e["chain"] == "cometbft", "chain of %r" % e
    times = [e["time"] for e in events]
    assert times == sorted(times), "events are not in time order"
    stalled = [e for e in events if e["event"] == "node_stalled"]
    assert [(e["node"], e["time"], e.get("height"), e["severity"]) for e in stalled] == \
        [("val-c", "2025-01-02T03:04:00.500Z", 590, "warning")], "node_stalled events"
    rec = [e for e in events if e["event"] == "node_recovered"]
    assert [(e["node"], e["time"], e.get("height")) for e in rec] == \
        [("val-c", "2025-01-02T03:06:00.500Z", 680)], "node_recovered events"
    halts = [e for e in events if e["event"] == "chain_halted"]
    assert halts == [], "chain_halted events (two nodes never stopped)"
    ids = [e["id"] for e in events]
    assert len(set(ids)) == len(ids), "distinct event ids"


def test_determinism_events_file(qw, fleet, fleet_jsonl):
    """determinism: --events FILE writes the same JSON lines as --format jsonl"""
    d, paths = fleet
    base = fleet_jsonl(1, "t1")[0].out
    ev = str(d / "events.jsonl")
    r = qw("replay", "--threads", 1, "--events", ev, *paths)
    assert r.rc == 0, "exit status (%r)" % r
    with open(ev, "rb") as f:
        data = f.read()
    assert data == base, "--events FILE (text run) differs from --format jsonl stdout:\n%s" \
        "\n---\n%s" % (data[:1000], base[:1000])
    ev2 = str(d / "events2.jsonl")
    r2 = qw("replay", "--threads", 1, "--format", "jsonl", "--events", ev2, *paths)
    with open(ev2, "rb") as f:
        assert f.read() == r2.out, "--events FILE differs from stdout of the same run"


def test_determinism_text_table(qw, fleet):
    """determinism: text format prints a summary table with every node"""
    _, paths = fleet
    r = qw("replay", *paths)
    assert r.rc == 0, "exit status (%r)" % r
    for name in FLEET:
        rows = [ln for ln in r.stdout.splitlines() if ln.split()[:1] == [name]]
        assert len(rows) == 1, "summary table has %d rows for %s:\n%s" % (
            len(rows), name, r.stdout[-2000:])
        assert "cometbft" in rows[0], "row of %s lacks the chain: %r" % (name, rows[0])
    assert not r.stdout.lstrip().startswith("{"), "text output looks like JSON"


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

_MINI_LINES = MINI_PATTERN.splitlines(True)
# line numbers (1-based) in MINI_PATTERN
_RULE_NAME_LINE = next(i for i, ln in enumerate(_MINI_LINES) if "- name: committed" in ln) + 1
_REGEX_LINE = next(i for i, ln in enumerate(_MINI_LINES) if "regex: 'mini" in ln) + 1
_TEST_LINE = next(i for i, ln in enumerate(_MINI_LINES) if "- line: " in ln) + 1

BROKEN_PATTERNS = [
    # (name, text, the line the error names)
    ("unknown-key",
     "".join(_MINI_LINES[:_RULE_NAME_LINE] + ["    severity: high\n"] +
             _MINI_LINES[_RULE_NAME_LINE:]),
     _RULE_NAME_LINE + 1),
    ("bad-regex",
     MINI_PATTERN.replace("'mini committed block (?P<height>\\d+)'",
                          "'mini committed block (?P<height>\\d+'"),
     _REGEX_LINE),
    ("no-match",
     MINI_PATTERN.replace("mini committed block 42", "mini finalized block 42"),
     _TEST_LINE),
]


def test_patterns_builtin(qw):
    """patterns test: built-in patterns pass"""
    r = qw("patterns", "test")
    assert r.rc == 0, "exit status (%r)" % r
    assert "cometbft" in r.stdout, "output does not name the cometbft file: %r" % r.stdout
    assert "FAIL" not in r.stdout + r.stderr, "a FAIL line: %r" % r


def test_patterns_good_file(qw, tmp_path):
    """patterns test: a good pattern file passes"""
    p = write(tmp_path / "mini.yaml", MINI_PATTERN)
    r = qw("patterns", "test", p)
    assert r.rc == 0, "exit status for a good pattern file (%r)" % r


@pytest.mark.parametrize("name,text,line", BROKEN_PATTERNS, ids=[b[0] for b in BROKEN_PATTERNS])
def test_patterns_broken_file(qw, tmp_path, name, text, line):
    """patterns test: unknown key / bad regex / a test line that does not
    match -> exit 1, file:line"""
    p = write(tmp_path / (name + ".yaml"), text)
    r = qw("patterns", "test", p)
    assert r.rc == 1, "exit status (%r)" % r
    both = r.stdout + r.stderr
    assert "%s:%d" % (p, line) in both, "output does not name %s:%d: %r" % (p, line, both)


def test_patterns_export_re2(qw):
    """patterns export: re2 lines"""
    # One regex a line, named groups stripped, usable as rg -f: each
    # pattern file rule's test line is matched by its exported regex.
    r = qw("patterns", "export", "--chain", "cosmoshub")
    assert r.rc == 0, "exit status (%r)" % r
    regexes = r.stdout.splitlines()
    assert len(regexes) == 30, "exported regexes (rules in cometbft.yaml)"
    assert all("(?P<" not in x for x in regexes), "named groups left in the export"
    hit = [x for x in regexes if re.search(x, "I[2021-05-05|12:03:00.156] committed state "
                                              "module=state height=5 num_txs=0 app_hash=AB")]
    assert len(hit) >= 1, "no exported regex matches a commit line"


def test_patterns_export_mtail(qw):
    """patterns export: mtail program"""
    r = qw("patterns", "export", "--chain", "gaia", "--format", "mtail")
    assert r.rc == 0, "exit status (%r)" % r
    assert "counter quorumwatch_lines_matched" in r.stdout, "no line counter"
    assert r.stdout.count("\ncounter rule_") == 30, "one counter per rule"
    assert r.stdout.count("++\n}") == 31, "one action per rule plus the line counter"
    bad = qw("patterns", "export", "--chain", "no-such-chain")
    assert bad.rc == 1, "unknown chain exit status (%r)" % bad
    usage = qw("patterns", "export", "--chain", "gaia", "--format", "pcre")
    assert usage.rc == 2, "unknown format exit status (%r)" % usage


# --------------------------------------------------------------------------
# 8. Timestamps

# The files' modification times are far from the log times: they must not be used.
FAR_MTIME = datetime.datetime(2030, 6, 1, tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def raw_pair(qw, tmp_path_factory, logs):
    """Raw files, no runtime stamps: each line's time is its own I[...] stamp.
    ra commits every 6 s from 03:00:00 to 03:06:00 (heights 100..160).
    rb: its first line (an SDK console line, `3:00AM`, no date) has no full
    stamp and takes the first stamp of the file (03:00:06). Heights 100..110
    to 03:01:00, silent 3 minutes, then back at the head from 03:04:00.
    Replayed once: (Result, summary)."""
    d = tmp_path_factory.mktemp("timestamps")
    ra = "".join(logs.raw(commit_plain(logs, tt, h)) for h, tt in steady(100, 61))
    rb_lines = [logs.raw(commit_sdk(at(6), 100))]
    rb_lines += [logs.raw(commit_plain(logs, tt, h)) for h, tt in steady(101, 10, 6)]
    rb_lines += [logs.raw(commit_plain(logs, tt, h)) for h, tt in steady(140, 21, 240)]
    a = write(d / "ra.log", ra)
    b = write(d / "rb.log", "".join(rb_lines))
    os.utime(a, (FAR_MTIME, FAR_MTIME))
    os.utime(b, (FAR_MTIME, FAR_MTIME))
    spath = str(d / "summary.json")
    r = qw("replay", "--format", "jsonl", "--summary", spath, a, b)
    s = None
    if os.path.exists(spath):
        with open(spath) as f:
            s = json.load(f)
    return r, s


def test_timestamps_message_time(raw_pair):
    """timestamps: raw lines use the message's own I[...] time"""
    r, s = raw_pair
    assert r.rc == 0, "exit status (%r)" % r
    events = parse_jsonl(r.stdout, "stdout")
    stalled = [(e["node"], e["time"], e.get("height")) for e in events
               if e["event"] == "node_stalled"]
    assert stalled == [("rb", "2025-01-02T03:02:00.000Z", 110)], "node_stalled events"
    rec = [(e["node"], e["time"], e.get("height")) for e in events
           if e["event"] == "node_recovered"]
    assert len(rec) == 1 and rec[0][:2] == ("rb", "2025-01-02T03:04:00.000Z"), \
        "node_recovered events: %r" % rec
    for e in events:
        assert e["time"].startswith("2025-01-02T03:0"), "event outside the log's time: %r" % e
    n = node_of(s, "rb")
    assert n.get("longest_stall_seconds") == 180, "longest_stall_seconds of rb"


def test_timestamps_before_first_stamp(raw_pair, replay, tmp_path, logs):
    """timestamps: lines before the first stamp take it"""
    r, s = raw_pair
    n = node_of(s, "rb")
    assert n.get("first_height") == 100, "first_height of rb (its unstamped first line)"
    assert n.get("commits") == 32, "commits of rb"
    assert n.get("lines_read") == 32, "lines_read of rb"
    events = parse_jsonl(r.stdout, "stdout")
    early = [e for e in events if e["time"] < "2025-01-02T03:00:00.000Z"]
    assert early == [], "events before the first stamp"
    # A single file that starts with unstamped lines.
    c_lines = [logs.raw(commit_sdk(at(0), 7)), logs.raw("starting node, no stamp here")]
    c_lines += [logs.raw(commit_plain(logs, tt, h)) for h, tt in steady(8, 5, 6)]
    c_lines += [logs.raw(commit_plain(logs, tt, h)) for h, tt in steady(13, 5, 150)]
    c = write(tmp_path / "rc.log", "".join(c_lines))
    os.utime(c, (FAR_MTIME, FAR_MTIME))
    # rd ends at 03:03:48, before rc's next deadline (its last advance
    # 03:02:54 + 60 s): rc's file ending early is not judged here.
    d_ = write(tmp_path / "rd.log",
               "".join(logs.raw(commit_plain(logs, tt, h)) for h, tt in steady(7, 39)))
    os.utime(d_, (FAR_MTIME, FAR_MTIME))
    r2, s2 = replay([c, d_], "--format", "jsonl")
    assert r2.rc == 0, "exit status (%r)" % r2
    nc = node_of(s2, "rc")
    # 7 at 03:00:06 (first stamp), 8..12 at 03:00:06..03:00:30, 13 at 03:02:30.
    assert nc.get("longest_stall_seconds") == 120, "longest_stall_seconds of rc"
    ev2 = parse_jsonl(r2.stdout, "stdout")
    stalled = [(e["node"], e["time"], e.get("height")) for e in ev2
               if e["event"] == "node_stalled"]
    assert stalled == [("rc", "2025-01-02T03:01:30.000Z", 12)], "node_stalled events"


def test_timestamps_time_zones(replay, tmp_path, logs):
    """timestamps: the stream rule's, else the chain's timezone applies"""
    # Zone-less I[...] stamps written in local time UTC+2: 05:00:00 local
    # is 03:00:00Z. Heights 100..110 to 05:01:00, silent 3 minutes, back
    # at 05:04:00; the stall deadline is the last advance + 60 s.
    local = [logs.raw(commit_plain(logs, at(2 * 3600 + tt), h)) for h, tt in
             [(100 + i, 6 * i) for i in range(11)] + [(140 + i, 240 + 6 * i) for i in range(5)]]
    z = write(tmp_path / "rz.log", "".join(local))
    chain = "chains:\n  cosmoshub: {family: cometbft, timezone: \"+02:00\"}\n"
    cfg = write(tmp_path / "tz.yaml", chain)
    r, _ = replay([z], "--chain", "cosmoshub", "--config", cfg, "--format", "jsonl")
    assert r.rc == 0, "exit status (%r)" % r
    stalled = [(e["time"], e.get("height")) for e in parse_jsonl(r.stdout, "stdout")
               if e["event"] == "node_stalled"]
    assert stalled == [("2025-01-02T03:02:00.000Z", 110)], "node_stalled with the chain's +02:00"
    # A stream rule's timezone wins over the chain's.
    cfg2 = write(tmp_path / "tz2.yaml", chain +
                 "streams:\n  - {match: {}, chain: cosmoshub, timezone: \"+01:00\"}\n")
    r2, _ = replay([z], "--config", cfg2, "--format", "jsonl")
    assert r2.rc == 0, "exit status (%r)" % r2
    stalled2 = [(e["time"], e.get("height")) for e in parse_jsonl(r2.stdout, "stdout")
                if e["event"] == "node_stalled"]
    assert stalled2 == [("2025-01-02T04:02:00.000Z", 110)], "node_stalled with the rule's +01:00"


# --------------------------------------------------------------------------
# Progress of a replay (on a terminal only)


def run_with_tty_stderr(qw_bin, args, env_extra, timeout=120):
    """Runs quorumwatch with stderr on a pseudo-terminal and stdout on a
    pipe; returns (exit status, stdout bytes, terminal bytes)."""
    import pty
    import select
    master, slave = pty.openpty()
    env = dict(os.environ)
    env.update(env_extra)
    p = subprocess.Popen([qw_bin] + [str(a) for a in args], stdout=subprocess.PIPE,
                         stderr=slave, stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    term = b""
    out_chunks = []
    os.set_blocking(p.stdout.fileno(), False)
    open_fds = {master, p.stdout.fileno()}
    deadline = time_monotonic() + timeout
    while open_fds and time_monotonic() < deadline:
        ready, _, _ = select.select(list(open_fds), [], [], 1.0)
        for fd in ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the terminal's other side closed
                chunk = b""
            if not chunk:
                open_fds.discard(fd)
            elif fd == master:
                term += chunk
            else:
                out_chunks.append(chunk)
    rc = p.wait(timeout=max(1.0, deadline - time_monotonic()))
    os.close(master)
    p.stdout.close()
    return rc, b"".join(out_chunks), term


def time_monotonic():
    import time
    return time.monotonic()


def expected_size_text(paths):
    """The progress line's total, as an operator reads the files' sizes."""
    total = sum(os.path.getsize(p) for p in paths)
    assert 1e6 <= total < 1e9, "the fleet is expected to hold megabytes (%d bytes)" % total
    return "of %.1f MB" % (total / 1e6)


def test_progress_on_a_terminal(qw_bin, fleet, fleet_jsonl):
    """progress: a terminal on stderr shows bytes of the total and lines/s,
    then the line is cleared; stdout (jsonl) is byte for byte what it is
    without a terminal"""
    _, paths = fleet
    plain, _ = fleet_jsonl(1, "t1")
    rc, out, term = run_with_tty_stderr(
        qw_bin, ["replay", "--format", "jsonl", "--threads", 1] + paths,
        {"QUORUMWATCH_PROGRESS_AFTER_MS": "0"})
    assert rc == 0, "exit status %d; terminal: %r" % (rc, term[-500:])
    assert out == plain.out, "stdout differs when stderr is a terminal"
    text = term.decode("utf-8", "replace")
    assert "replay: " in text and expected_size_text(paths) in text and " lines/s" in text, (
        "no progress line on the terminal: %r" % text[-500:])
    assert text.endswith("\r\x1b[K"), "the progress line is not cleared at the end: %r" % text[-200:]


def test_progress_quiet_and_not_a_terminal(qw_bin, qw, fleet):
    """progress: --quiet turns it off; stderr that is not a terminal never
    gets it"""
    _, paths = fleet
    rc, out, term = run_with_tty_stderr(
        qw_bin, ["replay", "--quiet", "--format", "jsonl"] + paths,
        {"QUORUMWATCH_PROGRESS_AFTER_MS": "0"})
    assert rc == 0, "exit status %d" % rc
    assert b"replay: " not in term, "--quiet still shows progress: %r" % term[-300:]
    assert len(out) > 0
    env = dict(os.environ, QUORUMWATCH_PROGRESS_AFTER_MS="0")
    p = subprocess.run([qw_bin, "replay", "--format", "jsonl"] + paths, capture_output=True, env=env)
    assert p.returncode == 0
    assert b"replay: " not in p.stderr and b"\x1b[K" not in p.stderr, (
        "progress on a stderr that is not a terminal: %r" % p.stderr[-300:])
