#!/usr/bin/env python3
"""The Alertmanager sink against real Alertmanagers (suite 'integration').

Usage: python3 tests/integration/alertmanager_test.py PATH/TO/quorumwatch

Starts two of Debian's `prometheus-alertmanager` (0.25) on 127.0.0.1 (free
ports, no cluster gossip, a route to a receiver that notifies nobody) and
`quorumwatch run` over a temporary folder of Kubernetes-named CRI logs with
CometBFT "committed state" lines, with an alertmanager sink listing both
(resend_interval 2s, a static region label). A heartbeat node commits
throughout; node val-a stops and starts again. What quorumwatch sent is read
back through Alertmanager's API v2 (GET /api/v2/alerts, which lists the
alerts whose endsAt has not passed) and its own counters on /metrics
(alertmanager_alerts_received_total{status="resolved"} counts resolves
received, alertmanager_alerts_invalid_total alerts refused):

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

Synchronisation is never a sleep: every wait polls the Alertmanagers, the
events file, the checkpoint or the captured stderr until a condition holds
or a generous deadline passes. Every child process is killed at the end,
also on failure. Without prometheus-alertmanager the test fails (CI
installs it). Prints "ok"/"FAIL" per check and ends with "N passed,
M failed". The log writer, the process and the waits are run_test.py's
harness. Python 3 standard library only.
"""

import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_test as rt  # noqa: E402
from run_test import CHAIN, HB, MS, NS, SECOND, UTC, Failure, expect, expect_eq  # noqa: E402

AM_BIN = "/usr/bin/prometheus-alertmanager"
POD = "val-a"
RESEND_S = 2  # resend_interval of the sink
DEADLINE = 30.0  # generous: the machine has two busy cores
GENERATOR = "http://quorumwatch.test/status"

# --------------------------------------------------------------------------
# Waiting and times


def wait_for(pred, what, timeout=DEADLINE, observe=None):
    """Polls pred() until it returns something true; Failure after timeout
    (for waits without a running quorumwatch: rt.Proc.wait needs one)."""
    end = time.monotonic() + timeout
    while True:
        r = pred()
        if r:
            return r
        if time.monotonic() > end:
            raise Failure("%s: not within %.0f s%s" % (
                what, timeout, "; observed: " + observe() if observe else ""))
        time.sleep(0.05)


def now_ns():
    return rt.ns_of(datetime.datetime.now(UTC))


TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def parse_time(s):
    """RFC 3339 (any fraction, Z or offset) -> nanoseconds, microsecond precision
    (Alertmanager's times; rt.parse_ms reads only quorumwatch's)."""
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
    return rt.ns_of(t)


# --------------------------------------------------------------------------
# HTTP


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode("utf-8", "replace")


# --------------------------------------------------------------------------
# Alertmanager

AM_CONFIG = """route:
  receiver: "null"
  group_by: ["alertname"]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: "null"
"""


class Alertmanager:
    def __init__(self, root, name):
        self.name = name
        self.dir = os.path.join(root, name)
        os.makedirs(os.path.join(self.dir, "data"))
        self.cfg = os.path.join(self.dir, "alertmanager.yml")
        with open(self.cfg, "w") as f:
            f.write(AM_CONFIG)
        self.log_path = os.path.join(self.dir, "alertmanager.log")
        self.port = None
        self.p = None
        self.log_file = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        self.port = rt.free_port()
        self.log_file = open(self.log_path, "ab")
        self.p = subprocess.Popen(
            [AM_BIN, "--config.file=" + self.cfg,
             "--storage.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port,
             "--cluster.listen-address="],
            stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=subprocess.STDOUT)

        def ready():
            if self.p.poll() is not None:
                raise Failure("%s exited with status %r; log:\n%s"
                              % (self.name, self.p.returncode, self.log_tail()))
            try:
                return http_get(self.url + "/-/ready", timeout=2)[0] == 200
            except (urllib.error.URLError, OSError):
                return False
        wait_for(ready, "%s ready on %s" % (self.name, self.url), observe=self.log_tail)

    def log_tail(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-1500:]
        except OSError:
            return ""

    def alerts(self):
        """The alerts Alertmanager holds whose endsAt has not passed."""
        status, body = http_get(self.url + "/api/v2/alerts")
        expect_eq(status, 200, "%s GET /api/v2/alerts status" % self.name)
        return json.loads(body)

    def find(self, name, node=None):
        out = []
        for a in self.alerts():
            labels = a.get("labels", {})
            if labels.get("alertname") == name and (node is None or labels.get("node") == node):
                out.append(a)
        return out

    def one(self, name, node=None):
        found = self.find(name, node)
        return found[0] if len(found) == 1 else None

    def counter(self, metric, **want):
        """Sum of a counter's series whose labels include `want`."""
        status, body = http_get(self.url + "/metrics")
        expect_eq(status, 200, "%s GET /metrics status" % self.name)
        total = 0.0
        for line in body.split("\n"):
            if not line.startswith(metric):
                continue
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
            if not m or m.group(1) != metric:
                continue
            labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"', m.group(2) or ""))
            if all(labels.get(k) == v for k, v in want.items()):
                total += float(m.group(3))
        return total

    def resolved_received(self):
        return self.counter("alertmanager_alerts_received_total", status="resolved")

    def summary(self):
        try:
            return repr(sorted((a["labels"].get("alertname"), a["labels"].get("node"),
                                a.get("endsAt")) for a in self.alerts()))
        except Exception as e:  # for failure messages only
            return "(unreadable: %r)" % e

    def stop(self):
        if self.p is not None and self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None


# --------------------------------------------------------------------------
# quorumwatch: run_test.py's process with the alertmanager sink


def sink_text(urls):
    url_list = ", ".join('"%s"' % u for u in urls)
    return f'''  - type: alertmanager
    urls: [{url_list}]
    resend_interval: {RESEND_S}s
    timeout: 5s
    labels: {{region: eu-1}}
    generator_url: "{GENERATOR}"
'''


class Quorumwatch(rt.Proc):
    """run_test.py's process (stall_after 2s, checkpoint_interval 200ms,
    read_from beginning) with an alertmanager sink listing `urls`; start()
    returns once it says it runs; waits take this test's deadline and an
    `observe` for failure messages."""

    def __init__(self, root, cluster, urls):
        super().__init__(root, cluster, extra=sink_text(urls))

    def start(self):
        with self.err_lock:
            first = len(self.err_lines)
        super().start()
        self.wait(lambda: any("running:" in l for l in self.stderr_lines(first)),
                  "quorumwatch says it runs")
        late = [l for l in self.stderr_lines(first) if "alertmanager" in l and "not delivered" in l]
        expect(not late, "quorumwatch run does not create the Alertmanager sink yet "
               "(src/app/run.cc): %r" % late)

    def stderr_lines(self, first=0):
        with self.err_lock:
            return list(self.err_lines[first:])

    def wait(self, pred, what, timeout=DEADLINE, observe=None):
        try:
            return super().wait(pred, what, timeout)
        except Failure as e:
            if observe is None:
                raise
            raise Failure("%s; %s" % (e, observe())) from None


# --------------------------------------------------------------------------
# The scenario


def alertmanager_checks(t):
    tmp = rt.TMP
    ams = [Alertmanager(tmp, "am1"), Alertmanager(tmp, "am2")]
    cl = rt.Cluster(tmp)
    qw = None
    state = {}

    def both(fn):
        """fn(am) for each Alertmanager; all results, or None when one is missing."""
        out = []
        for am in ams:
            r = fn(am)
            if not r:
                return None
            out.append(r)
        return out

    def observe_ams():  # qw.wait's failures say what quorumwatch shows
        return "; ".join("%s: %s" % (am.name, am.summary()) for am in ams)

    def start_ams():
        for am in ams:
            am.start()

    def watchdog():
        nonlocal qw
        for pod in (HB, POD):
            cl.add(pod)
        qw = Quorumwatch(tmp, cl, [am.url for am in ams])
        qw.start()
        cl.start()
        found = qw.wait(lambda: both(lambda am: am.one("Watchdog")),
                        "Watchdog on both Alertmanagers", observe=observe_ams)
        for am, a in zip(ams, found):
            expect_eq(a["labels"], {"alertname": "Watchdog", "severity": "none",
                                    "region": "eu-1"}, "%s Watchdog labels" % am.name)
            expect(a.get("annotations", {}).get("summary"), "%s Watchdog has no summary" % am.name)
            expect_eq(a.get("generatorURL"), GENERATOR, "%s Watchdog generatorURL" % am.name)

    def stalled():
        expect(qw is not None and qw.alive(), "needs the running quorumwatch")
        qw.wait_caught_up(POD)
        last_h, _ = cl.set_active(POD, False)
        st = qw.wait(lambda: qw.find("node_stalled", POD), "node_stalled event for val-a")[0]
        ooc = qw.wait(lambda: qw.find("out_of_consensus", POD),
                      "out_of_consensus event for val-a")[0]
        expect_eq(st.get("height"), last_h, "node_stalled height")
        for name, ev in (("NodeStalled", st), ("NodeOutOfConsensus", ooc)):
            found = qw.wait(lambda: both(lambda am: am.one(name, POD)),
                            "%s for val-a on both Alertmanagers" % name, observe=observe_ams)
            for am, a in zip(ams, found):
                where = "%s %s" % (am.name, name)
                expect_eq(a["labels"], {"alertname": name, "chain": CHAIN, "node": POD,
                                        "namespace": NS, "severity": "warning",
                                        "region": "eu-1"}, where + " labels")
                ann = a.get("annotations", {})
                expect(POD in ann.get("summary", "") and CHAIN in ann.get("summary", ""),
                       "%s summary names node and chain: %r" % (where, ann.get("summary")))
                expect(ann.get("description"), where + " has no description")
                expect_eq(ann.get("height"), str(last_h), where + " annotation height")
                expect_eq(parse_time(a["startsAt"]) // MS, parse_time(ev["time"]) // MS,
                          where + " startsAt = time of its %s event" % ev["event"])
                expect_eq(ann.get("since"), ev["time"], where + " annotation since")
                expect_eq(a.get("generatorURL"), GENERATOR, where + " generatorURL")
                expect_eq(a.get("status", {}).get("state"), "active", where + " status.state")
                if name == "NodeOutOfConsensus":
                    expect_eq(ann.get("reason"), "stalled", where + " annotation reason")
        for am in ams:
            hb = [a for a in am.alerts() if a["labels"].get("node") == HB]
            expect(not hb, "%s: alerts for the heartbeat node: %r" % (am.name, hb))
        state["stalled_starts"] = {am.name: am.one("NodeStalled", POD)["startsAt"] for am in ams}

    def resent():
        expect("stalled_starts" in state, "needs the previous check's firing alert")
        before = {am.name: am.one("NodeStalled", POD) for am in ams}
        for am in ams:
            a0 = before[am.name]
            expect(a0 is not None, "%s: NodeStalled gone before the re-send check" % am.name)
            u0, e0 = parse_time(a0["updatedAt"]), parse_time(a0["endsAt"])

            def moved():
                a = am.one("NodeStalled", POD)
                if a and parse_time(a["updatedAt"]) > u0 and parse_time(a["endsAt"]) > e0:
                    return a
                return None
            a1 = qw.wait(moved, "%s: NodeStalled re-sent (updatedAt and endsAt move on)"
                         % am.name, observe=observe_ams)
            expect_eq(a1["startsAt"], a0["startsAt"], "%s startsAt across a re-send" % am.name)
            # endsAt = send time + 4 x resend_interval; updatedAt = receive time.
            ahead = (parse_time(a1["endsAt"]) - parse_time(a1["updatedAt"])) / SECOND
            expect(4 * RESEND_S - 2 <= ahead <= 4 * RESEND_S + 1,
                   "%s endsAt - updatedAt = %.2f s, want about %d s"
                   % (am.name, ahead, 4 * RESEND_S))

    def resolved():
        expect("stalled_starts" in state, "needs the previous check's firing alert")
        counts = {am.name: am.resolved_received() for am in ams}
        latest_end = {}

        def gone(am):
            alerts = [a for a in am.alerts() if a["labels"].get("node") == POD]
            for a in alerts:
                end = parse_time(a["endsAt"])
                latest_end[am.name] = max(latest_end.get(am.name, 0), end)
            return not alerts
        for am in ams:
            gone(am)  # the endsAt the alerts have now
        cl.set_active(POD, True)
        qw.wait(lambda: qw.find("node_recovered", POD), "node_recovered event for val-a")
        for am in ams:
            qw.wait(lambda: gone(am), "%s: val-a's alerts leave the list" % am.name,
                    observe=observe_ams)
            at = now_ns()
            expect(at < latest_end[am.name],
                   "%s: val-a's alerts left the list only when they ran out (endsAt %s), "
                   "not resolved" % (am.name, latest_end[am.name]))
            qw.wait(lambda: am.resolved_received() >= counts[am.name] + 2,
                    "%s: resolved alerts received (counter from %g)" % (am.name, counts[am.name]),
                    observe=observe_ams)
            expect(am.one("Watchdog"), "%s: Watchdog gone" % am.name)

    def restart_refires():
        expect(qw is not None and qw.alive(), "needs the running quorumwatch")
        qw.wait_caught_up(POD)
        n_before = len(qw.find("node_stalled", POD))
        cl.set_active(POD, False)
        qw.wait(lambda: len(qw.find("node_stalled", POD)) > n_before, "val-a stalls again")
        firing = qw.wait(lambda: both(lambda am: am.one("NodeStalled", POD)),
                         "NodeStalled fires again on both", observe=observe_ams)
        resolved_before = {am.name: am.resolved_received() for am in ams}
        qw.stop()
        saved = open(os.path.join(qw.state, "alertmanager.json")).read()
        expect('"NodeStalled"' in saved and '"%s"' % POD in saved,
               "state/alertmanager.json lacks the firing NodeStalled: %r" % saved[:500])
        expect("Watchdog" not in saved, "the Watchdog is saved in alertmanager.json")
        for am in ams:
            expect_eq(am.resolved_received(), resolved_before[am.name],
                      "%s: resolved alerts received at shutdown (Close resolves nothing)"
                      % am.name)
            expect(am.one("Watchdog"), "%s: Watchdog resolved at shutdown" % am.name)
        # What Alertmanager holds from the stopped process (it may run out
        # meanwhile: then any NodeStalled after the restart is a re-send).
        updated = {}
        for am in ams:
            a = am.one("NodeStalled", POD)
            updated[am.name] = parse_time(a["updatedAt"]) if a else 0
        qw.start()
        for am, a0 in zip(ams, firing):
            def refreshed():
                a = am.one("NodeStalled", POD)
                return a if a and parse_time(a["updatedAt"]) > updated[am.name] else None
            a1 = qw.wait(refreshed, "%s: NodeStalled re-sent after the restart" % am.name,
                         observe=observe_ams)
            expect_eq(parse_time(a1["startsAt"]) // MS, parse_time(a0["startsAt"]) // MS,
                      "%s NodeStalled startsAt across the restart" % am.name)
            expect(qw.wait(lambda: am.one("Watchdog"), "%s Watchdog after the restart" % am.name),
                   "no Watchdog")

    def ended_while_down():
        expect(qw is not None and qw.alive(), "needs the restarted quorumwatch")
        expect(all(am.one("NodeStalled", POD) for am in ams), "needs val-a's firing NodeStalled")
        resolved_before = {am.name: am.resolved_received() for am in ams}
        qw.stop()
        # val-a commits again while quorumwatch is down.
        h0 = cl.nodes[POD].last_height
        cl.set_active(POD, True)
        wait_for(lambda: cl.nodes[POD].last_height >= h0 + 3 or cl.error, "val-a commits again")
        qw.start()
        for am in ams:
            qw.wait(lambda: am.resolved_received() > resolved_before[am.name] and
                    not am.find("NodeStalled", POD),
                    "%s: val-a's NodeStalled resolved after the restart" % am.name,
                    observe=observe_ams)
            expect(am.one("Watchdog"), "%s: Watchdog gone" % am.name)
        saved = open(os.path.join(qw.state, "alertmanager.json")).read()
        qw.wait(lambda: '"%s"' % POD not in open(os.path.join(qw.state,
                                                                "alertmanager.json")).read(),
                "val-a's alerts leave state/alertmanager.json (was %r)" % saved[:300])

    def shutdown():
        expect(qw is not None and qw.alive(), "needs the running quorumwatch")
        cl.stop()
        qw.stop()
        for am in ams:
            expect(am.one("Watchdog"), "%s: Watchdog resolved at shutdown" % am.name)
            expect_eq(am.counter("alertmanager_alerts_invalid_total"), 0.0,
                      "%s: alerts refused as invalid" % am.name)

    try:
        if t.check("1 two Alertmanagers ready on 127.0.0.1", start_ams):
            if t.check("2 quorumwatch runs with the alertmanager sink: Watchdog on both, "
                       "severity none, static labels", watchdog):
                t.check("3 stalled node: NodeStalled and NodeOutOfConsensus on both, labels, "
                        "annotations, startsAt of the events", stalled)
                t.check("4 firing alerts re-sent every resend_interval", resent)
                t.check("5 recovery resolves at once on both (before endsAt)", resolved)
                t.check("6 restart: nothing resolved at shutdown, firing alerts re-sent",
                        restart_refires)
                t.check("7 an alert that ended while quorumwatch was down is resolved",
                        ended_while_down)
                t.check("8 shutdown keeps the Watchdog; nothing sent was invalid", shutdown)
    finally:
        try:
            cl.stop()
        except Failure:
            pass  # a writer error fails the waits and check 8, which stops the writer
        if qw is not None:
            qw.cleanup()
        for am in ams:
            am.stop()
        if t.failed:
            if qw is not None:
                print("quorumwatch stderr (tail):\n" + qw.stderr()[-2000:])
            for am in ams:
                print("%s log (tail):\n%s" % (am.name, am.log_tail()))


def main():
    rt.BIN = rt.binary_of(sys.argv, "alertmanager_test.py")
    if rt.BIN is None:
        return 2
    if not os.access(AM_BIN, os.X_OK):
        print("FAIL prometheus-alertmanager is not installed (%s missing): install Debian's "
              "package prometheus-alertmanager (tools/setup and CI do)" % AM_BIN, flush=True)
        print("0 passed, 1 failed")
        return 1
    rt.DEADLINE = DEADLINE  # rt.Proc.stop's wait for the exit after SIGTERM
    rt.TMP = tempfile.mkdtemp(prefix="qw-am-")
    t = rt.Runner()
    rt.run_parts(t, (alertmanager_checks,))
    return rt.finish(t)


if __name__ == "__main__":
    sys.exit(main())
