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
Expected events are computed below from the same timeline by the reference model of
docs/DETECTION.md (tests/model/qwmodel.py) (never from quorumwatch output):
  dcr-1: missed_precommit info (vote failed, height = last + 1), consensus_failure critical
  (height = last + 1) + out_of_consensus `consensus_failure`, ban 30 min later (dcr-0 is
  healthy), node_syncing at "Syncing to block height" (height = its target), back_in_consensus
  + node_synced at the first block within max_lag of the head, missed_precommit warning for the
  revoked ticket (second miss, over missed.max 1), unban 10 min after back in consensus.

usage: python3 examples/decred/make.py [--check]
"""
import datetime
import hashlib
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GOLDEN = os.path.join(ROOT, 'tests', 'golden', 'examples_decred')

sys.dont_write_bytecode = True          # no __pycache__ in examples/
sys.path.insert(0, os.path.dirname(HERE))
import examplegen  # noqa: E402  (examples/examplegen.py: shared with the other families)

NS = 1_000_000_000
MIN = 60 * NS
CHAIN = 'decred/decred'  # --chain auto: <family>/<namespace>
NAMESPACE = 'decred'
# The timeline's facts as the reference model's signals (a failed vote or a revoked ticket of
# ours is a missed duty). Thresholds: patterns/decred.yaml defaults and the built-in ones
# (docs/DETECTION.md, "Defaults"; the golden replay has no config).
SIGNAL = {'adv': 'block_committed', 'fail': 'consensus_failure', 'missed': 'vote_missed', 'syncing': 'syncing'}
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
        return ''.join('%s stdout F %s\n' % (examplegen.rfc3339nano(t), m) for t, m in sorted(self.lines))


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

# --------------------------------------------------------------------------- output
def outputs():
    files = {}
    for pod in PODS:
        for s in pod.streams:
            files[os.path.join(HERE, s.file_name())] = s.render()
    events = examplegen.model_events(CHAIN, 'decred', [(pod.pod, NAMESPACE, list(signals(pod.facts)),
                                                        [max(t for t, _ in s.lines) for s in pod.streams])
                                                       for pod in PODS], DETAIL_KEYS)
    # The story this example tells.
    got = [(e['node'], e['event'], e['severity']) for e in events]
    assert got == [('dcr-1', 'missed_precommit', 'info'), ('dcr-1', 'consensus_failure', 'critical'),
                   ('dcr-1', 'out_of_consensus', 'warning'), ('dcr-1', 'ban', 'critical'),
                   ('dcr-1', 'node_syncing', 'warning'), ('dcr-1', 'back_in_consensus', 'info'),
                   ('dcr-1', 'node_synced', 'info'), ('dcr-1', 'missed_precommit', 'warning'),
                   ('dcr-1', 'unban', 'info')], got
    files[os.path.join(GOLDEN, 'expected.jsonl')] = ''.join(examplegen.event_json(e) + '\n' for e in events)
    names = sorted(s.file_name() for pod in PODS for s in pod.streams)
    files[os.path.join(GOLDEN, 'args')] = '--chain auto ' + ' '.join(
        '../../../examples/decred/' + n for n in names) + '\n'
    return files


def main(argv):
    return 1 if examplegen.write_or_check(outputs(), ROOT, '--check' in argv[1:], announce=True) else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
