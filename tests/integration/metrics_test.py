"""The /metrics, /healthz and /readyz endpoint of `quorumwatch run`
(suite 'integration').

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
the waits are harness.py's. The checks on the running instance are the test
methods of TestEndpoint, run in order on one process.

  python3 -m pytest -q -p no:cacheprovider tests/integration/metrics_test.py --quorumwatch PATH
"""

import math
import re
import signal
import socket
import types
import urllib.error
import urllib.request

import pytest

from harness import CHAIN, NS, STALL_S, Cluster, ClusterProc, Failure, expect

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
# The strict reader refuses what it must refuse

GOOD_EXPOSITION = ('# HELP a_total Help with \\\\ and \\n.\n# TYPE a_total counter\n'
                   'a_total{x="q\\"\\\\\\n",y=""} 1.5e3\na_total 2 1700000000000\n'
                   '# TYPE b gauge\nb NaN\nb{z="1",} -Inf\n')
BAD_EXPOSITIONS = [
    ("x 1\n", "no TYPE"),
    ("# TYPE x gauge\nx{a=\"1} 2\n", "unterminated value"),
    ("# TYPE x gauge\nx{a=1} 2\n", "unquoted value"),
    ("# TYPE x gauge\nx 1\nx 2\n", "series twice"),
    ("# TYPE x gauge\nx{a=\"\\t\"} 1\n", "bad escape"),
    ("# TYPE x gauge\nx  1\n", "two spaces"),
    ("# TYPE x gauge\nx one\n", "bad value"),
    ("# TYPE x gauge\nx 1", "no final newline"),
    ("# TYPE x sometype\n", "unknown type"),
    ("# comment\n", "other comments"),
    ("\n", "empty line"),
]


def test_reader_accepts_the_format():
    """the strict text-format reader: escapes, NaN, -Inf, a trailing comma"""
    ex = Exposition(GOOD_EXPOSITION)
    assert ex.get("a_total", x='q"\\\n', y="") == 1500.0, "escaped label"
    assert ex.helps["a_total"] == "Help with \\ and \n.", "escaped help"
    assert math.isnan(ex.get("b")), "NaN"
    assert ex.get("b", z="1") == -math.inf, "-Inf with a trailing comma"


@pytest.mark.parametrize("bad", [b[0] for b in BAD_EXPOSITIONS], ids=[b[1] for b in BAD_EXPOSITIONS])
def test_reader_refuses(bad):
    """the strict text-format reader refuses a malformed exposition"""
    with pytest.raises(Failure):
        Exposition(bad)


# --------------------------------------------------------------------------
# The process under test


class MetricsProc(ClusterProc):
    """harness.ClusterProc with a metrics sink on 127.0.0.1:port."""

    def __init__(self, binary, root, cluster, port):
        self.port = port
        self.scrapes = 0
        super().__init__(binary, root, cluster, deadline=DEADLINE, stall="%ds" % STALL_S,
                         checkpoint="1s", extra=metrics_sink(port))

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
        assert status == 200, "GET /metrics status"
        assert ctype.startswith("text/plain; version=0.0.4"), \
            "GET /metrics Content-Type %r" % ctype
        self.scrapes += 1
        return Exposition(body)

    def wait(self, pred, what, timeout=None, observe=None, retry=True):
        """ClusterProc.wait, where pred may also fail an assertion (or raise
        OSError) while the condition does not hold yet: the last one is
        reported at the deadline."""
        return super().wait(pred, what, timeout, observe, retry)


def metrics_sink(port):
    return '  - {type: metrics, listen: "127.0.0.1:%d"}\n' % port


def node_labels(pod):
    return {"chain": CHAIN, "namespace": NS, "node": pod}


def ex_count(proc, event, severity):
    ex = proc.scrape()
    v = ex.get("quorumwatch_events_total", event=event, severity=severity, chain=CHAIN)
    return v or 0


# --------------------------------------------------------------------------
# The checks on one running instance, in order


@pytest.fixture(scope="module")
def inst(qw_bin, tmp_path_factory, free_port, request, diagnostics):
    """Two nodes with history (read from the beginning), the writer thread
    running and the instance started with its metrics sink on a free port."""
    root = tmp_path_factory.mktemp("metrics")
    cluster = Cluster(str(root))
    cluster.add(ACTIVE, create=False)
    cluster.add(STALLER, create=False)
    cluster.tick()  # history before the start: read from the beginning
    cluster.tick()
    port = free_port()
    proc = MetricsProc(qw_bin, str(root / "main"), cluster, port)
    diagnostics(request.node, "quorumwatch stderr", lambda: proc.stderr()[-3000:])
    try:
        proc.start()
        cluster.start()
        yield types.SimpleNamespace(cluster=cluster, proc=proc, port=port, root=root, state={})
    finally:
        cluster.stop_quietly()  # a writer error fails the check that stops the writer
        proc.cleanup()


class TestEndpoint:
    def need_listening(self, inst):
        expect("listening" in inst.state, "needs the metrics sink's address (the first check)")

    def test_logs_its_address(self, inst):
        """the metrics sink logs its address"""
        want = "metrics: listening on 127.0.0.1:%d" % inst.port
        inst.proc.wait(lambda: want in inst.proc.stderr(), "stderr line %r" % want)
        inst.state["listening"] = True

    def test_text_format(self, inst):
        """/metrics: Content-Type, every line well formed, every family typed"""
        self.need_listening(inst)
        proc = inst.proc

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
            assert ex.types.get(name) == typ, "TYPE of " + name
            assert ex.helps.get(name), "HELP of " + name
        # One engine is named; the packs' self-check passed on this machine.
        engines = ex.series("quorumwatch_prefilter_info")
        assert len(engines) == 1, "one prefilter_info series"
        assert engines and dict(engines[0][0]).get("engine") in ("hyperscan", "vectorscan", "re2-set"), \
            "prefilter engine label: %r" % (engines,)
        assert proc.scrape().get("quorumwatch_prefilter_fallbacks") == 0.0, "prefilter fallbacks"
        # No node of ours signs here: no missed-precommit series.
        assert ex.series("quorumwatch_missed_precommits_total") == [], \
            "missed precommits of non-signers"

    def test_readyz(self, inst):
        """/readyz is 200 once history is read"""
        self.need_listening(inst)
        proc = inst.proc

        def ok():
            r = proc.get("/readyz")
            return r if r[0] == 200 else None
        status, _, body = proc.wait(ok, "/readyz 200 after catching up")
        assert body.strip() == "ok", "/readyz body"
        assert proc.scrape().get("quorumwatch_caught_up") == 1.0, "caught_up gauge"

    def test_healthz(self, inst):
        """/healthz is 200 while status snapshots arrive"""
        self.need_listening(inst)
        proc = inst.proc
        status, _, body = proc.get("/healthz")
        assert (status, body.strip()) == (200, "ok"), "/healthz"
        status, _, _ = proc.get("/no-such-page")
        assert status == 404, "an unknown path"

    def test_in_consensus(self, inst):
        """both nodes are in consensus, with a recent commit"""
        self.need_listening(inst)
        proc = inst.proc

        def both():
            ex = proc.scrape()
            for pod in (ACTIVE, STALLER):
                assert ex.get("quorumwatch_node_in_consensus", **node_labels(pod)) == 1.0, \
                    pod + " in_consensus"
                assert ex.get("quorumwatch_node_stalled", **node_labels(pod)) == 0.0, \
                    pod + " stalled"
                h = ex.get("quorumwatch_node_height", **node_labels(pod))
                assert h is not None and h >= 102, "%s height %r" % (pod, h)
                age = ex.get("quorumwatch_node_seconds_since_commit", **node_labels(pod))
                assert age is not None and 0 <= age < 5, "%s seconds_since_commit %r" % (pod, age)
            assert ex.get("quorumwatch_chain_halted", chain=CHAIN) == 0.0, "chain_halted"
            assert ex.get("quorumwatch_input_outage") == 0.0, "input_outage"
            return True
        proc.wait(both, "both nodes in consensus")

    def test_used_port_refused(self, inst, qw):
        """a used port is refused at start: exit 1, file:line and reason"""
        self.need_listening(inst)
        proc, port = inst.proc, inst.port
        other = MetricsProc(proc.binary, str(inst.root / "second"), inst.cluster, port)
        # the whole of its stderr, once it has exited
        r = qw("run", "-c", other.cfg, timeout=DEADLINE)
        rc, err = r.rc, r.stderr
        assert rc == 1, "exit status of an instance whose port is used (stderr: %r)" % err
        with open(other.cfg) as f:
            line = 1 + [i for i, l in enumerate(f) if "type: metrics" in l][0]
        want = "%s:%d: cannot listen on 127.0.0.1:%d: Address already in use" % (
            other.cfg, line, port)
        assert want in err, "want %r in stderr %r" % (want, err)
        status, _, _ = proc.get("/healthz")
        assert status == 200, "/healthz of the first instance afterwards"

    def test_reload_to_used_port(self, inst):
        """a reload whose new sink cannot start keeps the previous configuration"""
        self.need_listening(inst)
        proc = inst.proc
        # SIGHUP to a configuration whose metrics port is taken: the new
        # one cannot start, the running one goes on serving.
        busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            busy_port = busy.getsockname()[1]
            n_err = len(proc.err_lines)
            proc.write_config(stall="%ds" % STALL_S, checkpoint="1s", extra=metrics_sink(busy_port))
            proc.signal(signal.SIGHUP)
            proc.wait(lambda: any("running the previous one again" in l
                                  for l in proc.err_lines[n_err:]),
                      "the reload is refused and the previous configuration runs again")
            assert any("cannot listen on 127.0.0.1:%d" % busy_port in l
                       for l in proc.err_lines[n_err:]), \
                "the reason is logged: %r" % proc.err_lines[n_err:]
            proc.wait(lambda: proc.get("/healthz")[0] == 200,
                      "/healthz on the original port after the refused reload")
            assert proc.alive(), "the instance still runs"
        finally:
            busy.close()
            proc.write_config(stall="%ds" % STALL_S, checkpoint="1s", extra=metrics_sink(inst.port))

    def test_stall(self, inst):
        """a node that stops committing shows stalled 1, in_consensus 0"""
        self.need_listening(inst)
        proc = inst.proc
        last = inst.cluster.set_active(STALLER, False)[0]

        def stalled():
            ex = proc.scrape()
            b = node_labels(STALLER)
            assert ex.get("quorumwatch_node_stalled", **b) == 1.0, STALLER + " stalled"
            return ex
        ex = proc.wait(stalled, STALLER + " stalled on /metrics")
        b, a = node_labels(STALLER), node_labels(ACTIVE)
        assert ex.get("quorumwatch_node_in_consensus", **b) == 0.0, STALLER + " in_consensus"
        assert ex.get("quorumwatch_node_out_of_consensus", **b) == 1.0, \
            STALLER + " out_of_consensus"
        assert ex.get("quorumwatch_node_height", **b) == float(last), STALLER + " height"
        age = ex.get("quorumwatch_node_seconds_since_commit", **b)
        assert age is not None and STALL_S - 0.5 <= age < DEADLINE + 10, \
            "%s seconds_since_commit %r" % (STALLER, age)
        assert ex.get("quorumwatch_node_in_consensus", **a) == 1.0, ACTIVE + " in_consensus"
        assert ex.get("quorumwatch_node_stalled", **a) == 0.0, ACTIVE + " stalled"
        assert ex.get("quorumwatch_chain_halted", chain=CHAIN) == 0.0, "chain_halted"
        # The event is counted by kind, severity and chain.
        proc.wait(lambda: ex_count(proc, "node_stalled", "warning") >= 1 and
                  any(e.get("event") == "node_stalled" and e.get("node") == STALLER
                      for e in proc.events()),
                  "node_stalled in events.jsonl and events_total")

    def test_heights(self, inst):
        """node heights equal what the logs committed"""
        self.need_listening(inst)
        proc, cluster = inst.proc, inst.cluster
        last = cluster.set_active(ACTIVE, False)[0]
        cluster.stop()
        want = {p: float(h) for p, (h, _) in cluster.snapshot().items()}

        def equal():
            ex = proc.scrape()
            got = {p: ex.get("quorumwatch_node_height", **node_labels(p)) for p in want}
            assert got == want, "node heights"
            assert ex.get("quorumwatch_chain_head_height", chain=CHAIN) == float(last), \
                "chain_head_height"
            return True
        proc.wait(equal, "heights on /metrics equal to the logs'")

    def test_source_counters(self, inst):
        """source and stage counters count the lines written"""
        self.need_listening(inst)
        proc = inst.proc
        lines = sum(r for _, r in inst.cluster.snapshot().values())

        def counted():
            ex = proc.scrape()
            got = {}
            for kind, comp in (("source", "file"), ("stage", "match"), ("stage", "detect")):
                got[comp] = ex.get("quorumwatch_component_received_total",
                                   kind=kind, component=comp)
                assert got[comp] is not None, \
                    "no quorumwatch_component_received_total{kind=%r,component=%r}" % (kind, comp)
            # Every line written is one record read, matched, and one
            # block_committed signal for the detector.
            assert got == {"file": lines, "match": lines, "detect": lines}, \
                "received_total by component (lines written: %d)" % lines
            assert ex.get("quorumwatch_component_processed_total",
                          kind="source", component="file") == float(lines), \
                "source processed_total"
            for comp in ("file",):
                assert ex.get("quorumwatch_component_dropped_total",
                              kind="source", component=comp) == 0.0, "source dropped_total"
            return True
        proc.wait(counted, "component counters equal to the lines written")

    def test_sink_counters(self, inst):
        """the metrics sink counts events and scrapes"""
        self.need_listening(inst)
        proc = inst.proc

        def counted():
            events = proc.events()
            ex = proc.scrape()
            me = {"kind": "sink", "component": "metrics"}
            got = ex.get("quorumwatch_component_received_total", **me)
            assert got == float(len(events)), "metrics sink received_total vs events.jsonl"
            total = sum(v for _, v in ex.series("quorumwatch_events_total"))
            assert total == float(len(events)), "sum of quorumwatch_events_total"
            for labels, v in ex.series("quorumwatch_events_total"):
                n = sum(1 for e in events if e.get("event") == labels.get("event") and
                        e.get("severity") == labels.get("severity") and
                        e.get("chain") == labels.get("chain"))
                assert v == float(n), "events_total%r" % labels
            served = ex.get("quorumwatch_component_processed_total", **me)
            # This scrape is counted after it was rendered.
            assert served is not None and served >= proc.scrapes - 1 and served >= 1, \
                "metrics sink processed_total %r after %d scrapes" % (served, proc.scrapes)
            assert ex.get("quorumwatch_component_errors_total", **me) == 0.0, \
                "metrics sink errors_total"
            return True
        proc.wait(counted, "metrics sink counters")

    def test_sigterm_closes_port(self, inst):
        """SIGTERM: exit 0 and the port is closed"""
        self.need_listening(inst)
        inst.proc.stop()  # exit status 0 within DEADLINE
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            refused = s.connect_ex(("127.0.0.1", inst.port)) != 0
        finally:
            s.close()
        assert refused, "port %d still accepts connections after exit" % inst.port
