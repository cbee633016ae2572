#!/usr/bin/env python3
"""Generates examples/eos/ and tests/golden/examples_eos/ (deterministic: fixed seed, no clock).

usage: examples/eos/make.py [--check]

The story (EOS mainnet, Antelope Spring 1.x nodeos, 0.5 s blocks, 21 producers x 12 blocks):

  bp-0  region A, the active block producer of our account `quorumwatch1`
  bp-1  region B, hot standby: same producer name and key, production paused
        (it logs `Not producing block because production is explicitly paused` in our slots:
        normal, no event)

  Five and a half minutes, almost three producer rotations. One other producer
  (`bpoffline111`) is down all the time: a 6 s gap without blocks every rotation, which must not
  page anybody (stall_after 30 s).
  At 08:02:25 bp-0 loses every peer (network partition) for 35 s. Its head stops; our round at
  08:02:36-08:02:42 falls inside the partition: with no finality votes from the others, Spring's
  production pause logs `Not producing block because no recent votes received from others` for
  each of our 12 slots, the chain misses our whole round (bp-1 is paused). bp-0 falls more than
  24 blocks behind bp-1 (out_of_consensus `lagging`), reaches the 30 s stall deadline, and when
  the network comes back it catches up through lib catch-up (`Catching up with chain`,
  `requesting range`), recovers, and is back in consensus once within 24 blocks of the head.

Expected events are computed from this timeline by the reference model of docs/DETECTION.md
(tests/model/qwmodel.py), never from the program's output. The story's assertions below fail if
the model and the story disagree.
"""
import hashlib
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

sys.dont_write_bytecode = True          # no __pycache__ in examples/
sys.path.insert(0, os.path.dirname(HERE))
import examplegen  # noqa: E402  (examples/examplegen.py: shared with the other families)

MS = 1_000_000
S = 1_000_000_000

SEED = 'quorumwatch/examples/eos'
NS = 'eos'
CHAIN = 'eos-mainnet'
T0 = 1739174400 * S          # 2025-02-10T08:00:00Z
B0 = 419_862_700             # block number of slot 0
SLOTS = 660                  # five and a half minutes of 0.5 s slots
OURS = 'quorumwatch1'
OUR_INDEX = 9
OFFLINE_INDEX = 16
FIRST_OUR_SLOT = 60          # our first round starts 30 s in
PARTITION = (145 * S, 180 * S)   # bp-0 without peers (offsets from T0)

PRODUCERS = ['aurorablock1', 'bitgoodbpeos', 'blocksmithio', 'chainstormbp', 'cryptolionsx',
             'eosamsterdm1', 'eosbarcelona', 'eoscafeblock', 'eosrionodes1', OURS,
             'genereos1111', 'guildnodeeos', 'helsinkibp11', 'hkeosproduce', 'lisbonnode11',
             'newyorkbp111', 'bpoffline111', 'sentinelbp11', 'tokyoblocks1', 'torontobp111',
             'zurichnodes1']
assert PRODUCERS[OUR_INDEX] == OURS and PRODUCERS[OFFLINE_INDEX] == 'bpoffline111' and len(PRODUCERS) == 21


def utc_parts(t):
    import datetime as dt
    d = dt.datetime.fromtimestamp(t // S, dt.timezone.utc)
    return d, t % S


def rfc3339nano(t):
    d, ns = utc_parts(t)
    return d.strftime('%Y-%m-%dT%H:%M:%S') + '.%09dZ' % ns


def fc_time(t):
    """fc::time_point as nodeos prints it: UTC, milliseconds, no zone."""
    d, ns = utc_parts(t)
    return d.strftime('%Y-%m-%dT%H:%M:%S') + '.%03d' % (ns // MS)


def hexid(*parts, n=16):
    return hashlib.sha256('/'.join(str(p) for p in parts).encode()).hexdigest()[:n]


# ----------------------------------------------------------------------------
# the chain: which slot has a block, of which producer
# ----------------------------------------------------------------------------

def producer_of(slot):
    return PRODUCERS[((slot - FIRST_OUR_SLOT) // 12 + OUR_INDEX) % 21]


def slot_time(slot):
    return T0 + slot * 500 * MS


class Block:
    def __init__(self, num, slot, producer):
        self.num, self.slot, self.producer = num, slot, producer
        self.t = slot_time(slot)
        self.id16 = hexid(SEED, 'block', num)


def our_rounds():
    return [s for s in range(SLOTS) if producer_of(s) == OURS]


def partition_slots():
    return [s for s in our_rounds() if PARTITION[0] <= s * 500 * MS < PARTITION[1]]


def build_chain():
    missed = set(partition_slots())       # bp-0 partitioned, bp-1 paused: nobody produces our round
    blocks, num = [], B0
    for s in range(SLOTS):
        p = producer_of(s)
        if p == 'bpoffline111' or (p == OURS and s in missed):
            continue
        blocks.append(Block(num, s, p))
        num += 1
    return blocks


# ----------------------------------------------------------------------------
# nodes and their log lines
# ----------------------------------------------------------------------------

class Node:
    def __init__(self, pod, rng):
        self.pod = pod
        self.rng = rng
        self.lines = []          # (t_ns, message)
        self.facts = []          # (t_ns, kind, data) for the model
        self.height = None
        cid = hashlib.sha256(('%s/%s' % (SEED, pod)).encode()).hexdigest()
        self.file = '%s_%s_nodeos-%s.log' % (pod, NS, cid)

    def t_at(self, t):
        """A line's runtime time: nodeos prints milliseconds, the runtime stamp is a little later
        (below half a millisecond past the ms, so truncating and rounding agree)."""
        return t - t % MS + self.rng.randint(20_000, 480_000)

    def log(self, t, level, thread, fileline, method, msg):
        t = self.t_at(t)
        head = '%-5s %s %-9s %-29s %-20s ] ' % (level, fc_time(t), thread, fileline[-29:], method[:20])
        self.lines.append((t, head + msg))
        return t

    def received(self, t, b, lat_ms=None):
        if lat_ms is None:
            lat_ms = (t - b.t) // MS
        trxs = self.rng.choice([3, 5, 6, 7, 8, 9, 11, 14, 18, 23])
        net = trxs * self.rng.randint(120, 180)
        cpu = trxs * self.rng.randint(250, 900)
        el = cpu + self.rng.randint(50, 400)
        ap = el + self.rng.randint(300, 900)
        msg = ('Received block %s... #%d @ %s signed by %s [trxs: %d, lib: %d, net: %d, cpu: %d us, '
               'elapsed: %d us, applying time: %d us, latency: %d ms]') % (
            b.id16, b.num, fc_time(b.t), b.producer, trxs, b.num - 2, net, cpu, el, ap, lat_ms)
        tt = self.log(t, 'info', 'nodeos', 'controller.cpp:3641', 'log_applied', msg)
        self.advance(tt, b.num)

    def produced(self, t, b):
        trxs = self.rng.choice([4, 6, 7, 9, 12, 15, 21])
        net = trxs * self.rng.randint(120, 180)
        cpu = trxs * self.rng.randint(250, 900)
        msg = ('Produced block %s... #%d @ %s signed by %s [trxs: %d, lib: %d, net: %d, cpu: %d us, '
               'elapsed: %d us, producing time: %d us]') % (
            b.id16, b.num, fc_time(b.t), b.producer, trxs, b.num - 2, net, cpu,
            cpu + self.rng.randint(50, 300), self.rng.randint(440_000, 470_000))
        tt = self.log(t, 'info', 'nodeos', 'controller.cpp:3461', 'commit_block', msg)
        self.advance(tt, b.num)

    def advance(self, t, num):
        if self.height is None or num > self.height:
            self.facts.append((t, 'adv', num))
            self.height = num

    def peers(self, t, clients, peers, configured=6):
        msg = 'p2p client connections: %d/25, peer connections: %d/%d, block producer peers: 0' % (
            clients, peers, configured)
        self.log(t, 'info', 'net-%d' % self.rng.randint(0, 3), 'net_plugin.cpp:4899', 'connection_monitor', msg)

    def render(self):
        self.lines.sort(key=lambda x: x[0])
        return ''.join('%s stderr F %s\n' % (rfc3339nano(t), m) for t, m in self.lines)


PEERS = [('p2p.eosnation.io:9876', '198.51.100.21'), ('peer.eosn.io:9876', '203.0.113.17'),
         ('p2p.cryptolions.io:9876', '198.51.100.77'), ('eos.p2p.eosrio.io:9876', '203.0.113.90'),
         ('peer1.blocksmith.io:9876', '198.51.100.140'), ('p2p-east.bp-a.internal:9876', '10.20.1.15')]


def peer_tag(rng, i):
    host, ip = PEERS[i]
    return '["%s - %s" - %d %s:9876]' % (host, hexid(SEED, host, n=7), i + 3, ip)


def generate():
    rng = random.Random(SEED)
    blocks = build_chain()
    by_slot = {b.slot: b for b in blocks}
    bp0 = Node('bp-0', random.Random(SEED + '/bp-0'))
    bp1 = Node('bp-1', random.Random(SEED + '/bp-1'))
    p0, p1 = T0 + PARTITION[0], T0 + PARTITION[1]

    # --- bp-0: produces our rounds, receives the rest; partitioned in PARTITION
    def when(b):
        if b.producer == OURS:
            return b.t - bp0.rng.randint(320, 380) * MS
        return b.t + bp0.rng.randint(-300, 150) * MS
    after = []            # blocks from the partition on, in chain order
    last_before = None
    for b in blocks:
        t = when(b)
        if after or t >= p0:
            after.append(b)
            continue
        if b.producer == OURS:
            bp0.produced(t, b)
        else:
            bp0.received(t, b)
        last_before = b
    # the partition: connections fail, our 12 slots are not produced
    for i, dt_s in enumerate((4, 19)):
        for k in (0, 1, 3):
            bp0.log(p0 + dt_s * S + (i * 3 + k) * 7 * MS, 'info', 'net-%d' % k, 'net_plugin.cpp:2862', 'operator()',
                    'connection failed to %s, Connection timed out' % PEERS[k][0])
    last_vote = fc_time(p0 - 1 * S + 500 * MS)
    conflict = fc_time(p0 + 1 * S)
    for s in partition_slots():
        t = bp0.log(slot_time(s) - 499 * MS, 'error', 'nodeos', 'producer_plugin.cpp:2090', 'determine_pending_bl',
                    'Not producing block because no recent votes received from others, block %s, other votes %s, '
                    'conflict block %s' % (fc_time(slot_time(s)), last_vote, conflict))
        bp0.facts.append((t, 'skip', None))
    # healing: handshakes, lib catch-up, fast apply of the missing blocks, back to normal
    h = bp0.height
    head_at_heal = max(b.num for b in blocks if b.t + 250 * MS < p1)
    peer_lib = head_at_heal - 2
    t = p1 + 12 * MS
    for i in (0, 1, 2):
        bp0.log(t + i * 3 * MS, 'info', 'net-%d' % i, 'net_plugin.cpp:1596', 'operator()',
                '%s Sending handshake generation 1, lib %d, fhead %d, id %s' % (peer_tag(rng, i), h - 2, h, hexid(SEED, 'b', h)))
    t = p1 + 140 * MS
    tt = bp0.log(t, 'info', 'net-1', 'net_plugin.cpp:2184', 'operator()',
                 '%s Catching up with chain, our last req is %d, theirs is %d, next expected %d, fhead %d' % (
                     peer_tag(rng, 1), h, peer_lib, h + 1, h))
    bp0.facts.append((tt, 'syncing', (peer_lib, h)))
    bp0.log(t + 1 * MS, 'info', 'net-1', 'net_plugin.cpp:2236', 'operator()',
            '%s requesting range %d to %d, fhead %d, froot %d' % (peer_tag(rng, 1), h + 1, peer_lib, h, h - 2))
    bp0.facts.append((bp0.lines[-1][0], 'syncing', (peer_lib, h)))
    t = p1 + 190 * MS
    caught = False
    for b in after:
        if not caught:
            tc = t + 12 * MS + bp0.rng.randint(0, 3) * MS
            if tc <= b.t + 250 * MS:         # caught up with the live chain: normal propagation again
                caught = True
            else:
                t = tc
        if caught:
            t = max(when(b), t + 5 * MS)
        if b.producer == OURS:
            assert caught
            bp0.produced(t, b)
        else:
            bp0.received(t, b)
        if b.num == peer_lib:
            tt = bp0.log(t + 2 * MS, 'info', 'net-1', 'net_plugin.cpp:2095', 'set_state',
                         'old state lib catchup becoming in sync')
            bp0.facts.append((tt, 'synced', None))
    # connection monitor every 30 s (nothing while there is no connection at all)
    for k in range(0, SLOTS // 60):
        tm = T0 + (k * 30 + 11) * S + 169 * MS
        if p0 <= tm < p1:
            continue
        bp0.peers(tm, 2, 6)

    # --- bp-1: standby, paused; receives everything including bp-0's blocks
    for b in blocks:
        bp1.received(b.t + bp1.rng.randint(-250, 250) * MS, b)
    for s in our_rounds():
        bp1.log(slot_time(s) - 499 * MS + bp1.rng.randint(0, 3) * MS, 'warn', 'nodeos', 'producer_plugin.cpp:2075',
                'determine_pending_bl', 'Not producing block because production is explicitly paused, block %s' % fc_time(slot_time(s)))
    for k in range(0, SLOTS // 60):
        bp1.peers(T0 + (k * 30 + 23) * S + 402 * MS, 1, 5)
    return [bp0, bp1], blocks, last_before


# ----------------------------------------------------------------------------
# expected events: the reference model of docs/DETECTION.md (tests/model/qwmodel.py)
# ----------------------------------------------------------------------------

# The chain's configuration of CONFIG below (= patterns/eos.yaml defaults).
CHAIN_CONFIG = {'stall_after': '30s', 'max_lag': 24, 'missed': {'window': 252, 'max': 6}}
# the timeline's facts as the model's signals: a "Not producing block" in our slot is a skipped slot
SIGNAL = {'adv': 'block_committed', 'skip': 'slot_skipped', 'syncing': 'syncing', 'synced': 'synced'}
# what expected.jsonl asserts of each event's detail
DETAIL_KEYS = {'out_of_consensus': ('reason',), 'missed_precommit': ('kind', 'window', 'max'),
               'node_syncing': ('target_height',)}


def expected_events(nodes):
    return examplegen.model_events(
        CHAIN, 'eos', [(n.pod, NS, [(t, SIGNAL[k], d) for t, k, d in n.facts], [max(t for t, _ in n.lines)])
                       for n in nodes], DETAIL_KEYS, config=CHAIN_CONFIG)


CONFIG = """# quorumwatch configuration for examples/eos (see README): chains and nodes only.
# No node is marked `signer: true`: nodeos logs no votes (patterns/eos.yaml).
chains:
  eos-mainnet:
    family: eos
    stall_after: 30s
    max_lag: 24
    missed: {window: 252, max: 6}
"""


def write(outdir):
    nodes, blocks, last_before = generate()
    events = expected_events(nodes)

    # the story, checked
    kinds = [(e['node'], e['event'], e['severity']) for e in events]
    assert all(n == 'bp-0' for n, _, _ in kinds), kinds
    assert [k for _, k, _ in kinds if k != 'missed_precommit'] == [
        'out_of_consensus', 'node_stalled', 'node_syncing', 'node_recovered', 'back_in_consensus', 'node_synced'], kinds
    missed = [e for e in events if e['event'] == 'missed_precommit']
    assert len(missed) == 12 and [e['severity'] for e in missed] == ['info'] * 6 + ['warning'] * 6
    assert {e['height'] for e in missed} == {last_before.num + 1}
    assert missed[-1]['time'] < events[[e['event'] for e in events].index('out_of_consensus')]['time']
    ooc = next(e for e in events if e['event'] == 'out_of_consensus')
    assert ooc['detail']['reason'] == 'lagging' and ooc['height'] == last_before.num
    stalled = next(e for e in events if e['event'] == 'node_stalled')
    assert stalled['height'] == last_before.num
    last_line = min(max(t for t, _ in n.lines) for n in nodes)
    assert all(e['time'] < last_line - 5 * S for e in events), 'an event in the ragged end'
    assert len({(e['time'] // MS, e['node'], e['event']) for e in events}) == len(events)

    examplegen.write_example(outdir, 'eos', [(n.file, n.render()) for n in nodes],
                             '--chain auto --config ../../../examples/eos/quorumwatch.yaml ', events, CONFIG)


def main(argv):
    return examplegen.main_tree(argv, write, REPO, 'eos')


if __name__ == '__main__':
    sys.exit(main(sys.argv))
