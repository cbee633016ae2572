#!/usr/bin/env python3
"""Generates examples/cometbft-signers/ and tests/golden/examples_cometbft-signers/ (deterministic).

usage: examples/cometbft-signers/make.py [--check]

The story (Cosmos Hub, gaia on CometBFT 0.38 logging at info, so gaiad prints no own vote):

  validator-0 (namespace cosmos) runs two containers in one pod:
    gaiad  the validator node, privval on tcp://0.0.0.0:26658
    tmkms  tmkms 0.14 (softsign) as a sidecar, connected to 127.0.0.1:26658; its `signed
           Prevote/Precommit ... at h/r/s` lines are the validator's own votes.

  09:00  all well: tmkms signs a prevote and a precommit for every height, and the proposals of
         the heights our validator proposes.
  09:04  the tmkms container is OOM-killed; kubelet restarts it 45 s later (a second tmkms file of
         the same pod). gaiad goes on committing the heights the others sign: our precommits for
         them are missing. quorumwatch derives the missed precommits from gaiad's commits without a
         tmkms precommit: five `info`, then `warning` once more than 5 of the last 100 heights are
         missed.
         The restarted tmkms has a new configuration: "for redundancy" the operator added the
         region B node validator-1 (namespace cosmos-b, a synced full node listening for a remote
         signer) as a second [[validator]]. Two validator processes now ask the same KMS to sign;
         tmkms signs the identical requests twice.
  09:05  validator-1, which did not get the proposal in time, asks for a nil prevote at the
         height/round/step where validator-0's prevote for the block was already signed: tmkms
         refuses, `attempted double sign` -> `double_sign_risk` critical for validator-0 (the pod
         whose signer logged it).
  09:07  the operator stops validator-1; tmkms keeps retrying it every second
         (`I/O error: Connection refused`, a `peers` signal: recorded, no event).

Replay: `--chain auto --config examples/cometbft-signers/quorumwatch.yaml`: auto-detection puts
the gaiad file on `cometbft` and the tmkms files on `cometbft-signers` (role signer), which attach
to validator-0, the node of the same pod; the configuration marks validator-0 `signer: true`.

Expected events are computed from the timeline by the reference model of docs/DETECTION.md
(tests/model/qwmodel.py), never from the program's output.
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

SEED = 'quorumwatch/examples/cometbft-signers'
NS = 'cosmos'
CHAIN = 'cosmoshub'
CHAIN_ID = 'cosmoshub-4'
T0 = 1736845200 * S          # 2025-01-14T09:00:00Z
H0 = 24_012_700              # last height committed before the log starts
HEIGHTS = 100                # about 10 minutes of 6 s blocks
VALIDATOR = 'B7E43F6D28A1C09E5D4B3A2F1E0C9D8B7A6F5E4D'
VAL0_ADDR = 'tcp://3c7c0f1f9e1b5a2d8e4f6a7b8c9d0e1f2a3b4c5d@127.0.0.1:26658'
VAL1_ADDR = 'tcp://9e0d4b2a7c1f3e5d6b8a0c2e4f6a8b0d1c3e5f7a@validator-1.cosmos-b.svc.cluster.local:26658'
TMKMS_DOWN = (242 * S, 287 * S)          # tmkms container killed .. restarted (offsets from T0)
VAL1_STOP = 420 * S                      # validator-1 stopped by the operator
PROPOSER_HEIGHTS = {H0 + 17, H0 + 63, H0 + 88}


def utc(t):
    return dt.datetime.fromtimestamp(t // S, dt.timezone.utc)


def rfc3339nano(t):
    """Go's time.RFC3339Nano as containerd writes it: trailing zeros of the fraction trimmed."""
    frac = ('%09d' % (t % S)).rstrip('0')
    return utc(t).strftime('%Y-%m-%dT%H:%M:%S') + ('.' + frac if frac else '') + 'Z'


def tracing_stamp(t):
    """tracing-subscriber 0.3 SystemTime: RFC 3339 UTC with microseconds."""
    return utc(t).strftime('%Y-%m-%dT%H:%M:%S') + '.%06dZ' % (t % S // 1000)


def kitchen(t):
    return utc(t).strftime('%I:%M%p').lstrip('0')


def hexd(*parts, n=64):
    return hashlib.sha256('/'.join(str(p) for p in parts).encode()).hexdigest()[:n].upper()


class File:
    def __init__(self, pod, ns, container, k=0):
        cid = hashlib.sha256(('%s/%s/%s/%d' % (SEED, pod, container, k)).encode()).hexdigest()
        self.name = '%s_%s_%s-%s.log' % (pod, ns, container, cid)
        self.lines = []

    def add(self, t, msg, stream='stdout'):
        self.lines.append((t, '%s %s F %s' % (rfc3339nano(t), stream, msg)))

    def render(self):
        return ''.join(l + '\n' for _, l in sorted(self.lines, key=lambda x: x[0]))


def generate():
    rng = random.Random(SEED)
    # block times: T[h] = when +2/3 precommitted h
    T = {H0: T0 - 2 * S}
    for h in range(H0 + 1, H0 + HEIGHTS + 1):
        T[h] = T[h - 1] + 6 * S + rng.randint(-180, 260) * MS + rng.randint(0, 999) * 1000
    block = {h: hexd(SEED, 'block', h) for h in T}
    app = {h: hexd(SEED, 'app', h) for h in T}

    gaiad = File('validator-0', NS, 'gaiad')
    tm1 = File('validator-0', NS, 'tmkms', 0)
    tm2 = File('validator-0', NS, 'tmkms', 1)
    facts = []   # (t, kind, data)

    def sub_ms(t):
        return t - t % MS + rng.randint(0, 99_999)

    # ---- gaiad: the commit lines of each height (first line = the advance)
    for h in range(H0 + 1, H0 + HEIGHTS + 1):
        t = sub_ms(T[h] + rng.randint(30, 120) * MS)
        n_txs = rng.choice([0, 1, 2, 3, 3, 5, 8, 11])
        k = kitchen(t)
        tp = sub_ms(T[h - 1] + 5 * S + rng.randint(80, 220) * MS)
        gaiad.add(tp, '%s INF received complete proposal block hash=%s height=%d module=consensus server=node' % (
            kitchen(tp), block[h], h))
        gaiad.add(t, '%s INF finalizing commit of block hash=%s height=%d module=consensus num_txs=%d root=%s server=node' % (
            k, block[h], h, n_txs, app[h - 1]))
        gaiad.add(t + 90_000, '%s INF finalized block block_app_hash=%s height=%d module=state num_txs_res=%d num_val_updates=0 server=node' % (
            k, app[h], h, n_txs))
        gaiad.add(t + 180_000, '%s INF executed block app_hash=%s height=%d module=state server=node' % (k, app[h], h))
        gaiad.add(t + 270_000, '%s INF committed state block_app_hash=%s height=%d module=state server=node' % (k, app[h], h))
        facts.append((t, 'adv', h))
    for m in range(0, 14):
        t = sub_ms(T0 + (m * 60 + 41) * S + 305 * MS)
        if t > T[H0 + HEIGHTS]:
            break
        gaiad.add(t, '%s INF Ensure peers module=pex numDialing=0 numInPeers=0 numOutPeers=3 numToDial=0 server=node' % kitchen(t))

    # ---- tmkms: startup, votes, the crash, the second validator
    def tm_line(f, t, level, target, msg):
        f.add(t, '%s %5s %s: %s' % (tracing_stamp(t), level, target, msg))

    def startup(f, t, version='0.14.0', vals=(VAL0_ADDR,)):
        tm_line(f, t, 'INFO', 'tmkms::commands::start', 'tmkms %s starting up...' % version)
        for i, a in enumerate(vals):
            tm_line(f, t + (4 + i) * MS + 311_000, 'INFO', 'tmkms::connection::tcp', 'KMS node ID: %s' % hexd(SEED, 'kms-node', n=40))
            tm_line(f, t + (9 + i) * MS + 120_000, 'INFO', 'tmkms::session', '[%s@%s] connected to validator successfully' % (CHAIN_ID, a))

    startup(tm1, T0 - 3 * S + 412 * MS)
    p0, p1 = T0 + TMKMS_DOWN[0], T0 + TMKMS_DOWN[1]
    startup(tm2, p1 + 15 * MS, vals=(VAL0_ADDR, VAL1_ADDR))
    v1_up, v1_stop = p1 + 15 * MS, T0 + VAL1_STOP
    double_sign_h = None
    for h in range(H0 + 1, H0 + HEIGHTS + 1):
        start = T[h - 1] + 5 * S + rng.randint(0, 60) * MS      # timeout_commit, then the proposal
        steps = []
        if h in PROPOSER_HEIGHTS:
            steps.append(('Proposal', 0, start + rng.randint(5, 40) * MS))
        steps.append(('Prevote', 1, start + rng.randint(250, 450) * MS))
        steps.append(('Precommit', 2, start + rng.randint(520, 700) * MS))
        for vtype, step, t in steps:
            assert t < T[h]
            if p0 <= t < p1:
                continue                       # tmkms is down: nothing signed
            f = tm1 if t < p0 else tm2
            t = t - t % 1000
            tm_line(f, t, 'INFO', 'tmkms::session', '[%s@%s] signed %s:%s at h/r/s %d/0/%d (%d ms)' % (
                CHAIN_ID, VAL0_ADDR, vtype, block[h][:10], h, step, rng.randint(0, 2)))
            facts.append((t, 'vote', (h, vtype)))
            if v1_up < t < v1_stop and vtype != 'Proposal':
                t2 = t + rng.randint(40, 160) * MS
                t2 -= t2 % 1000
                if double_sign_h is None and vtype == 'Prevote' and t > v1_up + 60 * S:
                    double_sign_h = h
                    tm_line(f, t2, 'ERROR', 'tmkms::session', '[%s@%s] attempted double sign %s at h/r/s: %d/0/%d (%s != <nil>)' % (
                        CHAIN_ID, VAL1_ADDR, vtype, h, step, block[h][:10]))
                    facts.append((t2, 'dsr', h))
                else:
                    # the same vote asked again by validator-1: same h/r/s and block, tmkms signs it again
                    tm_line(f, t2, 'INFO', 'tmkms::session', '[%s@%s] signed %s:%s at h/r/s %d/0/%d (%d ms)' % (
                        CHAIN_ID, VAL1_ADDR, vtype, block[h][:10], h, step, rng.randint(0, 2)))
    # validator-1 stopped: the client loop reconnects every second (RESPAWN_DELAY)
    end = T[H0 + HEIGHTS] - 3 * S
    t = v1_stop + 311 * MS
    tm_line(tm2, t, 'ERROR', 'tmkms::client', '[%s@%s] I/O error: Connection reset by peer (os error 104)' % (CHAIN_ID, VAL1_ADDR))
    while True:
        t += 1 * S + rng.randint(2, 9) * MS
        if t >= end:
            break
        tm_line(tm2, t, 'ERROR', 'tmkms::client', '[%s@%s] I/O error: Connection refused (os error 111)' % (CHAIN_ID, VAL1_ADDR))
    assert double_sign_h is not None
    return [gaiad, tm1, tm2], sorted(facts), double_sign_h


# what expected.jsonl asserts of each event's detail
DETAIL_KEYS = {'missed_precommit': ('kind',), 'double_sign_risk': ('reason',)}


def expected_events(files, facts):
    """The reference model of docs/DETECTION.md (tests/model/qwmodel.py) for validator-0, whose
    votes come from its signer stream (tmkms: `signed <type>:<block> at h/r/s`), configured as
    in CONFIG below; the thresholds are patterns/cometbft.yaml's (the node's family)."""
    signals = []
    for t, kind, data in facts:
        if kind == 'adv':
            signals.append((t, 'block_committed', data))
        elif kind == 'vote':
            h, vtype = data
            signals.append((t, 'vote_signed', (h, 0, vtype.lower(), None, VALIDATOR)))
        elif kind == 'dsr':
            signals.append((t, 'double_sign_risk', (data, 'attempted_double_sign')))
        else:
            raise ValueError(kind)
    return examplegen.model_events(
        CHAIN, 'cometbft', [('validator-0', NS, signals, [max(t for t, _ in f.lines) for f in files])], DETAIL_KEYS,
        node_config={'validator-0': {'signer': True, 'validator_address': VALIDATOR}})


CONFIG = """# quorumwatch configuration for examples/cometbft-signers (see README).
chains:
  cosmoshub:
    family: cometbft
nodes:
  # the validator whose tmkms sidecar signs: its missed precommits are judged from its commits
  cosmos/validator-0: {signer: true, validator_address: "%s"}
""" % VALIDATOR


def write(outdir):
    files, facts, ds_h = generate()
    events = expected_events(files, facts)

    # the story, checked
    missed = [e for e in events if e['event'] == 'missed_precommit']
    assert 6 <= len(missed) <= 9, len(missed)
    assert [e['severity'] for e in missed] == ['info'] * 5 + ['warning'] * (len(missed) - 5)
    hs = [e['height'] for e in missed]
    assert hs == list(range(hs[0], hs[0] + len(hs))), hs
    dsr = [e for e in events if e['event'] == 'double_sign_risk']
    assert len(dsr) == 1 and dsr[0]['height'] == ds_h and dsr[0]['time'] > missed[-1]['time']
    assert len(events) == len(missed) + 1
    last_line = min(max(t for t, _ in f.lines) for f in files if f.lines and 'gaiad' in f.name)
    assert all(e['time'] < last_line - 10 * S for e in events)

    examplegen.write_example(outdir, 'cometbft-signers', [(f.name, f.render()) for f in files],
                             '--chain auto --config ../../../examples/cometbft-signers/quorumwatch.yaml ', events, CONFIG)


def main(argv):
    return examplegen.main_tree(argv, write, REPO, 'cometbft-signers')


if __name__ == '__main__':
    sys.exit(main(sys.argv))
