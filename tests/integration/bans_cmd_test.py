#!/usr/bin/env python3
"""Operator control of bans: `quorumwatch bans list|hold|release|unban` on the
state directory of a running `quorumwatch run` (suite 'integration').

Usage: python3 tests/integration/bans_cmd_test.py PATH/TO/quorumwatch

Uses the live-tailing harness of run_test.py (CRI files of a CometBFT chain, a
heartbeat node that keeps committing, polling waits with deadlines). Checks,
against the safety rails of README.md ("Ban controller") and
docs/DETECTION.md ("Bans"): a hold keeps a due ban held (rail
operator_hold) and a release decides it; an operator unban is an `unban`
decision with detail.operator; list shows bans, holds and decisions; bad
requests fail with status 1; a request made while no instance runs is queued
(status 3) and applied at the next start; a second instance on the same
state_dir is refused.
"""

import json
import os
import subprocess
import sys
import tempfile
import shutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_test as rt  # noqa: E402
from run_test import Failure, expect, expect_eq  # noqa: E402

CHAIN_EXTRA = ", ban_after: 2s, stable_after: 1s, auto_unban: false"


def bans(p, *args, want=None):
    r = subprocess.run([rt.BIN, "bans"] + list(args[:1]) + ["--state-dir", p.state] +
                       list(args[1:]), capture_output=True, text=True, timeout=60)
    if want is not None:
        expect_eq(r.returncode, want, "exit status of bans %s (stdout %r, stderr %r)"
                  % (" ".join(args), r.stdout, r.stderr))
    return r


def listing(p):
    r = bans(p, "list", "--format", "json", want=0)
    return json.loads(r.stdout)


def row(doc, pod):
    for n in doc["nodes"]:
        if n["node"] == rt.node_key(pod):
            return n
    raise Failure("bans list has no %s: %r" % (pod, doc))


def check_hold_unban_release():
    s = rt.Scenario("ops", pods=("val-a", "val-b"), chain_extra=CHAIN_EXTRA)
    p = s.p
    try:
        s.start()
        p.wait_caught_up("val-b")
        r = bans(p, "hold", "val-b", want=0)
        expect(r.stdout.startswith("held:"), "hold output: %r" % r.stdout)

        # val-a stops: stalled after 2 s, banned 2 s later (max_bans 1).
        s.cl.set_active("val-a", False)
        ban_a = p.wait_event("ban", "val-a", timeout=40)
        expect("held" not in ban_a["detail"], "val-a's ban was held: %r" % ban_a)
        # The listing reads the checkpoint (written every 200 ms here).
        doc = p.wait(lambda: (lambda d: d if row(d, "val-a")["state"] == "banned" else None)(
            listing(p)), "list: val-a banned")
        expect(doc["running"], "list: running")
        expect_eq(doc["holds"], ["val-b"], "list: holds")
        expect(row(doc, "val-b")["hold"], "list: val-b hold flag")

        # val-b stops: its ban is due, the operator hold keeps it back.
        s.cl.set_active("val-b", False)
        held = p.wait_event("ban", "val-b", timeout=40)
        expect_eq(held["detail"].get("held"), True, "val-b's ban is held")
        expect_eq(held["detail"].get("rail"), "operator_hold", "val-b's rail")

        # val-a comes back; auto_unban is off: the operator unbans it.
        s.cl.set_active("val-a", True)
        p.wait_event("back_in_consensus", "val-a", timeout=40)
        r = bans(p, "unban", "val-a", want=0)
        expect(r.stdout.startswith("unbanned:"), "unban output: %r" % r.stdout)
        unban = p.wait_event("unban", "val-a")
        expect_eq(unban["detail"].get("operator"), True, "unban detail.operator")
        expect_eq(unban["detail"].get("since"), ban_a["detail"]["since"], "unban detail.since")
        bans(p, "unban", "val-a", want=1)       # not banned any more
        bans(p, "unban", "no-such-pod", want=1)

        # Releasing val-b decides its ban now (val-a no longer counts).
        r = bans(p, "release", "val-b", want=0)
        expect(r.stdout.startswith("released:"), "release output: %r" % r.stdout)
        p.wait(lambda: [e for e in p.find("ban", "val-b") if "held" not in e["detail"]],
               "val-b banned after the release")
        bans(p, "release", "val-b", want=1)     # not held any more
        p.wait(lambda: row(listing(p), "val-b")["state"] == "banned", "list: val-b banned")
        rt.unique_ids(p.events())

        # A second instance on the same state directory is refused.
        r = subprocess.run([rt.BIN, "run", "-c", p.cfg], capture_output=True, text=True,
                           timeout=60)
        expect_eq(r.returncode, 1, "second instance exit status")
        expect("another quorumwatch instance" in r.stderr, "second instance: %r" % r.stderr)

        # While stopped, a request is queued (3) and applied at the next start.
        p.stop()
        r = bans(p, "hold", "val-a", want=3)
        expect(r.stdout.startswith("queued:"), "queued output: %r" % r.stdout)
        text = bans(p, "list", want=0).stdout
        expect("request waiting: hold val-a" in text, "list shows the waiting request: %r" % text)
        p.start()
        p.wait(lambda: "val-a" in ((p.checkpoint() or {}).get("detector", {}).get("holds", [])),
               "the queued hold applied after the restart")
        doc = listing(p)
        expect(row(doc, "val-a")["hold"], "list: val-a held after restart")
        expect_eq(doc["pending_requests"], [], "list: no request waiting")
    finally:
        s.close()


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    rt.BIN = os.path.abspath(sys.argv[1])
    rt.TMP = tempfile.mkdtemp(prefix="qw-bans-")
    runner = rt.Runner()
    try:
        runner.check("bans hold, unban, release, list, queued requests, one instance",
                     check_hold_unban_release)
    finally:
        shutil.rmtree(rt.TMP, ignore_errors=True)
    print("%d passed, %d failed" % (runner.passed, runner.failed))
    return 1 if runner.failed else 0


if __name__ == "__main__":
    sys.exit(main())
