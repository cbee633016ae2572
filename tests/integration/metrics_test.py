#!/usr/bin/env python3
"""The /metrics, /healthz and /readyz endpoint of `quorumwatch run`
(suite 'integration').

Usage: python3 tests/integration/metrics_test.py PATH/TO/quorumwatch

Runs the built binary over a temporary folder of Kubernetes-named CRI logs
(`<pod>_<namespace>_<container>-<hex>.log`) of two CometBFT nodes writing
"committed state" lines, with a jsonl sink and a metrics sink on a free port
of 127.0.0.1. Every scrape is parsed line by line with a strict reader of the
Prometheus text format (HELP, TYPE, `name{labels} value`): a malformed line,
a sample without its TYPE or a series given twice fails the test. Checked:
node heights equal what the logs committed, in_consensus and
seconds_since_commit, a node that stops committing turns stalled (chain
stall_after: 2s) while the other stays in consensus, the component counters
of the file source, the match and detect stages and the metrics sink, events
counted by kind, /healthz and /readyz, a port already in use refused at start
with exit status 1, and the port freed after SIGTERM.

Synchronisation is never a sleep: every wait polls the endpoint, stderr or
the process until a condition holds or a generous deadline passes. The
writer thread's period only paces the logs. The log writer, the process and
the waits are run_test.py's harness.

Prints "ok"/"FAIL" per check and ends with "N passed, M failed"; exits 1
when anything failed. Python 3 standard library only.
"""

import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_test as rt  # noqa: E402
from run_test import CHAIN, NS, STALL_S, Failure, expect, expect_eq  # noqa: E402

DEADLINE = 20.0  # generous: the machine has two busy cores
ACTIVE = "val-a"  # keeps committing, so the instance always receives input
STALLER = "val-b"  # stops committing part way

# --------------------------------------------------------------------------
# The Prometheus text format (0.0.4), strictly

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
HELP_RE = re.compile(r"# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*)(?: (.*))?")
TYPE_RE = re.compile(r"# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)")
TIMESTAMP_RE = re.compile(r"-?[0-9]+")


class Exposition:
    """A parsed scrape: samples[(name, frozenset(labels))] = value."""

    def __init__(self, text):
        self.text = text
        self.samples = {}
        self.types = {}
        self.helps = {}
        self._parse()

    def _parse(self):
        if self.text and not self.text.endswith("\n"):
            raise Failure("exposition does not end with a newline")
        sampled = set()
        for n, line in enumerate(self.text.split("\n")[:-1], 1):
            where = "line %d %r" % (n, line)
            if line.startswith("# HELP "):
                m = HELP_RE.fullmatch(line)
                expect(m is not None, "%s: malformed HELP" % where)
                expect(m.group(1) not in self.helps, "%s: HELP twice" % where)
                self.helps[m.group(1)] = unescape_help(m.group(2) or "", where)
            elif line.startswith("# TYPE "):
                m = TYPE_RE.fullmatch(line)
                expect(m is not None, "%s: malformed TYPE" % where)
                name = m.group(1)
                expect(name not in self.types and name not in sampled,
                       "%s: TYPE twice or after samples" % where)
                self.types[name] = m.group(2)
            else:
                name, labels, value = parse_sample(line, where)
                expect(name in self.types, "%s: sample without a TYPE line" % where)
                sampled.add(name)
                key = (name, frozenset(labels.items()))
                expect(key not in self.samples, "%s: series twice" % where)
                self.samples[key] = value

    def get(self, name, **labels):
        """The value of the series with exactly these labels, or None."""
        return self.samples.get((name, frozenset(labels.items())))

    def series(self, name):
        """[(labels dict, value)] of a family."""
        return [(dict(k[1]), v) for k, v in self.samples.items() if k[0] == name]


def unescape_help(s, where):
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            expect(i + 1 < len(s) and s[i + 1] in "\\n", "%s: bad escape in HELP" % where)
            out.append("\n" if s[i + 1] == "n" else "\\")
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_value(s, where):
    if s in ("NaN", "+Inf", "-Inf"):
        return float(s.replace("+", ""))
    expect(re.fullmatch(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", s) is not None,
           "%s: bad value %r" % (where, s))
    return float(s)


def parse_sample(line, where):
    """`name{a="x",b="y"} value [timestamp]` -> (name, labels, value)."""
    m = NAME_RE.match(line)
    expect(m is not None, "%s: neither HELP, TYPE nor a sample" % where)
    name = m.group(0)
    i = m.end()
    labels = {}
    if i < len(line) and line[i] == "{":
        i += 1
        while True:
            expect(i < len(line), "%s: unterminated labels" % where)
            if line[i] == "}":
                i += 1
                break
            lm = LABEL_NAME_RE.match(line, i)
            expect(lm is not None, "%s: bad label name at %d" % (where, i))
            lname = lm.group(0)
            expect(lname not in labels, "%s: label %s twice" % (where, lname))
            i = lm.end()
            expect(line.startswith('="', i), "%s: expected =\" after %s" % (where, lname))
            i += 2
            value = []
            while True:
                expect(i < len(line), "%s: unterminated label value" % where)
                c = line[i]
                i += 1
                if c == '"':
                    break
                if c == "\\":
                    expect(i < len(line) and line[i] in '\\"n', "%s: bad escape" % where)
                    value.append({"\\": "\\", '"': '"', "n": "\n"}[line[i]])
                    i += 1
                else:
                    value.append(c)
            labels[lname] = "".join(value)
            expect(i < len(line) and line[i] in ",}", "%s: expected , or } after a label" % where)
            if line[i] == ",":
                i += 1
    expect(line[i:i + 1] == " ", "%s: expected one space before the value" % where)
    rest = line[i + 1:].split(" ")
    expect(1 <= len(rest) <= 2, "%s: expected a value and at most a timestamp" % where)
    value = parse_value(rest[0], where)
    if len(rest) == 2:
        expect(TIMESTAMP_RE.fullmatch(rest[1]) is not None, "%s: bad timestamp" % where)
    return name, labels, value


# --------------------------------------------------------------------------
# Logs: two nodes of one chain writing CRI records (run_test.py's writer)


class Cluster(rt.Cluster):
    """The writer thread commits the next chain height on every active node
    each rt.WRITE_PERIOD."""

    def pause(self, pod):
        """Stops a node's commits; returns its last height."""
        return self.set_active(pod, False)[0]

    def snapshot(self):
        with self.lock:
            return {p: (n.last_height, n.records) for p, n in self.nodes.items()}


# --------------------------------------------------------------------------
# The process under test


class Proc(rt.Proc):
    """run_test.py's process with a metrics sink on 127.0.0.1:port."""

    def __init__(self, root, cluster, port):
        os.makedirs(root, exist_ok=True)
        self.port = port
        self.scrapes = 0
        super().__init__(root, cluster, stall="%ds" % STALL_S, checkpoint="1s",
                         extra='  - {type: metrics, listen: "127.0.0.1:%d"}\n' % port)

    # --- HTTP

    def get(self, path):
        """(status, content type, body) of GET http://127.0.0.1:PORT/path."""
        url = "http://127.0.0.1:%d%s" % (self.port, path)
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status, r.headers.get("Content-Type", ""), r.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type", ""), e.read().decode("utf-8")

    def scrape(self):
        status, ctype, body = self.get("/metrics")
        expect_eq(status, 200, "GET /metrics status")
        expect(ctype.startswith("text/plain; version=0.0.4"),
               "GET /metrics Content-Type %r" % ctype)
        self.scrapes += 1
        return Exposition(body)

    # --- waiting (polling with a deadline, never a bare sleep)

    def wait(self, pred, what, timeout=DEADLINE):
        """rt.Proc.wait, where pred may also raise Failure (or OSError) while
        the condition does not hold yet: the last one is reported at the
        deadline."""
        last = []

        def attempt():
            try:
                return pred()
            except (Failure, OSError) as e:
                last[:] = [e]
                return None
        try:
            return super().wait(attempt, what, timeout)
        except Failure as e:
            raise Failure("%s (last: %s)" % (e, last[0] if last else None)) from None


def node_labels(pod):
    return {"chain": CHAIN, "namespace": NS, "node": pod}


# --------------------------------------------------------------------------
# The checks


def run_checks(t):
    cluster = Cluster(rt.TMP)
    cluster.add(ACTIVE, create=False)
    cluster.add(STALLER, create=False)
    cluster.tick()  # history before the start: read from the beginning
    cluster.tick()
    port = rt.free_port()
    proc = Proc(os.path.join(rt.TMP, "main"), cluster, port)
    try:
        proc.start()
        cluster.start()

        def listening():
            want = "metrics: listening on 127.0.0.1:%d" % port
            proc.wait(lambda: want in proc.stderr(), "stderr line %r" % want)
        if not t.check("the metrics sink logs its address", listening):
            return

        def text_format():
            # Scrape until the node families are there; every scrape parses.
            def with_nodes():
                ex = proc.scrape()
                return ex if ex.series("quorumwatch_node_height") else None
            ex = proc.wait(with_nodes, "node heights on /metrics")
            for name, typ in (("quorumwatch_node_height", "gauge"),
                              ("quorumwatch_node_in_consensus", "gauge"),
                              ("quorumwatch_node_seconds_since_commit", "gauge"),
                              ("quorumwatch_node_out_of_consensus", "gauge"),
                              ("quorumwatch_node_stalled", "gauge"),
                              ("quorumwatch_node_banned", "gauge"),
                              ("quorumwatch_node_ban_held", "gauge"),
                              ("quorumwatch_missed_precommits_total", "counter"),
                              ("quorumwatch_chain_head_height", "gauge"),
                              ("quorumwatch_chain_halted", "gauge"),
                              ("quorumwatch_bytes_behind", "gauge"),
                              ("quorumwatch_files_behind", "gauge"),
                              ("quorumwatch_input_outage", "gauge"),
                              ("quorumwatch_ban_outbox_pending", "gauge"),
                              ("quorumwatch_caught_up", "gauge"),
                              ("quorumwatch_prefilter_info", "gauge"),
                              ("quorumwatch_prefilter_fallbacks", "gauge"),
                              ("quorumwatch_component_received_total", "counter"),
                              ("quorumwatch_component_processed_total", "counter"),
                              ("quorumwatch_component_dropped_total", "counter"),
                              ("quorumwatch_component_errors_total", "counter")):
                expect_eq(ex.types.get(name), typ, "TYPE of " + name)
                expect(ex.helps.get(name), "HELP of " + name)
            # One engine is named; the packs' self-check passed on this machine.
            engines = ex.series("quorumwatch_prefilter_info")
            expect_eq(len(engines), 1, "one prefilter_info series")
            expect(engines and dict(engines[0][0]).get("engine") in ("hyperscan", "vectorscan", "re2-set"),
                   "prefilter engine label: %r" % (engines,))
            expect_eq(proc.scrape().get("quorumwatch_prefilter_fallbacks"), 0.0, "prefilter fallbacks")
            # No node of ours signs here: no missed-precommit series.
            expect_eq(ex.series("quorumwatch_missed_precommits_total"), [],
                      "missed precommits of non-signers")
        t.check("/metrics: Content-Type, every line well formed, every family typed", text_format)

        def ready():
            def ok():
                r = proc.get("/readyz")
                return r if r[0] == 200 else None
            status, _, body = proc.wait(ok, "/readyz 200 after catching up")
            expect_eq(body.strip(), "ok", "/readyz body")
            expect_eq(proc.scrape().get("quorumwatch_caught_up"), 1.0, "caught_up gauge")
        t.check("/readyz is 200 once history is read", ready)

        def healthy():
            status, _, body = proc.get("/healthz")
            expect_eq((status, body.strip()), (200, "ok"), "/healthz")
            status, _, _ = proc.get("/no-such-page")
            expect_eq(status, 404, "an unknown path")
        t.check("/healthz is 200 while status snapshots arrive", healthy)

        def in_consensus():
            def both():
                ex = proc.scrape()
                for pod in (ACTIVE, STALLER):
                    expect_eq(ex.get("quorumwatch_node_in_consensus", **node_labels(pod)), 1.0,
                              pod + " in_consensus")
                    expect_eq(ex.get("quorumwatch_node_stalled", **node_labels(pod)), 0.0,
                              pod + " stalled")
                    h = ex.get("quorumwatch_node_height", **node_labels(pod))
                    expect(h is not None and h >= 102, "%s height %r" % (pod, h))
                    age = ex.get("quorumwatch_node_seconds_since_commit", **node_labels(pod))
                    expect(age is not None and 0 <= age < 5, "%s seconds_since_commit %r"
                           % (pod, age))
                expect_eq(ex.get("quorumwatch_chain_halted", chain=CHAIN), 0.0, "chain_halted")
                expect_eq(ex.get("quorumwatch_input_outage"), 0.0, "input_outage")
                return True
            proc.wait(both, "both nodes in consensus")
        t.check("both nodes are in consensus, with a recent commit", in_consensus)

        def used_port():
            other = Proc(os.path.join(rt.TMP, "second"), cluster, port)
            try:  # the whole of its stderr, once it has exited
                r = subprocess.run([rt.BIN, "run", "-c", other.cfg], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   timeout=DEADLINE)
            except subprocess.TimeoutExpired as e:
                tail = (e.stderr or b"").decode("utf-8", "replace")[-400:]
                raise Failure("a second instance on port %d still runs after %.0f s; stderr: %r"
                              % (port, DEADLINE, tail))
            rc, err = r.returncode, r.stderr.decode("utf-8", "replace")
            expect_eq(rc, 1, "exit status of an instance whose port is used (stderr: %r)" % err)
            with open(other.cfg) as f:
                line = 1 + [i for i, l in enumerate(f) if "type: metrics" in l][0]
            want = "%s:%d: cannot listen on 127.0.0.1:%d: Address already in use" % (
                other.cfg, line, port)
            expect(want in err, "want %r in stderr %r" % (want, err))
            status, _, _ = proc.get("/healthz")
            expect_eq(status, 200, "/healthz of the first instance afterwards")
        t.check("a used port is refused at start: exit 1, file:line and reason", used_port)

        def reload_to_used_port():
            # SIGHUP to a configuration whose metrics port is taken: the new
            # one cannot start, the running one goes on serving.
            busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                busy.bind(("127.0.0.1", 0))
                busy.listen(1)
                busy_port = busy.getsockname()[1]
                n_err = len(proc.err_lines)
                proc.write_config(stall="%ds" % STALL_S, checkpoint="1s",
                                  extra='  - {type: metrics, listen: "127.0.0.1:%d"}\n'
                                  % busy_port)
                proc.signal(signal.SIGHUP)
                proc.wait(lambda: any("running the previous one again" in l
                                      for l in proc.err_lines[n_err:]),
                          "the reload is refused and the previous configuration runs again")
                expect(any("cannot listen on 127.0.0.1:%d" % busy_port in l
                           for l in proc.err_lines[n_err:]),
                       "the reason is logged: %r" % proc.err_lines[n_err:])
                proc.wait(lambda: proc.get("/healthz")[0] == 200,
                          "/healthz on the original port after the refused reload")
                expect(proc.alive(), "the instance still runs")
            finally:
                busy.close()
                proc.write_config(stall="%ds" % STALL_S, checkpoint="1s",
                                  extra='  - {type: metrics, listen: "127.0.0.1:%d"}\n' % port)
        t.check("a reload whose new sink cannot start keeps the previous configuration",
                reload_to_used_port)

        def stall():
            last = cluster.pause(STALLER)

            def stalled():
                ex = proc.scrape()
                b = node_labels(STALLER)
                expect_eq(ex.get("quorumwatch_node_stalled", **b), 1.0, STALLER + " stalled")
                return ex
            ex = proc.wait(stalled, STALLER + " stalled on /metrics")
            b, a = node_labels(STALLER), node_labels(ACTIVE)
            expect_eq(ex.get("quorumwatch_node_in_consensus", **b), 0.0, STALLER + " in_consensus")
            expect_eq(ex.get("quorumwatch_node_out_of_consensus", **b), 1.0,
                      STALLER + " out_of_consensus")
            expect_eq(ex.get("quorumwatch_node_height", **b), float(last), STALLER + " height")
            age = ex.get("quorumwatch_node_seconds_since_commit", **b)
            expect(age is not None and STALL_S - 0.5 <= age < DEADLINE + 10,
                   "%s seconds_since_commit %r" % (STALLER, age))
            expect_eq(ex.get("quorumwatch_node_in_consensus", **a), 1.0, ACTIVE + " in_consensus")
            expect_eq(ex.get("quorumwatch_node_stalled", **a), 0.0, ACTIVE + " stalled")
            expect_eq(ex.get("quorumwatch_chain_halted", chain=CHAIN), 0.0, "chain_halted")
            # The event is counted by kind, severity and chain.
            proc.wait(lambda: ex_count(proc, "node_stalled", "warning") >= 1 and
                      any(e.get("event") == "node_stalled" and e.get("node") == STALLER
                          for e in proc.events()),
                      "node_stalled in events.jsonl and events_total")
        t.check("a node that stops committing shows stalled 1, in_consensus 0", stall)

        def heights():
            last = cluster.pause(ACTIVE)
            cluster.stop()
            want = {p: float(h) for p, (h, _) in cluster.snapshot().items()}

            def equal():
                ex = proc.scrape()
                got = {p: ex.get("quorumwatch_node_height", **node_labels(p)) for p in want}
                expect_eq(got, want, "node heights")
                expect_eq(ex.get("quorumwatch_chain_head_height", chain=CHAIN), float(last),
                          "chain_head_height")
                return True
            proc.wait(equal, "heights on /metrics equal to the logs'")
        t.check("node heights equal what the logs committed", heights)

        def source_counters():
            lines = sum(r for _, r in cluster.snapshot().values())

            def counted():
                ex = proc.scrape()
                got = {}
                for kind, comp in (("source", "file"), ("stage", "match"), ("stage", "detect")):
                    got[comp] = ex.get("quorumwatch_component_received_total",
                                       kind=kind, component=comp)
                    expect(got[comp] is not None,
                           "no quorumwatch_component_received_total{kind=%r,component=%r}"
                           % (kind, comp))
                # Every line written is one record read, matched, and one
                # block_committed signal for the detector.
                expect_eq(got, {"file": lines, "match": lines, "detect": lines},
                          "received_total by component (lines written: %d)" % lines)
                expect_eq(ex.get("quorumwatch_component_processed_total",
                                 kind="source", component="file"), float(lines),
                          "source processed_total")
                for comp in ("file",):
                    expect_eq(ex.get("quorumwatch_component_dropped_total",
                                     kind="source", component=comp), 0.0, "source dropped_total")
                return True
            proc.wait(counted, "component counters equal to the lines written")
        t.check("source and stage counters count the lines written", source_counters)

        def sink_counters():
            def counted():
                events = proc.events()
                ex = proc.scrape()
                me = {"kind": "sink", "component": "metrics"}
                got = ex.get("quorumwatch_component_received_total", **me)
                expect_eq(got, float(len(events)), "metrics sink received_total vs events.jsonl")
                total = sum(v for _, v in ex.series("quorumwatch_events_total"))
                expect_eq(total, float(len(events)), "sum of quorumwatch_events_total")
                for labels, v in ex.series("quorumwatch_events_total"):
                    n = sum(1 for e in events if e.get("event") == labels.get("event") and
                            e.get("severity") == labels.get("severity") and
                            e.get("chain") == labels.get("chain"))
                    expect_eq(v, float(n), "events_total%r" % labels)
                served = ex.get("quorumwatch_component_processed_total", **me)
                # This scrape is counted after it was rendered.
                expect(served is not None and served >= proc.scrapes - 1 and served >= 1,
                       "metrics sink processed_total %r after %d scrapes" % (served, proc.scrapes))
                expect_eq(ex.get("quorumwatch_component_errors_total", **me), 0.0,
                          "metrics sink errors_total")
                return True
            proc.wait(counted, "metrics sink counters")
        t.check("the metrics sink counts events and scrapes", sink_counters)

        def stop():
            proc.stop()  # exit status 0 within DEADLINE
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                refused = s.connect_ex(("127.0.0.1", port)) != 0
            finally:
                s.close()
            expect(refused, "port %d still accepts connections after exit" % port)
        t.check("SIGTERM: exit 0 and the port is closed", stop)
    finally:
        try:
            cluster.stop()
        except Failure:
            pass  # a writer error fails the check that stops the writer
        proc.cleanup()


def ex_count(proc, event, severity):
    ex = proc.scrape()
    v = ex.get("quorumwatch_events_total", event=event, severity=severity, chain=CHAIN)
    return v or 0


def self_test_parser(t):
    """The strict reader refuses what it must refuse."""
    def check():
        good = ('# HELP a_total Help with \\\\ and \\n.\n# TYPE a_total counter\n'
                'a_total{x="q\\"\\\\\\n",y=""} 1.5e3\na_total 2 1700000000000\n'
                '# TYPE b gauge\nb NaN\nb{z="1",} -Inf\n')
        ex = Exposition(good)
        expect_eq(ex.get("a_total", x='q"\\\n', y=""), 1500.0, "escaped label")
        expect_eq(ex.helps["a_total"], "Help with \\ and \n.", "escaped help")
        expect(math.isnan(ex.get("b")), "NaN")
        expect_eq(ex.get("b", z="1"), -math.inf, "-Inf with a trailing comma")
        for bad in ("x 1\n",                                   # no TYPE
                    "# TYPE x gauge\nx{a=\"1} 2\n",           # unterminated value
                    "# TYPE x gauge\nx{a=1} 2\n",             # unquoted value
                    "# TYPE x gauge\nx 1\nx 2\n",             # series twice
                    "# TYPE x gauge\nx{a=\"\\t\"} 1\n",       # bad escape
                    "# TYPE x gauge\nx  1\n",                 # two spaces
                    "# TYPE x gauge\nx one\n",                # bad value
                    "# TYPE x gauge\nx 1",                    # no final newline
                    "# TYPE x sometype\n",                    # unknown type
                    "# comment\n",                            # other comments
                    "\n"):                                    # empty line
            try:
                Exposition(bad)
            except Failure:
                continue
            raise Failure("accepted %r" % bad)
    t.check("the strict text-format reader", check)


def main():
    rt.BIN = rt.binary_of(sys.argv, "metrics_test.py")
    if rt.BIN is None:
        return 2
    rt.DEADLINE = DEADLINE  # rt.Proc.stop's wait for the exit after SIGTERM
    rt.TMP = tempfile.mkdtemp(prefix="qw-metrics-")
    t = rt.Runner()
    rt.run_parts(t, (self_test_parser, run_checks))
    return rt.finish(t)


if __name__ == "__main__":
    sys.exit(main())
