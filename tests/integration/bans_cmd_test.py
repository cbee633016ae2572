"""Operator control of bans: `quorumwatch bans list|hold|release|unban` on the
state directory of a running `quorumwatch run` (suite 'integration').

Uses the live-tailing harness (harness.py: CRI files of a CometBFT chain, a
heartbeat node that keeps committing, polling waits with deadlines). Checks,
against the safety rails of README.md ("Ban controller") and
docs/DETECTION.md ("Bans"): a hold keeps a due ban held (rail
operator_hold) and a release decides it; an operator unban is an `unban`
decision with detail.operator; list shows bans, holds and decisions; bad
requests fail with status 1; a request made while no instance runs is queued
(status 3) and applied at the next start; a second instance on the same
state_dir is refused. One scenario on one process: its steps are the test
methods of TestBansCommand, run in order.

  python3 -m pytest -q -p no:cacheprovider tests/integration/bans_cmd_test.py --quorumwatch PATH
"""

import json
import types

import pytest

from harness import Failure, expect, node_key, unique_ids

CHAIN_EXTRA = ", ban_after: 2s, stable_after: 1s, auto_unban: false"


def bans(qw, p, *args, want=None):
    r = qw(*(["bans"] + list(args[:1]) + ["--state-dir", p.state] + list(args[1:])), timeout=60)
    if want is not None:
        assert r.rc == want, "exit status of bans %s (stdout %r, stderr %r)" % (
            " ".join(args), r.stdout, r.stderr)
    return r


def listing(qw, p):
    r = bans(qw, p, "list", "--format", "json", want=0)
    return json.loads(r.stdout)


def row(doc, pod):
    for n in doc["nodes"]:
        if n["node"] == node_key(pod):
            return n
    raise Failure("bans list has no %s: %r" % (pod, doc))


class TestBansCommand:
    @pytest.fixture(scope="class")
    def sc(self, class_scenario):
        s = class_scenario("ops", pods=("val-a", "val-b"), chain_extra=CHAIN_EXTRA)
        return types.SimpleNamespace(s=s, p=s.p, state={})

    def need(self, sc, step):
        expect(step in sc.state, "needs step %s of this scenario, which did not pass" % step)

    def test_1_hold_and_ban(self, qw, sc):
        """a hold is acknowledged; a stopped node is banned; list shows the
        ban, the hold and that an instance runs"""
        s, p = sc.s, sc.p
        s.start()
        sc.state["started"] = True
        p.wait_caught_up("val-b")
        r = bans(qw, p, "hold", "val-b", want=0)
        assert r.stdout.startswith("held:"), "hold output: %r" % r.stdout

        # val-a stops: stalled after 2 s, banned 2 s later (max_bans 1).
        s.cl.set_active("val-a", False)
        ban_a = p.wait_event("ban", "val-a", timeout=40)
        assert "held" not in ban_a["detail"], "val-a's ban was held: %r" % ban_a
        # The listing reads the checkpoint (written every 200 ms here).
        doc = p.wait(lambda: (lambda d: d if row(d, "val-a")["state"] == "banned" else None)(
            listing(qw, p)), "list: val-a banned")
        assert doc["running"], "list: running"
        assert doc["holds"] == ["val-b"], "list: holds"
        assert row(doc, "val-b")["hold"], "list: val-b hold flag"
        sc.state["ban_a"] = ban_a

    def test_2_hold_keeps_due_ban(self, sc):
        """a due ban of a held node is held back (rail operator_hold)"""
        self.need(sc, "ban_a")
        s, p = sc.s, sc.p
        # val-b stops: its ban is due, the operator hold keeps it back.
        s.cl.set_active("val-b", False)
        held = p.wait_event("ban", "val-b", timeout=40)
        assert held["detail"].get("held") == True, "val-b's ban is held"  # noqa: E712
        assert held["detail"].get("rail") == "operator_hold", "val-b's rail"
        sc.state["held"] = True

    def test_3_operator_unban(self, qw, sc):
        """an operator unban is an `unban` decision with detail.operator; bad
        unbans fail with status 1"""
        self.need(sc, "ban_a")
        s, p = sc.s, sc.p
        # val-a comes back; auto_unban is off: the operator unbans it.
        s.cl.set_active("val-a", True)
        p.wait_event("back_in_consensus", "val-a", timeout=40)
        r = bans(qw, p, "unban", "val-a", want=0)
        assert r.stdout.startswith("unbanned:"), "unban output: %r" % r.stdout
        unban = p.wait_event("unban", "val-a")
        assert unban["detail"].get("operator") == True, "unban detail.operator"  # noqa: E712
        assert unban["detail"].get("since") == sc.state["ban_a"]["detail"]["since"], \
            "unban detail.since"
        bans(qw, p, "unban", "val-a", want=1)       # not banned any more
        bans(qw, p, "unban", "no-such-pod", want=1)
        sc.state["unbanned"] = True

    def test_4_release_decides_held_ban(self, qw, sc):
        """a release decides the held ban; releasing again fails with status 1"""
        self.need(sc, "held")
        self.need(sc, "unbanned")
        p = sc.p
        # Releasing val-b decides its ban now (val-a no longer counts).
        r = bans(qw, p, "release", "val-b", want=0)
        assert r.stdout.startswith("released:"), "release output: %r" % r.stdout
        p.wait(lambda: [e for e in p.find("ban", "val-b") if "held" not in e["detail"]],
               "val-b banned after the release")
        bans(qw, p, "release", "val-b", want=1)     # not held any more
        p.wait(lambda: row(listing(qw, p), "val-b")["state"] == "banned", "list: val-b banned")
        unique_ids(p.events())

    def test_5_second_instance_refused(self, qw, sc):
        """a second instance on the same state directory is refused"""
        self.need(sc, "started")
        p = sc.p
        r = qw("run", "-c", p.cfg, timeout=60)
        assert r.rc == 1, "second instance exit status"
        assert "another quorumwatch instance" in r.stderr, "second instance: %r" % r.stderr

    def test_6_request_queued_while_stopped(self, qw, sc):
        """while stopped, a request is queued (status 3) and applied at the next start"""
        self.need(sc, "started")
        p = sc.p
        p.stop()
        r = bans(qw, p, "hold", "val-a", want=3)
        assert r.stdout.startswith("queued:"), "queued output: %r" % r.stdout
        text = bans(qw, p, "list", want=0).stdout
        assert "request waiting: hold val-a" in text, "list shows the waiting request: %r" % text
        p.start()
        p.wait(lambda: "val-a" in ((p.checkpoint() or {}).get("detector", {}).get("holds", [])),
               "the queued hold applied after the restart")
        doc = listing(qw, p)
        assert row(doc, "val-a")["hold"], "list: val-a held after restart"
        assert doc["pending_requests"] == [], "list: no request waiting"
