"""packaging/prometheus and packaging/grafana against a real Prometheus
(suite 'integration').

1. `promtool check rules` and `promtool test rules` on
   packaging/prometheus/quorumwatch-rules.yml and its unit tests.
2. The dashboard packaging/grafana/quorumwatch.json is well formed: schema
   version, the `datasource`, `chain` and `node` variables, every panel on
   the `${datasource}` variable with at least one query.
3. A real Prometheus (Debian's package `prometheus`, /usr/bin/prometheus) on
   127.0.0.1 (a free port, its configuration and storage in a temporary
   folder, scrape and rule evaluation every second, the rules file loaded)
   scrapes a running `quorumwatch run`. quorumwatch tails Kubernetes-named CRI
   logs of one CometBFT chain written by harness.Cluster: val-a keeps
   committing, val-b stops at the start, so it stalls, goes out of consensus
   and is banned (stall_after 2s, ban_after 3s); both are marked signers
   without vote lines, so they miss precommits. Its sinks: jsonl, metrics,
   an Alertmanager (the real one of the `alertmanager` fixture) and a ban
   sink whose exec action is /bin/true. Then:
   - every metric name the rules and the dashboard use exists in Prometheus
     (/api/v1/label/__name__/values);
   - every rule of the file loads and evaluates without error, and every
     recording rule has produced data;
   - the variables' label_values queries give the chain and the nodes;
   - every panel query, with $chain and $node set to the chain and the
     stalled node and $__rate_interval, $__interval and $__range set to 1m,
     gives data (/api/v1/query).

Synchronisation is never a sleep: every wait polls the Prometheus HTTP API
(or the process) every 50 ms until its condition holds or a generous
deadline passes. The log writer, the process and the waits are harness.py's.

  python3 -m pytest -q -p no:cacheprovider tests/integration/packaging_prometheus_test.py \\
      --quorumwatch PATH
"""

import json
import os
import re
import subprocess
import types
import urllib.parse

import pytest
import yaml

from harness import (CHAIN, NS, Cluster, QwProcess, config_text, expect, file_tail, free_port,
                     http_get, stop_process, wait_for)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RULES = os.path.join(ROOT, "packaging", "prometheus", "quorumwatch-rules.yml")
RULES_TEST = os.path.join(ROOT, "packaging", "prometheus", "quorumwatch-rules.test.yml")
DASHBOARD = os.path.join(ROOT, "packaging", "grafana", "quorumwatch.json")

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
JOB = "quorumwatch"  # the job name the rules expect
DEADLINE = 45.0  # generous: two busy cores, sanitizer builds
ACTIVE = "val-a"  # keeps committing
STALLER = "val-b"  # stops at the start: stalled, out of consensus, banned
# What the dashboard's template variables are set to for its queries.
VARIABLES = {"chain": CHAIN, "node": STALLER, "__rate_interval": "1m", "__interval": "1m",
             "__range": "1m"}

# PromQL words that look like metric names in an expression.
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "by", "without", "on", "ignoring", "group_left",
    "group_right", "and", "or", "unless", "bool", "offset", "rate", "increase", "irate", "deriv",
    "delta", "idelta", "time", "absent", "vector", "scalar", "topk", "bottomk", "quantile",
    "count_values", "stddev", "stdvar", "group", "label_replace", "label_join",
    "changes", "resets", "max_over_time", "min_over_time", "avg_over_time", "sum_over_time",
    "count_over_time", "last_over_time", "present_over_time", "absent_over_time",
    "histogram_quantile", "clamp_min", "clamp_max", "abs", "ceil", "floor", "round", "timestamp",
    "predict_linear", "sort", "sort_desc", "inf", "nan", "e",
}


# --------------------------------------------------------------------------
# Reading the files


def rules_doc():
    with open(RULES, encoding="utf-8") as f:
        return yaml.safe_load(f)


def dashboard():
    with open(DASHBOARD, encoding="utf-8") as f:
        return json.load(f)


def rule_exprs():
    """[(rule name, expr)] of every rule of the file."""
    return [(r.get("alert") or r.get("record"), r["expr"])
            for g in rules_doc()["groups"] for r in g["rules"]]


def recording_rules():
    return [r["record"] for g in rules_doc()["groups"] for r in g["rules"] if "record" in r]


def all_panels(d):
    """Every panel, those inside collapsed rows too."""
    out = []
    for p in d.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def panel_queries(d):
    """[(panel title, refId, expr, instant)] of every panel query."""
    out = []
    for p in all_panels(d):
        for t in p.get("targets", []):
            out.append((p["title"], t.get("refId"), t["expr"], bool(t.get("instant"))))
    return out


def variable_queries(d):
    """{name: query} of the dashboard's query variables."""
    out = {}
    for v in d["templating"]["list"]:
        if v.get("type") == "query":
            q = v["query"]
            out[v["name"]] = q["query"] if isinstance(q, dict) else q
    return out


def substitute(expr):
    """expr with $name / ${name} / ${name:format} replaced from VARIABLES."""
    def rep(m):
        name = m.group(1) or m.group(2)
        expect(name in VARIABLES, "unknown variable $%s in %r" % (name, expr))
        return VARIABLES[name]
    out = re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", rep, expr)
    expect("$" not in out, "a variable left in %r" % out)
    return out


def metric_names(expr):
    """The metric names an expression selects: identifiers outside label
    matchers, strings and range brackets that are not PromQL words."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    e = re.sub(r"\{[^}]*\}", "{}", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "[]", e)  # ranges
    e = re.sub(r"\boffset\s+-?\w+", " ", e)  # offsets
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        w = m.group(0)
        if w.lower() in PROMQL_WORDS:
            continue
        rest = e[m.end():].lstrip()
        if rest.startswith("(") and w not in ("up",):  # a function call
            continue
        names.add(w)
    return names


def test_metric_names_reader():
    """the expression reader finds metric names and only them"""
    assert metric_names('max by (chain) (a_b{x="y z", k=~"$chain"}) - on (chain) group_right '
                        'sum by (n) (rate(c_total{q="1"}[$__rate_interval]))') == {"a_b", "c_total"}
    assert metric_names("absent(up{job=\"quorumwatch\"})") == {"up"}
    assert metric_names("time() - x_seconds > 120 unless on (job) (y == 1)") == {"x_seconds", "y"}
    assert metric_names("quorumwatch:node_lag:blocks") == {"quorumwatch:node_lag:blocks"}
    assert metric_names("m offset 5m / ignoring (a) n") == {"m", "n"}
    assert substitute('f{chain=~"$chain", node=~"${node}"}[$__rate_interval]') == \
        'f{chain=~"%s", node=~"%s"}[1m]' % (CHAIN, STALLER)


def used_metric_names():
    """{metric name: [where]} over the rules (recording rules' own outputs
    left out) and the dashboard's panels and variables."""
    records = set(recording_rules())
    used = {}
    for name, expr in rule_exprs():
        for m in metric_names(expr) - records:
            used.setdefault(m, []).append("rule " + name)
    d = dashboard()
    for title, ref, expr, _ in panel_queries(d):
        for m in metric_names(expr):
            used.setdefault(m, []).append("panel %r %s" % (title, ref))
    for name, q in variable_queries(d).items():
        m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", q)
        expect(m is not None, "variable %s: not a label_values(...) query: %r" % (name, q))
        for n in metric_names(m.group(1)):
            used.setdefault(n, []).append("variable " + name)
    return used


# --------------------------------------------------------------------------
# 1. promtool


@pytest.fixture(scope="session")
def promtool():
    if not os.access(PROMTOOL, os.X_OK):
        pytest.fail("promtool is not installed (%s missing): install Debian's package prometheus "
                    "(tools/setup and CI do)" % PROMTOOL, pytrace=False)
    return PROMTOOL


def run_promtool(promtool, *args):
    cp = subprocess.run([promtool] + list(args), cwd=os.path.dirname(RULES),
                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        timeout=120)
    return cp.returncode, cp.stdout.decode("utf-8", "replace")


def test_promtool_check_rules(promtool):
    """promtool check rules accepts the rules file"""
    rc, out = run_promtool(promtool, "check", "rules", RULES)
    assert rc == 0, "promtool check rules:\n" + out
    assert "SUCCESS" in out, out


def test_promtool_test_rules(promtool):
    """promtool test rules: the rules' unit tests pass"""
    rc, out = run_promtool(promtool, "test", "rules", RULES_TEST)
    assert rc == 0, "promtool test rules:\n" + out


def test_every_alert_is_tested():
    """every alerting rule is tested firing and not firing; every recording rule is tested"""
    with open(RULES_TEST, encoding="utf-8") as f:
        t = yaml.safe_load(f)
    firing, quiet, exprs = set(), set(), set()
    for case in t["tests"]:
        for a in case.get("alert_rule_test", []):
            (firing if a.get("exp_alerts") else quiet).add(a["alertname"])
        for p in case.get("promql_expr_test", []):
            exprs.add(p["expr"].strip())
    alerts = {r["alert"] for g in rules_doc()["groups"] for r in g["rules"] if "alert" in r}
    assert alerts - firing == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested not firing"
    assert set(recording_rules()) - exprs == set(), "recording rules not tested"


def test_rules_carry_what_operators_need():
    """every alert has for:, a severity and summary/description annotations"""
    for g in rules_doc()["groups"]:
        for r in g["rules"]:
            if "alert" not in r:
                continue
            assert r.get("for"), "%s: no for:" % r["alert"]
            assert r.get("labels", {}).get("severity") in ("warning", "critical"), \
                "%s: severity" % r["alert"]
            ann = r.get("annotations", {})
            assert ann.get("summary") and ann.get("description"), "%s: annotations" % r["alert"]
            assert "Operator:" in ann["description"], "%s: no operator's steps" % r["alert"]


# --------------------------------------------------------------------------
# 2. The dashboard, statically


def test_dashboard_well_formed():
    """the dashboard: schema, variables, datasource, ids, queries"""
    d = dashboard()
    assert 36 <= d.get("schemaVersion", 0) <= 41, "schemaVersion %r" % d.get("schemaVersion")
    assert d.get("uid") and d.get("title"), "uid and title"
    names = {v["name"]: v for v in d["templating"]["list"]}
    assert names.get("datasource", {}).get("type") == "datasource" and \
        names["datasource"].get("query") == "prometheus", "the datasource variable"
    for v in ("chain", "node"):
        assert names.get(v, {}).get("type") == "query", "variable %s" % v
        assert names[v]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, \
            "variable %s datasource" % v
    ids = [p["id"] for p in all_panels(d)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for p in all_panels(d):
        if p["type"] == "row":
            continue
        assert p.get("datasource") == {"type": "prometheus", "uid": "${datasource}"}, \
            "panel %r datasource" % p["title"]
        assert p.get("targets"), "panel %r has no query" % p["title"]
        for t in p["targets"]:
            assert t.get("expr") and t.get("refId"), "panel %r: a target without expr" % p["title"]
    exprs = " ".join(e for _, _, e, _ in panel_queries(d))
    for v in ("$chain", "$node"):
        assert v in exprs, "no panel uses %s" % v


# --------------------------------------------------------------------------
# 3. A real Prometheus scraping a running quorumwatch


class Prometheus:
    """Debian's prometheus on 127.0.0.1:port, scraping `targets` every
    second and evaluating `rules` every second; storage in root."""

    def __init__(self, root, targets, rules):
        self.root = root
        self.port = free_port()
        self.cfg = os.path.join(root, "prometheus.yml")
        self.log_path = os.path.join(root, "prometheus.log")
        with open(self.cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "  evaluation_interval: 1s\n"
                    "rule_files:\n  - %s\n"
                    "scrape_configs:\n  - job_name: %s\n    static_configs:\n"
                    "      - targets: [%s]\n" % (json.dumps(rules), JOB,
                                                 ", ".join('"%s"' % t for t in targets)))
        self.log = open(self.log_path, "ab")
        self.p = subprocess.Popen(
            [PROMETHEUS, "--config.file=" + self.cfg,
             "--storage.tsdb.path=" + os.path.join(root, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def log_tail(self):
        return file_tail(self.log_path, 2000)

    def alive_or_fail(self):
        expect(self.p.poll() is None, "prometheus exited with status %r; log:\n%s"
               % (self.p.poll(), self.log_tail()))

    def ready(self):
        self.alive_or_fail()
        try:
            return http_get(self.url + "/-/ready", timeout=2)[0] == 200
        except OSError:
            return False

    def api(self, path, **params):
        """The `data` of GET /api/v1/path?params (status success required)."""
        self.alive_or_fail()
        q = urllib.parse.urlencode(params, doseq=True)
        status, body = http_get(self.url + "/api/v1/" + path + ("?" + q if q else ""), timeout=10)
        expect(status == 200, "GET /api/v1/%s %r: status %d: %s" % (path, params, status, body[:500]))
        doc = json.loads(body)
        expect(doc.get("status") == "success", "GET /api/v1/%s: %s" % (path, body[:500]))
        return doc["data"]

    def query(self, expr):
        return self.api("query", query=expr)["result"]

    def stop(self):
        stop_process(self.p)
        self.log.close()


def qw_config(cluster, root, port, am_url):
    cfg = config_text(cluster.dir, root, checkpoint="1s",
                      chain_extra=", ban_after: 3s, stable_after: 1s, unban_after: 2s",
                      extra=('  - {type: metrics, listen: "127.0.0.1:%d"}\n'
                             '  - {type: alertmanager, urls: ["%s"], resend_interval: 1s, timeout: 5s}\n'
                             '  - {type: ban, action: exec, command: ["/bin/true"], timeout: 10s}\n'
                             % (port, am_url)))
    # Both nodes sign (and log no votes): they miss precommits.
    nodes = "nodes:\n  %s/%s: {signer: true}\n  %s/%s: {signer: true}\n" % (NS, ACTIVE, NS, STALLER)
    expect(cfg.count("\nstate_dir:") == 1, "configuration layout")
    return cfg.replace("\nstate_dir:", "\n" + nodes + "state_dir:")


@pytest.fixture(scope="module")
def prometheus_bin():
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.fail("Prometheus is not installed (%s missing): install Debian's package prometheus "
                    "(tools/setup and CI do)" % PROMETHEUS, pytrace=False)
    return PROMETHEUS


@pytest.fixture(scope="module")
def stack(qw_bin, prometheus_bin, alertmanager, tmp_path_factory, request, diagnostics):
    """quorumwatch running over the cluster's logs, scraped by Prometheus,
    once the target is up and the nodes' series are stored."""
    root = tmp_path_factory.mktemp("packaging")
    am = alertmanager("am")
    cluster = Cluster(str(root))
    cluster.add(ACTIVE, create=False)
    cluster.add(STALLER, create=False)
    cluster.tick()
    cluster.tick()
    cluster.set_active(STALLER, False)  # stalls from the start
    port = free_port()
    proc = QwProcess(qw_bin, str(root / "qw"), deadline=DEADLINE)
    proc.write_config_text(qw_config(cluster, proc.root, port, am.url))
    diagnostics(request.node, "quorumwatch stderr", lambda: proc.stderr()[-3000:])
    prom = None
    try:
        proc.start()
        cluster.start()
        proc.wait(lambda: "metrics: listening on 127.0.0.1:%d" % port in proc.stderr(),
                  "quorumwatch's metrics sink listening")
        os.makedirs(str(root / "prometheus"))
        prom = Prometheus(str(root / "prometheus"), ["127.0.0.1:%d" % port], RULES)
        diagnostics(request.node, "prometheus log", prom.log_tail)
        wait_for(prom.ready, "prometheus ready on %s" % prom.url, DEADLINE, observe=prom.log_tail)

        def target_up():
            ts = prom.api("targets")["activeTargets"]
            expect(len(ts) == 1, "one active target: %r" % ts)
            expect(ts[0]["health"] == "up", "target health %r (%s)"
                   % (ts[0]["health"], ts[0].get("lastError")))
            return True
        proc.wait(target_up, "the quorumwatch target up in Prometheus", retry=True)
        proc.wait(lambda: prom.query('quorumwatch_node_height{node="%s"}' % STALLER),
                  "node heights stored in Prometheus", retry=True)
        yield types.SimpleNamespace(prom=prom, proc=proc, cluster=cluster, am=am, port=port)
    finally:
        cluster.stop_quietly()
        proc.cleanup()
        if prom is not None:
            prom.stop()


def wait_quietly(proc, pred, what):
    """proc.wait(pred) (retrying on failed checks): False at the deadline,
    for a failure message listing everything still missing."""
    try:
        proc.wait(pred, what, retry=True)
        return True
    except AssertionError:
        if not proc.alive():
            raise
        return False


def test_metrics_exist(stack):
    """every metric the rules and the dashboard use exists in Prometheus"""
    used = used_metric_names()
    assert len(used) >= 20, "metric names found in the files: %r" % sorted(used)
    state = {}

    def all_there():
        have = set(stack.prom.api("label/__name__/values"))
        state["missing"] = {m: w for m, w in used.items() if m not in have}
        return not state["missing"]
    if not wait_quietly(stack.proc, all_there, "every metric used stored in Prometheus"):
        pytest.fail("metrics used but not in Prometheus (not exported by quorumwatch?):\n  " +
                    "\n  ".join("%s  (%s)" % (m, ", ".join(w)) for m, w in
                                sorted(state["missing"].items())), pytrace=False)


def test_rules_evaluate(stack):
    """every rule loads and evaluates in Prometheus; recording rules give data"""
    want = {name for name, _ in rule_exprs()}

    def loaded():
        groups = stack.prom.api("rules")["groups"]
        got = {r["name"]: r for g in groups for r in g["rules"]}
        expect(set(got) == want, "rules loaded: %r, want %r" % (sorted(got), sorted(want)))
        bad = {n: r.get("lastError") for n, r in got.items() if r.get("health") != "ok"}
        expect(not bad, "rules not healthy: %r" % bad)
        return True
    stack.proc.wait(loaded, "every rule loaded and evaluated ok", retry=True)
    for rec in recording_rules():
        stack.proc.wait(lambda: stack.prom.query(rec), "data for recording rule %s" % rec,
                        retry=True)
    # The stalled node's lag, as recorded, is its distance to the head.
    lag = stack.prom.query('quorumwatch:node_lag:blocks{node="%s"}' % STALLER)
    assert lag and float(lag[0]["value"][1]) > 0, "lag of the stalled node: %r" % lag


def test_variables(stack):
    """the chain and node variables list the chain and its nodes"""
    d = dashboard()
    qs = variable_queries(d)
    want = {"chain": {CHAIN}, "node": {ACTIVE, STALLER}}
    for name, q in qs.items():
        m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", q)
        selector, label = substitute(m.group(1)), m.group(2)

        def values():
            series = stack.prom.api("series", **{"match[]": selector})
            got = {s.get(label) for s in series} - {None}
            expect(want.get(name, set()) <= got, "variable %s: values %r" % (name, sorted(got)))
            return got
        stack.proc.wait(values, "values of variable %s (%s)" % (name, q), retry=True)


def test_panel_queries_have_data(stack):
    """every panel query gives data for the chain and the stalled node"""
    queries = panel_queries(dashboard())
    assert len(queries) >= 20, "panel queries: %d" % len(queries)
    pending = {(t, r): substitute(e) for t, r, e, _ in queries}
    empty = {}

    def all_data():
        for key, expr in list(pending.items()):
            res = stack.prom.query(expr)
            if res:
                del pending[key]
            else:
                empty[key] = expr
        return not pending
    if not wait_quietly(stack.proc, all_data, "data for every panel query"):
        pytest.fail("panel queries without data:\n  " + "\n  ".join(
            "%r %s: %s" % (t, r, e) for (t, r), e in sorted(pending.items())), pytrace=False)
