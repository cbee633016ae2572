#!/usr/bin/env python3
"""Writes the Livepeer example logs and their golden replay expectations.

    python3 examples/livepeer/make.py          # (re)write the files
    python3 examples/livepeer/make.py --check  # compare with what is checked in

Scenario (namespace `livepeer`, two regions, one ETH account):
  orchestrator-0  region A, the active orchestrator: go-livepeer -orchestrator -transcoder
                  -network arbitrum-one-mainnet -v 6, reward service on.
  orchestrator-1  region B standby on the same account, -reward=false: it never calls reward.

Rounds last 21 h 20 min here (6400 L1 blocks x 12 s). orchestrator-0 calls reward for rounds
3512 and 3513 a minute or two after each round starts. In round 3514 its wallet has no ETH left
for gas: "Error trying to call reward for round 3514 err=..." (the reward service does not try
again in that round). Nothing else tells that the round is being missed; 26 h after the last
successful call (stall_after) the node is stalled and out of consensus, and 30 min later it is
banned, so the standby region can take over. The operator tops the wallet up; orchestrator-0
calls reward for round 3515 as soon as it starts: recovered, back in consensus, unbanned 10 min
later.

Both nodes back-fill block events at start-up (node_syncing / node_synced).

The golden replay (tests/golden/examples_livepeer) uses --chain auto: the chain is `livepeer`.
examples/livepeer/quorumwatch.yaml names it livepeer-arbitrum and gives the standby its own
stall_after.

Expectations are computed from this timeline by `Sim`, a transcription of docs/DETECTION.md,
never from the program's output. Every line's text follows a go-livepeer format string cited in
patterns/livepeer.yaml or below.
"""
import hashlib
import heapq
import json
import os
import random
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GOLDEN = os.path.join(ROOT, 'tests', 'golden', 'examples_livepeer')

NS = 1
US = 1000
MS = 1000 * US
S = 1000 * MS
MIN = 60 * S
H = 60 * MIN

CHAIN = 'livepeer'          # --chain auto: the chain is named after the family
NAMESPACE = 'livepeer'
CONTAINER = 'go-livepeer'

# patterns/livepeer.yaml defaults + DESIGN.md defaults
CFG = {
    'stall_after': 26 * H,
    'max_lag': 2,
    'window': 30,
    'max_missed': 1,
    'ban_after': 30 * MIN,
    'stable_after': 5 * MIN,
    'unban_after': 10 * MIN,
    'auto_unban': True,
    'max_bans': 1,
}


def epoch_ns(y, mo, d, h=0, mi=0, s=0):
    import calendar
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * S


def rfc3339nano(t):
    import time as _t
    secs, frac = divmod(t, S)
    return _t.strftime('%Y-%m-%dT%H:%M:%S', _t.gmtime(secs)) + '.%09dZ' % frac


def rfc3339ms(t):
    import time as _t
    secs, frac = divmod(t, S)
    return _t.strftime('%Y-%m-%dT%H:%M:%S', _t.gmtime(secs)) + '.%03dZ' % (frac // MS)


def glog_stamp(t):
    import time as _t
    secs, frac = divmod(t, S)
    return _t.strftime('%m%d %H:%M:%S', _t.gmtime(secs)) + '.%06d' % (frac // US)


def hexof(*parts, n=64):
    return hashlib.sha256('/'.join(str(p) for p in parts).encode()).hexdigest()[:n]


class Node:
    def __init__(self, pod, rng):
        self.pod = pod
        self.rng = rng
        self.lines = []          # (t, text)
        self.facts = []          # (t, kind, data)
        self.file = '%s_%s_%s-%s.log' % (pod, NAMESPACE, CONTAINER, hexof(pod, CONTAINER))

    def t(self, t):
        """A CRI time with a sub-millisecond part below 0.5 ms (rounding = truncation)."""
        return t - t % MS + self.rng.randrange(0, 500) * US + self.rng.randrange(0, 1000)

    def glog(self, t, level, src, msg, fact=None):
        t = self.t(t)
        inner = t - self.rng.randrange(20, 90) * US   # glog stamps before the runtime reads the line
        self.lines.append((t, '%s%s %7d %s] %s' % (level, glog_stamp(inner), 1, src, msg)))
        if fact is not None:
            self.facts.append((t, fact[0], fact[1]))
        return t


ACCOUNT = '0x' + hexof('orchestrator account', n=40)
CONTROLLER = '0xD8E8328501E9645d16Cf49539efC04f734606ee4'   # Livepeer Controller on Arbitrum One
LPT = '0x289ba1701C2F088cf0faf8B3705246331cB8A839'           # LivepeerToken on Arbitrum One


def startup(n, t0, first_block, transcoders):
    """cmd/livepeer/starter/starter.go start-up order: account, contracts, setupOrchestrator,
    backfill (blocking), then the mode banner; transcoders register afterwards."""
    t = t0
    n.glog(t, 'I', 'starter.go:254', '***Livepeer is running on the arbitrum-one-mainnet network: %s***' % CONTROLLER)
    n.glog(t + 1 * MS, 'I', 'db.go:376', 'Initialized DB node')
    n.glog(t + 3 * MS, 'I', 'accountmanager.go:64', 'Found existing ETH account')
    n.glog(t + 4 * MS, 'I', 'accountmanager.go:74', 'Using Ethereum account: %s' % ACCOUNT)
    n.glog(t + 671 * MS, 'I', 'accountmanager.go:108', 'Unlocked ETH account: %s' % ACCOUNT)
    n.glog(t + 673 * MS, 'I', 'client.go:245', 'Controller: %s' % CONTROLLER)
    n.glog(t + 941 * MS, 'I', 'client.go:266', 'LivepeerToken: %s' % LPT)
    n.glog(t + 2359 * MS, 'I', 'starter.go:1496', 'Orchestrator %s is active' % ACCOUNT)
    # eth/blockwatch/block_watcher.go getMissedEventsToBackfill
    n.glog(t + 2512 * MS, 'I', 'block_watcher.go:306', 'Backfilling block events (this can take a while)...',
           fact=('syncing', None))
    n.glog(t + 2513 * MS, 'I', 'block_watcher.go:307', 'Start block: %d\t\t End block: %d\t\tBlocks elapsed: %d'
           % (first_block, first_block + 597, 597))
    n.glog(t + 8733 * MS, 'I', 'block_watcher.go:365', 'Done backfilling block events', fact=('synced', None))
    n.glog(t + 8902 * MS, 'I', 'starter.go:1390', '***Livepeer Running in Orchestrator Mode***', fact=('synced', None))
    for i, (ip, cap) in enumerate(transcoders):
        # server/ot_rpc.go RegisterTranscoder
        n.glog(t + (11 + 3 * i) * S + 217 * MS, 'I', 'ot_rpc.go:191',
               'Got a RegisterTranscoder request from transcoder=%s:%d capacity=%d' % (ip, n.rng.randrange(32768, 60999), cap))
    return t + 20 * S


def tickets(n, t_from, t_to, manifests):
    """core/orchestrator.go ProcessPayment (-v 6):
    glog.V(common.DEBUG).Infof("Received winning ticket manifestID=%v recipientRandHash=%x senderNonce=%v", ...)"""
    t = t_from + n.rng.randrange(5, 30) * MIN
    nonce = {}
    while t < t_to:
        m = n.rng.choice(manifests)
        nonce[m] = nonce.get(m, n.rng.randrange(1, 40)) + n.rng.randrange(1, 9)
        n.glog(t + n.rng.randrange(0, 59000) * MS, 'I', 'orchestrator.go:182',
               'Received winning ticket manifestID=%s recipientRandHash=%s senderNonce=%d'
               % (m, hexof(n.pod, m, t), nonce[m]))
        t += n.rng.randrange(22, 58) * MIN


# ------------------------------------------------------------------ the scenario
T0 = epoch_ns(2025, 3, 10, 5, 0, 0) + 412 * MS
ROUND_LEN = 21 * H + 20 * MIN
ROUND_START = {3512: epoch_ns(2025, 3, 10, 6, 14, 0)}
for r in range(3513, 3516):
    ROUND_START[r] = ROUND_START[r - 1] + ROUND_LEN
T_END = ROUND_START[3515] + 45 * MIN


def build():
    rng = random.Random(3514)
    o0 = Node('orchestrator-0', random.Random(rng.random()))
    o1 = Node('orchestrator-1', random.Random(rng.random()))

    startup(o0, T0, 314712805, [('10.42.3.17', 12), ('10.42.3.18', 12)])
    startup(o1, T0 + 37 * S + 118 * MS, 314712977, [('10.61.0.24', 8)])

    # eth/rewardservice.go: the NewRound event reaches the reward service a few blocks after the
    # round is initialized; "Called reward for round %v" once the tx is mined.
    called = {3512: ROUND_START[3512] + 1 * MIN + 47 * S + 318 * MS,
              3513: ROUND_START[3513] + 1 * MIN + 21 * S + 407 * MS,
              3515: ROUND_START[3515] + 1 * MIN + 10 * S + 662 * MS}
    for r, t in sorted(called.items()):
        o0.glog(t, 'I', 'rewardservice.go:98', 'Called reward for round %d' % r, fact=('adv', r))
    # round 3514: the reward transaction cannot pay for gas (go-ethereum txpool error text)
    o0.glog(ROUND_START[3514] + 52 * S + 118 * MS, 'E', 'rewardservice.go:69',
            'Error trying to call reward for round 3514 err="insufficient funds for gas * price + value"',
            fact=('missed', 3514))
    # a transient RPC error, retried on the next polling interval (no signal)
    o0.glog(ROUND_START[3514] + 7 * H + 12 * MIN + 3 * S + 270 * MS, 'E', 'block_watcher.go:121',
            'blockwatch.Watcher error encountered - trying again on next polling interval '
            'err=Post "https://arb1.arbitrum.io/rpc": context deadline exceeded')

    man0 = [hexof('m0', i, n=16) for i in range(5)]
    man1 = [hexof('m1', i, n=16) for i in range(3)]
    tickets(o0, T0 + 20 * S, T_END - 6 * MIN, man0)
    tickets(o1, T0 + 60 * S, T_END - 6 * MIN, man1)
    # both files end with a last line shortly before T_END
    o0.glog(T_END - 2 * MIN + 544 * MS, 'I', 'orchestrator.go:182',
            'Received winning ticket manifestID=%s recipientRandHash=%s senderNonce=%d' % (man0[0], hexof('last0'), 911))
    o1.glog(T_END - 1 * MIN + 81 * MS, 'I', 'orchestrator.go:182',
            'Received winning ticket manifestID=%s recipientRandHash=%s senderNonce=%d' % (man1[0], hexof('last1'), 377))
    for n in (o0, o1):
        n.lines.sort()
        n.facts.sort()
    return [o0, o1]


# ------------------------------------------------------------------ DETECTION.md, literally
class SimNode:
    def __init__(self, node):
        self.name = node.pod
        self.node = node
        self.visible = True
        self.height = None
        self.last_adv = None
        self.stall_token = 0
        self.stalled = False
        self.failed = False
        self.lagging = False
        self.syncing = False
        self.was_in = False
        self.out = False
        self.period_open = False
        self.period_id = 0
        self.period_end_token = 0
        self.banned = False
        self.unban_token = 0
        self.missed = []


class Sim:
    def __init__(self, nodes, cfg):
        self.cfg = cfg
        self.nodes = {n.pod: SimNode(n) for n in nodes}
        self.events = []
        self.timers = []
        self.seq = 0
        self.facts = []
        for idx, n in enumerate(sorted(nodes, key=lambda n: n.file)):
            for t, kind, data in n.facts:
                self.facts.append((t, idx, kind, n.pod, data))
            self.facts.append((n.lines[-1][0], idx, 'end', n.pod, None))
        self.facts.sort(key=lambda f: (f[0], f[1], f[2] == 'end'))

    def emit(self, t, kind, severity, n, height=None, detail=None):
        e = {'time': t, 'event': kind, 'severity': severity, 'chain': CHAIN, 'node': n.name,
             'namespace': NAMESPACE}
        if height is not None:
            e['height'] = height
        if detail:
            e['detail'] = detail
        self.events.append(e)

    def timer(self, t, kind, n, token):
        self.seq += 1
        heapq.heappush(self.timers, (t, self.seq, kind, n, token))

    def visible(self):
        return [n for n in self.nodes.values() if n.visible]

    def head(self):
        hs = [n.height for n in self.visible() if n.height is not None]
        return max(hs) if hs else None

    def update_lag(self, t):
        head = self.head()
        for n in self.visible():
            if n.height is None:
                continue
            lag = head - n.height > self.cfg['max_lag'] and not (n.syncing and not n.was_in)
            if lag != n.lagging:
                n.lagging = lag
                self.update_out(n, t)

    def update_out(self, n, t):
        reason = None
        if n.visible:
            if n.failed:
                reason = 'consensus_failure'
            elif n.stalled:
                reason = 'stalled'
            elif n.lagging:
                reason = 'lagging'
            elif n.syncing and n.was_in:
                reason = 'syncing'
        if reason and not n.out:
            n.out = True
            self.emit(t, 'out_of_consensus', 'warning', n, n.height, {'reason': reason})
            n.unban_token += 1
            n.period_end_token += 1
            if not n.period_open:
                n.period_open = True
                n.period_id += 1
                self.timer(t + self.cfg['ban_after'], 'ban', n, n.period_id)
        elif not reason and n.out:
            n.out = False
            self.emit(t, 'back_in_consensus', 'info', n, n.height)
            n.period_end_token += 1
            if not n.banned:
                self.timer(t + self.cfg['stable_after'], 'period_end', n, n.period_end_token)
            if n.banned and self.cfg['auto_unban']:
                n.unban_token += 1
                self.timer(t + self.cfg['unban_after'], 'unban', n, n.unban_token)
        if not n.out and not n.syncing and n.height is not None and n.visible:
            n.was_in = True

    def on_adv(self, t, n, h):
        if n.height is not None and h <= n.height:
            return
        if n.stalled:
            self.emit(t, 'node_recovered', 'info', n, h)
            n.stalled = False
        n.failed = False
        n.height = h
        n.last_adv = t
        n.stall_token += 1
        self.timer(t + self.cfg['stall_after'], 'stall', n, n.stall_token)
        if n.syncing:
            others = any(m is not n and m.height is not None for m in self.visible())
            if others and self.head() - h <= self.cfg['max_lag']:
                n.syncing = False
                self.emit(t, 'node_synced', 'info', n, h)
        self.update_lag(t)
        self.update_out(n, t)

    def on_stall(self, t, n):
        vis = [m for m in self.visible() if m.height is not None]
        if len(vis) >= 2:
            hs = [m.height for m in vis]
            ts = [m.last_adv for m in vis]
            assert not (max(hs) - min(hs) <= 1 and max(ts) - min(ts) <= self.cfg['stall_after']), \
                'a chain-halt candidate: not covered by this scenario'
        n.stalled = True
        self.emit(t, 'node_stalled', 'warning', n, n.height)
        self.update_out(n, t)

    def on_ban(self, t, n, period_id):
        if not (n.period_open and n.period_id == period_id) or n.banned:
            return
        assert sum(1 for m in self.nodes.values() if m.banned) < self.cfg['max_bans']
        vis = [m for m in self.visible() if m.height is not None]   # "visible": has a height
        if len(vis) >= 2:
            assert any(m is not n and not m.out and not m.banned for m in vis), 'held ban: not covered'
        n.banned = True
        self.emit(t, 'ban', 'critical', n, n.height, {'reason': 'stalled'})

    def run(self):
        fi = 0
        while fi < len(self.facts):
            t, _, kind, pod, data = self.facts[fi]
            if self.timers and self.timers[0][0] <= t:
                tt, _, tkind, n, token = heapq.heappop(self.timers)
                if not n.visible:
                    continue
                if tkind == 'stall' and token == n.stall_token and not n.stalled:
                    self.on_stall(tt, n)
                elif tkind == 'ban':
                    self.on_ban(tt, n, token)
                elif tkind == 'period_end' and token == n.period_end_token and not n.out:
                    n.period_open = False
                elif tkind == 'unban' and token == n.unban_token and n.banned and not n.out:
                    n.banned = False
                    n.period_open = False
                    self.emit(tt, 'unban', 'info', n, n.height)
                continue
            fi += 1
            n = self.nodes[pod]
            if not n.visible:
                continue
            if kind == 'adv':
                self.on_adv(t, n, data)
            elif kind == 'missed':
                n.missed.append(1)
                in_window = sum(n.missed[-self.cfg['window']:])
                sev = 'warning' if in_window > self.cfg['max_missed'] else 'info'
                self.emit(t, 'missed_precommit', sev, n, data,
                          {'kind': 'missed_vote', 'missed_in_window': in_window,
                           'window': self.cfg['window'], 'max': self.cfg['max_missed']})
            elif kind == 'syncing':
                target = data
                if not n.syncing and (target is None or n.height is None or target - n.height > self.cfg['max_lag']):
                    n.syncing = True
                    self.emit(t, 'node_syncing', 'warning', n, target if target is not None else n.height,
                              {'target_height': target} if target is not None else None)
                    self.update_out(n, t)
            elif kind == 'synced':
                if n.syncing:
                    n.syncing = False
                    self.emit(t, 'node_synced', 'info', n, n.height)
                    self.update_out(n, t)
            elif kind == 'end':
                n.visible = False
            else:
                raise ValueError(kind)
        return self.events


def event_json(e):
    out = {'time': rfc3339ms(e['time']), 'event': e['event'], 'severity': e['severity'],
           'chain': e['chain'], 'node': e['node'], 'namespace': e['namespace']}
    if 'height' in e:
        out['height'] = e['height']
    if 'detail' in e:
        out['detail'] = e['detail']
    return json.dumps(out)


def expected(nodes):
    events = Sim(nodes, CFG).run()
    events.sort(key=lambda e: (e['time'] // MS, e['chain'], e['node'], e['event']))
    # The story this example tells.
    kinds = [(e['node'], e['event']) for e in events]
    o0 = [k for n, k in kinds if n == 'orchestrator-0']
    assert o0 == ['node_syncing', 'node_synced', 'missed_precommit', 'node_stalled', 'out_of_consensus',
                  'ban', 'back_in_consensus', 'node_recovered', 'unban'], o0
    assert [k for n, k in kinds if n == 'orchestrator-1'] == ['node_syncing', 'node_synced']
    stall = next(e for e in events if e['event'] == 'node_stalled')
    assert stall['height'] == 3513 and ROUND_START[3514] < stall['time'] < ROUND_START[3515]
    assert all(e['time'] < T_END - 10 * MIN for e in events), 'an event in the ragged end'
    return events


def render(nodes):
    files = {}
    for n in nodes:
        files[os.path.join(HERE, n.file)] = ''.join(
            '%s stderr F %s\n' % (rfc3339nano(t), text) for t, text in n.lines)
    rel = os.path.relpath(HERE, GOLDEN)
    args = '--chain auto ' + ' '.join(os.path.join(rel, n.file) for n in sorted(nodes, key=lambda n: n.file))
    files[os.path.join(GOLDEN, 'args')] = args + '\n'
    files[os.path.join(GOLDEN, 'expected.jsonl')] = ''.join(event_json(e) + '\n' for e in expected(nodes))
    return files


def main():
    check = '--check' in sys.argv[1:]
    files = render(build())
    bad = 0
    for path, text in sorted(files.items()):
        if check:
            try:
                with open(path, encoding='utf-8') as f:
                    same = f.read() == text
            except FileNotFoundError:
                same = False
            if not same:
                print('differs: %s' % os.path.relpath(path, ROOT))
                bad += 1
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'w', encoding='utf-8') as f:
                f.write(text)
    if not check:
        for name in os.listdir(HERE):
            if name.endswith('.log') and os.path.join(HERE, name) not in files:
                os.remove(os.path.join(HERE, name))
    sys.exit(1 if bad else 0)


if __name__ == '__main__':
    main()
