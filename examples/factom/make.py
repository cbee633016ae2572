#!/usr/bin/env python3
"""Writes the Factom example logs and their golden replay expectations.

    python3 examples/factom/make.py          # (re)write the files
    python3 examples/factom/make.py --check  # compare with what is checked in

Scenario (namespace `factom`, chain factom-prod in examples/factom/quorumwatch.yaml; the golden
replay uses --chain auto, so there the chain is named `factom`): an operator runs two
FEDERATED authority servers of Factom mainnet, both started with -loglvl=info (without it
factomd prints no per-block line at all, see patterns/factom.yaml):
  factomd-0   identity 888888d027c3...   region A
  factomd-1   identity 88888826b1f4...   region B
Both boot at 09:00 (fast-boot state, then the local database: node_syncing / node_synced) and
sign every directory block at minute 0 ("Generate DBSig"). At 10:03 factomd-0 loses its network
(it keeps logging p2p dial failures). It misses its DBSig for block 238419; the network faults
it and elects an audit server in its place, which factomd-1 prints ("Swaping Fed: 3(d027c3)",
"LeaderSwapState"). factomd-0 is stalled 20 min after its last DBSig (block 238418), out of
consensus, and banned 30 min later (factomd-1 is healthy, so the safety rails allow it). When its
network comes back at 10:58 it jumps to the network's height ("State move between non-sequential
heights") but, demoted to audit server, signs no more blocks. factomd-1 goes on until 11:30.

Expectations are computed from this timeline by the reference model of docs/DETECTION.md
(tests/model/qwmodel.py),
never from the program's output. Every line's text follows a factomd format string cited in
patterns/factom.yaml or below.
"""
import calendar
import hashlib
import os
import random
import sys
import time as _t

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GOLDEN = os.path.join(ROOT, 'tests', 'golden', 'examples_factom')

sys.dont_write_bytecode = True          # no __pycache__ in examples/
sys.path.insert(0, os.path.dirname(HERE))
import examplegen  # noqa: E402  (examples/examplegen.py: shared with the other families)

US = 1000
MS = 1000 * US
S = 1000 * MS
MIN = 60 * S
H = 60 * MIN

CHAIN = 'factom/factom'  # --chain auto: <family>/<namespace>
NAMESPACE = 'factom'
CONTAINER = 'factomd'

# The timeline's facts as the reference model's signals (patterns/factom.yaml: a DBSig is a
# produced block; the fast-boot / database load a sync to its target). Thresholds: the family's
# defaults and the built-in ones (docs/DETECTION.md, "Defaults"; the golden replay has no config).
SIGNAL = {'adv': 'block_produced', 'syncing': 'syncing', 'synced': 'synced',
          'others': 'others_misbehaviour', 'round_timeout': 'round_timeout'}
# what expected.jsonl asserts of each event's detail
DETAIL_KEYS = {'out_of_consensus': ('reason',), 'ban': ('reason',), 'node_syncing': ('target_height',),
               'missed_precommit': ('kind', 'missed_in_window', 'window', 'max'),
               'double_sign_risk': ('reason', 'validator')}


def epoch_ns(y, mo, d, h=0, mi=0, s=0):
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * S


def rfc3339s(t):
    return _t.strftime('%Y-%m-%dT%H:%M:%SZ', _t.gmtime(t // S))


def hexof(*parts, n=64):
    return hashlib.sha256('/'.join(str(p) for p in parts).encode()).hexdigest()[:n]


class Node:
    def __init__(self, pod, identity, rng):
        self.pod = pod
        self.identity = identity
        self.rng = rng
        self.lines = []          # (t, stream, text)
        self.facts = []          # (t, kind, data)
        self.file = '%s_%s_%s-%s.log' % (pod, NAMESPACE, CONTAINER, hexof(pod, CONTAINER))

    def t(self, t):
        """A CRI time with a sub-millisecond part below 0.5 ms (rounding = truncation)."""
        return t - t % MS + self.rng.randrange(0, 500) * US + self.rng.randrange(0, 1000)

    def out(self, t, text, stream='stdout', fact=None):
        t = self.t(t)
        self.lines.append((t, stream, text))
        if fact is not None:
            self.facts.append((t, fact[0], fact[1]))
        return t

    def logrus(self, t, level, msg, fields, fact=None):
        """logrus TextFormatter, stdout not a terminal: time, level, msg, then sorted keys."""
        def val(v):
            v = str(v)
            return '"%s"' % v if (v == '' or any(c in v for c in ' ="')) else v
        text = 'time="%s" level=%s msg=%s' % (rfc3339s(t), level, val(msg))
        text += ''.join(' %s=%s' % (k, val(v)) for k, v in sorted(fields.items()))
        return self.out(t, text, 'stdout', fact)


BUILD = hexof('factomd v6.7.0 build', n=40)


def boot(n, t0, fastboot_height, db_head):
    """engine/factomd.go Factomd() banner (stdout), engine/NetStart.go parameter table (stderr,
    "%20s %v"), state/loadDatabase.go LoadDatabase progress (stderr); order as in
    https://github.com/FactomProject/factomd/issues/663."""
    t = t0
    n.out(t, 'Go compiler version: go1.13.15')
    n.out(t + 1 * MS, 'Using build: %s' % BUILD)
    n.out(t + 2 * MS, 'Version: 6.7.0')
    start = t + 3 * MS
    # Go time.Time String(): "2006-01-02 15:04:05.999999999 -0700 MST m=+0.002871012" (fraction trimmed)
    frac = ('%09d' % (start % S)).rstrip('0')
    n.out(start, 'Start time: %s%s +0000 UTC m=+0.00%07d' % (
        _t.strftime('%Y-%m-%d %H:%M:%S', _t.gmtime(start // S)), '.' + frac if frac else '',
        n.rng.randrange(10 ** 6, 10 ** 7)))
    n.out(t + 5 * MS, 'factom config: /root/.factom/m2/factomd.conf')
    # state restored from the fast-boot file, then MoveStateToHeight (stateConsensus.go)
    n.out(t + 1412 * MS, 'State move between non-sequential heights from 0 to %d' % fastboot_height, 'stderr',
          fact=('synced', None))
    salt = hexof(n.pod, 'salt', n=16)
    table = [('Build', BUILD), ('Node name', ''), ('balancehash', 'true'), ('FNode 0 Salt', salt),
             ('enablenet', 'true'), ('waitentries', 'false'), ('node', '0'), ('prefix', ''),
             ('node count', '1'), ('FastSaveRate', '1000'), ('net spec', '"tree"'), ('Msgs droped', '0'),
             ('journal', '""'), ('database', '"LDB"'), ('database for clones', '""'), ('peers', '""'),
             ('exclusive', '"false"'), ('exclusive_in', '"false"'), ('block time', '600'),
             ('runtimeLog', 'false'), ('rotate', 'false'), ('timeOffset', '0'), ('keepMismatch', 'false'),
             ('startDelay', '10'), ('Network', 'MAIN'), ('customnet', 'e3b0c442'), ('deadline (ms)', '1000'),
             ('tls', 'false'), ('selfaddr', ''), ('rpcuser', '""'), ('rpcpass', 'is blank'),
             ('TCP port', '"8108"'), ('pprof port', '"6060"'), ('Control Panel port', '"8090"')]
    for i, (k, v) in enumerate(table):
        n.out(t + 1420 * MS + i * MS, '%20s %s' % (k, v), 'stderr')
    first = fastboot_height + 1
    for i in range(first, db_head + 1):
        if i > first + 500 and i % 1000 == 0:
            n.out(t + 4 * S + 118 * MS, '%20s Loading Block %7d / %d. Blocks per second %8.2f average bps %8.2f '
                  'Progress %s remaining %s Estimated Total Time: %s ' % (
                      'FNode0', i, db_head, 412.77, 398.2, '0:02', '0:01', '0:03'), 'stderr',
                  fact=('syncing', db_head))
    n.out(t + 5 * S + 901 * MS, '%20s Loading complete %d.' % ('FNode0', db_head), 'stderr', fact=('synced', None))


def dbsig(n, t, height, vm):
    """state/stateConsensus.go SendDBSig -> logrus Info "Generate DBSig" with dbs.LogFields()."""
    n.logrus(t, 'info', 'Generate DBSig', {
        'category': 'message', 'messagetype': 'dbsig', 'dbheight': height, 'vm': vm,
        'server': n.identity, 'prevkeymr': hexof('keymr', height - 1), 'hash': hexof(n.pod, 'dbsig', height),
        'lheight': height, 'node-name': 'FNode0', 'func': 'SendDBSig', 'package': 'state',
        'subpack': 'consensus'}, fact=('adv', height))


# ------------------------------------------------------------------ the scenario
B0 = 238413                                  # first block both servers sign
T_B0 = epoch_ns(2025, 4, 7, 9, 10, 0)


def block_start(b):
    return T_B0 + (b - B0) * 10 * MIN


LAST_F0 = 238418                             # factomd-0's last DBSig
LAST_F1 = 238425
T_SWAP = block_start(LAST_F0 + 1) + 1 * MIN + 7 * S + 412 * MS
T_RECONNECT = epoch_ns(2025, 4, 7, 10, 58, 12) + 305 * MS


def build():
    rng = random.Random(238419)
    f0 = Node('factomd-0', '888888d027c3' + hexof('f0 identity', n=52), random.Random(rng.random()))
    f1 = Node('factomd-1', '88888826b1f4' + hexof('f1 identity', n=52), random.Random(rng.random()))
    boot(f0, epoch_ns(2025, 4, 7, 9, 0, 0) + 512 * MS, 237000, 238411)
    boot(f1, epoch_ns(2025, 4, 7, 9, 0, 41) + 77 * MS, 237000, 238411)

    for b in range(B0, LAST_F0 + 1):
        dbsig(f0, block_start(b) + 850 * MS + f0.rng.randrange(0, 40) * MS, b, (b + 3) % 5)
    for b in range(B0, LAST_F1 + 1):
        dbsig(f1, block_start(b) + 330 * MS + f1.rng.randrange(0, 40) * MS, b, (b + 1) % 5)

    # factomd-0 loses its network: p2p/controller_connections.go Dial:
    # c.logger.WithError(err).Infof("Failed to dial to %s", ep) (logger fields of the p2p package)
    peers = ['52.17.183.121', '18.196.44.2', '34.240.12.198', '3.121.60.45', '54.93.211.17']
    t = epoch_ns(2025, 4, 7, 10, 3, 10)
    while t < T_RECONNECT - 30 * S:
        ip = f0.rng.choice(peers)
        f0.logrus(t + f0.rng.randrange(0, 999) * MS, 'info', 'Failed to dial to %s:8108' % ip,
                  {'error': 'dial tcp %s:8108: i/o timeout' % ip, 'package': 'p2p'})
        t += f0.rng.randrange(40, 90) * S
    # the network faults factomd-0 at block 238419 and swaps in an audit server; every node that
    # processes the election prints it (common/messages/electionMsgs/fedVoteLevelMsg.go)
    f1.out(T_SWAP, '**** FedVoteLevelMsg %12s Swaping Fed: %d(%s) Audit: %d(%s)' % (
        'FNode0', 3, f0.identity[6:12], 1, '5e0b7a'), fact=('others', (None, f0.identity[6:12])))
    f1.out(T_SWAP + 2 * MS, 'LeaderSwapState FNode0 %d %d' % (LAST_F0 + 1, 0), fact=('round_timeout', None))
    # factomd-0 back on the network: it catches up with DBStates and jumps to the current block
    now_block = LAST_F0 + 1 + (T_RECONNECT - block_start(LAST_F0 + 1)) // (10 * MIN)
    f0.out(T_RECONNECT, 'State move between non-sequential heights from %d to %d' % (LAST_F0 + 1, now_block),
           'stderr', fact=('synced', None))
    for n in (f0, f1):
        n.lines.sort()
        n.facts.sort()
    return [f0, f1]


def expected(nodes):
    def signals(n):
        for t, kind, data in n.facts:
            yield t, SIGNAL[kind], (data, None) if kind == 'syncing' else data
    events = examplegen.model_events(CHAIN, 'factom', [(n.pod, NAMESPACE, list(signals(n)), [max(l[0] for l in n.lines)])
                                                   for n in nodes], DETAIL_KEYS)
    events.sort(key=lambda e: (e['time'] // MS, e['chain'], e['node'], e['event']))
    # The story this example tells.
    kinds = [(e['node'], e['event']) for e in events]
    assert [k for n, k in kinds if n == 'factomd-0'] == [
        'node_syncing', 'node_synced', 'node_stalled', 'out_of_consensus', 'ban'], kinds
    assert [k for n, k in kinds if n == 'factomd-1'] == ['node_syncing', 'node_synced', 'double_sign_risk']
    stall = next(e for e in events if e['event'] == 'node_stalled')
    assert stall['height'] == LAST_F0
    last_line = min(n.lines[-1][0] for n in nodes)
    assert all(e['time'] < last_line for e in events), 'an event in the ragged end'
    return events


def render(nodes):
    files = {}
    for n in nodes:
        files[os.path.join(HERE, n.file)] = ''.join(
            '%s %s F %s\n' % (examplegen.rfc3339nano(t), stream, text) for t, stream, text in n.lines)
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
