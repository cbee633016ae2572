"""Faults of the disk, of the state files and of the input, on the real
binary: a full or read-only state_dir, damaged checkpoints, thousands of
files under a low `ulimit -n`, a truncated .zst, a malformed glob and file
names that are not one printable line.

What each test expects comes from the documented behaviour (README
"quorumwatch run", docs/PIPELINE.md), and the events of a live run are
compared with what `replay` says about the same files — never with the
program's own earlier output. Waits are event-driven with generous
deadlines. The state_dir tests mount a small tmpfs and need root (CI runs
as root); elsewhere they are skipped with the reason.
"""

import glob
import json
import os
import re
import resource
import shutil
import subprocess

import pytest

import harness
from harness import expect, expect_eq

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXAMPLE = os.path.join(ROOT, "examples", "cosmoshub")
EXAMPLE_LOGS = sorted(glob.glob(os.path.join(EXAMPLE, "*.log")))


def example_chains():
    """The `chains:` and `nodes:` sections of the example's configuration."""
    with open(os.path.join(EXAMPLE, "quorumwatch.yaml"), encoding="utf-8") as f:
        text = f.read()
    return text[re.search(r"^chains:", text, re.M).start():]


def replay_ids(qw, files):
    """The event ids `replay` decides for these files (the reference)."""
    r = qw("replay", "--format", "jsonl", "-c", os.path.join(EXAMPLE, "quorumwatch.yaml"), *files)
    expect_eq(r.rc, 0, "replay exit status (%r)" % r)
    ids = [json.loads(line)["id"] for line in r.stdout.splitlines() if line.strip()]
    expect(ids, "the example decides events (else these tests prove nothing)")
    return set(ids)


def live_config(root, logs, state_dir, extra=""):
    return f"""sources:
  - type: file
    include: ["{logs}/*.log"]
    read_from: beginning
    poll_interval: 100ms
state_dir: {state_dir}
checkpoint_interval: 200ms
sinks:
  - {{type: jsonl, path: {root}/events.jsonl}}
{extra}{example_chains()}"""


def copy_logs(dst):
    os.makedirs(dst, exist_ok=True)
    for f in EXAMPLE_LOGS:
        shutil.copy(f, dst)
    return sorted(glob.glob(os.path.join(dst, "*.log")))


def event_ids(root):
    return {e["id"] for e in harness.read_events(os.path.join(root, "events.jsonl"))}


def metric(port, name):
    status, body = harness.http_get("http://127.0.0.1:%d/metrics" % port)
    expect_eq(status, 200, "/metrics status")
    m = re.search(r"^%s (\S+)$" % re.escape(name), body, re.M)
    return float(m.group(1)) if m else None


# --------------------------------------------------------------------------
# Checkpoint generations


def _run_until_checkpointed(qw, qw_process, name, tmp_path):
    root = str(tmp_path / name)
    files = copy_logs(os.path.join(root, "logs"))
    want = replay_ids(qw, files)
    state = os.path.join(root, "state")
    p = qw_process(name, live_config(root, os.path.join(root, "logs"), state))
    p.start()
    p.wait(lambda: event_ids(root) == want, "every event replay decides, written")
    # Two generations: the newest and the one it replaced.
    p.wait(lambda: os.path.exists(os.path.join(state, "checkpoint.json.prev")), "checkpoint.json.prev")
    p.stop()
    return p, root, state, want


def test_damaged_checkpoint_resumes_from_the_previous_one(qw, qw_process, tmp_path):
    p, root, state, want = _run_until_checkpointed(qw, qw_process, "prev", tmp_path)
    cp = os.path.join(state, "checkpoint.json")
    with open(cp, "rb") as f:
        data = f.read()
    with open(cp, "wb") as f:
        f.write(data[: len(data) // 2])  # torn by a disk fault
    p.start()
    p.wait(lambda: "resuming from the previous checkpoint" in p.current_stderr(),
           "the damaged checkpoint reported and the previous one used")
    expect("checkpoint.json" in p.current_stderr(), "the message names the damaged file")
    # It runs on from there: a checkpoint is written again and events are
    # those of replay (lines read again give the same ids).
    p.wait(lambda: harness.read_checkpoint(state) is not None, "a whole checkpoint again")
    p.stop()
    expect_eq(event_ids(root), want, "event ids after the restart")


def test_both_checkpoints_damaged_refuses_to_start(qw, qw_process, tmp_path):
    p, root, state, _ = _run_until_checkpointed(qw, qw_process, "both", tmp_path)
    for name in ("checkpoint.json", "checkpoint.json.prev"):
        with open(os.path.join(state, name), "w") as f:
            f.write('{"version": 2, "streams": [')
    before = open(os.path.join(state, "checkpoint.json")).read()
    p.start()
    rc = p.p.wait(p.deadline)
    expect_eq(rc, 1, "exit status with both checkpoints damaged")
    err = p.current_stderr()
    expect("refusing to start without a checkpoint" in err, "the refusal says why: %r" % err[-500:])
    expect("checkpoint.json.prev" in err and "aside" in err, "it names both files and the way out")
    expect_eq(open(os.path.join(state, "checkpoint.json")).read(), before,
              "the damaged checkpoint is left as it was")


# --------------------------------------------------------------------------
# A full or read-only state_dir (a tmpfs of its own)


@pytest.fixture
def small_tmpfs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % r.stderr.strip())
    yield str(mnt)
    subprocess.run(["umount", "-l", str(mnt)])


def _fill(path):
    """Fills the file system of `path` (a filler file), returns its name."""
    filler = os.path.join(path, "filler")
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_state_dir_full_is_reported_throttled_and_recovers(qw, qw_process, tmp_path, small_tmpfs):
    root = str(tmp_path / "full")
    files = copy_logs(os.path.join(root, "logs"))
    want = replay_ids(qw, files)
    state = os.path.join(small_tmpfs, "state")
    os.makedirs(state)
    filler = _fill(small_tmpfs)
    port = harness.free_port()
    p = qw_process("full", live_config(root, os.path.join(root, "logs"), state,
                                       extra="  - {type: metrics, listen: \"127.0.0.1:%d\"}\n" % port))
    p.start()
    # Reading and detection go on: every event is written (the events file
    # is elsewhere).
    p.wait(lambda: event_ids(root) == want, "the events, while no checkpoint can be written")
    # Reported on /metrics and in /healthz (still 200: a restart would not
    # free the disk)...
    p.wait(lambda: (metric(port, "quorumwatch_checkpoint_write_errors") or 0) >= 5,
           "five failed checkpoint writes counted", retry=True)
    expect_eq(metric(port, "quorumwatch_checkpoint_failing"), 1.0, "quorumwatch_checkpoint_failing")
    status, body = harness.http_get("http://127.0.0.1:%d/healthz" % port)
    expect_eq(status, 200, "/healthz status while checkpoints fail")
    expect("degraded: checkpoints fail" in body and "No space left on device" in body,
           "/healthz says why: %r" % body)
    # ... and on stderr once, not once per attempt (at most once a minute).
    failed = [l for l in p.err_lines if "checkpoint.json: write failed" in l]
    expect_eq(len(failed), 1, "stderr reports of the failing checkpoint (%r)" % failed)
    expect("No space left on device" in failed[0], "the reason: %r" % failed[0])
    expect(not os.path.exists(os.path.join(state, "checkpoint.json")), "no checkpoint was written")
    # Space returns: it recovers by itself.
    os.unlink(filler)
    p.wait(lambda: any("recovered" in l and "checkpoint.json" in l for l in p.err_lines),
           "a line when checkpoints succeed again")
    p.wait(lambda: metric(port, "quorumwatch_checkpoint_failing") == 0.0, "failing back to 0",
           retry=True)
    p.wait(lambda: harness.read_checkpoint(state) is not None, "checkpoint.json written")
    status, body = harness.http_get("http://127.0.0.1:%d/healthz" % port)
    expect_eq((status, body), (200, "ok\n"), "/healthz once recovered")
    p.stop()


def test_read_only_state_dir_is_reported_and_recovers(qw, qw_process, tmp_path, small_tmpfs):
    root = str(tmp_path / "ro")
    files = copy_logs(os.path.join(root, "logs"))
    want = replay_ids(qw, files)
    state = os.path.join(small_tmpfs, "state")
    port = harness.free_port()
    p = qw_process("ro", live_config(root, os.path.join(root, "logs"), state,
                                     extra="  - {type: metrics, listen: \"127.0.0.1:%d\"}\n" % port))
    p.start()
    p.wait(lambda: event_ids(root) == want, "the events")
    p.wait(lambda: harness.read_checkpoint(state) is not None, "a first checkpoint")
    # A read-only bind mount over the state folder: what the process opens
    # there from now on is refused with EROFS (its lock stays held).
    subprocess.run(["mount", "--bind", state, state], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", state], check=True)
    try:
        p.wait(lambda: metric(port, "quorumwatch_checkpoint_failing") == 1.0,
               "checkpoints failing on a read-only state_dir", retry=True)
        p.wait(lambda: any("write failed" in l and "Read-only file system" in l for l in p.err_lines),
               "the reason on stderr")
        # Reading goes on: a log that appears meanwhile (another node) is
        # read, and its node shows on /metrics with a height.
        shutil.copy(files[0], os.path.join(root, "logs", "extra-0_cosmos_gaiad-" + "e" * 64 + ".log"))

        def extra_height():
            _, body = harness.http_get("http://127.0.0.1:%d/metrics" % port)
            return re.search(r'^quorumwatch_node_height\{[^}]*node="extra-0"[^}]*\} [1-9]', body, re.M)
        p.wait(extra_height, "the new file read while the state is read-only", retry=True)
    finally:
        subprocess.run(["umount", state], check=True)
    p.wait(lambda: metric(port, "quorumwatch_checkpoint_failing") == 0.0, "recovered", retry=True)
    p.stop()


def test_events_file_on_a_full_disk_loses_nothing_and_the_stop_says_so(qw, qw_process, tmp_path,
                                                                      small_tmpfs):
    root = str(tmp_path / "events-full")
    files = copy_logs(os.path.join(root, "logs"))
    want = replay_ids(qw, files)
    events = os.path.join(small_tmpfs, "events.jsonl")
    filler = _fill(small_tmpfs)
    cfg = live_config(root, os.path.join(root, "logs"), os.path.join(root, "state"))
    cfg = cfg.replace("{type: jsonl, path: %s/events.jsonl}" % root,
                      "{type: jsonl, path: %s}" % events)
    p = qw_process("events-full", cfg)
    p.start()
    # The first failed write is reported at once, with the reason.
    p.wait(lambda: any("events.jsonl: write failed" in l and "No space left on device" in l
                       for l in p.err_lines), "the failed write reported")
    expect(not harness.read_events(events), "nothing reached the full disk")
    # Space returns: every event is written, none lost while it failed.
    os.unlink(filler)
    p.wait(lambda: {e["id"] for e in harness.read_events(events)} == want,
           "every event replay decides, written once space returned")
    p.wait(lambda: any("events.jsonl: recovered" in l for l in p.err_lines), "recovery reported")
    p.stop()


def test_events_unwritten_at_stop_are_counted_in_the_stop_message(qw, qw_process, tmp_path,
                                                                   small_tmpfs):
    root = str(tmp_path / "events-stop")
    copy_logs(os.path.join(root, "logs"))
    events = os.path.join(small_tmpfs, "events.jsonl")
    _fill(small_tmpfs)
    cfg = live_config(root, os.path.join(root, "logs"), os.path.join(root, "state"))
    cfg = cfg.replace("{type: jsonl, path: %s/events.jsonl}" % root,
                      "{type: jsonl, path: %s}" % events)
    p = qw_process("events-stop", cfg)
    p.start()
    p.wait(lambda: any("events.jsonl: write failed" in l for l in p.err_lines),
           "the failed write reported")
    p.stop()
    stop = [l for l in p.err_lines if "stopped:" in l]
    expect_eq(len(stop), 1, "one stop message (%r)" % p.err_lines[-3:])
    expect("write(s) of the events failed" in stop[0] and "decides them again" in stop[0],
           "the stop message tells that events were not written: %r" % stop[0])


# --------------------------------------------------------------------------
# Input faults


def test_replay_of_3000_files_under_ulimit_256_says_what_it_says_with_a_high_limit(qw, tmp_path):
    # 3,000 small files cut from the example (50 lines each, names that
    # keep them distinct nodes).
    with open(EXAMPLE_LOGS[-1], "rb") as f:
        lines = f.read().splitlines(keepends=True)
    d = tmp_path / "many"
    d.mkdir()
    for i in range(3000):
        with open(d / ("n%04d_ns_app-%064x.log" % (i, i)), "wb") as f:
            f.writelines(lines[i % 200: i % 200 + 50])
    files = sorted(str(p) for p in d.iterdir())
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    high_limit = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)

    def run(limit):
        def lower():
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        cp = subprocess.run([qw.binary, "replay", "--format", "jsonl"] + files,
                            stdin=subprocess.DEVNULL, capture_output=True, preexec_fn=lower,
                            timeout=900)
        return cp

    high = run(high_limit)
    expect_eq(high.returncode, 0, "exit status with a high limit (%r)" % high.stderr[-300:])
    low = run(256)
    expect_eq(low.returncode, 0, "exit status under ulimit -n 256 (%r)" % low.stderr[-300:])
    expect(b"Too many open files" not in low.stderr, "no descriptor runs out")
    expect(high.stdout.count(b"\n") > 0, "the files decide events")
    expect(low.stdout == high.stdout, "the same events under ulimit -n 256 as with a high limit")


def test_truncated_zst_is_reported(qw, tmp_path):
    if shutil.which("zstd") is None:
        pytest.skip("zstd (the command) is not installed")
    src = EXAMPLE_LOGS[0]
    z = tmp_path / "cut.log.zst"
    subprocess.run(["zstd", "-q", "-f", src, "-o", str(tmp_path / "whole.log.zst")], check=True)
    data = (tmp_path / "whole.log.zst").read_bytes()
    z.write_bytes(data[: len(data) // 2])
    r = qw("replay", "--format", "jsonl", str(z))
    expect_eq(r.rc, 1, "exit status of a truncated .zst (%r)" % r)
    expect("cut.log.zst: read error: truncated zstd stream" in r.stderr, "the message: %r" % r.stderr)


def test_malformed_glob_is_refused_with_file_and_line(qw, tmp_path):
    cfg = tmp_path / "q.yaml"
    cfg.write_text('sources:\n  - type: file\n    include: ["/var/log/*.log"]\n'
                   '    exclude: ["["]\nstate_dir: %s\n' % (tmp_path / "state"))
    r = qw("run", "-c", str(cfg), timeout=60)
    expect(r.rc != 0, "a malformed glob is refused at start (%r)" % r)
    expect("q.yaml:4: bad glob '[' in 'exclude'" in r.stderr, "file:line and reason: %r" % r.stderr)


def test_file_names_that_are_not_one_printable_line_stay_on_one_line(qw, tmp_path):
    name = os.fsencode(str(tmp_path)) + b"/a\nb\xe9.log"
    with open(name, "wb") as f:
        f.write(b"nothing any family knows\n")
    cp = subprocess.run([qw.binary, "replay", "--format", "jsonl", name],
                        stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    expect_eq(cp.returncode, 0, "exit status")
    lines = cp.stderr.split(b"\n")[:-1]
    expect(lines, "a message about the file")
    for line in lines:
        expect(line.startswith(b"quorumwatch: "), "every stderr line is a whole message: %r" % line)
        line.decode("utf-8")  # raises on bytes that are not UTF-8
    expect(any(b"a\\nb\\xe9.log" in l for l in lines), "the name shown escaped: %r" % lines)
