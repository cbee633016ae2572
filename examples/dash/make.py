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
Expected events are computed below from the same timeline by Sim, a transcription of
docs/DETECTION.md (never from quorumwatch output):
  masternode-1: out_of_consensus `lagging` when another node reaches X+4, node_stalled at its
  last advance + 30 min, ban 30 min after the period start, node_recovered at the first
  catch-up block, back_in_consensus within max_lag of the head, unban 10 min later;
  double_sign_risk info `others_misbehaviour` (validator = the punished proTxHash) for every
  PoSe line on every node that logs it.

usage: python3 examples/dash/make.py [--check]
"""
import datetime
import hashlib
import heapq
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GOLDEN = os.path.join(ROOT, 'tests', 'golden', 'examples_dash')

NS = 1_000_000_000
MIN = 60 * NS
CHAIN = 'dash'
NAMESPACE = 'dash'
# patterns/dash.yaml defaults + DESIGN.md chain defaults
CFG = {'stall_after': 30 * MIN, 'max_lag': 3, 'window': 24, 'max_missed': 1,
       'ban_after': 30 * MIN, 'stable_after': 5 * MIN, 'unban_after': 10 * MIN,
       'auto_unban': True, 'max_bans': 1, 'require_healthy_peer': True}

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def ts(y, mo, d, h=0, mi=0, s=0):
    return int((datetime.datetime(y, mo, d, h, mi, s, tzinfo=datetime.timezone.utc) - EPOCH).total_seconds()) * NS


def utc(t):
    return EPOCH + datetime.timedelta(microseconds=t // 1000)


def rfc3339nano(t):
    return utc(t).strftime('%Y-%m-%dT%H:%M:%S') + '.%09dZ' % (t % NS)


def rfc3339ms(t):
    return utc(t).strftime('%Y-%m-%dT%H:%M:%S') + '.%03dZ' % ((t % NS) // 1_000_000)


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
                out.append('%s stdout F %s %s\n' % (rfc3339nano(t), dash_stamp(t), msg))
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


# --------------------------------------------------------------------------- Sim (docs/DETECTION.md)
class SimNode:
    def __init__(self, n):
        self.name = n.pod
        self.height = None
        self.last_adv = None
        self.stall_token = 0
        self.stalled = False
        self.failed = False
        self.failed_height = None
        self.syncing = False
        self.lagging = False
        self.out = False
        self.was_in = False
        self.period_open = False
        self.period_id = 0
        self.period_token = 0
        self.banned = False
        self.unban_token = 0
        self.visible = True
        self.missed = []


class Sim:
    def __init__(self, nodes, cfg):
        self.cfg = cfg
        self.nodes = {n.pod: SimNode(n) for n in nodes}
        self.events = []
        self.timers = []
        self.seq = 0
        self.facts = []
        for n in nodes:
            for t, kind, data in n.facts:
                self.facts.append((t, 0, kind, n.pod, data))
            self.facts.append((max(t for t, _ in n.lines), 1, 'end', n.pod, None))
        self.facts.sort(key=lambda f: (f[0], f[1]))

    def emit(self, t, kind, sev, n, height, detail=None):
        e = {'time': t, 'event': kind, 'severity': sev, 'chain': CHAIN, 'node': n.name,
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

    def update_out(self, n, t):
        if not n.visible:
            return
        reason = ('consensus_failure' if n.failed else 'stalled' if n.stalled else
                  'lagging' if n.lagging else 'syncing' if (n.syncing and n.was_in) else None)
        if reason and not n.out:
            n.out = True
            self.emit(t, 'out_of_consensus', 'warning', n, n.height, {'reason': reason})
            n.period_token += 1
            if not n.period_open:
                n.period_open = True
                n.period_id += 1
                self.timer(t + self.cfg['ban_after'], 'ban', n, n.period_id)
        elif not reason and n.out:
            n.out = False
            self.emit(t, 'back_in_consensus', 'info', n, n.height)
            n.period_token += 1
            self.timer(t + self.cfg['stable_after'], 'period_end', n, n.period_token)
            if n.banned and self.cfg['auto_unban']:
                n.unban_token += 1
                self.timer(t + self.cfg['unban_after'], 'unban', n, n.unban_token)
        if not n.out and not n.syncing and n.height is not None:
            n.was_in = True

    def check_lag(self, t):
        head = self.head()
        for m in self.visible():
            if m.height is not None:
                m.lagging = head - m.height > self.cfg['max_lag']
            self.update_out(m, t)

    def on_adv(self, t, n, h):
        if n.height is not None and h <= n.height:
            return
        if n.stalled:
            n.stalled = False
            self.emit(t, 'node_recovered', 'info', n, h)
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
        self.check_lag(t)

    def on_stall(self, t, n):
        vis = [m for m in self.visible() if m.height is not None]
        if len(vis) >= 2:
            hs = [m.height for m in vis]
            ts_ = [m.last_adv for m in vis]
            assert not (max(hs) - min(hs) <= 1 and max(ts_) - min(ts_) <= self.cfg['stall_after']), \
                'a chain halt is not part of this scenario'
        n.stalled = True
        self.emit(t, 'node_stalled', 'warning', n, n.height)
        self.update_out(n, t)

    def on_syncing(self, t, n, target):
        far = target is None or n.height is None or target - n.height > self.cfg['max_lag']
        if not n.syncing and far:
            n.syncing = True
            self.emit(t, 'node_syncing', 'warning', n, target if target is not None else n.height)
            self.update_out(n, t)

    def on_fail(self, t, n, h):
        hf = h if h is not None else n.height + 1
        if not n.failed or n.failed_height != hf:
            self.emit(t, 'consensus_failure', 'critical', n, hf)
        n.failed = True
        n.failed_height = hf
        self.update_out(n, t)

    def on_missed(self, t, n):
        n.missed.append(1)
        window = n.missed[-self.cfg['window']:]
        sev = 'warning' if sum(window) > self.cfg['max_missed'] else 'info'
        self.emit(t, 'missed_precommit', sev, n, n.height + 1, {'kind': 'missed_vote'})

    def on_ban(self, t, n, pid):
        if not (n.period_open and n.period_id == pid):
            return
        banned = sum(1 for m in self.nodes.values() if m.banned)
        vis = self.visible()
        held = banned >= self.cfg['max_bans'] or (
            self.cfg['require_healthy_peer'] and len(vis) >= 2 and
            not any(m is not n and m.height is not None and not m.out for m in vis))
        assert not held, 'a held ban is not part of this scenario'
        n.banned = True
        self.emit(t, 'ban', 'critical', n, n.height)

    def live(self, timer):
        _, _, kind, n, token = timer
        if not n.visible:
            return False
        if kind == 'stall':
            return token == n.stall_token
        if kind == 'ban':
            return n.period_open and n.period_id == token
        if kind == 'period_end':
            return token == n.period_token and not n.out
        return token == n.unban_token and n.banned and not n.out

    def run(self):
        fi = 0
        while fi < len(self.facts) or self.timers:
            nf = self.facts[fi] if fi < len(self.facts) else None
            if self.timers and (nf is None or self.timers[0][0] < nf[0]):
                if nf is None:
                    break          # replay ends at the last line: later timers do not fire
                t, _, kind, n, token = heapq.heappop(self.timers)
                if not n.visible:
                    continue
                if kind == 'stall' and token == n.stall_token:
                    self.on_stall(t, n)
                elif kind == 'ban':
                    self.on_ban(t, n, token)
                elif kind == 'period_end' and token == n.period_token and not n.out:
                    n.period_open = False
                elif kind == 'unban' and token == n.unban_token and n.banned and not n.out:
                    n.banned = False
                    self.emit(t, 'unban', 'info', n, n.height)
                continue
            while self.timers and not self.live(self.timers[0]):
                heapq.heappop(self.timers)
            if self.timers:
                assert self.timers[0][0] != nf[0], 'a timer falls on a line time: %s %s %s' % (rfc3339nano(nf[0]), self.timers[0][2], self.timers[0][3].name)
            t, _, kind, pod, data = nf
            fi += 1
            n = self.nodes[pod]
            if kind == 'adv':
                self.on_adv(t, n, data)
            elif kind == 'others':
                h, validator = data
                self.emit(t, 'double_sign_risk', 'info', n, h if h is not None else n.height,
                          {'reason': 'others_misbehaviour', 'validator': validator})
            elif kind == 'fail':
                self.on_fail(t, n, data)
            elif kind == 'syncing':
                self.on_syncing(t, n, data)
            elif kind == 'missed':
                self.on_missed(t, n)
            elif kind == 'end':
                n.visible = False
            else:
                raise ValueError(kind)
        kinds = sorted(['back_in_consensus', 'ban', 'chain_halted', 'chain_resumed', 'consensus_failure',
                        'double_sign_risk', 'missed_precommit', 'node_recovered', 'node_stalled',
                        'node_synced', 'node_syncing', 'out_of_consensus', 'unban', 'upgrade_halt'])
        # output order: (time, chain, node, kind, height)
        self.events.sort(key=lambda e: (e['time'], e['chain'], e['node'], kinds.index(e['event']),
                                        e.get('height', -1)))
        return self.events


# --------------------------------------------------------------------------- output
def pod_file(n):
    return '%s_%s_dashd-%s.log' % (n.pod, NAMESPACE, hexid('container', n.pod))


def outputs():
    files = {}
    for n in NODES:
        files[os.path.join(HERE, pod_file(n))] = n.render()
    events = Sim(NODES, CFG).run()
    # The story this example tells.
    got = [(e['node'], e['event']) for e in events if e['event'] != 'double_sign_risk']
    assert got == [('masternode-1', 'out_of_consensus'), ('masternode-1', 'node_stalled'),
                   ('masternode-1', 'ban'), ('masternode-1', 'node_recovered'),
                   ('masternode-1', 'back_in_consensus'), ('masternode-1', 'unban')], got
    assert sum(1 for e in events if e['event'] == 'double_sign_risk') == 12
    lines = []
    for e in events:
        e = dict(e)
        e['time'] = rfc3339ms(e['time'])
        lines.append(json.dumps(e, sort_keys=False) + '\n')
    files[os.path.join(GOLDEN, 'expected.jsonl')] = ''.join(lines)
    files[os.path.join(GOLDEN, 'args')] = '--chain auto ' + ' '.join(
        '../../../examples/dash/' + pod_file(n) for n in sorted(NODES, key=lambda n: n.pod)) + '\n'
    return files


def main(argv):
    check = '--check' in argv[1:]
    bad = 0
    for path, text in sorted(outputs().items()):
        if check:
            try:
                with open(path, encoding='utf-8') as f:
                    same = f.read() == text
            except OSError:
                same = False
            if not same:
                print('differs: ' + os.path.relpath(path, ROOT))
                bad += 1
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'w', encoding='utf-8') as f:
                f.write(text)
            print('wrote ' + os.path.relpath(path, ROOT))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
