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

Expectations are computed from this timeline by the reference model of docs/DETECTION.md
(tests/model/qwmodel.py),
never from the program's output. Every line's text follows a go-livepeer format string cited in
patterns/livepeer.yaml or below.
"""
import hashlib
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GOLDEN = os.path.join(ROOT, 'tests', 'golden', 'examples_livepeer')

sys.dont_write_bytecode = True          # no __pycache__ in examples/
sys.path.insert(0, os.path.dirname(HERE))
import examplegen  # noqa: E402  (examples/examplegen.py: shared with the other families)

NS = 1
US = 1000
MS = 1000 * US
S = 1000 * MS
MIN = 60 * S
H = 60 * MIN

CHAIN = 'livepeer/livepeer'  # --chain auto: <family>/<namespace>
NAMESPACE = 'livepeer'
CONTAINER = 'go-livepeer'

# The timeline's facts as the reference model's signals (patterns/livepeer.yaml: heights are
# rounds, a reward call commits one, a failed call is a missed duty). Thresholds: the family's
# defaults and the built-in ones (docs/DETECTION.md, "Defaults"; the golden replay has no config).
SIGNAL = {'adv': 'block_committed', 'missed': 'vote_missed', 'syncing': 'syncing', 'synced': 'synced'}
# what expected.jsonl asserts of each event's detail
DETAIL_KEYS = {'out_of_consensus': ('reason',), 'ban': ('reason',), 'node_syncing': ('target_height',),
               'missed_precommit': ('kind', 'missed_in_window', 'window', 'max'),
               'double_sign_risk': ('reason', 'validator')}


def epoch_ns(y, mo, d, h=0, mi=0, s=0):
    import calendar
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * S


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


def expected(nodes):
    def signals(n):
        for t, kind, data in n.facts:
            yield t, SIGNAL[kind], (data, None) if kind == 'syncing' else data
    events = examplegen.model_events(CHAIN, 'livepeer', [(n.pod, NAMESPACE, list(signals(n)), [max(l[0] for l in n.lines)])
                                                   for n in nodes], DETAIL_KEYS)
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
            '%s stderr F %s\n' % (examplegen.rfc3339nano(t), text) for t, text in n.lines)
    rel = os.path.relpath(HERE, GOLDEN)
    args = '--chain auto ' + ' '.join(os.path.join(rel, n.file) for n in sorted(nodes, key=lambda n: n.file))
    files[os.path.join(GOLDEN, 'args')] = args + '\n'
    files[os.path.join(GOLDEN, 'expected.jsonl')] = ''.join(examplegen.event_json(e) + '\n' for e in expected(nodes))
    return files


def main():
    check = '--check' in sys.argv[1:]
    bad = examplegen.write_or_check(render(build()), ROOT, check, prune=HERE)
    sys.exit(1 if bad else 0)


if __name__ == '__main__':
    main()
