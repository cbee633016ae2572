"""The Alertmanager sink against real Alertmanagers (suite 'integration').

Starts two of Debian's `prometheus-alertmanager` (0.25) on 127.0.0.1 (the
`alertmanager` fixture: free ports, no cluster gossip, a route to a receiver
that notifies nobody) and `quorumwatch run` over a temporary folder of
Kubernetes-named CRI logs with CometBFT "committed state" lines, with an
alertmanager sink listing both (resend_interval 2s, a static region label).
A heartbeat node commits throughout; node val-a stops and starts again. What
quorumwatch sent is read back through Alertmanager's API v2 (GET
/api/v2/alerts, which lists the alerts whose endsAt has not passed) and its
own counters on /metrics (alertmanager_alerts_received_total{status=
"resolved"} counts resolves received, alertmanager_alerts_invalid_total
alerts refused):

  - the Watchdog fires on both Alertmanagers from the start;
  - a stalled node: NodeStalled and NodeOutOfConsensus on both, with the
    labels (chain, node, namespace, severity, region), annotations and
    startsAt of the node_stalled / out_of_consensus events;
  - firing alerts are re-sent every resend_interval (updatedAt and endsAt
    move forward);
  - recovery resolves the alerts at once: they leave the list before their
    endsAt, and the resolved counter grows;
  - a restart (SIGTERM, start again) resolves nothing at shutdown and
    re-sends what still fires; an alert that ended while quorumwatch was down
    is resolved after the restart (state_dir/alertmanager.json).

One scenario: the checks are the test methods of TestAlertmanagerSink, run
in order on the same Alertmanagers and quorumwatch. Synchronisation is never
a sleep: every wait polls the Alertmanagers, the events file, the checkpoint
or the captured stderr until a condition holds or a generous deadline
passes. Every child process is killed at the end, also on failure. Without
prometheus-alertmanager the test fails (tools/setup and CI install it).

  python3 -m pytest -q -p no:cacheprovider tests/integration/alertmanager_test.py --quorumwatch PATH
"""

import datetime
import os
import re
import types

import pytest

from harness import (CHAIN, HB, MS, NS, SECOND, UTC, Cluster, ClusterProc, Failure, expect,
                     now_ns, ns_of, wait_for)

POD = "val-a"
RESEND_S = 2  # resend_interval of the sink
DEADLINE = 30.0  # generous: the machine has two busy cores
GENERATOR = "http://quorumwatch.test/status"

TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def parse_time(s):
    """RFC 3339 (any fraction, Z or offset) -> nanoseconds, microsecond precision
    (Alertmanager's times; harness.parse_event_time reads only quorumwatch's)."""
    m = TIME_RE.match(s or "")
    if not m:
        raise Failure("not an RFC 3339 time: %r" % (s,))
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    frac = (m.group(2) or ".")[1:]
    t += datetime.timedelta(microseconds=int((frac + "000000")[:6]))
    if m.group(3) != "Z":
        sign = 1 if m.group(3)[0] == "+" else -1
        hh, mm = int(m.group(3)[1:3]), int(m.group(3)[4:6])
        t -= sign * datetime.timedelta(hours=hh, minutes=mm)
    return ns_of(t)


# --------------------------------------------------------------------------
# quorumwatch: harness.ClusterProc with the alertmanager sink


def sink_text(urls):
    url_list = ", ".join('"%s"' % u for u in urls)
    return f'''  - type: alertmanager
    urls: [{url_list}]
    resend_interval: {RESEND_S}s
    timeout: 5s
    labels: {{region: eu-1}}
    generator_url: "{GENERATOR}"
'''


class Quorumwatch(ClusterProc):
    """harness.ClusterProc (stall_after 2s, checkpoint_interval 200ms,
    read_from beginning) with an alertmanager sink listing `urls`; start()
    returns once it says it runs."""

    def __init__(self, binary, root, cluster, urls):
        super().__init__(binary, root, cluster, deadline=DEADLINE, extra=sink_text(urls))

    def start(self):
        first = len(self.err_lines)
        super().start()
        self.wait(lambda: any("running:" in l for l in self.err_lines[first:]),
                  "quorumwatch says it runs")
        late = [l for l in self.err_lines[first:] if "alertmanager" in l and "not delivered" in l]
        assert not late, "quorumwatch run does not create the Alertmanager sink yet " \
            "(src/app/run.cc): %r" % late


# --------------------------------------------------------------------------
# The scenario


@pytest.fixture(scope="module")
def sc(alertmanager, qw_bin, tmp_path_factory, request, diagnostics):
    """Two Alertmanagers started; the cluster (HB and val-a) and the
    quorumwatch process made (started by the Watchdog check)."""
    ams = [alertmanager("am1"), alertmanager("am2")]
    root = str(tmp_path_factory.mktemp("quorumwatch"))
    cl = Cluster(root)
    sc = types.SimpleNamespace(ams=ams, cl=cl, root=root, qw=None, state={}, qw_bin=qw_bin)
    diagnostics(request.node, "quorumwatch stderr (tail)",
                lambda: sc.qw.stderr()[-2000:] if sc.qw is not None else "")
    try:
        yield sc
    finally:
        cl.stop_quietly()  # a writer error fails the waits and check 8, which stops the writer
        if sc.qw is not None:
            sc.qw.cleanup()


def both(sc, fn):
    """fn(am) for each Alertmanager; all results, or None when one is missing."""
    out = []
    for am in sc.ams:
        r = fn(am)
        if not r:
            return None
        out.append(r)
    return out


def observe_ams(sc):  # qw.wait's failures say what the Alertmanagers hold
    return lambda: "; ".join("%s: %s" % (am.name, am.summary()) for am in sc.ams)


class TestAlertmanagerSink:
    def need(self, sc, step):
        expect(step in sc.state, "needs check %s of this scenario, which did not pass" % step)

    def test_1_alertmanagers_ready(self, sc):
        """1 two Alertmanagers ready on 127.0.0.1"""
        for am in sc.ams:
            assert am.ready(), "%s not ready on %s" % (am.name, am.url)
        assert sc.ams[0].port != sc.ams[1].port, "both Alertmanagers on one port"
        sc.state["1"] = True

    def test_2_watchdog(self, sc):
        """2 quorumwatch runs with the alertmanager sink: Watchdog on both,
        severity none, static labels"""
        self.need(sc, "1")
        cl = sc.cl
        for pod in (HB, POD):
            cl.add(pod)
        sc.qw = qw = Quorumwatch(sc.qw_bin, sc.root, cl, [am.url for am in sc.ams])
        qw.start()
        cl.start()
        found = qw.wait(lambda: both(sc, lambda am: am.one("Watchdog")),
                        "Watchdog on both Alertmanagers", observe=observe_ams(sc))
        for am, a in zip(sc.ams, found):
            assert a["labels"] == {"alertname": "Watchdog", "severity": "none",
                                   "region": "eu-1"}, "%s Watchdog labels" % am.name
            assert a.get("annotations", {}).get("summary"), "%s Watchdog has no summary" % am.name
            assert a.get("generatorURL") == GENERATOR, "%s Watchdog generatorURL" % am.name
        sc.state["2"] = True

    def test_3_stalled(self, sc):
        """3 stalled node: NodeStalled and NodeOutOfConsensus on both, labels,
        annotations, startsAt of the events"""
        self.need(sc, "2")
        qw, cl = sc.qw, sc.cl
        assert qw is not None and qw.alive(), "needs the running quorumwatch"
        qw.wait_caught_up(POD)
        last_h, _ = cl.set_active(POD, False)
        st = qw.wait(lambda: qw.find("node_stalled", POD), "node_stalled event for val-a")[0]
        ooc = qw.wait(lambda: qw.find("out_of_consensus", POD),
                      "out_of_consensus event for val-a")[0]
        assert st.get("height") == last_h, "node_stalled height"
        for name, ev in (("NodeStalled", st), ("NodeOutOfConsensus", ooc)):
            found = qw.wait(lambda: both(sc, lambda am: am.one(name, POD)),
                            "%s for val-a on both Alertmanagers" % name, observe=observe_ams(sc))
            for am, a in zip(sc.ams, found):
                where = "%s %s" % (am.name, name)
                assert a["labels"] == {"alertname": name, "chain": CHAIN, "node": POD,
                                       "namespace": NS, "severity": "warning",
                                       "region": "eu-1"}, where + " labels"
                ann = a.get("annotations", {})
                assert POD in ann.get("summary", "") and CHAIN in ann.get("summary", ""), \
                    "%s summary names node and chain: %r" % (where, ann.get("summary"))
                assert ann.get("description"), where + " has no description"
                assert ann.get("height") == str(last_h), where + " annotation height"
                assert parse_time(a["startsAt"]) // MS == parse_time(ev["time"]) // MS, \
                    where + " startsAt = time of its %s event" % ev["event"]
                assert ann.get("since") == ev["time"], where + " annotation since"
                assert a.get("generatorURL") == GENERATOR, where + " generatorURL"
                assert a.get("status", {}).get("state") == "active", where + " status.state"
                if name == "NodeOutOfConsensus":
                    assert ann.get("reason") == "stalled", where + " annotation reason"
        for am in sc.ams:
            hb = [a for a in am.alerts() if a["labels"].get("node") == HB]
            assert not hb, "%s: alerts for the heartbeat node: %r" % (am.name, hb)
        sc.state["stalled_starts"] = {am.name: am.one("NodeStalled", POD)["startsAt"]
                                      for am in sc.ams}

    def test_4_resent(self, sc):
        """4 firing alerts re-sent every resend_interval"""
        expect("stalled_starts" in sc.state, "needs the previous check's firing alert")
        qw = sc.qw
        before = {am.name: am.one("NodeStalled", POD) for am in sc.ams}
        for am in sc.ams:
            a0 = before[am.name]
            assert a0 is not None, "%s: NodeStalled gone before the re-send check" % am.name
            u0, e0 = parse_time(a0["updatedAt"]), parse_time(a0["endsAt"])

            def moved():
                a = am.one("NodeStalled", POD)
                if a and parse_time(a["updatedAt"]) > u0 and parse_time(a["endsAt"]) > e0:
                    return a
                return None
            a1 = qw.wait(moved, "%s: NodeStalled re-sent (updatedAt and endsAt move on)"
                         % am.name, observe=observe_ams(sc))
            assert a1["startsAt"] == a0["startsAt"], "%s startsAt across a re-send" % am.name
            # endsAt = send time + 4 x resend_interval; updatedAt = receive
            # time, a little after the send (more on a loaded machine): the
            # alert must outlive the next re-send, and not be set further out.
            ahead = (parse_time(a1["endsAt"]) - parse_time(a1["updatedAt"])) / SECOND
            assert RESEND_S < ahead <= 4 * RESEND_S + 1, \
                "%s endsAt - updatedAt = %.2f s, want over %d s and about %d s" % (
                    am.name, ahead, RESEND_S, 4 * RESEND_S)

    def test_5_resolved(self, sc):
        """5 recovery resolves at once on both (before endsAt)"""
        expect("stalled_starts" in sc.state, "needs the previous check's firing alert")
        qw, cl = sc.qw, sc.cl
        counts = {am.name: am.resolved_received() for am in sc.ams}
        latest_end = {}

        def gone(am):
            alerts = [a for a in am.alerts() if a["labels"].get("node") == POD]
            for a in alerts:
                end = parse_time(a["endsAt"])
                latest_end[am.name] = max(latest_end.get(am.name, 0), end)
            return not alerts
        for am in sc.ams:
            gone(am)  # the endsAt the alerts have now
        cl.set_active(POD, True)
        qw.wait(lambda: qw.find("node_recovered", POD), "node_recovered event for val-a")
        for am in sc.ams:
            qw.wait(lambda: gone(am), "%s: val-a's alerts leave the list" % am.name,
                    observe=observe_ams(sc))
            at = now_ns()
            assert at < latest_end[am.name], \
                "%s: val-a's alerts left the list only when they ran out (endsAt %s), " \
                "not resolved" % (am.name, latest_end[am.name])
            qw.wait(lambda: am.resolved_received() >= counts[am.name] + 2,
                    "%s: resolved alerts received (counter from %g)" % (am.name, counts[am.name]),
                    observe=observe_ams(sc))
            assert am.one("Watchdog"), "%s: Watchdog gone" % am.name

    def test_6_restart_refires(self, sc):
        """6 restart: nothing resolved at shutdown, firing alerts re-sent"""
        self.need(sc, "2")
        qw, cl = sc.qw, sc.cl
        assert qw is not None and qw.alive(), "needs the running quorumwatch"
        qw.wait_caught_up(POD)
        n_before = len(qw.find("node_stalled", POD))
        cl.set_active(POD, False)
        qw.wait(lambda: len(qw.find("node_stalled", POD)) > n_before, "val-a stalls again")
        firing = qw.wait(lambda: both(sc, lambda am: am.one("NodeStalled", POD)),
                         "NodeStalled fires again on both", observe=observe_ams(sc))
        resolved_before = {am.name: am.resolved_received() for am in sc.ams}
        qw.stop()
        with open(os.path.join(qw.state, "alertmanager.json")) as f:
            saved = f.read()
        assert '"NodeStalled"' in saved and '"%s"' % POD in saved, \
            "state/alertmanager.json lacks the firing NodeStalled: %r" % saved[:500]
        assert "Watchdog" not in saved, "the Watchdog is saved in alertmanager.json"
        for am in sc.ams:
            assert am.resolved_received() == resolved_before[am.name], \
                "%s: resolved alerts received at shutdown (Close resolves nothing)" % am.name
            assert am.one("Watchdog"), "%s: Watchdog resolved at shutdown" % am.name
        # What Alertmanager holds from the stopped process (it may run out
        # meanwhile: then any NodeStalled after the restart is a re-send).
        updated = {}
        for am in sc.ams:
            a = am.one("NodeStalled", POD)
            updated[am.name] = parse_time(a["updatedAt"]) if a else 0
        qw.start()
        for am, a0 in zip(sc.ams, firing):
            def refreshed():
                a = am.one("NodeStalled", POD)
                return a if a and parse_time(a["updatedAt"]) > updated[am.name] else None
            a1 = qw.wait(refreshed, "%s: NodeStalled re-sent after the restart" % am.name,
                         observe=observe_ams(sc))
            assert parse_time(a1["startsAt"]) // MS == parse_time(a0["startsAt"]) // MS, \
                "%s NodeStalled startsAt across the restart" % am.name
            assert qw.wait(lambda: am.one("Watchdog"), "%s Watchdog after the restart" % am.name), \
                "no Watchdog"

    def test_7_ended_while_down(self, sc):
        """7 an alert that ended while quorumwatch was down is resolved"""
        self.need(sc, "2")
        qw, cl = sc.qw, sc.cl
        assert qw is not None and qw.alive(), "needs the restarted quorumwatch"
        assert all(am.one("NodeStalled", POD) for am in sc.ams), \
            "needs val-a's firing NodeStalled"
        resolved_before = {am.name: am.resolved_received() for am in sc.ams}
        qw.stop()
        # val-a commits again while quorumwatch is down.
        h0 = cl.nodes[POD].last_height
        cl.set_active(POD, True)
        wait_for(lambda: cl.nodes[POD].last_height >= h0 + 3 or cl.error, "val-a commits again",
                 DEADLINE)
        qw.start()
        for am in sc.ams:
            qw.wait(lambda: am.resolved_received() > resolved_before[am.name] and
                    not am.find("NodeStalled", POD),
                    "%s: val-a's NodeStalled resolved after the restart" % am.name,
                    observe=observe_ams(sc))
            assert am.one("Watchdog"), "%s: Watchdog gone" % am.name
        path = os.path.join(qw.state, "alertmanager.json")
        with open(path) as f:
            saved = f.read()

        def left():
            with open(path) as f:
                return '"%s"' % POD not in f.read()
        qw.wait(left, "val-a's alerts leave state/alertmanager.json (was %r)" % saved[:300])

    def test_8_shutdown(self, sc):
        """8 shutdown keeps the Watchdog; nothing sent was invalid"""
        self.need(sc, "2")
        qw, cl = sc.qw, sc.cl
        assert qw is not None and qw.alive(), "needs the running quorumwatch"
        cl.stop()
        qw.stop()
        for am in sc.ams:
            assert am.one("Watchdog"), "%s: Watchdog resolved at shutdown" % am.name
            assert am.counter("alertmanager_alerts_invalid_total") == 0.0, \
                "%s: alerts refused as invalid" % am.name
