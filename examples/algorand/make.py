#!/usr/bin/env python3
"""Writes examples/algorand/ (algod logs) and tests/golden/examples_algorand/.

usage: make.py [--check]

Deterministic (fixed seed, no clock). Two algod pods of one participation setup, 10 minutes
of ~2.9 s rounds, logrus JSON lines as algod writes them (patterns/algorand.yaml):

  algod-0 (region A, holds the online participation key): CRI lines (`algod -o`, stdout).
      Its network is cut for ~2.5 minutes: the ledger stops at round R, the catchup service
      logs "It's been too long since our ledger advanced; resyncing", fails to fetch blocks,
      and once the network is back finishes catching up ("Catchup Service: finished catching
      up, now at round X (previously R)") and agreement concludes rounds again.
  algod-1 (region B, standby, no key online): node.log shipped raw (no CRI wrapper: the time
      comes from the JSON "time" field).

expected.jsonl is computed from the same timeline by the reference model of docs/DETECTION.md
(tests/model/qwmodel.py), never from the program's output. --check regenerates into a temporary directory and compares.
"""
import datetime as dt
import hashlib
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

sys.dont_write_bytecode = True          # no __pycache__ in examples/
sys.path.insert(0, os.path.dirname(HERE))
import examplegen  # noqa: E402  (examples/examplegen.py: shared with the other families)

MS = 1_000_000
US = 1_000
S = 1_000_000_000

CHAIN = 'algorand'
NS = 'algorand'
# The timeline's facts are the reference model's signals (a concluded round is a committed block,
# the catchup service's resync / finished lines syncing / synced); thresholds: patterns/algorand.yaml
# defaults and the built-in ones (docs/DETECTION.md, "Defaults"; the golden replay has no config).
SIGNAL = {'adv': 'block_committed', 'syncing': 'syncing', 'synced': 'synced'}
# what expected.jsonl asserts of each event's detail
DETAIL_KEYS = {'out_of_consensus': ('reason',)}

T0 = int(dt.datetime(2025, 3, 11, 12, 0, 0, tzinfo=dt.timezone.utc).timestamp()) * S
R0 = 47120000
N_ROUNDS = 205

B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'


def b32(seed, n):
    out = []
    h = hashlib.sha256(seed.encode()).digest()
    while len(out) < n:
        h = hashlib.sha256(h).digest()
        out.extend(B32[b % 32] for b in h)
    return ''.join(out[:n])


def addr(seed):
    return b32('addr|' + seed, 58)


def digest(seed):
    return b32('digest|' + seed, 52)


OUR_PART = addr('our-participation-account')
PROPOSERS = [addr('proposer-%d' % i) for i in range(40)]


def utc(t):
    return dt.datetime.fromtimestamp(t // S, tz=dt.timezone.utc)


def cri_stamp(t):
    frac = t % S
    base = utc(t).strftime('%Y-%m-%dT%H:%M:%S')
    return base + ('.' + ('%09d' % frac).rstrip('0') if frac else '') + 'Z'


def logrus_time(t):
    """logrus "2006-01-02T15:04:05.000000Z07:00" in UTC."""
    return utc(t).strftime('%Y-%m-%dT%H:%M:%S') + '.%06dZ' % ((t % S) // US)


def agreement(t, typ, msg, file, function, line, level='info', **kw):
    o = {'Context': 'Agreement', 'Hash': '', 'ObjectPeriod': 0, 'ObjectRound': 0, 'ObjectStep': 0,
         'Period': 0, 'Round': 0, 'Sender': '', 'Step': 0, 'Type': typ, 'Weight': 0, 'WeightTotal': 0}
    o.update(kw)
    o.update({'file': file, 'function': function, 'level': level, 'line': line, 'msg': msg,
              'time': logrus_time(t)})
    return json.dumps(o, separators=(',', ':'), ensure_ascii=False)


def plain(t, msg, file, function, line, level='info'):
    o = {'file': file, 'function': function, 'level': level, 'line': line, 'msg': msg,
         'time': logrus_time(t)}
    return json.dumps(o, separators=(',', ':'), ensure_ascii=False)


class File:
    def __init__(self, pod, container, cri):
        self.pod = pod
        self.cri = cri
        cid = hashlib.sha256(('%s|%s' % (pod, container)).encode()).hexdigest()
        self.name = '%s_%s_%s-%s.log' % (pod, NS, container, cid)
        self.lines = []

    def add(self, t, text):
        self.lines.append((t, len(self.lines), ('%s stdout F %s' % (cri_stamp(t + 37 * US), text)) if self.cri else text))

    def render(self):
        return ''.join(l + '\n' for _, _, l in sorted(self.lines))


def concluded(t, rnd, proposer, dig, pre):
    kind = 'pre-validated block' if pre else 'block'
    return agreement(t, 'RoundConcluded',
                     'committed round %d with %s {{} 0 %s %s %s}' % (rnd, kind, proposer, dig, b32('enc|' + dig, 52)),
                     'actions.go', 'github.com/algorand/go-algorand/agreement.ensureAction.do', 247 if pre else 265,
                     Hash=dig, Round=rnd, Sender=proposer)


def build():
    rng = random.Random('examples/algorand')
    a0 = File('algod-0', 'algod', cri=True)
    a1 = File('algod-1', 'algod', cri=False)
    facts = []

    # round times: ~2.9 s, one round needs period 1
    T = {}
    t = T0
    slow = {R0 + 141}
    for k in range(1, N_ROUNDS + 1):
        r = R0 + k
        t += rng.randint(2750, 3050) * MS + (9 * S if r in slow else 0)
        T[r] = t

    # startup
    for f, d in ((a0, 0), (a1, 310 * MS)):
        ts = T0 - 40 * S + d
        f.add(ts, plain(ts, 'Telemetry Enabled: false', 'telemetry.go', 'github.com/algorand/go-algorand/logging.EnableTelemetryContext', 150))
        f.add(ts + 3 * MS, plain(ts + 3 * MS, 'algod starting for network mainnet-v1.0', 'server.go', 'github.com/algorand/go-algorand/daemon/algod.(*Server).Initialize', 120))
        f.add(ts + 31 * S, plain(ts + 31 * S, 'Catchup Service: finished catching up, now at round %d (previously %d). Total time catching up 30.91822041s.' % (R0, R0 - 11),
                                 'service.go', 'github.com/algorand/go-algorand/catchup.(*Service).sync', 681))
        facts.append((ts + 31 * S, f.pod, 'synced', None))

    OUT_LAST = R0 + 70           # algod-0's last concluded round before its network is cut
    t_cut = T[OUT_LAST] + 600 * MS
    t_back = t_cut + 150 * S + 412 * MS
    catch_to = None
    for k in range(1, N_ROUNDS + 1):
        r = R0 + k
        tr = T[r]
        prop = PROPOSERS[rng.randrange(len(PROPOSERS))]
        dig = digest(str(r))
        pre = rng.random() < 0.8
        # algod-1 (raw node.log)
        t1 = tr + rng.randint(20, 140) * MS
        if r in slow:
            tp = tr - 5 * S
            a1.add(tp, agreement(tp, 'PeriodConcluded', 'entering non-zero period (0 - 1) with value {{} 0 %s %s %s}' % ('A' * 58, 'A' * 52, 'A' * 52),
                                 'trace.go', 'github.com/algorand/go-algorand/agreement.(*tracer).logPeriodConcluded', 199,
                                 ObjectPeriod=1, ObjectRound=r, Round=r))
        a1.add(t1, concluded(t1, r, prop, dig, pre))
        facts.append((t1, 'algod-1', 'adv', r))
        # algod-0
        online = r <= OUT_LAST or (catch_to is not None and r > catch_to)
        if online:
            t0 = tr + rng.randint(15, 120) * MS
            # our account's votes for the next round, when sortition selected it
            if rng.random() < 0.35:
                tv = t0 + rng.randint(5, 40) * MS
                step = rng.choice((1, 2))
                a0.add(tv, agreement(tv, 'VoteBroadcast', 'vote created for broadcast (weight %d, total weight %d)' % (1, 1),
                                     'pseudonode.go', 'github.com/algorand/go-algorand/agreement.pseudonodeVotesTask.execute', 434,
                                     Hash=digest(str(r + 1)), ObjectRound=r + 1, ObjectStep=step, Round=r + 1, Step=step,
                                     Sender=OUR_PART, Weight=1, WeightTotal=1))
            a0.add(t0, concluded(t0, r, prop, dig, pre))
            facts.append((t0, 'algod-0', 'adv', r))
        if r == OUT_LAST:
            ts = T[r] + 6 * S + 218 * MS
            a0.add(ts, plain(ts, "It's been too long since our ledger advanced; resyncing", 'service.go',
                             'github.com/algorand/go-algorand/catchup.(*Service).periodicSync', 585))
            facts.append((ts, 'algod-0', 'syncing', None))
            for i in range(9):
                tf = ts + (i + 1) * 14 * S + rng.randint(0, 900) * MS
                a0.add(tf, plain(tf, 'fetchRound could not acquire block, fetcher errored out: no connected peers', 'service.go',
                                 'github.com/algorand/go-algorand/catchup.(*Service).fetchRound', 597, level='warning'))
        if catch_to is None and r > OUT_LAST and T[r] > t_back + 2 * S:
            # the network is back: catchup fetches the missing rounds and writes them
            catch_to = r - 1
            tdone = t_back + 1 * S + 905 * MS
            a0.add(tdone, plain(tdone, 'Catchup Service: finished catching up, now at round %d (previously %d). Total time catching up 2m32.51092031s.'
                                % (catch_to, OUT_LAST), 'service.go', 'github.com/algorand/go-algorand/catchup.(*Service).sync', 681))
            facts.append((tdone, 'algod-0', 'synced', None))
            assert tdone < T[r]
            t0 = tr + rng.randint(15, 120) * MS
            a0.add(t0, concluded(t0, r, prop, dig, pre))
            facts.append((t0, 'algod-0', 'adv', r))
    ends = {'algod-0': max(l[0] for l in a0.lines), 'algod-1': max(l[0] for l in a1.lines)}
    return [a0, a1], facts, ends


def write(outroot):
    files, facts, ends = build()
    events = examplegen.model_events(CHAIN, 'algorand', [
        (pod, NS, [(t, SIGNAL[k], d) for t, p, k, d in facts if p == pod], [ends[pod]])
        for pod in ('algod-0', 'algod-1')], DETAIL_KEYS)
    first_end = min(ends.values())
    for e in events:
        assert e['time'] < first_end - S, ('event in the ragged end', e)
    kinds = [(e['node'], e['event'], e.get('detail', {}).get('reason')) for e in events]
    assert kinds == [
        ('algod-0', 'node_syncing', None),
        ('algod-0', 'out_of_consensus', 'syncing'),
        ('algod-0', 'node_stalled', None),
        ('algod-0', 'node_synced', None),
        ('algod-0', 'back_in_consensus', None),
        ('algod-0', 'node_recovered', None),
    ], kinds
    return examplegen.write_example(
        outroot, 'algorand', [(f.name, f.render()) for f in files],
        # --chain algorand: auto-detection ties with cometbft on algod's "time" stamps (patterns/algorand.yaml header)
        '--chain algorand ', events)


def main(argv):
    return examplegen.main_listed(argv, write, REPO)


if __name__ == '__main__':
    sys.exit(main(sys.argv))
