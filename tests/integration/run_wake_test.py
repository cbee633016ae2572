"""`quorumwatch run` with several sources, and signals (suite 'integration').

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

  python3 -m pytest -q -p no:cacheprovider tests/integration/run_wake_test.py --quorumwatch PATH
"""
import datetime
import json
import os
import re
import signal

from harness import UTC, WRONG_APP_HASH, checkpoint_streams, read_checkpoint, read_events

DEADLINE = 30.0


def commit(logs, h):
    t = datetime.datetime.now(UTC)
    return logs.cri(t, logs.commit_msg(t, h))


def failure(logs):
    t = datetime.datetime.now(UTC)
    return logs.cri(t, logs.failure_msg(t, WRONG_APP_HASH))


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
    cp = read_checkpoint(os.path.join(run.root, "state"))
    return cp is not None and len(checkpoint_streams(cp)) == n


def start(qw_process, tmp_path, sub, dirs, poll, events=None):
    root = str(tmp_path / sub)
    run = qw_process(sub, config(root, dirs, poll, events), deadline=DEADLINE)
    run.start()
    return run


def test_second_source_woken_at_once(qw_process, tmp_path, logs):
    """two sources: the second source's appends are read at once"""
    root = tmp_path / "two"
    a, b = str(root / "a"), str(root / "b")
    os.makedirs(a)
    os.makedirs(b)
    with open(os.path.join(a, name("val-a")), "w") as f:
        f.write(commit(logs, 100))
    with open(os.path.join(b, name("val-b")), "w") as f:
        f.write(commit(logs, 100))
    run = start(qw_process, tmp_path, "two", [a, b], "1h")
    try:
        run.wait(lambda: streams_known(run, 2), "the checkpoint lists both files")
        with open(os.path.join(b, name("val-b")), "a") as f:
            f.write(commit(logs, 101) + failure(logs))
        evpath = str(root / "events.jsonl")
        run.wait(lambda: any(e["event"] == "consensus_failure" and e["node"] == "val-b"
                             for e in read_events(evpath)),
                 "consensus_failure of val-b, whose file is in the second source")
    finally:
        run.stop()


def test_twenty_sighup_reloads(qw_process, tmp_path, logs):
    """20 SIGHUP reloads: still reading, events and checkpoint intact"""
    root = tmp_path / "reloads"
    logdir = str(root / "logs")
    os.makedirs(logdir)
    path = os.path.join(logdir, name("val-a"))
    h = 100
    with open(path, "w") as f:
        f.write(commit(logs, h))
    run = start(qw_process, tmp_path, "reloads", [logdir], "100ms")
    evpath = str(root / "events.jsonl")
    run.wait(lambda: streams_known(run, 1), "the checkpoint lists the file")
    # An event decided before the reloads: the stop message's count
    # must still hold it afterwards.
    with open(path, "a") as f:
        f.write(failure(logs))
    run.wait(lambda: any(e["event"] == "consensus_failure" for e in read_events(evpath)),
             "a consensus_failure before the reloads")
    with open(path, "a") as f:
        f.write(commit(logs, h))
    for i in range(20):
        h += 1
        with open(path, "a") as f:
            f.write(commit(logs, h))
        run.p.send_signal(signal.SIGHUP)
        run.wait(lambda: run.stderr().count("reloading") >= i + 1, "reload %d is logged" % (i + 1))
    assert run.p.poll() is None, "the instance exited; stderr:\n%s" % run.stderr()[-600:]
    h += 1
    with open(path, "a") as f:
        f.write(commit(logs, h) + failure(logs))
    run.wait(lambda: sum(e["event"] == "consensus_failure" for e in read_events(evpath)) >= 2,
             "a consensus_failure after the reloads")
    run.stop()
    # The count covers the whole process, reloads and all.
    decided = re.findall(r"stopped: (\d+) event\(s\) decided", run.stderr())
    assert decided == [str(len(read_events(evpath)))], \
        "stop message counts %r, the events file holds %d" % (decided, len(read_events(evpath)))
    with open(evpath, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                json.loads(raw)
            except ValueError:
                raise AssertionError("events line %d is not JSON: %r" % (n, raw[:120]))
    cp = read_checkpoint(str(root / "state"))
    assert cp is not None, "the checkpoint is not JSON after the reloads"
    offsets = [s["offset"] for s in checkpoint_streams(cp)]
    assert offsets == [os.path.getsize(path)], "checkpoint offsets %r, file size %d" % (
        offsets, os.path.getsize(path))


def test_events_on_full_device(qw_process, tmp_path, logs):
    """events on a full device: reported, not checkpointed, written after a restart"""
    root = tmp_path / "full"
    logdir = str(root / "logs")
    os.makedirs(logdir)
    path = os.path.join(logdir, name("val-a"))
    with open(path, "w") as f:
        f.write(commit(logs, 100) + commit(logs, 101) + failure(logs))
    run = start(qw_process, tmp_path, "full", [logdir], "100ms", events="/dev/full")
    run.wait(lambda: "/dev/full" in run.stderr() and "fail" in run.stderr(),
             "a failed write of /dev/full on stderr")
    run.stop()
    assert "write(s) of the events failed" in run.stderr(), \
        "the stop line says events were not written; stderr:\n%s" % run.stderr()[-600:]
    # A checkpoint may be there, but it may not imply the lost event:
    # the event is among its pending events, or its position is before
    # the failure line.
    cp = read_checkpoint(str(root / "state"))
    if cp is not None:
        pending = [e for e in cp.get("pending_events", []) if e.get("event") == "consensus_failure"]
        offsets = [st["offset"] for st in cp.get("streams", [])]
        assert pending or all(o < os.path.getsize(path) for o in offsets), \
            "the checkpoint implies the unwritten consensus_failure: offsets %r, pending %r" % (
                offsets, cp.get("pending_events"))
    # Room again: the same state directory, a writable events file.
    evpath = str(root / "events.jsonl")
    run.write_config_text(config(str(root), [logdir], "100ms", events=evpath))
    run.start()
    try:
        run.wait(lambda: any(e["event"] == "consensus_failure" and e["node"] == "val-a"
                             for e in read_events(evpath)),
                 "the consensus_failure lost on the full device is written after the restart")
    finally:
        run.stop()
