#!/usr/bin/env python3
"""Writes the Dash example logs (examples/dash/) and their golden replay
(tests/golden/examples_dash/). Deterministic: same output on every run.

Scenario (namespace dash, chain auto-detected as `dash`, ~2 h 45 min of mainnet-like blocks):
  masternode-0  CRI log of dashd (masternode, region A), healthy.
  fullnode-0    CRI log of dashd (full node), healthy.
  masternode-1  raw debug.log of dashd (masternode, region B): loses all peers at ~08:39 and
                stops advancing; the network PoSe-punishes its masternode in one DKG and bans it
                in the next; ~10:08 the peers come back, it catches up block by block (and logs
                the PoSe lines of the blocks it replays) and stays healthy to the end.
Expected events are computed below from the same timeline by the reference model of
docs/DETECTION.md (tests/model/qwmodel.py) (never from quorumwatch output):
  masternode-1: out_of_consensus `lagging` when another node reaches X+4, node_stalled at its
  last advance + 30 min, ban 30 min after the period start, node_recovered at the first
  catch-up block, back_in_consensus within max_lag of the head, unban 10 min later;
  double_sign_risk info `others_misbehaviour` (validator = the punished proTxHash) for every
  PoSe line on every node that logs it.

usage: python3 examples/dash/make.py [--check]
"""
import datetime
import hashlib
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GOLDEN = os.path.join(ROOT, 'tests', 'golden', 'examples_dash')

sys.dont_write_bytecode = True          # no __pycache__ in examples/
sys.path.insert(0, os.path.dirname(HERE))
import examplegen  # noqa: E402  (examples/examplegen.py: shared with the other families)

NS = 1_000_000_000
MIN = 60 * NS
CHAIN = 'dash/dash'  # --chain auto: <family>/<namespace>
NAMESPACE = 'dash'
# The timeline's facts as the reference model's signals (PoSe lines name other masternodes:
# others_misbehaviour). Thresholds: patterns/dash.yaml defaults and the built-in ones
# (docs/DETECTION.md, "Defaults"; the golden replay has no config).
SIGNAL = {'adv': 'block_committed', 'others': 'others_misbehaviour'}
# what expected.jsonl asserts of each event's detail
DETAIL_KEYS = {'out_of_consensus': ('reason',), 'missed_precommit': ('kind',),
               'double_sign_risk': ('reason', 'validator')}


def signals(facts):
    for t, kind, data in facts:
        yield t, SIGNAL[kind], (data, None) if kind == 'syncing' else data

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def ts(y, mo, d, h=0, mi=0, s=0):
    return int((datetime.datetime(y, mo, d, h, mi, s, tzinfo=datetime.timezone.utc) - EPOCH).total_seconds()) * NS


def utc(t):
    return EPOCH + datetime.timedelta(microseconds=t // 1000)


def dash_stamp(t):
    return utc(t).strftime('%Y-%m-%dT%H:%M:%SZ')


def hexid(*parts, n=64):
    return hashlib.sha256('|'.join(str(p) for p in parts).encode()).hexdigest()[:n]


def block_hash(h):
    # mainnet X11 hashes start with zeros
    return '0' * 13 + hexid('dash-block', h)[13:]


# --------------------------------------------------------------------------- the timeline
R = random.Random(20250314)
T0 = ts(2025, 3, 14, 8, 0, 0)
H0 = 2241870
N_BLOCKS = 66
MN0_PROTX = hexid('protx', 'masternode-0')
MN1_PROTX = hexid('protx', 'masternode-1')
OTHER_PROTX = hexid('protx', 'someone-else')


def sub_ms_safe(t):
    """Keeps the sub-millisecond part below 0.5 ms so truncating and rounding to ms agree."""
    return t - (t % 1_000_000) + (t % 1_000_000) % 400_000


blocks = []          # (height, mined time)
t = T0 + 37 * NS
for i in range(N_BLOCKS):
    blocks.append((H0 + i, t))
    gap = min(max(R.expovariate(1 / 150.0), 25.0), 420.0)
    t += int(gap * NS) + R.randrange(0, NS)
T_END = blocks[-1][1] + 95 * NS

X_INDEX = 16                         # masternode-1's last block before the outage
X = H0 + X_INDEX
P = X + 8                            # first PoSe penalty of masternode-1 (missed DKG)
Q = P + 24                           # second penalty reaches the maximum: PoSe ban
T_BACK = ts(2025, 3, 14, 10, 8, 3)   # masternode-1's peers come back
MAXPEN = 3937
assert blocks[X_INDEX + 1][1] > blocks[X_INDEX][1]
assert dict(blocks)[Q] < T_BACK, 'the ban block must be mined during the outage'
assert T_BACK + 40 * NS < blocks[-1][1] - 15 * MIN

# PoSe lines logged while connecting a block: (height, [(kind, protx, old, new)])
POSE = {
    H0 + 5: [('punished', OTHER_PROTX, 0, 2598)],
    P: [('punished', MN1_PROTX, 0, 2598)],
    Q: [('punished', MN1_PROTX, 2598 - 24, MAXPEN), ('banned', MN1_PROTX, None, None)],
}


class Node:
    def __init__(self, pod, cri, delay):
        self.pod = pod
        self.cri = cri
        self.delay = delay
        self.lines = []      # (time, message)
        self.facts = []      # (time, kind, data)
        self.peer_id = R.randrange(3, 40)

    def log(self, t, msg):
        self.lines.append((t, msg))

    def render(self):
        out = []
        for t, msg in sorted(self.lines, key=lambda x: x[0]):
            if self.cri:
                out.append('%s stdout F %s %s\n' % (examplegen.rfc3339nano(t), dash_stamp(t), msg))
            else:
                out.append('%s %s\n' % (dash_stamp(t), msg))
        return ''.join(out)


def update_tip(node, t, h, tx):
    date = utc(dict(blocks)[h]).strftime('%Y-%m-%dT%H:%M:%SZ')
    node.log(t, "UpdateTip: new best=%s height=%d version=0x20000000 log2_work=%.8f tx=%d date='%s' "
                "progress=1.000000 cache=%.1fMiB(%dtxo) evodb_cache=%.1fMiB"
             % (block_hash(h), h, 79.9631 + (h - H0) * 0.0000131, tx, date,
                31.0 + (h % 17) * 0.3, 210000 + (h % 997) * 13, 11.2 + (h % 5) * 0.1))
    node.facts.append((t, 'adv', h))


def pose_lines(node, t, h):
    """PoSe lines of block h, logged just before its UpdateTip; returns the time after them."""
    for kind, protx, old, new in POSE.get(h, []):
        if kind == 'punished':
            node.log(t, 'CDeterministicMNList::PoSePunish -- punished MN %s, penalty %d->%d (max=%d)'
                     % (protx, old, new, MAXPEN))
            node.facts.append((t, 'others', (None, protx)))
        else:
            node.log(t, 'CDeterministicMNList::PoSePunish -- banned MN %s at height %d' % (protx, h))
            node.facts.append((t, 'others', (h, protx)))
        t += (3 if node.cri else 0) * 1_000_000 + 211_000
    return t


def peer_line(node, t, h):
    node.peer_id += R.randrange(1, 4)
    node.log(t, 'New outbound peer connected: version: 70231, blocks=%d, peer=%d' % (h, node.peer_id))


mn0 = Node('masternode-0', True, (0.18, 1.4))
full0 = Node('fullnode-0', True, (0.25, 2.2))
mn1 = Node('masternode-1', False, (0.3, 1.9))
NODES = [mn0, full0, mn1]

# mid-run logs: a couple of peer lines first
for n in NODES:
    tt = sub_ms_safe(T0 + R.randrange(2, 20) * NS + R.randrange(0, NS))
    peer_line(n, tt, H0 - 1)

tx = 51_204_377
for i, (h, tb) in enumerate(blocks):
    tx += R.randrange(8, 90)
    for n in NODES:
        if n is mn1 and h > X:
            continue
        t = sub_ms_safe(tb + int(R.uniform(*n.delay) * NS))
        if n is mn1:
            t = t - t % NS           # raw debug.log: whole-second stamps
        t = pose_lines(n, t, h)
        update_tip(n, t, h, tx)
        if R.random() < 0.12 and not (n is mn1 and h >= X):
            peer_line(n, sub_ms_safe(t + R.randrange(5, 60) * NS), h)

# masternode-1 while it has no peers: stale-tip notices, no height
t = dict(blocks)[X] + 9 * MIN
while t < T_BACK - 2 * MIN:
    mn1.log(t - t % NS, 'Potential stale tip detected, will try using extra outbound peer '
            '(last tip update: %d seconds ago)' % ((t - dict(blocks)[X]) // NS))
    t += 10 * MIN + R.randrange(0, 40) * NS

# masternode-1 catches up: peers, then one block a second (whole-second stamps)
heights_by_then = [h for h, tb in blocks if tb < T_BACK]
head_then = heights_by_then[-1]
for k in range(3):
    peer_line(mn1, T_BACK + k * NS, head_then)
t = T_BACK + 4 * NS
txc = 51_204_377 + 40 * (X - H0)
for h in range(X + 1, head_then + 1):
    txc += 45
    t = pose_lines(mn1, t, h)
    update_tip(mn1, t, h, txc)
    t = t - t % NS + NS
assert t < dict(blocks)[head_then + 1], 'catch-up must end before the next block'
for h, tb in blocks:
    if h > head_then:
        tt = tb + int(R.uniform(*mn1.delay) * NS)
        tt = tt - tt % NS
        tt = pose_lines(mn1, tt, h)
        update_tip(mn1, tt, h, 0)

# every file ends with a last quiet line close to T_END
for n in NODES:
    tt = T_END + R.randrange(0, 3) * NS + (0 if not n.cri else R.randrange(0, NS))
    tt = sub_ms_safe(tt) if n.cri else tt - tt % NS
    peer_line(n, tt, blocks[-1][0])


# --------------------------------------------------------------------------- output
def pod_file(n):
    return '%s_%s_dashd-%s.log' % (n.pod, NAMESPACE, hexid('container', n.pod))


def outputs():
    files = {}
    for n in NODES:
        files[os.path.join(HERE, pod_file(n))] = n.render()
    events = examplegen.model_events(CHAIN, 'dash', [(n.pod, NAMESPACE, list(signals(n.facts)),
                                                      [max(t for t, _ in n.lines)]) for n in NODES], DETAIL_KEYS)
    # The story this example tells.
    got = [(e['node'], e['event']) for e in events if e['event'] != 'double_sign_risk']
    assert got == [('masternode-1', 'out_of_consensus'), ('masternode-1', 'node_stalled'),
                   ('masternode-1', 'ban'), ('masternode-1', 'node_recovered'),
                   ('masternode-1', 'back_in_consensus'), ('masternode-1', 'unban')], got
    assert sum(1 for e in events if e['event'] == 'double_sign_risk') == 12
    files[os.path.join(GOLDEN, 'expected.jsonl')] = ''.join(examplegen.event_json(e) + '\n' for e in events)
    files[os.path.join(GOLDEN, 'args')] = '--chain auto ' + ' '.join(
        '../../../examples/dash/' + pod_file(n) for n in sorted(NODES, key=lambda n: n.pod)) + '\n'
    return files


def main(argv):
    return 1 if examplegen.write_or_check(outputs(), ROOT, '--check' in argv[1:], announce=True) else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
