#!/usr/bin/env python3
"""Synthetic CometBFT / Cosmos SDK validator logs for benchmarks.

Long on purpose: one generator for all five line shapes, so every benchmark
reads the same corpus; sections: shapes, a node's block, files.

usage: gen_corpus.py [--lines N] [--nodes N] [--shape SHAPE] [--wrap cri|raw]
                     [--incidents stall,missed,conflict] [--seed N] [--out DIR]

Writes one log file per node into DIR, deterministically (same arguments, same
bytes; no clock, no environment). The lines follow the real shapes of
docs/LOG-FORMATS.md section 3:

  plain     CometBFT 0.38 plain logger (libs/log/tmfmt_logger.go):
            `I[2024-03-12|08:00:06.123] committed state<pad to 44> module=state height=...`
  plain034  Tendermint 0.34 plain logger (0.34 message fields, `indexed block`)
  tmjson    Tendermint 0.34 JSON logger: go-kit JSON, keys sorted, `_msg`, `ts`
  sdk       Cosmos SDK >= 0.47 console (zerolog ConsoleWriter):
            `8:00AM INF committed state block_app_hash=... height=... module=state server=node`
  sdkjson   Cosmos SDK JSON: level, server, module, fields in call order, time, message last
  mixed     node i gets shape i mod 5 in the order above (one shape per file, as
            in real deployments; with --nodes 1 this is `plain`)

--wrap cri frames every line as containerd writes it (`<RFC3339Nano> stdout F <line>`)
and names the files like kubelet (`<pod>_<namespace>_<container>-<64 hex>.log`);
--wrap raw writes the bare lines to `<pod>.log`.

What a node logs (all nodes log at debug, like a validator being debugged):
  * per 6 s block (block times 6 s -150/+250 ms): `Timed out` (NewHeight),
    `received proposal`, `received complete proposal block`, our
    `signed and pushed vote` (prevote, precommit; validators only) with the
    Vote{...} string, `finalizing commit of block`, (`finalized block` in 0.38),
    `executed block`, `committed state`, `indexed block events`;
  * `Ensure peers` every 30 s (a pattern rule, so it counts as a consensus line);
  * the rest, about 90 % of the lines, is p2p / mempool / consensus-gossip debug
    noise: Receive (peer votes, round steps, HasVote), Send, Flush, Read
    PacketMsg, Received bytes, added good transaction, added vote to
    prevote/precommit, Send Ping / Receive Pong, occasional peer churn.
  Noise lines are spread uniformly within the block; a block averages
  --block-lines lines (default 100, i.e. ~7 % of the lines hit a rule).

--lines is the total over all nodes (split evenly); --nodes 200 --lines 2000000 gives
200 files of 10 000 lines.

Incidents (--incidents, comma separated):
  stall     the last node logs nothing for 3 minutes (30 blocks) at 40 % of its
            file, then commits the missed heights in a burst
  missed    node 0 (a validator) signs no precommit for 12 heights at 60 %
  conflict  node 0 logs `found conflicting vote from ourselves` at 80 %

A short summary goes to stderr; a manifest (corpus.json) next to the logs lists
the files with their line and byte counts.
"""
import argparse
import datetime as dt
import hashlib
import json
import operator
import os
import random
import sys
import time

S = 1_000_000_000
MS = 1_000_000
US = 1_000

SHAPES = ['plain', 'plain034', 'tmjson', 'sdk', 'sdkjson']
T0 = int(dt.datetime(2024, 3, 12, 8, 0, 0, tzinfo=dt.timezone.utc).timestamp()) * S
H0 = 19_834_500
NAMESPACE = 'cosmos'
CONTAINER = 'gaiad'

TYPE_NAME = {1: 'SIGNED_MSG_TYPE_PREVOTE', 2: 'SIGNED_MSG_TYPE_PRECOMMIT'}
TYPE_STR = {1: 'Prevote', 2: 'Precommit'}


# ----------------------------------------------------------------------------
# time stamps: formatting a datetime per line is too slow, so the date is cached
# per day and the time of day is plain arithmetic (UTC throughout; the plain
# logger's local time is UTC on a server set to UTC)
# ----------------------------------------------------------------------------

class Stamps:
    """Renders one instant in each format; single-entry cache per second."""

    def __init__(self):
        self.sec = None
        self.day = None

    def _load(self, sec):
        self.sec = sec
        day = sec // 86400
        if day != self.day:
            self.day = day
            self.date = dt.datetime.fromtimestamp(day * 86400, tz=dt.timezone.utc).strftime('%Y-%m-%d')
        tod = sec % 86400
        hh, mm, ss = tod // 3600, tod // 60 % 60, tod % 60
        hms = '%02d:%02d:%02d' % (hh, mm, ss)
        self.iso = '%sT%s' % (self.date, hms)
        self.pl = '%s|%s' % (self.date, hms)
        self.kit = '%d:%02d%s' % (hh % 12 or 12, mm, 'AM' if hh < 12 else 'PM')

    def plain(self, t):
        """tmfmt: 2006-01-02|15:04:05.000"""
        if t // S != self.sec:
            self._load(t // S)
        return '%s.%03d' % (self.pl, t % S // MS)

    def nano(self, t):
        """Go time.RFC3339Nano (trailing zeros trimmed)."""
        if t // S != self.sec:
            self._load(t // S)
        frac = t % S
        if frac == 0:
            return self.iso + 'Z'
        return '%s.%sZ' % (self.iso, ('%09d' % frac).rstrip('0'))

    def kitchen(self, t):
        """zerolog ConsoleWriter with time.Kitchen: 3:04PM"""
        if t // S != self.sec:
            self._load(t // S)
        return self.kit

    def rfc3339s(self, t):
        """zerolog default time.RFC3339"""
        if t // S != self.sec:
            self._load(t // S)
        return self.iso + 'Z'


def go_duration(ns):
    """time.Duration.String() for the values used here (ms .. seconds)."""
    if ns < S:
        return ('%.6f' % (ns / MS)).rstrip('0').rstrip('.') + 'ms'
    return ('%.9f' % (ns / S)).rstrip('0').rstrip('.') + 's'


# ----------------------------------------------------------------------------
# value quoting (no value here holds a control character)
# ----------------------------------------------------------------------------

def go_quote(s):
    return '"' + s.replace('\\', '\\\\').replace('"', '\\"') + '"'


def logfmt_value(v):
    """go-logfmt as used by tmfmt_logger: quoted if it has a space, '=' or '"'."""
    if v.__class__ is int:
        return str(v)
    if ' ' in v or '"' in v or '=' in v or v == '':
        return go_quote(v)
    return v


def console_value(v):
    """zerolog ConsoleWriter needsQuote: space, '\\', '"' (or non-printable)."""
    if v.__class__ is int:
        return str(v)
    if ' ' in v or '"' in v or '\\' in v or v == '':
        return go_quote(v)
    return v


def json_value(v):
    if v.__class__ is int:
        return str(v)
    if '"' in v or '\\' in v:
        return go_quote(v)
    return '"' + v + '"'


# ----------------------------------------------------------------------------
# the five physical shapes
# ----------------------------------------------------------------------------
# A log call is (level, msg, module, fields): fields are (key, value) pairs in
# the order the Go code passes them; values are int or str. `stamp` is the
# time already rendered for the shape (Renderer.stamp).

PLAIN_LEVEL = {'info': 'I', 'debug': 'D', 'error': 'E'}
CONSOLE_LEVEL = {'info': 'INF', 'debug': 'DBG', 'error': 'ERR'}


def render_plain(stamp, level, msg, module, fields):
    # tmfmt_logger.go:107 "%c[%s] %-44s " then logfmt, module first (logger.With)
    kv = ''.join([' %s=%s' % (k, logfmt_value(v)) for k, v in fields])
    return '%s[%s] %-44s module=%s%s' % (PLAIN_LEVEL[level], stamp, msg, module, kv)


def render_tmjson(stamp, level, msg, module, fields):
    # tm_json_logger.go: go-kit JSON (one map, keys sorted by encoding/json), ts = RFC3339Nano UTC
    items = [('_msg', msg), ('level', level), ('module', module), ('ts', stamp)]
    items.extend(fields)
    items.sort(key=lambda kv: kv[0])
    return '{' + ','.join(['"%s":%s' % (k, json_value(v)) for k, v in items]) + '}'


def render_sdk(stamp, level, msg, module, fields):
    # zerolog ConsoleWriter: `3:04PM INF msg` then the fields sorted by key
    items = list(fields)
    items.append(('module', module))
    items.append(('server', 'node'))
    items.sort(key=lambda kv: kv[0])
    kv = ' '.join(['%s=%s' % (k, console_value(v)) for k, v in items])
    return '%s %s %s %s' % (stamp, CONSOLE_LEVEL[level], msg, kv)


def render_sdkjson(stamp, level, msg, module, fields):
    # zerolog JSON: level, context (server, module), fields in call order, time, message last
    kv = ''.join([',"%s":%s' % (k, json_value(v)) for k, v in fields])
    return '{"level":"%s","server":"node","module":"%s"%s,"time":"%s","message":%s}' % (
        level, module, kv, stamp, json_value(msg))


class Renderer:
    def __init__(self, shape):
        self.stamps = Stamps()
        self.render, self.stamp = {
            'plain': (render_plain, self.stamps.plain),
            'plain034': (render_plain, self.stamps.plain),
            'tmjson': (render_tmjson, self.stamps.nano),
            'sdk': (render_sdk, self.stamps.kitchen),
            'sdkjson': (render_sdkjson, self.stamps.rfc3339s),
        }[shape]

    def compile(self, level, msg, module, spec):
        """A `%`-template for a log call whose fields have a fixed quoting class
        (spec: (key, cls); cls 'n' int, 's' string without space/quote, 'q' string
        with a space and no quote or backslash). Returns (template, getter):
        `template % getter((stamp,) + values)` equals render(stamp, ...). The
        template is derived from render() itself, so both paths agree."""
        tokens = ['STAMPSLOTX']
        fields = []
        for i, (k, cls) in enumerate(spec):
            if cls == 'n':
                v = 9_876_543_210_000 + i
                tokens.append(str(v))
            elif cls == 's':
                v = 'SLOT%dX' % i
                tokens.append(v)
            else:
                v = 'SLOT%dX Q' % i
                tokens.append(v)
            fields.append((k, v))
        line = self.render(tokens[0], level, msg, module, fields).replace('%', '%%')
        pos = sorted((line.index(tok), idx) for idx, tok in enumerate(tokens))
        for idx, tok in enumerate(tokens):
            assert line.count(tok) == 1, (line, tok)
            line = line.replace(tok, '%s')
        getter = operator.itemgetter(*[idx for _, idx in pos])
        sample = (tokens[0],) + tuple(v for _, v in fields)
        assert line % getter(sample) == self.render(tokens[0], level, msg, module, fields)
        return line, getter


# ----------------------------------------------------------------------------
# the chain: block times and hashes shared by all nodes
# ----------------------------------------------------------------------------

class Chain:
    def __init__(self, seed):
        self.rng = random.Random('chain/%s' % seed)
        self.T = [T0]          # T[i]: time +2/3 precommitted height H0 + i
        self.bhash = [self._hex()]
        self.apphash = [self._hex()]
        self.partshash = [self._hex()]

    def _hex(self):
        return '%064X' % self.rng.getrandbits(256)

    def ensure(self, i):
        rng = self.rng
        while len(self.T) <= i:
            step = 6 * S + rng.randint(-150, 250) * MS + rng.randint(0, 999) * US
            self.T.append(self.T[-1] + step)
            self.bhash.append(self._hex())
            self.apphash.append(self._hex())
            self.partshash.append(self._hex())


# ----------------------------------------------------------------------------
# one node
# ----------------------------------------------------------------------------
# Events are (t, tid, payload): tid >= 0 is a compiled template and payload its
# values; tid -1 is a generic log call, payload (level, msg, module, fields).

class Node:
    def __init__(self, args, chain, index, shape, budget):
        self.args = args
        self.chain = chain
        self.index = index
        self.shape = shape
        self.budget = budget
        self.rng = random.Random('node/%s/%d' % (args.seed, index))
        self.rnd = self.rng.random
        self.bits = self.rng.getrandbits
        self.renderer = Renderer(shape)
        self.vstamps = Stamps()                # vote / proposal time stamps (RFC3339Nano)
        self.v038 = shape in ('plain', 'sdk', 'sdkjson')
        # node 0 and every fourth node are validators; the others sentries / full nodes
        self.validator = index % 4 == 0
        self.addr = hashlib.sha256(('validator/%s/%d' % (args.seed, index)).encode()).hexdigest().upper()[:40]
        self.pod = 'cosmoshub-%s-%d' % ('validator' if self.validator else 'sentry', index)
        self.cid = hashlib.sha256(('container/%s/%d' % (args.seed, index)).encode()).hexdigest()
        if args.wrap == 'cri':
            self.file_name = '%s_%s_%s-%s.log' % (self.pod, NAMESPACE, CONTAINER, self.cid)
        else:
            self.file_name = '%s.log' % self.pod
        rng = self.rng
        self.peers = []
        for _ in range(32):
            ip = '%d.%d.%d.%d' % (rng.choice([34, 35, 51, 65, 88, 95, 135, 144, 162, 185]),
                                  rng.randint(0, 255), rng.randint(0, 255), rng.randint(2, 254))
            pid = '%040x' % rng.getrandbits(160)
            self.peers.append(('Peer{MConn{%s:26656} %s %s}' % (ip, pid, rng.choice(['out', 'in'])),
                               'MConn{%s:26656}' % ip, '%s@%s:26656' % (pid, ip), ip))
        self.hexpool = []
        for _ in range(512):
            n = rng.choice([8, 12, 16, 24, 32, 48])
            self.hexpool.append(('%0' + str(2 * n) + 'X') % rng.getrandbits(8 * n))
        self.txpool = ['%064X' % rng.getrandbits(256) for _ in range(1024)]
        self.valpool = ['%012X' % rng.getrandbits(48) for _ in range(180)]
        self.bitarrays = [''.join('x' if rng.random() < 0.4 else '_' for _ in range(180)) for _ in range(32)]
        self.tx_total = 0

        # templates of the noise lines
        src = 'e.Src' if self.v038 else 'src'
        specs = {
            'receive': ('debug', 'Receive', 'consensus', [(src, 'q'), ('chId', 'n'), ('msg', 'q')]),
            'send': ('debug', 'Send', 'p2p', [('peer', 's'), ('channel', 'n'), ('conn', 's'), ('msgBytes', 's')]),
            'flush': ('debug', 'Flush', 'p2p', [('peer', 's'), ('conn', 's')]),
            'read': ('debug', 'Read PacketMsg', 'p2p', [('peer', 's'), ('conn', 's'), ('packet', 'q')]),
            'bytes': ('debug', 'Received bytes', 'p2p', [('peer', 's'), ('chID', 'n'), ('msgBytes', 's')]),
            'tx': ('debug', 'added good transaction' if self.v038 else 'Added good transaction', 'mempool',
                   [('tx', 's'), ('res', 'q'), ('height', 'n'), ('total', 'n')]),
            'prevote': ('debug', 'added vote to prevote', 'consensus', [('vote', 'q'), ('prevotes', 'q')]),
            'precommit': ('debug', 'added vote to precommit', 'consensus',
                          [('height', 'n'), ('round', 'n'), ('validator', 's'), ('vote_timestamp', 's'),
                           ('data', 's')]),
            'ping': ('debug', 'Send Ping', 'p2p', [('peer', 's')]),
            'pong': ('debug', 'Receive Pong', 'p2p', [('peer', 's')]),
        }
        self.templates = []
        self.tid = {}
        for name, (level, msg, module, spec) in specs.items():
            self.tid[name] = len(self.templates)
            self.templates.append(self.renderer.compile(level, msg, module, spec))
        # noise kinds, weighted: a table of 256 indexed by getrandbits(8)
        weights = [(self.n_receive_vote, 52), (self.n_receive_step, 22), (self.n_receive_hasvote, 22),
                   (self.n_send, 40), (self.n_flush, 22), (self.n_read_packet, 24),
                   (self.n_received_bytes, 20), (self.n_added_tx, 26), (self.n_added_vote, 20),
                   (self.n_ping, 6), (self.n_peer_churn, 2)]
        self.table = []
        for fn, w in weights:
            self.table.extend([fn] * w)
        assert len(self.table) == 256, len(self.table)

    # ---- helpers ----
    def vote_string(self, vidx, vfp, h, vtype, bfp, ts):
        """types/vote.go String(): Vote{idx:addr h/round/type(name) block sig [ext] @ time}"""
        if self.v038:
            return 'Vote{%d:%s %d/00/%s(%s) %s %012X 000000000000 @ %s}' % (
                vidx, vfp, h, TYPE_NAME[vtype], TYPE_STR[vtype], bfp, self.bits(48), self.vstamps.nano(ts))
        return 'Vote{%d:%s %d/00/%s(%s) %s %012X @ %s}' % (
            vidx, vfp, h, TYPE_NAME[vtype], TYPE_STR[vtype], bfp, self.bits(48), self.vstamps.nano(ts))

    # ---- noise: each returns (tid, payload) ----
    def n_receive_vote(self, t, h):
        vi = int(self.rnd() * 180)
        vt = 1 + (self.rnd() < 0.5)
        v = self.vote_string(vi, self.valpool[vi], h, vt, self.chain.bhash[h - H0][:12],
                             t - 20 * MS - int(self.rnd() * 880 * MS))
        return self.tid['receive'], (self.peers[self.bits(5)][0], 34, '[Vote %s]' % v)

    def n_receive_step(self, t, h):
        step = ('RoundStepNewHeight', 'RoundStepPropose', 'RoundStepPrevote', 'RoundStepPrecommit',
                'RoundStepCommit', 'RoundStepPrevoteWait', 'RoundStepPrecommitWait', 'RoundStepNewRound')[self.bits(3)]
        return self.tid['receive'], (self.peers[self.bits(5)][0], 32, '[NewRoundStep H:%d R:0 S:%s LCR:0]' % (h, step))

    def n_receive_hasvote(self, t, h):
        vt = 1 + (self.rnd() < 0.5)
        return self.tid['receive'], (self.peers[self.bits(5)][0], 32, '[HasVote VI:%d V:{%d/00/%s(%s)}]' % (
            int(self.rnd() * 180), h, TYPE_NAME[vt], TYPE_STR[vt]))

    def n_send(self, t, h):
        p = self.peers[self.bits(5)]
        return self.tid['send'], (p[2], (32, 33, 34, 48, 56, 32, 34, 34)[self.bits(3)], p[1], self.hexpool[self.bits(9)])

    def n_flush(self, t, h):
        p = self.peers[self.bits(5)]
        return self.tid['flush'], (p[2], p[1])

    def n_read_packet(self, t, h):
        p = self.peers[self.bits(5)]
        pk = 'PacketMsg{%d:%s T:1}' % ((32, 33, 34, 48)[self.bits(2)], self.hexpool[self.bits(9)][:40])
        return self.tid['read'], (p[2], p[1], pk)

    def n_received_bytes(self, t, h):
        p = self.peers[self.bits(5)]
        return self.tid['bytes'], (p[2], (32, 33, 34, 48)[self.bits(2)], self.hexpool[self.bits(9)])

    def n_added_tx(self, t, h):
        self.tx_total = (self.tx_total + 1) % 500
        gw = 80_000 + int(self.rnd() * 320_000)
        return self.tid['tx'], (self.txpool[self.bits(10)],
                                '&{CheckTx:gas_wanted:%d gas_used:%d }' % (gw, gw - 1000 - int(self.rnd() * 59_000)),
                                h - 1, self.tx_total)

    def n_added_vote(self, t, h):
        vi = int(self.rnd() * 180)
        if self.rnd() < 0.5:
            v = self.vote_string(vi, self.valpool[vi], h, 1, self.chain.bhash[h - H0][:12],
                                 t - 20 * MS - int(self.rnd() * 880 * MS))
            vs = 'VoteSet{H:%d R:0 T:SIGNED_MSG_TYPE_PREVOTE +2/3:<nil>(0.%d) BA{180:%s} map[]}' % (
                h, 100 + int(self.rnd() * 566), self.bitarrays[self.bits(5)])
            return self.tid['prevote'], (v, vs)
        return self.tid['precommit'], (h, 0, self.valpool[vi], self.vstamps.nano(t - 40 * MS - self.bits(20)),
                                       'Votes:%d/180(0.%d)' % (30 + int(self.rnd() * 140), 100 + int(self.rnd() * 899)))

    def n_ping(self, t, h):
        p = self.peers[self.bits(5)]
        return self.tid['ping' if self.rnd() < 0.5 else 'pong'], (p[2],)

    def n_peer_churn(self, t, h):
        p = self.peers[self.bits(5)]
        if self.rnd() < 0.5:
            err = ('EOF', 'read tcp 10.0.0.4:26656->%s:26656: i/o timeout' % p[3], 'pong timeout')[self.bits(2) % 3]
            return -1, ('error', 'Stopping peer for error', 'p2p', [('peer', p[0]), ('err', err)])
        return -1, ('info', 'Added peer', 'p2p', [('peer', p[0])])

    # ---- consensus lines (generic path) ----
    def commit_lines(self, t, h, events):
        """finalizing commit .. committed state, indexed block events (within ms of t)."""
        ch = self.chain
        rng = self.rng
        i = h - H0
        ntx = rng.choice((0, 0, 1, 1, 2, 3, 5, 8, 13))
        bh, app, prev_app = ch.bhash[i], ch.apphash[i], ch.apphash[i - 1] if i else ch.apphash[i]
        hash_v = '{}' if self.shape in ('sdk', 'sdkjson') else bh
        events.append((t, -1, ('info', 'finalizing commit of block', 'consensus',
                               [('height', h), ('hash', hash_v), ('root', prev_app), ('num_txs', ntx)])))
        t += rng.randint(2, 15) * MS + rng.randint(0, 999_999)
        if self.v038:
            events.append((t, -1, ('info', 'finalized block', 'state',
                                   [('height', h), ('num_txs_res', ntx), ('num_val_updates', 0),
                                    ('block_app_hash', app)])))
            t += rng.randint(0, 2) * MS + rng.randint(0, 999_999)
            events.append((t, -1, ('info', 'executed block', 'state', [('height', h), ('app_hash', app)])))
            t += rng.randint(1, 6) * MS + rng.randint(0, 999_999)
            events.append((t, -1, ('info', 'committed state', 'state', [('height', h), ('block_app_hash', app)])))
            t += rng.randint(1, 9) * MS + rng.randint(0, 999_999)
            events.append((t, -1, ('info', 'indexed block events', 'txindex', [('height', h)])))
        else:
            events.append((t, -1, ('info', 'executed block', 'state',
                                   [('height', h), ('num_valid_txs', ntx), ('num_invalid_txs', 0)])))
            t += rng.randint(1, 6) * MS + rng.randint(0, 999_999)
            events.append((t, -1, ('info', 'committed state', 'state',
                                   [('height', h), ('num_txs', ntx), ('app_hash', app)])))
            t += rng.randint(1, 9) * MS + rng.randint(0, 999_999)
            events.append((t, -1, ('info', 'indexed block', 'txindex', [('height', h)])))
        return t

    def own_vote(self, t, h, vtype, events):
        ts = t - self.rng.randint(0, 2) * MS - self.rng.randint(0, 999_999)
        v = self.vote_string(self.index, self.addr[:12], h, vtype, self.chain.bhash[h - H0][:12], ts)
        events.append((t, -1, ('debug', 'signed and pushed vote', 'consensus',
                               [('height', h), ('round', 0), ('vote', v)])))

    # ---- the file ----
    def generate(self, f):
        args = self.args
        rng = self.rng
        rnd = self.rnd
        bits = self.bits
        chain = self.chain
        render = self.renderer.render
        stamp = self.renderer.stamp
        templates = self.templates
        table = self.table
        cri_stamp = Stamps().nano if args.wrap == 'cri' else None
        incidents = args.incidents
        block_lines = args.block_lines
        nblocks = max(1, self.budget // block_lines)
        stall = 'stall' in incidents and self.index == args.nodes - 1 and nblocks >= 40
        stall_from = int(nblocks * 0.4)
        stall_to = stall_from + 30              # 30 blocks = 3 minutes
        missed_from = int(nblocks * 0.6) if ('missed' in incidents and self.index == 0) else -1
        conflict_at = int(nblocks * 0.8) if ('conflict' in incidents and self.index == 0) else -1

        delay_lo, delay_hi = 40 + 7 * (self.index % 13), 180 + 11 * (self.index % 9)
        written = 0
        nbytes = 0
        b = 0                  # block index: the window ends with the commit of height H0 + 1 + b
        chain.ensure(1)
        prev_commit = chain.T[0] + rng.randint(delay_lo, delay_hi) * MS + rng.randint(0, 999_999)
        next_ensure = prev_commit + rng.randint(0, 29) * S
        events = []
        buf = []
        first = operator.itemgetter(0)
        while written < self.budget:
            h = H0 + 1 + b
            chain.ensure(b + 2)
            commit = chain.T[b + 1] + rng.randint(delay_lo, delay_hi) * MS + rng.randint(0, 999_999)
            dur = commit - prev_commit
            events.clear()
            if stall and stall_from <= b < stall_to:
                # silent: nothing at all (and no `Ensure peers` afterwards for the gap)
                next_ensure = max(next_ensure, commit + rng.randint(0, 29) * S)
                prev_commit = commit
                b += 1
                continue
            if stall and b == stall_to:
                # catching up: the missed heights committed in a burst
                t = prev_commit + 200 * MS
                for hh in range(H0 + stall_from, h):
                    t = self.commit_lines(t, hh, events) + rng.randint(20, 40) * MS
                start = t
            else:
                # the previous height's commit (at prev_commit) opens the window
                start = self.commit_lines(prev_commit, h - 1, events)
            # height h: timeout_commit expires, the proposal arrives, we vote
            t = prev_commit + int(dur * 0.82) + rng.randint(0, 999_999)
            events.append((t, -1, ('info', 'Timed out', 'consensus',
                                   [('dur', go_duration(int(dur * 0.82) - rng.randint(0, 30) * MS)),
                                    ('height', h), ('round', 0), ('step', 'RoundStepNewHeight')])))
            t += rng.randint(40, 250) * MS + rng.randint(0, 999_999)
            ci = h - H0
            prop = 'Proposal{%d/0 (%s:1:%s, -1) %012X @ %s}' % (
                h, chain.bhash[ci], chain.partshash[ci][:12], bits(48), self.vstamps.nano(t - 35 * MS))
            events.append((t, -1, ('info', 'received proposal', 'consensus',
                                   [('proposal', prop), ('proposer', self.valpool[h % 180] + '0' * 28)])))
            t += rng.randint(5, 60) * MS + rng.randint(0, 999_999)
            events.append((t, -1, ('info', 'received complete proposal block', 'consensus',
                                   [('height', h), ('hash', chain.bhash[ci])])))
            if self.validator:
                t += rng.randint(1, 8) * MS + rng.randint(0, 999_999)
                self.own_vote(t, h, 1, events)
                t += rng.randint(100, 400) * MS + rng.randint(0, 999_999)
                if not (missed_from >= 0 and missed_from <= b < missed_from + 12):
                    self.own_vote(min(t, commit - 5 * MS), h, 2, events)
            if b == conflict_at:
                tc = min(t + rng.randint(1, 50) * MS, commit - 2 * MS)
                events.append((tc, -1, ('error',
                                        'found conflicting vote from ourselves; did you unsafe_reset a validator?',
                                        'consensus', [('height', h), ('round', 0), ('type', TYPE_NAME[1])])))
            while next_ensure < commit:
                if next_ensure > start:
                    out = rng.randint(8, 10)
                    events.append((next_ensure, -1, ('info', 'Ensure peers', 'pex',
                                                     [('numOutPeers', out), ('numInPeers', rng.randint(14, 40)),
                                                      ('numDialing', 0), ('numToDial', 10 - out)])))
                next_ensure += 30 * S + rng.randint(0, 3) * MS
            # noise, spread uniformly over the rest of the block
            n = max(0, block_lines - len(events))
            n += rng.randint(-(n // 4), n // 4)
            span = commit - start - 1
            for _ in range(n):
                t = start + 1 + int(rnd() * span)
                events.append((t,) + table[bits(8)](t, h))
            events.sort(key=first)
            if len(events) > self.budget - written:
                del events[self.budget - written:]
            for t, tid, pl in events:
                if tid >= 0:
                    tmpl, getter = templates[tid]
                    line = tmpl % getter((stamp(t),) + pl)
                else:
                    line = render(stamp(t), *pl)
                if cri_stamp is not None:
                    # containerd stamps the line when it reads it, a few microseconds later
                    line = '%s stdout F %s' % (cri_stamp(t + 2 * US + bits(16)), line)
                buf.append(line)
            written += len(events)
            if len(buf) >= 4096:
                s = '\n'.join(buf) + '\n'
                nbytes += len(s)
                f.write(s)
                buf.clear()
            prev_commit = commit
            b += 1
        if buf:
            s = '\n'.join(buf) + '\n'
            nbytes += len(s)
            f.write(s)
        return written, nbytes, b


def main(argv=None):
    ap = argparse.ArgumentParser(description='Synthetic CometBFT/Cosmos validator logs (see module docstring).')
    ap.add_argument('--lines', type=int, default=2_000_000, help='total lines over all nodes (default 2000000)')
    ap.add_argument('--nodes', type=int, default=1, help='node files (default 1)')
    ap.add_argument('--shape', choices=SHAPES + ['mixed'], default='plain')
    ap.add_argument('--wrap', choices=['cri', 'raw'], default='cri')
    ap.add_argument('--incidents', default='', help='comma-separated: stall,missed,conflict')
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--block-lines', type=int, default=100, help='average lines a node logs per block (default 100)')
    ap.add_argument('--out', default=None,
                    help='output folder (default benchmarks/corpus/<shape>-<wrap>-n<nodes>-<lines>-s<seed>)')
    ap.add_argument('-q', '--quiet', action='store_true')
    args = ap.parse_args(argv)

    inc = {x for x in args.incidents.split(',') if x}
    bad = inc - {'stall', 'missed', 'conflict'}
    if bad:
        ap.error('unknown incident(s): %s' % ','.join(sorted(bad)))
    args.incidents = inc
    if args.nodes < 1 or args.lines < args.nodes:
        ap.error('need --nodes >= 1 and --lines >= --nodes')
    if args.block_lines < 20:
        ap.error('--block-lines must be >= 20')
    if args.out is None:
        here = os.path.dirname(os.path.abspath(__file__))
        args.out = os.path.join(here, 'corpus', '%s-%s-n%d-%d-s%d' % (args.shape, args.wrap, args.nodes, args.lines, args.seed))
    os.makedirs(args.out, exist_ok=True)

    started = time.monotonic()
    chain = Chain(args.seed)
    per, extra = divmod(args.lines, args.nodes)
    files = []
    total_lines = total_bytes = 0
    for i in range(args.nodes):
        shape = SHAPES[i % len(SHAPES)] if args.shape == 'mixed' else args.shape
        node = Node(args, chain, i, shape, per + (1 if i < extra else 0))
        path = os.path.join(args.out, node.file_name)
        with open(path, 'w', encoding='ascii', newline='\n', buffering=1 << 20) as f:
            lines, nbytes, blocks = node.generate(f)
        files.append({'file': node.file_name, 'node': node.pod, 'shape': shape, 'validator': node.validator,
                      'lines': lines, 'bytes': nbytes, 'blocks': blocks})
        total_lines += lines
        total_bytes += nbytes
    manifest = {'generator': 'benchmarks/gen_corpus.py', 'seed': args.seed, 'shape': args.shape,
                'wrap': args.wrap, 'nodes': args.nodes, 'lines': total_lines, 'bytes': total_bytes,
                'block_lines': args.block_lines, 'incidents': sorted(inc), 'files': files}
    with open(os.path.join(args.out, 'corpus.json'), 'w') as f:
        json.dump(manifest, f, indent=1)
        f.write('\n')
    if not args.quiet:
        print('wrote %d lines, %.1f MB in %d file(s) to %s (%.1f s)' % (
            total_lines, total_bytes / 1e6, len(files), args.out, time.monotonic() - started), file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
