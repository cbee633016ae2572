"""Ban controller delivery of `quorumwatch run` (suite 'integration').

A real HTTP ban receiver (http.server on 127.0.0.1, a free port) checks every
request's X-Quorumwatch-Signature with hmac/hashlib and records the
Idempotency-Key. quorumwatch tails Kubernetes-named CRI logs of two nodes of
one CometBFT chain ("committed state" lines): val-a, which is made to stall,
and hb-0, a heartbeat that keeps committing (it keeps the instance's input
alive and is the healthy peer `require_healthy_peer` asks for). The chain's
thresholds are seconds (stall_after 2s, ban_after 3s, stable_after 1s,
unban_after 2s), so a stall becomes a ban about 5 s after val-a's last line.

Checks (README.md "Delivery" and its "Ban controller": outbox, webhook,
exec, secret; docs/PIPELINE.md "Checkpoints"):
  1 a stalled node is banned: signature valid, key present, body fields;
    it recovers and is unbanned
  2 the receiver down for a while, then up: every decision delivered exactly
    once
  3 SIGKILL with a decision in the outbox and not delivered (receiver down);
    restarted with the receiver up: delivered exactly once
  4 exec action: a program failing the first time and succeeding the second
    gets the decision once more, JSON on stdin, node argument, environment
  5 the secret never appears on quorumwatch's stderr
1-3 share one webhook instance (the test methods of TestWebhook, in order);
5 looks at every instance of the module.

Synchronisation is never a bare sleep: every wait polls a condition (the
events file, the outbox, the receiver's records) with a generous deadline.
The log writer, the process and the waits are harness.py's.

  python3 -m pytest -q -p no:cacheprovider tests/integration/ban_test.py --quorumwatch PATH
"""

import glob
import hashlib
import hmac
import http.server
import json
import os
import threading
import types

import pytest

from harness import CHAIN, HB, NS, Cluster, ClusterProc, expect, expect_eq

POD = "val-a"
SECRET = "ban-test-secret-7f3c9a1e5b"
DEADLINE = 40.0  # generous: two busy cores
CHAIN_EXTRA = ", ban_after: 3s, stable_after: 1s, unban_after: 2s"

# --------------------------------------------------------------------------
# Logs: CRI files of CometBFT nodes (harness.Cluster)


def new_cluster(root):
    """val-a and hb-0 commit the next height every WRITE_PERIOD while
    active; both files exist, with a line, before the start."""
    cl = Cluster(root)
    for pod in (POD, HB):
        cl.add(pod, create=False)
    cl.tick()
    return cl


# --------------------------------------------------------------------------
# The ban receiver


class Receiver:
    """An HTTP ban controller on 127.0.0.1:port that can go down and up."""

    def __init__(self, secret, port):
        self.secret = secret.encode()
        self.port = port
        self.lock = threading.Lock()
        self.requests = []  # dicts: key, body (bytes), sig_ok, headers, path
        self.server = None
        self.thread = None

    @property
    def url(self):
        return "http://127.0.0.1:%d/bans" % self.port

    def up(self):
        recv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                sig = self.headers.get("X-Quorumwatch-Signature") or ""
                want = "sha256=" + hmac.new(recv.secret, body, hashlib.sha256).hexdigest()
                rec = {"key": self.headers.get("Idempotency-Key"), "body": body,
                       "sig_ok": hmac.compare_digest(sig, want),
                       "headers": dict(self.headers.items()), "path": self.path}
                with recv.lock:
                    recv.requests.append(rec)
                self.send_response(200 if rec["sig_ok"] else 401)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def down(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(10)
            self.server = None

    def received(self):
        with self.lock:
            return list(self.requests)

    def decisions(self, action=None):
        """(request, body dict) of every request, optionally of one action."""
        out = []
        for r in self.received():
            try:
                b = json.loads(r["body"].decode("utf-8"))
            except ValueError:
                b = {}
            if action is None or b.get("action") == action:
                out.append((r, b))
        return out


# --------------------------------------------------------------------------
# The process under test


class BanProc(ClusterProc):
    """harness.ClusterProc with this test's deadline, its ban sink and its
    thresholds, and the ban outbox."""

    def __init__(self, binary, root, cluster, sink):
        super().__init__(binary, root, cluster, deadline=DEADLINE, checkpoint="500ms",
                         chain_extra=CHAIN_EXTRA, extra=sink)

    def outbox(self):
        """Every record of the state folder's ban outboxes, as dicts."""
        out = []
        for path in sorted(glob.glob(os.path.join(self.state, "ban-outbox-*.jsonl"))):
            with open(path, "rb") as f:
                for line in f.read().decode("utf-8").split("\n")[:-1]:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
        return out

    def outbox_decisions(self):
        return [r["decision"] for r in self.outbox() if r.get("type") == "decision"]

    def wait_new_event(self, kind, known_ids, what):
        return self.wait(lambda: [e for e in self.find(kind, POD) if e["id"] not in known_ids],
                         what)[0]


def ban_cycle_events(p, cl, what):
    """Stops val-a until a new (not held) ban is decided. Returns the event."""
    known = {e["id"] for e in p.find("ban", POD)}
    cl.set_active(POD, False)
    ban = p.wait_new_event("ban", known, "%s: ban for %s after it stopped" % (what, POD))
    expect(ban.get("detail", {}).get("held") is None, "%s: the ban was held back: %r"
           % (what, ban.get("detail")))
    return ban


def recover_until_unban(p, cl, what):
    known = {e["id"] for e in p.find("unban", POD)}
    cl.set_active(POD, True)
    return p.wait_new_event("unban", known, "%s: unban for %s after it resumed" % (what, POD))


def check_body(body, event, action, what):
    d = event.get("detail", {})
    expect_eq(body.get("version"), 1, what + " version")
    expect_eq(body.get("action"), action, what + " action")
    expect_eq(body.get("id"), event["id"], what + " id (the event's)")
    expect_eq(body.get("chain"), CHAIN, what + " chain")
    expect_eq(body.get("namespace"), NS, what + " namespace")
    expect_eq(body.get("node"), POD, what + " node")
    expect_eq(body.get("since"), d.get("since"), what + " since (the event's detail.since)")
    expect_eq(body.get("decided_at"), event["time"], what + " decided_at (the event's time)")
    expect_eq(body.get("height"), event.get("height"), what + " height")
    expect_eq(body.get("operator"), False, what + " operator")
    expect(isinstance(body.get("evidence"), list), what + " evidence is not a list")
    key = body.get("idempotency_key") or ""
    expect(key.startswith(action + "-") and len(key) == len(action) + 33,
           what + " idempotency_key %r" % key)
    if action == "ban":
        expect_eq(body.get("reason"), d.get("reason"), what + " reason")
        expect(body["evidence"], what + " evidence is empty")
        expect(all(isinstance(x, str) for x in body["evidence"]), what + " evidence not strings")
    else:
        expect_eq(body.get("reason"), "back_in_consensus", what + " reason")



# --------------------------------------------------------------------------
# Every instance of the module (check 5 reads their stderr)


@pytest.fixture(scope="module")
def procs():
    made = []
    yield made
    for p in made:
        p.cleanup()


def start_proc(qw_bin, root, cl, sink, procs, request, diagnostics):
    p = BanProc(qw_bin, root, cl, sink)
    procs.append(p)
    diagnostics(request.node, "quorumwatch stderr (%s)" % os.path.basename(root),
                lambda: p.stderr()[-3000:])
    return p


# --------------------------------------------------------------------------
# Checks 1-3: one webhook instance (restarted for check 3)


class TestWebhook:
    @pytest.fixture(scope="class")
    def hook(self, qw_bin, tmp_path_factory, free_port, procs, request, diagnostics):
        root = str(tmp_path_factory.mktemp("webhook"))
        secret_file = os.path.join(root, "ban-secret")
        with open(secret_file, "w") as f:
            f.write(SECRET + "\n")
        recv = Receiver(SECRET, free_port())
        recv.up()
        cl = new_cluster(root)
        sink = ("  - {type: ban, action: webhook, url: \"%s\", secret_file: %s, timeout: 5s}\n"
                % (recv.url, secret_file))
        p = start_proc(qw_bin, root, cl, sink, procs, request, diagnostics)
        try:
            p.start()
            cl.start()
            yield types.SimpleNamespace(p=p, cl=cl, recv=recv, state={})
        finally:
            cl.stop_quietly()  # a writer error is reported by the check that stops it
            p.cleanup()
            recv.down()

    def test_1_ban_and_unban(self, hook):
        """1 a stalled node is banned (signed, keyed, body right), then unbanned"""
        p, cl, recv, state = hook.p, hook.cl, hook.recv, hook.state
        ban = ban_cycle_events(p, cl, "1")
        reqs = p.wait(lambda: recv.decisions("ban"), "1: the receiver got the ban")
        r, body = reqs[0]
        assert r["sig_ok"], "1: the signature does not verify (header %r)" % (
            r["headers"].get("X-Quorumwatch-Signature"))
        assert r["key"] == body.get("idempotency_key"), "1: Idempotency-Key header"
        assert r["headers"].get("Content-Type") == "application/json", "1: Content-Type"
        assert r["headers"].get("User-Agent") == "quorumwatch", "1: User-Agent"
        assert r["path"] == "/bans", "1: request path"
        check_body(body, ban, "ban", "1: ban body")
        unban = recover_until_unban(p, cl, "1")
        ureqs = p.wait(lambda: recv.decisions("unban"), "1: the receiver got the unban")
        ur, ubody = ureqs[0]
        assert ur["sig_ok"], "1: unban signature does not verify"
        check_body(ubody, unban, "unban", "1: unban body")
        assert ubody["since"] == body["since"], "1: unban since = ban since (same period)"
        assert ur["key"] != r["key"], "1: ban and unban share an idempotency key"
        # Acknowledged in the outbox.
        p.wait(lambda: len([x for x in p.outbox() if x.get("type") == "ack"]) >= 2 or
               len([x for x in p.outbox() if x.get("acked_at")]) >= 2,
               "1: both acknowledgements recorded in the outbox")
        state["keys"] = {r["key"], ur["key"]}

    def test_2_receiver_down_then_up(self, hook):
        """2 receiver down, then up: every decision delivered exactly once"""
        p, cl, recv, state = hook.p, hook.cl, hook.recv, hook.state
        expect("keys" in state, "needs check 1")
        recv.down()
        n_err = len(p.err_lines)
        ban = ban_cycle_events(p, cl, "2")
        since = ban["detail"]["since"]
        p.wait(lambda: [d for d in p.outbox_decisions()
                        if d.get("action") == "ban" and d.get("since") == since],
               "2: the ban decision in the outbox")
        # At least two failed attempts while the receiver is down.
        p.wait(lambda: len([x for x in p.outbox() if x.get("type") == "attempt"]) >= 2,
               "2: failed attempts recorded while the receiver is down")
        logged = [l for l in p.err_lines[n_err:] if "delivery failed" in l]
        assert logged, "2: no 'delivery failed' line on stderr while the receiver was down"
        recv.up()
        p.wait(lambda: [b for _, b in recv.decisions("ban") if b.get("since") == since],
               "2: the ban delivered once the receiver is up", timeout=DEADLINE + 60)
        recover_until_unban(p, cl, "2")
        p.wait(lambda: [b for _, b in recv.decisions("unban") if b.get("since") == since],
               "2: the unban delivered")
        exactly_once(recv, p, "2")

    def test_3_kill9_before_delivery(self, hook):
        """3 kill -9 with an undelivered decision in the outbox: delivered once
        after the restart"""
        p, cl, recv, state = hook.p, hook.cl, hook.recv, hook.state
        expect("keys" in state, "needs check 1")
        recv.down()
        ban = ban_cycle_events(p, cl, "3")
        since = ban["detail"]["since"]
        p.wait(lambda: [d for d in p.outbox_decisions()
                        if d.get("action") == "ban" and d.get("since") == since],
               "3: the ban decision in the outbox")
        assert not [b for _, b in recv.decisions("ban") if b.get("since") == since], \
            "3: delivered although the receiver was down"
        p.kill9()
        recv.up()
        n_err = len(p.err_lines)
        p.start()
        p.wait(lambda: [b for _, b in recv.decisions("ban") if b.get("since") == since],
               "3: the ban delivered after the restart")
        restart_err = p.err_lines[n_err:]
        assert [l for l in restart_err if "pending decision" in l], \
            "3: the restart did not report the pending decision: %r" % restart_err[-10:]
        recover_until_unban(p, cl, "3")
        p.wait(lambda: [b for _, b in recv.decisions("unban") if b.get("since") == since],
               "3: the unban delivered")
        # Lines read again after the crash decide again with the same key: one
        # decision per key in the outbox.
        keys = [d["idempotency_key"] for d in p.outbox_decisions()]
        assert len(keys) == len(set(keys)), "3: decisions per key in the outbox"
        exactly_once(recv, p, "3")
        cl.stop()
        p.stop()


def exactly_once(recv, p, what):
    """Every decision delivered: each key acknowledged exactly once, nothing
    unsigned, and every decision of the outbox delivered."""
    reqs = recv.received()
    bad = [r["key"] for r in reqs if not r["sig_ok"]]
    expect(not bad, "%s: requests with a bad signature: %r" % (what, bad))
    per_key = {}
    for r in reqs:
        per_key[r["key"]] = per_key.get(r["key"], 0) + 1
    twice = {k: n for k, n in per_key.items() if n != 1}
    expect(not twice, "%s: keys delivered more than once: %r (total %d deliveries, %d keys)"
           % (what, twice, len(reqs), len(per_key)))
    expect_eq(len(reqs), len(per_key), "%s: total deliveries = distinct keys" % what)
    outbox_keys = {d["idempotency_key"] for d in p.outbox_decisions()}
    expect_eq(set(per_key), outbox_keys, "%s: keys delivered = keys decided" % what)


# --------------------------------------------------------------------------
# Check 4: exec


PROGRAM = r'''#!/usr/bin/env python3
import json, os, sys
d = os.path.dirname(os.path.abspath(__file__))
data = sys.stdin.buffer.read()
env = {k: v for k, v in os.environ.items() if k.startswith("QW_")}
with open(os.path.join(d, "runs.jsonl"), "a") as f:
    f.write(json.dumps({"stdin": data.decode("utf-8"), "env": env, "argv": sys.argv[1:]}) + "\n")
marker = os.path.join(d, "failed-once")
if not os.path.exists(marker):
    open(marker, "w").close()
    sys.stderr.write("failover: controller busy, try again\n")
    sys.exit(7)
sys.exit(0)
'''


def test_4_exec(qw_bin, tmp_path, procs, monkeypatch, request, diagnostics):
    """4 exec: a failing then succeeding program, JSON on stdin, node argument, env"""
    root = str(tmp_path / "exec")
    os.makedirs(root)
    prog_dir = os.path.join(root, "prog")
    os.makedirs(prog_dir)
    prog = os.path.join(prog_dir, "failover")
    with open(prog, "w") as f:
        f.write(PROGRAM)
    os.chmod(prog, 0o755)
    runs_path = os.path.join(prog_dir, "runs.jsonl")
    env_name = "QW_BAN_TEST_SECRET"
    monkeypatch.setenv(env_name, SECRET)  # inherited by quorumwatch only
    cl = new_cluster(root)
    sink = ("  - {type: ban, action: exec, command: [\"%s\", \"--node\"], timeout: 20s, "
            "secret_env: %s}\n" % (prog, env_name))
    p = start_proc(qw_bin, root, cl, sink, procs, request, diagnostics)
    try:
        p.start()
        cl.start()
        ban = ban_cycle_events(p, cl, "4")

        def runs():
            try:
                with open(runs_path) as f:
                    return [json.loads(l) for l in f.read().split("\n")[:-1]]
            except (FileNotFoundError, ValueError):
                return []
        p.wait(lambda: len(runs()) >= 2, "4: the program run twice (fail, then succeed)",
               timeout=DEADLINE + 20)
        p.wait(lambda: [x for x in p.outbox() if x.get("type") == "ack" or x.get("acked_at")],
               "4: the acknowledgement recorded")
        rs = runs()
        assert len(rs) == 2, "4: program runs for one ban"
        body = json.loads(rs[1]["stdin"])
        check_body(body, ban, "ban", "4: stdin JSON")
        assert rs[0]["stdin"] == rs[1]["stdin"], "4: the same body on both attempts"
        assert rs[1]["argv"] == ["--node", "%s/%s" % (NS, POD)], "4: arguments"
        env = rs[1]["env"]
        want = {"QW_ACTION": "ban", "QW_ID": ban["id"],
                "QW_IDEMPOTENCY_KEY": body["idempotency_key"], "QW_CHAIN": CHAIN,
                "QW_NAMESPACE": NS, "QW_NODE": POD, "QW_REASON": body["reason"],
                "QW_SINCE": body["since"], "QW_DECIDED_AT": ban["time"]}
        for k, v in want.items():
            assert env.get(k) == v, "4: environment " + k
        sig = "sha256=" + hmac.new(SECRET.encode(), rs[1]["stdin"].encode(),
                                   hashlib.sha256).hexdigest()
        assert env.get("QW_SIGNATURE") == sig, "4: QW_SIGNATURE"
        assert "controller busy" in p.stderr(), "4: the program's stderr was not logged on failure"
        cl.stop()
        p.stop()
    finally:
        cl.stop_quietly()
        p.cleanup()


# --------------------------------------------------------------------------
# Check 5: after every other instance of the module


def test_5_secret_never_on_stderr(procs):
    """5 the secret never appears on quorumwatch's stderr"""
    assert procs, "no process ran"
    for p in procs:
        assert SECRET not in p.stderr(), "the secret appears on stderr of %s" % p.cfg
