#!/usr/bin/env python3
"""Writes examples/tezos/ (Octez container logs) and tests/golden/examples_tezos/.

usage: make.py [--check]

Deterministic (fixed seed, no clock). Two pods of one Tezos baking setup, 30 minutes of
mainnet-like 8 s levels, CRI lines around Octez >= 18 messages (advertise_levels prefix
`Mar 11 10:00:08.214 NOTICE │ `, events wrapped at Format's 78-column margin with the
prefix repeated and two spaces of indentation, see patterns/tezos.yaml):

  tezos-baker-0 (region A, the active baker): containers octez-node, octez-baker,
      octez-accuser: one node. Its remote signer times out for four levels: the baker logs
      "unable to sign attestation ..." for each (missed attestations) and "failed to forge
      block ..." for its round-0 baking slot (lost slot; the level is then baked at round 1
      by someone else). Later a restarted baker refuses a second block for a level it already
      baked ("potential double baking detected", own double-sign risk), and the accuser
      denounces another delegate's double baking (others_misbehaviour).
  tezos-node-1 (region B, standby node, no baker): loses all its connections for ~3.5 min,
      falls behind, stalls, reports "synchronisation status: unsynced", reconnects and catches up.

expected.jsonl is computed from the same timeline by the reference model of docs/DETECTION.md
(tests/model/qwmodel.py) (never from the program's output).
--check regenerates into a temporary directory and compares.
"""
import datetime as dt
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

CHAIN = 'tezos/tezos'  # replay --chain auto: <family>/<namespace>
NS = 'tezos'
# Thresholds: patterns/tezos.yaml defaults (with derive_misses: false) and the built-in ones
# (docs/DETECTION.md, "Defaults"; the golden replay has no config).
# what expected.jsonl asserts of each event's detail
DETAIL_KEYS = {'out_of_consensus': ('reason',), 'missed_precommit': ('kind',), 'double_sign_risk': ('reason',)}


def signal(kind, data):
    """A timeline fact as the reference model's signal."""
    if kind == 'adv':
        return 'block_committed', data
    if kind == 'missed':                 # (level or None, 'missed_vote' | 'skipped_slot')
        return {'missed_vote': 'vote_missed', 'skipped_slot': 'slot_skipped'}[data[1]], data[0]
    if kind == 'dsr':
        return 'double_sign_risk', data
    if kind == 'others':
        return 'others_misbehaviour', (None, None)
    return kind, data                    # syncing, synced

T0 = int(dt.datetime(2025, 3, 11, 10, 0, 0, tzinfo=dt.timezone.utc).timestamp()) * S
L0 = 8456000
N_LEVELS = 225

B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'


def b58(seed, n):
    out = []
    h = hashlib.sha256(seed.encode()).digest()
    while len(out) < n:
        h = hashlib.sha256(h).digest()
        out.extend(B58[b % 58] for b in h)
    return ''.join(out[:n])


def block_hash(level, rnd=0):
    return 'B' + 'LKM'[level % 3] + b58('block|%d|%d' % (level, rnd), 49)


def op_hash(*parts):
    return 'o' + 'onp'[len(parts) % 3] + b58('op|' + '|'.join(map(str, parts)), 49)


BAKER_A = 'baker_a (tz1Mxr2tB5Qn9Q2xaqkXUvDNKNLqMNuizHgm)'


def utc(t):
    return dt.datetime.fromtimestamp(t // S, tz=dt.timezone.utc)


def cri_stamp(t):
    frac = t % S
    base = utc(t).strftime('%Y-%m-%dT%H:%M:%S')
    return base + ('.' + ('%09d' % frac).rstrip('0') if frac else '') + 'Z'


def octez_stamp(t):
    d = utc(t)
    return d.strftime('%b %d %H:%M:%S') + '.%03d' % ((t % S) // MS)


LEVELS = {'NOTICE': ' NOTICE ', 'WARN': '   WARN ', 'ERROR': '  ERROR ', 'INFO': '   INFO '}


def wrap(msg, width=78):
    """Format's hov box at the default 78-column margin: words fill a line, continuation
    lines are indented by two spaces. Explicit newlines (error traces) are kept."""
    out = []
    for para_i, para in enumerate(msg.split('\n')):
        indent = '' if para_i == 0 else '  '
        words = para.strip(' ').split(' ')
        lead = len(para) - len(para.lstrip(' '))
        line = indent + ' ' * lead + words[0]
        for w in words[1:]:
            if len(line) + 1 + len(w) > width:
                out.append(line)
                line = '  ' + w
            else:
                line += ' ' + w
        out.append(line)
    return out


class File:
    def __init__(self, pod, container):
        self.pod = pod
        self.container = container
        cid = hashlib.sha256(('%s|%s' % (pod, container)).encode()).hexdigest()
        self.name = '%s_%s_%s-%s.log' % (pod, NS, container, cid)
        self.lines = []   # (t, seq, text)

    def log(self, t, level, msg):
        prefix = octez_stamp(t) + LEVELS[level] + '│ '
        for i, part in enumerate(wrap(msg)):
            # the runtime stamps each physical line as it is written: a few µs apart
            tt = t + i * 3000
            self.lines.append((tt, len(self.lines), '%s stdout F %s%s' % (cri_stamp(tt), prefix, part)))

    def render(self):
        return ''.join(l + '\n' for _, _, l in sorted(self.lines))


# ------------------------------------------------------------------------ timeline

def level_times(rng):
    """Block times of levels L0+1 .. L0+N: 8 s apart, some levels decided at round 1 (+12 s)."""
    t = T0
    times = {}
    rounds = {}
    round1 = {L0 + 37, L0 + 63, L0 + 121, L0 + 188}
    for k in range(1, N_LEVELS + 1):
        lvl = L0 + k
        if lvl in round1:
            t += 20 * S
            rounds[lvl] = 1
        else:
            t += 8 * S
            rounds[lvl] = 0
        times[lvl] = t + rng.randint(0, 40) * MS
    return times, rounds


def build(outdir):
    rng = random.Random('examples/tezos')
    T, R = level_times(rng)
    last_level = L0 + N_LEVELS

    node0 = File('tezos-baker-0', 'octez-node')
    baker = File('tezos-baker-0', 'octez-baker')
    accuser = File('tezos-baker-0', 'octez-accuser')
    node1 = File('tezos-node-1', 'octez-node')
    facts = []   # (t, pod, kind, data)

    def fact(t, pod, kind, data=None):
        facts.append((t, pod, kind, data))

    # --- startup (the pods were restarted a minute before the window)
    ts = T0 - 55 * S
    for f, extra in ((node0, 0), (node1, 700 * MS)):
        f.log(ts + extra, 'NOTICE', 'read identity file')
        f.log(ts + extra + 2 * MS, 'NOTICE', 'starting the Tezos node v21.2 (1ac0e4f4)')
        f.log(ts + extra + 9 * MS, 'NOTICE', 'p2p initialization: bootstrapping')
        f.log(ts + extra + 201 * MS, 'NOTICE', 'p2p initialization: p2p_maintenance_started')
        f.log(ts + extra + 1340 * MS, 'NOTICE', 'activate chain NetXdQprcVkpaWU')
        f.log(ts + extra + 1402 * MS, 'NOTICE', 'starting local RPC server on ::ffff:0.0.0.0:8732 (acl = AllowAll)')
        f.log(ts + extra + 1403 * MS, 'NOTICE', 'the Tezos node is now running')
        f.log(ts + extra + 9110 * MS, 'NOTICE', 'chain is bootstrapped')
        f.log(ts + extra + 9111 * MS, 'NOTICE', 'synchronisation status: synced')
    baker.log(ts + 20 * S, 'NOTICE', 'Baker v21.2 (1ac0e4f4) for PsQuebecnLByd3JwTiGadoG4nGWi3HYiLXUjkibeFV8dCFeVMUg started.')
    baker.log(ts + 20 * S + 40 * MS, 'NOTICE', 'Baker will run with the following delegates:\n  ' + BAKER_A)
    accuser.log(ts + 20 * S + 5 * MS, 'NOTICE', 'Accuser v21.2 (1ac0e4f4) for PsQuebecnLByd3JwTiGadoG4nGWi3HYiLXUjkibeFV8dCFeVMUg started.')
    accuser.log(ts + 20 * S + 9 * MS, 'NOTICE', 'waiting for the node to be synchronized')
    accuser.log(ts + 20 * S + 212 * MS, 'NOTICE', 'Node synchronized.')

    # --- node-1's outage: last head before it, reconnect, catch-up
    OUT_LAST = L0 + 150                      # node-1's last level before losing its peers
    t_lost = T[OUT_LAST] + 2 * S + 310 * MS
    t_reconnect = T[OUT_LAST] + 215 * S + 70 * MS

    signer_down = {L0 + 60, L0 + 61, L0 + 62, L0 + 63}
    forge_fail_after = L0 + 62               # our round-0 slot for L0+63 is lost
    our_blocks = {L0 + 12, L0 + 35, L0 + 58, L0 + 97, L0 + 131, L0 + 174, L0 + 203}
    double_bake_level = L0 + 98              # the restarted baker's refusal

    caught_up_at = None
    for k in range(1, N_LEVELS + 1):
        lvl = L0 + k
        tb = T[lvl]
        rnd = R[lvl]
        # our baker bakes some levels (injected just before the nodes apply them)
        if lvl in our_blocks:
            tp = tb - 160 * MS
            baker.log(tp, 'NOTICE', 'block %s at level %d, round %d injected for %s with %d manager operations summing %d μtz in fees'
                      % (block_hash(lvl, rnd), lvl, rnd, BAKER_A, rng.randint(8, 60), rng.randint(9000, 90000)))
            fact(tp, 'tezos-baker-0', 'adv', lvl)
        # node 0 applies the level
        t0 = tb + rng.randint(120, 380) * MS
        node0.log(t0, 'NOTICE', 'head is now %s (%d)' % (block_hash(lvl, rnd), lvl))
        fact(t0, 'tezos-baker-0', 'adv', lvl)
        # node 1 (standby), except during its outage
        if lvl <= OUT_LAST:
            t1 = tb + rng.randint(180, 620) * MS
            node1.log(t1, 'NOTICE', 'head is now %s (%d)' % (block_hash(lvl, rnd), lvl))
            fact(t1, 'tezos-node-1', 'adv', lvl)
        elif caught_up_at is not None and lvl > caught_up_at:
            t1 = tb + rng.randint(180, 620) * MS
            node1.log(t1, 'NOTICE', 'head is now %s (%d)' % (block_hash(lvl, rnd), lvl))
            fact(t1, 'tezos-node-1', 'adv', lvl)
        # the baker's consensus operations for this level
        tpre = t0 + rng.randint(180, 420) * MS
        tatt = tpre + rng.randint(700, 1300) * MS
        if lvl in signer_down:
            baker.log(tpre, 'ERROR', 'unable to sign preattestation for %s at level %d, round %d -- Error:\n  Signature call reached a timeout of 5s'
                      % (BAKER_A, lvl, rnd))
            baker.log(tatt, 'ERROR', 'unable to sign attestation for %s at level %d, round %d -- Error:\n  Signature call reached a timeout of 5s'
                      % (BAKER_A, lvl, rnd))
            fact(tatt, 'tezos-baker-0', 'missed', (lvl, 'missed_vote'))
        else:
            baker.log(tpre, 'NOTICE', 'injected preattestation %s for %s for level %d, round %d'
                      % (op_hash('pre', lvl), BAKER_A, lvl, rnd))
            baker.log(tatt, 'NOTICE', 'injected attestation %s for %s for level %d, round %d'
                      % (op_hash('att', lvl), BAKER_A, lvl, rnd))
        if lvl == forge_fail_after:
            tf = T[lvl] + 7 * S + 902 * MS
            baker.log(tf, 'ERROR', 'failed to forge block for %s -- Error:\n  Signature call reached a timeout of 5s' % BAKER_A)
            fact(tf, 'tezos-baker-0', 'missed', (None, 'skipped_slot'))   # height = node level + 1
        if lvl == double_bake_level:
            tr = T[lvl] + 3 * S + 118 * MS
            baker.log(tr, 'NOTICE', 'Baker v21.2 (1ac0e4f4) for PsQuebecnLByd3JwTiGadoG4nGWi3HYiLXUjkibeFV8dCFeVMUg started.')
            baker.log(tr + 31 * MS, 'NOTICE', 'Baker will run with the following delegates:\n  ' + BAKER_A)
            td = T[lvl] + 7 * S + 655 * MS
            baker.log(td, 'WARN', 'potential double baking detected at level %d, round 0' % (lvl + 1))
            fact(td, 'tezos-baker-0', 'dsr', (lvl + 1, 'potential_double_baking'))
        if lvl == L0 + 140:
            ta = T[lvl] + 2 * S + 514 * MS
            accuser.log(ta, 'NOTICE', 'double baking detected')
            fact(ta, 'tezos-baker-0', 'others', None)
            accuser.log(ta + 583 * MS, 'NOTICE', 'double baking evidence injected %s' % op_hash('den', lvl))
            fact(ta + 583 * MS, 'tezos-baker-0', 'others', None)
        # node-1's outage and recovery
        if lvl == OUT_LAST:
            node1.log(t_lost, 'NOTICE', 'too few connections (conn.: 3, min. target: 10, conf: [10;50])')
            for i, c in enumerate((1, 0, 0, 0, 0, 0)):
                node1.log(t_lost + (i + 1) * 30 * S + 17 * MS, 'NOTICE',
                          'too few connections (conn.: %d, min. target: 10, conf: [10;50])' % c)
            tu = T[OUT_LAST] + 104 * S + 260 * MS
            node1.log(tu, 'NOTICE', 'synchronisation status: unsynced')
            fact(tu, 'tezos-node-1', 'syncing', None)
        if caught_up_at is None and lvl > OUT_LAST and T[lvl] > t_reconnect + 6 * S:
            # node-1 reconnected between the previous level and this one: it applies the
            # missing levels as fast as it fetches them, then follows the chain again
            tc = t_reconnect + 1 * S + 404 * MS
            target = lvl - 1
            for m in range(OUT_LAST + 1, target + 1):
                tc += rng.randint(90, 160) * MS
                node1.log(tc, 'NOTICE', 'head is now %s (%d)' % (block_hash(m, R[m]), m))
                fact(tc, 'tezos-node-1', 'adv', m)
            node1.log(tc + 12 * MS, 'NOTICE', 'synchronisation status: synced')
            fact(tc + 12 * MS, 'tezos-node-1', 'synced', None)
            caught_up_at = target
            assert tc < T[lvl], 'catch-up overlaps the next level'
            t1 = T[lvl] + rng.randint(180, 620) * MS
            node1.log(t1, 'NOTICE', 'head is now %s (%d)' % (block_hash(lvl, R[lvl]), lvl))
            fact(t1, 'tezos-node-1', 'adv', lvl)
        # a reorganisation at the same level (a round-1 block with more attestations)
        if k == 56:
            node0.log(t0 + 2 * S + 3 * MS, 'NOTICE', 'switch branch to %s (%d)' % (block_hash(lvl, 1), lvl))
    # end: the last lines of every file near the end of the window
    tend = T[last_level] + 5 * S
    accuser.log(tend, 'NOTICE', 'block %s registered' % block_hash(last_level))
    node1.log(tend + 20 * MS, 'NOTICE', 'too few connections (conn.: 9, min. target: 10, conf: [10;50])')
    for f in (node0, node1, baker, accuser):
        f.lines.sort()
    files = [node0, baker, accuser, node1]
    ends = {'tezos-baker-0': max(l[0] for f in (node0, baker, accuser) for l in f.lines),
            'tezos-node-1': max(l[0] for l in node1.lines)}
    return files, facts, ends


def write(outroot):
    files, facts, ends = build(outroot)
    events = examplegen.model_events(CHAIN, 'tezos', [
        (pod, NS, [(t,) + signal(k, d) for t, p, k, d in facts if p == pod], [ends[pod]])
        for pod in ('tezos-baker-0', 'tezos-node-1')], DETAIL_KEYS)
    first_end = min(ends.values())
    for e in events:
        assert e['time'] < first_end - S, ('event in the ragged end', e)
    # the story this example tells
    kinds = [(e['node'], e['event'], e['severity']) for e in events]
    assert kinds == [
        ('tezos-baker-0', 'missed_precommit', 'info'),
        ('tezos-baker-0', 'missed_precommit', 'info'),
        ('tezos-baker-0', 'missed_precommit', 'info'),
        ('tezos-baker-0', 'missed_precommit', 'warning'),
        ('tezos-baker-0', 'missed_precommit', 'warning'),
        ('tezos-baker-0', 'double_sign_risk', 'critical'),
        ('tezos-baker-0', 'double_sign_risk', 'info'),
        ('tezos-baker-0', 'double_sign_risk', 'info'),
        ('tezos-node-1', 'out_of_consensus', 'warning'),
        ('tezos-node-1', 'node_stalled', 'warning'),
        ('tezos-node-1', 'node_syncing', 'warning'),
        ('tezos-node-1', 'node_recovered', 'info'),
        ('tezos-node-1', 'back_in_consensus', 'info'),
        ('tezos-node-1', 'node_synced', 'info'),
    ], kinds
    return examplegen.write_example(outroot, 'tezos', [(f.name, f.render()) for f in files], '--chain auto ', events,
                                    ensure_ascii=False)


def main(argv):
    return examplegen.main_listed(argv, write, REPO)


if __name__ == '__main__':
    sys.exit(main(sys.argv))
