#!/usr/bin/env python3
"""Writes the Decred example logs (examples/decred/) and their golden replay
(tests/golden/examples_decred/). Deterministic: same output on every run.

Scenario (namespace decred, chain auto-detected as `decred`, ~3 h of mainnet-like blocks):
  dcr-0  pod with containers dcrd and dcrwallet (voting wallet), healthy; its wallet votes.
  dcr-1  pod with dcrd and dcrwallet. Its data volume fills up: the wallet cannot publish the
         vote of a winning ticket of ours ("Failed to send vote ..."), then dcrd cannot connect
         the next block ("Failed to process block ...", "Critical failure: ..."), stays stuck
         and is restarted 40 min later (a second dcrd container file). After the restart it
         syncs to the network's height, and the wallet revokes a ticket of ours that was
         called while dcrd was down ("Revoked ticket ...").
Expected events are computed below from the same timeline by Sim, a transcription of
docs/DETECTION.md (never from quorumwatch output):
  dcr-1: missed_precommit info (vote failed, height = last + 1), consensus_failure critical
  (height = last + 1) + out_of_consensus `consensus_failure`, ban 30 min later (dcr-0 is
  healthy), node_syncing at "Syncing to block height" (height = its target), back_in_consensus
  + node_synced at the first block within max_lag of the head, missed_precommit warning for the
  revoked ticket (second miss, over missed.max 1), unban 10 min after back in consensus.

usage: python3 examples/decred/make.py [--check]
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
GOLDEN = os.path.join(ROOT, 'tests', 'golden', 'examples_decred')

NS = 1_000_000_000
MIN = 60 * NS
CHAIN = 'decred'
NAMESPACE = 'decred'
# patterns/decred.yaml defaults + DESIGN.md chain defaults
CFG = {'stall_after': 60 * MIN, 'max_lag': 3, 'window': 20, 'max_missed': 1,
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


def slog_stamp(t):
    return utc(t).strftime('%Y-%m-%d %H:%M:%S') + '.%03d' % ((t % NS) // 1_000_000)


def hexid(*parts, n=64):
    return hashlib.sha256('|'.join(str(p) for p in parts).encode()).hexdigest()[:n]


def block_hash(h):
    return '0' * 16 + hexid('dcr-block', h)[16:]


def go_duration(ns):
    """time.Duration String() of a duration truncated to 10 ms (blocklogger.go)."""
    cs = ns // 10_000_000
    m, cs = divmod(cs, 6000)
    s = '%d.%02d' % divmod(cs, 100)
    s = s.rstrip('0').rstrip('.')
    return ('%dm%ss' % (m, s)) if m else s + 's'


def sub_ms_safe(t):
    """Keeps the sub-millisecond part below 0.5 ms so truncating and rounding to ms agree."""
    return t - (t % 1_000_000) + (t % 1_000_000) % 400_000


# --------------------------------------------------------------------------- the timeline
R = random.Random(20250520)
T0 = ts(2025, 5, 20, 12, 0, 0)
H0 = 949000
N_BLOCKS = 38

blocks = []          # (height, mined time)
t = T0 + 4 * NS
for i in range(N_BLOCKS):
    blocks.append((H0 + i, t))
    gap = min(max(R.expovariate(1 / 300.0), 45.0), 840.0)
    t += int(gap * NS) + R.randrange(0, NS)
BT = dict(blocks)
T_END = blocks[-1][1] + 70 * NS

K = 12
N = H0 + K                              # dcr-1's last good block
# the operator restarts dcrd on dcr-1 some 40 min after the failure, between two blocks
H_RESTART = min(h for h, tb in blocks if h + 1 in BT and tb > BT[N + 1] + 38 * MIN and BT[h + 1] - tb > 150 * NS)
T_START = BT[H_RESTART] + 23 * NS + 517_000_000
T_STOP = T_START - 48 * NS
assert BT[N + 1] + 30 * MIN < T_STOP, 'the ban falls before the restart'
HEAD_AT_START = max(h for h, tb in blocks if tb < T_START)
assert HEAD_AT_START - N > 3 and BT[HEAD_AT_START + 1] > T_START + 60 * NS

TICKET_FAILED = hexid('ticket', 'dcr-1', 1)
TICKET_REVOKED = hexid('ticket', 'dcr-1', 2)


class Stream:
    def __init__(self, pod, container, instance=0):
        self.pod = pod
        self.container = container
        self.instance = instance
        self.lines = []

    def log(self, t, lvl, subs, msg):
        self.lines.append((t, '%s [%s] %s: %s' % (slog_stamp(t), lvl, subs, msg)))

    def file_name(self):
        return '%s_%s_%s-%s.log' % (self.pod, NAMESPACE, self.container,
                                   hexid('container', self.pod, self.container, self.instance))

    def render(self):
        return ''.join('%s stdout F %s\n' % (rfc3339nano(t), m) for t, m in sorted(self.lines))


class Pod:
    def __init__(self, name):
        self.pod = name
        self.streams = []
        self.facts = []      # (time, kind, data)
        self.last_logged = T0 - 4 * MIN
        self.tx_since = 0
        self.blocks_since = 0

    @property
    def lines(self):
        return [l for s in self.streams for l in s.lines]

    def stream(self, container, instance=0):
        s = Stream(self.pod, container, instance)
        self.streams.append(s)
        return s


def processed(pod, dcrd, t, h, nblocks=1, ntx=None):
    ntx = ntx if ntx is not None else R.randrange(6, 40)
    dcrd.log(t, 'INF', 'SYNC', 'Processed %d %s in the last %s (%d %s, height %d, %s +0000 UTC)'
             % (nblocks, 'block' if nblocks == 1 else 'blocks', go_duration(t - pod.last_logged), ntx,
                'transaction' if ntx == 1 else 'transactions', h,
                utc(BT[h] - R.randrange(1, 9) * NS).strftime('%Y-%m-%d %H:%M:%S')))
    pod.last_logged = t
    pod.facts.append((t, 'adv', h))


def connected(pod, wallet, t, h):
    wallet.log(t, 'INF', 'WLLT', 'Connected block %s, height %d, %d wallet transaction(s)'
               % (block_hash(h), h, 1 if R.random() < 0.1 else 0))
    pod.facts.append((t, 'adv', h))


def new_peer(dcrd, t, inbound=False):
    ip = '%d.%d.%d.%d' % (R.randrange(20, 220), R.randrange(0, 255), R.randrange(0, 255), R.randrange(1, 254))
    dcrd.log(t, 'INF', 'SYNC', 'New valid peer %s:9108 (%s) (/dcrwire:1.0.0/dcrd:2.0.6/)'
             % (ip, 'inbound' if inbound else 'outbound'))


dcr0 = Pod('dcr-0')
dcr1 = Pod('dcr-1')
PODS = [dcr0, dcr1]
d0 = dcr0.stream('dcrd')
w0 = dcr0.stream('dcrwallet')
d1 = dcr1.stream('dcrd', 0)
w1 = dcr1.stream('dcrwallet')
d1b = dcr1.stream('dcrd', 1)

# mid-run logs: a peer line first
for pod, d in ((dcr0, d0), (dcr1, d1)):
    new_peer(d, sub_ms_safe(T0 + R.randrange(1, 3) * NS + R.randrange(0, NS)), inbound=True)

VOTES_DCR0 = {H0 + 3, H0 + 19, H0 + 30}
for h, tb in blocks:
    for pod, d, w in ((dcr0, d0, w0), (dcr1, d1, w1)):
        td = sub_ms_safe(tb + int(R.uniform(0.15, 1.6) * NS))
        if pod is dcr1 and h > N:
            if h == N + 1:
                # the data volume is full: the block cannot be connected; dcrd then waits
                # with a broken tip and logs nothing more until it is restarted
                err = ('utxo backend corruption: failed to write utxo set state: write '
                       '/home/dcrd/.dcrd/data/mainnet/utxodb/001188.log: no space left on device')
                d.log(td, 'ERR', 'SYNC', 'Failed to process block %s: %s' % (block_hash(h), err))
                pod.facts.append((td, 'fail', None))
                d.log(td + 1_000_000, 'ERR', 'SYNC', 'Critical failure: %s' % err)
                pod.facts.append((td + 1_000_000, 'fail', None))
            continue
        processed(pod, d, td, h)
        tw = td + R.randrange(90, 400) * 1_000_000
        connected(pod, w, tw, h)
        if pod is dcr0 and h in VOTES_DCR0:
            w.log(tw + 41_000_000, 'INF', 'WLLT', 'Voted on block %s (height %d) using ticket %s (vote hash: %s bits: 1)'
                  % (block_hash(h), h, hexid('ticket', 'dcr-0', h), hexid('vote', 'dcr-0', h)))
        if pod is dcr1 and h == N:
            w.log(tw + 812_000_000, 'ERR', 'WLLT',
                  'Failed to send vote for ticket hash %s: dcrd.jsonrpc.sendrawtransaction: -32603: database: '
                  'failed to write transaction: no space left on device' % TICKET_FAILED)
            pod.facts.append((tw + 812_000_000, 'missed', None))
        if R.random() < 0.1:
            new_peer(d, sub_ms_safe(td + R.randrange(20, 200) * NS))

# dcr-1: the stuck dcrd is stopped, a new container starts and syncs
d1.log(T_STOP, 'INF', 'DCRD', 'Received signal (terminated).  Shutting down...')
d1.log(T_STOP + 402_000_000, 'INF', 'SRVR', 'Server shutdown in progress')
t = T_START
d1b.log(t, 'INF', 'DCRD', 'Version 2.0.6 (Go version go1.23.4 linux/amd64)')
d1b.log(t + 1_000_000, 'INF', 'DCRD', 'Home dir: /home/dcrd/.dcrd')
d1b.log(t + 3_000_000, 'INF', 'DCRD', "Loading block database from '/home/dcrd/.dcrd/data/mainnet/blocks_ffldb'")
dcr1.last_logged = t + 412_000_000     # the block progress logger starts with the sync manager
for k in range(3):
    new_peer(d1b, t + (2 + k) * NS + R.randrange(0, 400) * 1_000_000)
t_sync = t + 5 * NS + 551_000_000
d1b.log(t_sync, 'INF', 'SYNC', 'Syncing to block height %d from peer 51.15.66.84:9108' % HEAD_AT_START)
dcr1.facts.append((t_sync, 'syncing', HEAD_AT_START))
t_hdr = t_sync + 469_000_000
d1b.log(t_hdr, 'INF', 'SYNC', 'Initial headers sync complete (best header hash %s, height %d)'
        % (block_hash(HEAD_AT_START), HEAD_AT_START))
dcr1.facts.append((t_hdr, 'syncing', HEAD_AT_START))
d1b.log(t_hdr + 1_000_000, 'INF', 'SYNC', 'Syncing chain')
t_caught = t + 11 * NS + 317_000_000
processed(dcr1, d1b, t_caught, HEAD_AT_START, nblocks=HEAD_AT_START - N, ntx=211)
# the wallet reconnects and catches up behind dcrd, then revokes the ticket called meanwhile
tw = t_caught + 9 * NS + 105_000_000
for h in range(N + 1, HEAD_AT_START + 1):
    connected(dcr1, w1, tw, h)
    tw += 37_000_000
tw += 1_214_000_000
w1.log(tw, 'INF', 'WLLT', 'Revoked ticket %s with revocation %s' % (TICKET_REVOKED, hexid('revocation', 'dcr-1', 2)))
dcr1.facts.append((tw, 'missed', None))
for h, tb in blocks:
    if h > HEAD_AT_START:
        td = sub_ms_safe(tb + int(R.uniform(0.15, 1.6) * NS))
        processed(dcr1, d1b, td, h)
        connected(dcr1, w1, td + R.randrange(90, 400) * 1_000_000, h)

# the files end close together
for s in (d0, w0, d1b, w1):
    tt = sub_ms_safe(T_END + R.randrange(0, 3000) * 1_000_000)
    if s.container == 'dcrd':
        new_peer(s, tt)
    else:
        s.log(tt, 'INF', 'TKBY', 'Not buying any tickets this round')

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
def outputs():
    files = {}
    for pod in PODS:
        for s in pod.streams:
            files[os.path.join(HERE, s.file_name())] = s.render()
    events = Sim(PODS, CFG).run()
    # The story this example tells.
    got = [(e['node'], e['event'], e['severity']) for e in events]
    assert got == [('dcr-1', 'missed_precommit', 'info'), ('dcr-1', 'consensus_failure', 'critical'),
                   ('dcr-1', 'out_of_consensus', 'warning'), ('dcr-1', 'ban', 'critical'),
                   ('dcr-1', 'node_syncing', 'warning'), ('dcr-1', 'back_in_consensus', 'info'),
                   ('dcr-1', 'node_synced', 'info'), ('dcr-1', 'missed_precommit', 'warning'),
                   ('dcr-1', 'unban', 'info')], got
    lines = []
    for e in events:
        e = dict(e)
        e['time'] = rfc3339ms(e['time'])
        lines.append(json.dumps(e, sort_keys=False) + '\n')
    files[os.path.join(GOLDEN, 'expected.jsonl')] = ''.join(lines)
    names = sorted(s.file_name() for pod in PODS for s in pod.streams)
    files[os.path.join(GOLDEN, 'args')] = '--chain auto ' + ' '.join(
        '../../../examples/decred/' + n for n in names) + '\n'
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
