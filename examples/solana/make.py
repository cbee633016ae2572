#!/usr/bin/env python3
"""Generates examples/solana/ and tests/golden/examples_solana/.

Long on purpose: the story has many signals; sections: timeline, line
rendering, expected events (the reference model tests/model/qwmodel.py), story
checks.

usage: make.py [--check]

A small Solana (Agave) mainnet-beta setup in Kubernetes, namespace solana-mainnet:

  validator-0  the active voting validator (staked identity), region A
  validator-1  the hot spare (junk identity) in region B; its log starts with the
               container's start-up (ledger replay) 40 s before the others
  rpc-0        an RPC node behind a load balancer that probes /health every 5 s

What happens (t = seconds after 2025-03-11T14:00:00Z; one slot = 400 ms):

  t=-36..-22  validator-1 starts: "processing ledger" (syncing), "ledger processed" (synced)
  t=40.0      validator-0: PARTITION DETECTED (its last vote is on a minority fork);
              its roots pause until the partition resolves at t=47.2
  t=70.0      failover automation runs `agave-validator set-identity` on validator-1 with
              the STAKED identity while validator-0 is still running with it
  t=76..77.6  our leader window: validator-0 produces the 4 blocks; validator-1 has not
              landed a vote yet and logs "Haven't landed a vote, so skipping my leader slot"
  t=81.3      validator-0's gossip sees the newer instance of its identity: "duplicate
              running instances of the same validator node" and the process exits (its
              log ends; the file stays: the end of a captured file says nothing about the
              node, so it falls behind the others' roots: lagging, then stalled 60 s after
              its last root)
  t=100..175  rpc-0's replay is stuck (no new roots): lagging > 128 slots, health checks
              "behind by N slots" (syncing), stalled 60 s after its last root; from t=175
              it catches up at 4 roots per slot
  t=215.0     rpc-0: the cluster duplicate-confirmed another version of a slot than the
              one it replayed (that slot's leader produced two blocks)
  t=240       the logs end

The log lines are rendered from this timeline in Agave's env_logger format
(docs/LOG-FORMATS.md section 5, texts as cited in patterns/solana.yaml),
inside CRI lines (`--log -` writes to stderr). expected.jsonl is computed from the same
timeline by the reference model of docs/DETECTION.md (tests/model/qwmodel.py), with the
thresholds of patterns/solana.yaml -- never from the program's output. The story's events
are asserted below, so a slip in the model fails this script.

--check regenerates into a temporary directory and compares with the checked-in files.
"""
import datetime as dt
import filecmp
import hashlib
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
GOLDEN = os.path.join(REPO, 'tests', 'golden', 'examples_solana')

sys.dont_write_bytecode = True          # no __pycache__ in examples/
sys.path.insert(0, os.path.dirname(HERE))
import examplegen  # noqa: E402  (examples/examplegen.py: shared with the other families)

US = 1_000
MS = 1_000_000
S = 1_000_000_000

T0 = int(dt.datetime(2025, 3, 11, 14, 0, 0, tzinfo=dt.timezone.utc).timestamp()) * S
SLOT_NS = 400 * MS
SLOT0 = 326104500                # the tip slot at T0
END = 240 * S                    # all logs end here (relative to T0)
NAMESPACE = 'solana-mainnet'
CONTAINER = 'agave-validator'
VERSION = '2.1.14 (src:3ad46824; feat:3271415109, client:Agave)'

# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------

B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'


def b58(*parts):
    """A 32-byte key or hash, base58 like Solana prints Pubkey/Hash."""
    raw = hashlib.sha256('|'.join(str(p) for p in parts).encode()).digest()
    n = int.from_bytes(raw, 'big')
    out = ''
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return out


def h32(*parts):
    return int.from_bytes(hashlib.sha256('|'.join(str(p) for p in parts).encode()).digest()[:4], 'big')


def utc(t):
    return dt.datetime.fromtimestamp(t // S, tz=dt.timezone.utc)


def stamp_nanos(t):
    """env_logger format_timestamp_nanos: RFC 3339, 9 fraction digits, Z."""
    return utc(t).strftime('%Y-%m-%dT%H:%M:%S') + '.%09dZ' % (t % S)


def cri_stamp(t):
    """containerd's RFC3339Nano: trailing zeros trimmed."""
    frac = t % S
    base = utc(t).strftime('%Y-%m-%dT%H:%M:%S')
    return base + 'Z' if frac == 0 else base + '.' + ('%09d' % frac).rstrip('0') + 'Z'


def rel(sec):
    return T0 + int(round(sec * 1000)) * MS


def skipped(slot):
    """Slots whose leader produced no block (about 6 %, normal on mainnet)."""
    return slot % 17 == 5


def tip_at(t):
    return SLOT0 + (t - T0) // SLOT_NS


def slot_time(slot):
    return T0 + (slot - SLOT0) * SLOT_NS


def rootable(tip):
    """The root a healthy tower reaches with the tip at `tip`: 32 slots back, never a
    skipped slot."""
    r = tip - 32
    while skipped(r):
        r -= 1
    return r


def next_rooted(r):
    r += 1
    while skipped(r):
        r += 1
    return r


STAKED = b58('identity', 'staked')
JUNK = b58('identity', 'junk', 'validator-1')
RPC_ID = b58('identity', 'rpc-0')
VOTE_ACCOUNT = b58('vote-account')
OTHER_LEADER = b58('identity', 'other-leader')

# ----------------------------------------------------------------------------
# rendering
# ----------------------------------------------------------------------------


class Pod:
    def __init__(self, name, node_offset_us):
        self.name = name
        self.off = node_offset_us * US
        self.records = []        # (runtime time, [physical message lines])
        self.signals = []        # (runtime time, kind, data) for the model

    def log(self, t, level, module, msg, signal=None):
        """One env_logger record written at `t` (log stamp); the runtime stamps it a
        little later. Extra physical lines of the message follow within the same ms."""
        first, *rest = msg.split('\n')
        rt = t + 60 * US
        t_log = t + h32('ns', self.name, t) % 1000      # the logger's own nanoseconds
        lines = ['[%s %-5s %s] %s' % (stamp_nanos(t_log), level, module, first)] + rest
        self.records.append((rt, lines))
        if signal is not None:
            self.signals.append((rt, signal[0], signal[1]))
        return rt

    def at(self, t, salt):
        """A stamp near `t`: the node's offset plus a per-line jitter below 0.3 ms, so
        truncating to milliseconds never depends on rounding."""
        return t + self.off + (h32(self.name, salt) % 250) * US

    def file_name(self):
        cid = hashlib.sha256(('%s/%s/0' % (self.name, CONTAINER)).encode()).hexdigest()
        return '%s_%s_%s-%s.log' % (self.name, NAMESPACE, CONTAINER, cid)

    def sorted_records(self):
        recs = sorted(self.records, key=lambda r: r[0])
        times = [r[0] for r in recs]
        assert len(times) == len(set(times)), 'two records of %s at one instant' % self.name
        return recs

    def last_time(self):
        return self.sorted_records()[-1][0]

    def render(self):
        out = []
        for t, lines in self.sorted_records():
            for i, m in enumerate(lines):
                out.append('%s stderr F %s\n' % (cri_stamp(t + i * 7 * US), m))
        return ''.join(out)


RS = 'solana_core::replay_stage'


def new_fork(pod, t, slot, parent, root, leader=False):
    pod.log(t, 'INFO', RS, 'new fork:%d parent:%d%s root:%d' %
            (slot, parent, ' (leader)' if leader else '', root))


def new_root(pod, t, root):
    pod.log(t, 'INFO', RS, 'new root %d' % root, ('adv', root))


def startup_validator_1(pod):
    t = rel(-40.0)
    pod.log(pod.at(t, 'v'), 'INFO', 'agave_validator', 'agave-validator ' + VERSION)
    args = ['agave-validator', '--identity', '/keys/junk-identity.json',
            '--vote-account', VOTE_ACCOUNT, '--authorized-voter', '/keys/staked-identity.json',
            '--ledger', '/ledger', '--accounts', '/accounts', '--log', '-',
            '--rpc-port', '8899', '--private-rpc', '--dynamic-port-range', '8000-8020',
            '--entrypoint', 'entrypoint.mainnet-beta.solana.com:8001',
            '--known-validator', '7Np41oeYqPefeNQEHSv1UDhYrehxin3NStELsSKCT4K2',
            '--expected-genesis-hash', '5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d',
            '--wal-recovery-mode', 'skip_any_corrupted_record', '--limit-ledger-size']
    dump = 'Starting validator with: ArgsOs {\n    inner: [\n' + ''.join(
        '        "%s",\n' % a for a in args) + '    ],\n}'
    pod.log(pod.at(t + 2 * MS, 'a'), 'INFO', 'agave_validator::commands::run::execute', dump)
    # local ledger replay from the snapshot root, status every 2 s; the container was down
    # for a while, so the ledger ends ~90 slots behind the cluster's tip
    secs = list(range(-36, -23, 2))
    last_slot = tip_at(rel(-22.0)) - 90
    steps = [37 + (h32('pl', i) % 9) for i in range(len(secs))]
    slot = last_slot - sum(steps)
    for i, sec in enumerate(secs):
        slot += steps[i]
        pod.log(pod.at(rel(sec), ('pl', i)), 'INFO', 'solana_ledger::blockstore_processor',
                'processing ledger: slot=%d, root_slot=%d slots=%d, slots/s=%.1f, txs/s=%.1f' %
                (slot, slot - 32, steps[i], steps[i] / 2.0, 41000.5 + 313 * i),
                ('syncing', None))
    root = slot - 32
    banks = [root] + [s for s in range(root + 1, slot + 1) if not skipped(s)]
    pod.log(pod.at(rel(-22.0), 'lp'), 'INFO', 'solana_ledger::blockstore_processor',
            'ledger processed in 18 seconds and 211 milliseconds. root slot is %d, %d banks: %s' %
            (root, len(banks), ', '.join(str(b) for b in banks)), ('synced', None))
    return root


def build():
    v0 = Pod('validator-0', 0)
    v1 = Pod('validator-1', 9000)
    rpc = Pod('rpc-0', 21000)
    pods = [v0, v1, rpc]
    story = {}

    v1_root = startup_validator_1(v1)
    roots = {'validator-0': rootable(SLOT0 - 1), 'validator-1': v1_root, 'rpc-0': rootable(SLOT0 - 1)}

    # per-slot ticks from t=-20 s (validator-1 catching up) to the end
    partition_from, partition_to = rel(40.0), rel(47.2)
    failover_at = rel(70.0)
    leader_first = tip_at(rel(76.0))
    assert not any(skipped(s) for s in range(leader_first, leader_first + 4))
    dup_exit = rel(81.3)
    rpc_stop, rpc_resume = rel(100.0), rel(175.0)
    dup_slot_at = rel(215.0)
    v0_alive = True
    v1_identity = JUNK
    health_next = rel(105.0)
    forked = {p.name: None for p in pods}

    t = rel(-20.0)
    while t < T0 + END:
        tip = tip_at(t)
        for pod in pods:
            name = pod.name
            if name != 'validator-1' and t < T0:
                continue
            if name == 'validator-0' and not v0_alive:
                continue
            stuck = name == 'rpc-0' and rpc_stop <= t < rpc_resume
            # ---- replay: a new bank per slot that reached us, up to 4 per slot while
            # catching up (validator-1 after its start, rpc-0 after its stall)
            if not stuck:
                if forked[name] is None:
                    forked[name] = roots[name] + 32 if name == 'validator-1' else tip - 1
                todo = [x for x in range(forked[name] + 1, tip + 1) if not skipped(x)][:4]
                for i, slot in enumerate(todo):
                    parent = slot - 1
                    while skipped(parent):
                        parent -= 1
                    leader = name == 'validator-0' and leader_first <= slot < leader_first + 4
                    if leader and slot == leader_first:
                        pod.log(pod.at(t + 2 * MS, ('lc', slot)), 'INFO', RS,
                                'LEADER CHANGE at slot: %d leader: %s. I am now the leader' %
                                (slot, STAKED))
                    new_fork(pod, pod.at(t + (5 + 30 * i) * MS, ('nf', slot)), slot, parent,
                             roots[name], leader)
                    if name == 'validator-0' and slot == leader_first + 4:
                        pod.log(pod.at(t + 40 * MS, ('lc', slot)), 'INFO', RS,
                                'LEADER CHANGE at slot: %d leader: %s. I am no longer the leader' %
                                (slot, OTHER_LEADER))
                if todo:
                    forked[name] = max(forked[name], todo[-1]) if len(todo) == 4 else tip
            # ---- voting / rooting, ~250-330 ms into the slot
            vt = pod.at(t + 250 * MS, ('vt', tip))
            target = rootable(tip)
            if name == 'validator-0' and partition_from <= vt < partition_to:
                pod.log(vt, 'INFO', RS,
                        "Couldn't vote on heaviest fork: %d, heaviest_fork_failures: "
                        '[LockedOut(%d), FailedSwitchThreshold(%d, 0, 398116225734012331)]' %
                        (tip, tip, tip))
                continue
            if stuck:
                continue
            if name == 'rpc-0' and t >= rpc_resume and roots[name] < target:
                r = roots[name]
                for _ in range(4):
                    if r < target:
                        r = next_rooted(r)
                target = r
            elif name == 'validator-1' and t < T0 and roots[name] < target:
                r = roots[name]
                for _ in range(4):
                    if r < target:
                        r = next_rooted(r)
                target = r
            if target > roots[name]:
                roots[name] = target
                new_root(pod, vt, target)
            if name == 'validator-1' and v1_identity == JUNK and t >= T0 - 10 * S:
                pod.log(pod.at(vt + 3 * MS, ('hs', tip)), 'INFO', RS,
                        'Vote account node_pubkey mismatch: %s (expected: %s).  Unable to vote' %
                        (STAKED, JUNK))

        # ---- the incidents, at their own times within this slot
        nt = t + SLOT_NS
        if t <= partition_from < nt:
            heaviest = tip_at(partition_from)
            story['partition_slot'] = heaviest
            v0.log(partition_from + 330 * MS, 'WARN', RS,
                   'PARTITION DETECTED waiting to join heaviest fork: %d last vote: Some(%d), '
                   'reset slot: %d' % (heaviest, heaviest - 3, heaviest - 2),
                   ('missed', heaviest))
        if t <= partition_to < nt:
            hv = tip_at(partition_to)
            v0.log(partition_to + 330 * MS, 'WARN', RS,
                   'PARTITION resolved heaviest fork: %d last vote: Some(%d), reset slot: %d' %
                   (hv, hv - 1, hv))
        if t <= failover_at < nt:
            v1.log(failover_at + 340 * MS, 'WARN', RS,
                   'Identity changed from %s to %s' % (JUNK, STAKED))
            v1_identity = STAKED
        if leader_first <= tip < leader_first + 4:
            for j in range(2):
                st = slot_time(tip) + 50 * MS + j * 200 * MS
                v1.log(v1.at(st + 30 * MS, ('hl', tip, j)), 'INFO', RS,
                       "Haven't landed a vote, so skipping my leader slot", ('skipped', None))
        if v0_alive and t <= dup_exit < nt:
            v0.log(dup_exit, 'ERROR', 'solana_gossip::cluster_info',
                   'duplicate running instances of the same validator node: %s' % STAKED,
                   ('double_sign', None))
            v0_alive = False
        if t <= health_next < nt and health_next < T0 + END:
            me = roots['rpc-0'] + 31
            cluster = tip_at(health_next) - 1
            if cluster - me > 128:
                rpc.log(rpc.at(health_next + 360 * MS, ('hc', health_next)), 'WARN',
                        'solana_rpc::rpc_health',
                        'health check: behind by %d slots: me=%d, latest cluster=%d' %
                        (cluster - me, me, cluster), ('syncing', (me, cluster)))
            health_next += 5 * S
        if t <= dup_slot_at < nt:
            x = tip - 6
            while skipped(x):
                x -= 1
            story['dup_slot'] = x
            bt = dup_slot_at + 370 * MS
            rpc.log(bt, 'WARN', 'solana_core::repair::cluster_slot_state_verifier',
                    'Cluster duplicate confirmed slot %d with hash %s, but our version has hash %s' %
                    (x, b58('dup', x, 'cluster'), b58('dup', x, 'ours')), ('others', x))
            rpc.log(bt + 900 * US, 'WARN', RS, 'purging duplicate slot: %d with slot_id %d' % (x, 4108873))
            rpc.log(bt + 1200 * US, 'WARN', RS,
                    'Notifying repair service to repair duplicate slot: %d, attempt 1' % x)
        t = nt
    story['leader_first'] = leader_first
    story['dup_exit'] = dup_exit
    return pods, story


# ----------------------------------------------------------------------------
# expected events: the reference model of docs/DETECTION.md (tests/model/qwmodel.py)
# ----------------------------------------------------------------------------

# what expected.jsonl asserts of each event's detail
DETAIL_KEYS = {'out_of_consensus': ('reason',), 'back_in_consensus': ('reason',),
               'missed_precommit': ('kind', 'missed_in_window'), 'double_sign_risk': ('reason',),
               'node_syncing': ('target_height',)}


def signal(kind, data):
    """A timeline signal as the model's (patterns/solana.yaml)."""
    if kind == 'adv':
        return 'block_committed', data                      # new root
    if kind == 'missed':
        return 'vote_missed', data                          # PARTITION DETECTED: the slot
    if kind == 'skipped':
        return 'slot_skipped', None                         # our leader slot skipped
    if kind == 'double_sign':
        return 'double_sign_risk', (None, 'duplicate_instance')
    if kind == 'others':
        return 'others_misbehaviour', (data, None)          # the duplicate slot
    if kind == 'syncing':                                   # health check: (me, latest cluster)
        return 'syncing', (data[1], data[0]) if data else None
    if kind == 'synced':
        return 'synced', None
    raise ValueError(kind)


def expected_events(pods):
    """Thresholds: patterns/solana.yaml defaults and the built-in ones (docs/DETECTION.md,
    "Defaults"; the example uses no configuration). The end of a captured file is not the
    node's removal: it stays judged (validator-0 after its exit)."""
    times = [t for p in pods for t, _, _ in p.signals]
    assert len(times) == len(set(times)), 'two signals at the same instant: not covered'
    return examplegen.model_events(
        'solana/' + NAMESPACE, 'solana',
        [(p.name, NAMESPACE, [(t,) + signal(k, d) for t, k, d in p.signals], [p.last_time()]) for p in pods],
        DETAIL_KEYS)


def check_story(events, story):
    got = [(e['node'], e['event'], e['severity']) for e in events]
    want = ([('validator-1', 'node_syncing', 'warning'), ('validator-1', 'node_synced', 'info'),
             ('validator-0', 'missed_precommit', 'info')] +
            [('validator-1', 'missed_precommit', 'info')] * 8 +
            [('validator-0', 'double_sign_risk', 'critical'),
             ('validator-0', 'out_of_consensus', 'warning'), ('validator-0', 'node_stalled', 'warning'),
             ('rpc-0', 'out_of_consensus', 'warning'), ('rpc-0', 'node_syncing', 'warning'),
             ('rpc-0', 'node_stalled', 'warning'), ('rpc-0', 'node_recovered', 'info'),
             ('rpc-0', 'back_in_consensus', 'info'), ('rpc-0', 'node_synced', 'info'),
             ('rpc-0', 'double_sign_risk', 'info')])
    assert got == want, '\n'.join(map(str, got))
    assert events[2]['height'] == story['partition_slot']
    assert events[11]['detail'] == {'reason': 'duplicate_instance'}
    assert events[12]['detail'] == {'reason': 'lagging'} and events[12]['node'] == 'validator-0'
    assert events[14]['detail'] == {'reason': 'lagging'} and events[14]['node'] == 'rpc-0'
    assert events[-1]['height'] == story['dup_slot']


def write(out_examples, out_golden):
    pods, story = build()
    events = expected_events(pods)
    check_story(events, story)
    os.makedirs(out_examples, exist_ok=True)
    os.makedirs(out_golden, exist_ok=True)
    names = []
    for p in pods:
        with open(os.path.join(out_examples, p.file_name()), 'w', encoding='utf-8') as f:
            f.write(p.render())
        names.append(p.file_name())
    with open(os.path.join(out_golden, 'args'), 'w', encoding='utf-8') as f:
        f.write('--chain auto ' + ' '.join('../../../examples/solana/' + n for n in sorted(names)) + '\n')
    with open(os.path.join(out_golden, 'expected.jsonl'), 'w', encoding='utf-8') as f:
        for e in events:
            f.write(examplegen.event_json(e) + '\n')
    return names


def main(argv):
    if argv[1:] == ['--check']:
        with tempfile.TemporaryDirectory() as tmp:
            ex, gd = os.path.join(tmp, 'ex'), os.path.join(tmp, 'gd')
            names = write(ex, gd)
            bad = []
            for n in names:
                if not filecmp.cmp(os.path.join(ex, n), os.path.join(HERE, n), shallow=False):
                    bad.append(n)
            for n in ('args', 'expected.jsonl'):
                if not filecmp.cmp(os.path.join(gd, n), os.path.join(GOLDEN, n), shallow=False):
                    bad.append(n)
            if bad:
                print('out of date: ' + ', '.join(bad))
                return 1
            print('examples/solana and tests/golden/examples_solana are up to date')
            return 0
    if argv[1:]:
        print(__doc__.strip().splitlines()[2])
        return 2
    for old in os.listdir(HERE):
        if old.endswith('.log'):
            os.remove(os.path.join(HERE, old))
    names = write(HERE, GOLDEN)
    total = sum(os.path.getsize(os.path.join(HERE, n)) for n in names)
    print('wrote %d logs (%d KB) and tests/golden/examples_solana' % (len(names), total // 1024))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
