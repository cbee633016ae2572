"""The reference model of docs/DETECTION.md (Python 3.11, standard library only).

One transcription of the detection rules, written from docs/DETECTION.md (never from the C++
code), shared by every generator of expected events:

    tests/golden/make_scenarios.py      the golden scenarios and examples/cosmoshub
    examples/<family>/make.py           the per-family examples (via examples/examplegen.py)

A generator describes what its nodes did as signals (the names of patterns/README.md, "Signals
each family gives from its logs") at event times, runs the model, and writes what it returns as
expected.jsonl. Nothing here comes from the program's output.

Usage:

    m = Model('cosmoshub', family='cometbft', config={'max_lag': 20},
              nodes={'val-0': {'signer': True}})
    m.node('val-0', namespace='cosmos')
    m.signal(t, 'val-0', 'block_committed', 1234)        # t: ns since the epoch
    m.file_end('val-0', t_last_line)                     # once per input file (at least one per node)
    events = m.run()                                     # in output order

Everything that differs between scenarios is configuration as documented in DETECTION.md
("Defaults"): the family (its pattern file's `defaults:`, transcribed in FAMILY_DEFAULTS,
including `derive_misses`), the chain's configuration (`config`, keys as under `chains.<name>`
of quorumwatch.yaml) and the nodes' (`nodes`, keyed by node name, keys as under
`nodes.<namespace/pod>`).
What an expected.jsonl asserts of each event's `detail` is chosen by the generator
(expectation(), since run_golden.py compares only the expected detail keys); the model always
computes the full detail.

Signals (data):
    block_committed, block_produced  height
    vote_signed        (height, round, type, block_id, validator) -- type 'prevote',
                       'precommit' or 'proposal'; block_id / validator may be None
    vote_missed        height or None (None: the height being decided, last committed + 1)
    slot_skipped       height or None (as vote_missed)
    consensus_failure  height or None (as vote_missed)
    double_sign_risk   (height or None, reason or None)   own; None height: last committed + 1
    others_misbehaviour (height or None, validator or None); None height: last committed
    upgrade_halt       height
    syncing            None, or (target or None, current or None): the sync target the line
                       names and the height the line says the node is at
    synced             None
    peers, round_timeout  recorded only (no rule of DETECTION.md gives an event)

Where DETECTION.md is silent the model takes the readings listed in tests/model/README.md, and
where a case is not covered by those readings it raises AssertionError ("not covered") rather
than guess: the scenarios are built to stay clear of them.
"""
import heapq
import json
import re
import time as _time

NS = 1
MS = 1_000_000
S = 1_000_000_000
MIN = 60 * S
HOUR = 60 * MIN


# --------------------------------------------------------------------------- configuration
# DETECTION.md, "Defaults": built-in defaults (src/detect/thresholds.h as documented there).
BUILTIN = {
    'stall_after': '60s',
    'max_lag': 5,
    'missed': {'window': 100, 'max': 5},
    'ban_after': '30m',
    'stable_after': '5m',
    'unban_after': '10m',
    'auto_unban': True,
    'max_bans': 1,
    'require_healthy_peer': 'auto',     # true while the chain has two or more visible nodes
    'ban_on_double_sign': False,
    'replace_window': '5m',
    'signer_groups': (),
    'derive_misses': True,              # a family's `defaults: derive_misses: false` turns it off
}

# DETECTION.md, "Family defaults" (the `defaults:` of each patterns/<family>.yaml), and
# "missed precommits": Tezos sets `derive_misses: false`.
FAMILY_DEFAULTS = {
    'algorand': {'stall_after': '30s', 'max_lag': 10, 'missed': {'window': 100, 'max': 5}},
    'cometbft': {'stall_after': '60s', 'max_lag': 5, 'missed': {'window': 100, 'max': 5}},
    'cometbft-signers': {'stall_after': '60s', 'max_lag': 5, 'missed': {'window': 100, 'max': 5}},
    'dash': {'stall_after': '30m', 'max_lag': 3, 'missed': {'window': 24, 'max': 1}},
    'decred': {'stall_after': '60m', 'max_lag': 3, 'missed': {'window': 20, 'max': 1}},
    'eos': {'stall_after': '30s', 'max_lag': 24, 'missed': {'window': 252, 'max': 6}},
    'factom': {'stall_after': '20m', 'max_lag': 2, 'missed': {'window': 144, 'max': 2}},
    'livepeer': {'stall_after': '26h', 'max_lag': 2, 'missed': {'window': 30, 'max': 1}},
    'solana': {'stall_after': '60s', 'max_lag': 128, 'missed': {'window': 150, 'max': 10}},
    'tezos': {'stall_after': '90s', 'max_lag': 5, 'missed': {'window': 100, 'max': 3},
              'derive_misses': False},
}

# thresholds that a node's configuration may set for itself; the others are the chain's
NODE_KEYS = ('stall_after', 'max_lag', 'missed', 'ban_after', 'stable_after', 'unban_after',
             'auto_unban', 'replace_window')
CHAIN_KEYS = NODE_KEYS + ('max_bans', 'require_healthy_peer', 'ban_on_double_sign', 'signer_groups')
DURATIONS = ('stall_after', 'ban_after', 'stable_after', 'unban_after', 'replace_window')

_UNIT = {'h': HOUR, 'm': MIN, 's': S, 'ms': MS, 'us': 1000, 'ns': NS}


GENERATED = 'bcdfghjklmnpqrstvwxz2456789'   # DETECTION.md "replaced": Kubernetes' generated names


def workload(pod):
    """DETECTION.md "replaced": the pod name without its generated suffixes, or None."""
    def generated(part, lo, hi):
        return lo <= len(part) <= hi and all(c in GENERATED for c in part)
    dash = pod.rfind('-')
    if dash <= 0 or not generated(pod[dash + 1:], 5, 5):
        return None
    base = pod[:dash]
    dash = base.rfind('-')
    if dash > 0 and generated(base[dash + 1:], 6, 10):
        base = base[:dash]
    return base


def duration(v):
    """A duration as the configuration writes it ('90s', '2m30s', '26h', '500ms') or ns (int)."""
    if isinstance(v, int):
        return v
    parts = re.findall(r'(\d+)(ms|us|ns|h|m|s)', v)
    assert parts and ''.join(n + u for n, u in parts) == v, 'not a duration: %r' % v
    return sum(int(n) * _UNIT[u] for n, u in parts)


def thresholds(family=None, config=None, node_config=None):
    """DETECTION.md, "Defaults": resolved from the family's defaults, then the chain's
    configuration, then the node's. Returns a flat dict (durations in ns, `missed` as
    missed_window / missed_max)."""
    t = dict(BUILTIN)
    if family is not None:
        t.update(FAMILY_DEFAULTS[family])
    for k, v in (config or {}).items():
        assert k in CHAIN_KEYS, 'not a chain setting: %s' % k
        t[k] = v
    for k, v in (node_config or {}).items():
        if k not in ('signer', 'validator_address'):
            assert k in NODE_KEYS, 'not a node setting: %s' % k
            t[k] = v
    out = {k: duration(v) if k in DURATIONS else v for k, v in t.items() if k != 'missed'}
    out['missed_window'] = t['missed']['window']
    out['missed_max'] = t['missed']['max']
    return out


# --------------------------------------------------------------------------- output helpers
def rfc3339ms(t):
    """The event time of the output contract: UTC, truncated to the millisecond."""
    secs, frac = divmod(t, S)
    return _time.strftime('%Y-%m-%dT%H:%M:%S', _time.gmtime(secs)) + '.%03dZ' % (frac // MS)


def expectation(events, detail_keys):
    """The events as an expected.jsonl asserts them: each event's detail reduced to the keys
    detail_keys[kind] names (in the model's order; no detail when none is left)."""
    out = []
    for e in events:
        e = dict(e)
        d = {k: v for k, v in e.pop('detail', {}).items() if k in detail_keys.get(e['event'], ())}
        if d:
            e['detail'] = d
        out.append(e)
    return out


def event_json(e, ensure_ascii=True):
    """One line of expected.jsonl (without the newline); e['time'] in ns since the epoch."""
    out = {'time': rfc3339ms(e['time']), 'event': e['event'], 'severity': e['severity'],
           'chain': e['chain'], 'node': e['node']}
    for k in ('namespace', 'height', 'detail'):
        if k in e:
            out[k] = e[k]
    return json.dumps(out, ensure_ascii=ensure_ascii)


# --------------------------------------------------------------------------- the model
ADVANCES = ('block_committed', 'block_produced')
RECORDED = ('peers', 'round_timeout')
MISS_KIND = {'vote_missed': 'missed_vote', 'slot_skipped': 'skipped_slot'}
JUMP_JUDGED = 16          # "Heights the node passes over without a commit line (a jump of at most 16)"


class _Node:
    def __init__(self, name, namespace, cfg, signer, validator):
        self.name = name
        self.namespace = namespace
        self.cfg = cfg
        self.visible = True
        self.end = None                 # the last line of its files
        # heights
        self.height = None
        self.first_height = None
        self.last_adv = None
        self.stall_token = 0
        self.stalled = False
        self.waiting = False            # reached its deadline, waiting for a chain halt decision
        # states
        self.failed = False
        self.fail_heights = set()
        self.syncing = False
        self.lagging = False
        self.was_in = False             # has been in consensus
        self.out = False
        self.out_reason = None
        # periods and bans
        self.period_open = False
        self.period_id = 0
        self.period_reason = None
        self.period_end_token = 0
        self.banned = False
        self.held = None                # the period whose ban a rail holds
        self.unban_token = 0
        # missed precommits
        self.signer = signer
        self.validator = validator
        self.signer_from = None         # the first height judged
        self.precommits = set()
        self.judged = []                # True per missed judged height, False per signed one
        # replaced
        self.workload = workload(name)
        self.first_seen = None
        self.last_seen = None
        self.successor = False          # a successor whose decision is pending
        self.replace_token = 0
        self.replaced_by = None


class Model:
    """docs/DETECTION.md for one chain. See the module docstring.

    chain     the events' chain name
    family    the chain's family: its pattern file's `defaults:` (FAMILY_DEFAULTS)
    config    the chain's configuration (quorumwatch.yaml `chains.<chain>`, durations as there)
    nodes     {node: its configuration} (`signer: true`, `validator_address`, thresholds)
    retire_at_end  not DETECTION.md's replay (where the end of a file is only the end of what
              was captured): retire each node at its last line. Only for checking that a
              scenario's events do not depend on the order in which the files end.
    """

    def __init__(self, chain, family=None, config=None, nodes=None, retire_at_end=False):
        self.chain = chain
        self.family = family
        self.config = dict(config or {})
        self.node_config = dict(nodes or {})
        self.cfg = thresholds(family, self.config)
        assert not self.cfg['ban_on_double_sign'], 'ban_on_double_sign: not modelled'
        self.retire_at_end = retire_at_end
        self.nodes = {}
        self.signals = []
        self.events = []
        self.timers = []
        self.seq = 0
        self.halted = False
        self.halt_height = None
        self.votes = {}
        self.first_signal = None        # the chain's first signal (any node's)

    # ---- input
    def node(self, name, namespace=None):
        assert name not in self.nodes, name
        nc = self.node_config.get(name, {})
        self.nodes[name] = _Node(name, namespace, thresholds(self.family, self.config, nc),
                                 bool(nc.get('signer')), nc.get('validator_address'))
        return self

    def signal(self, t, node, kind, data=None):
        assert node in self.nodes, 'unknown node %s' % node
        assert kind in ADVANCES + RECORDED + tuple(MISS_KIND) + (
            'vote_signed', 'consensus_failure', 'double_sign_risk', 'others_misbehaviour',
            'upgrade_halt', 'syncing', 'synced'), kind
        self.signals.append((t, 0, len(self.signals), node, kind, data))
        return self

    def file_end(self, node, t):
        """The time of the last line of one of node's input files."""
        n = self.nodes[node]
        n.end = t if n.end is None else max(n.end, t)
        return self

    # ---- output
    def emit(self, t, kind, severity, n=None, height=None, detail=None):
        e = {'time': t, 'event': kind, 'severity': severity, 'chain': self.chain,
             'node': n.name if n is not None else ''}
        if n is not None and n.namespace is not None:
            e['namespace'] = n.namespace
        if height is not None:
            e['height'] = height
        if detail:
            e['detail'] = detail
        self.events.append(e)

    def timer(self, t, kind, n, token):
        self.seq += 1
        heapq.heappush(self.timers, (t, self.seq, kind, n.name, token))

    def live(self, timer):
        _, _, kind, name, token = timer
        n = self.nodes[name]
        if not n.visible:
            return False
        if kind == 'stall':
            return token == n.stall_token and not n.stalled
        if kind == 'ban':
            return n.period_open and n.period_id == token
        if kind == 'period_end':
            return token == n.period_end_token and not n.out
        if kind == 'unban':
            return token == n.unban_token and n.banned and not n.out
        if kind == 'replace':
            return token == n.replace_token and n.successor
        raise ValueError(kind)

    # ---- the chain
    def visible(self):
        return [n for n in self.nodes.values() if n.visible]

    def head(self):
        """"The chain head is the highest height among visible nodes." """
        hs = [n.height for n in self.visible() if n.height is not None]
        return max(hs) if hs else None

    # ---- per node: out of consensus, periods
    def update_out(self, n, t):
        """out of consensus = stalled (chain not halted) or consensus failure or lagging or
        syncing-after-in-consensus."""
        if not n.visible:
            return
        reason = ('consensus_failure' if n.failed else
                  'stalled' if n.stalled and not self.halted else
                  'lagging' if n.lagging else
                  'syncing' if n.syncing and n.was_in else None)
        if reason and not n.out:
            n.out, n.out_reason = True, reason
            self.emit(t, 'out_of_consensus', 'warning', n, n.height, {'reason': reason})
            n.unban_token += 1                       # an unban needs unban_after back in consensus
            n.period_end_token += 1                  # the period goes on
            if not n.period_open:
                n.period_open = True
                n.period_id += 1
                n.period_reason = reason
                self.timer(t + n.cfg['ban_after'], 'ban', n, n.period_id)
        elif not reason and n.out:
            n.out = False
            self.emit(t, 'back_in_consensus', 'info', n, n.height, {'reason': n.out_reason})
            n.period_end_token += 1
            self.timer(t + n.cfg['stable_after'], 'period_end', n, n.period_end_token)
            if n.banned and n.cfg['auto_unban']:
                n.unban_token += 1
                self.timer(t + n.cfg['unban_after'], 'unban', n, n.unban_token)
        if not n.out and not n.syncing and n.height is not None:
            n.was_in = True

    def update_lag(self, t):
        """lagging: behind the head by more than max_lag, checked on every advance of any node
        of the chain; never-in-consensus syncing nodes are not judged lagging."""
        head = self.head()
        for m in self.visible():
            if m.height is not None:
                m.lagging = head - m.height > m.cfg['max_lag'] and not (m.syncing and not m.was_in)
        for m in self.visible():
            self.update_out(m, t)

    # ---- signals
    def on_advance(self, t, n, h):
        if n.height is not None and h <= n.height:
            return                                   # not above its highest so far: no advance
        assert not n.waiting, '%s advanced while waiting for a chain halt decision: not covered' % n.name
        prev = n.height
        if n.stalled:
            n.stalled = False
            self.emit(t, 'node_recovered', 'info', n, h)
        n.failed = False                             # out of consensus "until its next advance"
        n.height, n.last_adv = h, t
        if n.first_height is None:
            n.first_height = h
            if n.signer and n.signer_from is None:
                n.signer_from = h                    # configured signer: judged from its first height
        n.stall_token += 1
        self.timer(t + n.cfg['stall_after'], 'stall', n, n.stall_token)
        if self.halted and h > self.halt_height:
            self.halted = False
            self.emit(t, 'chain_resumed', 'info', None, h)
        if n.signer and n.cfg['derive_misses'] and prev is not None:
            # one block of grace: committing h judges the heights below it not judged yet; a
            # jump of more than JUMP_JUDGED judges the last logged height only
            for hh in (range(prev, h) if h - prev <= JUMP_JUDGED else (prev,)):
                if hh >= n.signer_from:
                    self.judge(t, n, hh, hh not in n.precommits, 'precommit')
        if n.syncing:
            others = any(m is not n and m.height is not None for m in self.visible())
            if others and self.head() - h <= n.cfg['max_lag']:
                n.syncing = False
                self.emit(t, 'node_synced', 'info', n, h)
        self.update_lag(t)

    def judge(self, t, n, h, missed, kind):
        n.judged.append(missed)
        if missed:
            w, mx = n.cfg['missed_window'], n.cfg['missed_max']
            k = sum(n.judged[-w:])
            self.emit(t, 'missed_precommit', 'warning' if k > mx else 'info', n, h,
                      {'kind': kind, 'missed_in_window': k, 'window': w, 'max': mx})

    def on_vote(self, t, n, data):
        h, rnd, vtype, block, validator = data
        assert vtype in ('prevote', 'precommit', 'proposal'), vtype
        if not n.signer:
            n.signer = True                          # learned: judged from its first own vote
            n.signer_from = h
        if vtype == 'precommit':
            n.precommits.add(h)
        addr = validator if validator is not None else n.validator
        if n.validator is None:
            n.validator = addr
        key = (addr, h, rnd, vtype)
        if key not in self.votes:
            self.votes[key] = (n, block)
            return
        other, oblock = self.votes[key]
        if other is n:
            return
        if oblock != block:
            self.emit(t, 'double_sign_risk', 'critical', n, h, {'reason': 'conflicting_votes'})
        elif not any(n.name in g and other.name in g for g in self.cfg['signer_groups']):
            self.emit(t, 'double_sign_risk', 'warning', n, h, {'reason': 'dual_active_signer'})

    def on_missed(self, t, n, kind, h):
        self.judge(t, n, h if h is not None else n.height + 1, True, MISS_KIND[kind])

    def on_failure(self, t, n, h):
        hf = h if h is not None else n.height + 1   # the height being decided
        if hf not in n.fail_heights:                # once per height
            n.fail_heights.add(hf)
            self.emit(t, 'consensus_failure', 'critical', n, hf)
        n.failed = True
        self.update_out(n, t)

    def on_syncing(self, t, n, data):
        target, current = data if data is not None else (None, None)
        known = [x for x in (n.height, current) if x is not None]
        far = target is None or not known or target - max(known) > n.cfg['max_lag']
        if not n.syncing and far:
            n.syncing = True
            self.emit(t, 'node_syncing', 'warning', n, target if target is not None else n.height,
                      {'target_height': target} if target is not None else None)
            self.update_out(n, t)

    def on_synced(self, t, n):
        if n.syncing:
            n.syncing = False
            self.emit(t, 'node_synced', 'info', n, n.height)
            self.update_out(n, t)

    def on_upgrade(self, t, n, h):
        self.emit(t, 'upgrade_halt', 'warning', n, h)
        if not self.halted:
            self.halted = True
            self.halt_height = h
            self.emit(t, 'chain_halted', 'warning', None, h)

    # ---- timers
    def on_stall(self, t, n):
        if self.halted:
            return                                   # no node_stalled from a halted chain
        vis = [m for m in self.visible() if m.height is not None]
        if len(vis) >= 2:
            hs = [m.height for m in vis]
            ts = [m.last_adv for m in vis]
            if max(hs) - min(hs) <= 1 and max(ts) - min(ts) <= self.cfg['stall_after']:
                # a chain halt candidate: decided when the last of them reaches its deadline
                if all(m.last_adv + m.cfg['stall_after'] <= t for m in vis):
                    self.halted = True
                    self.halt_height = max(hs)
                    for m in vis:
                        m.waiting = False
                    self.emit(t, 'chain_halted', 'warning', None, self.halt_height)
                else:
                    n.waiting = True
                return
        assert not any(m.waiting for m in vis), 'halt candidates left waiting: not covered'
        n.stalled = True
        self.emit(t, 'node_stalled', 'warning', n, n.height)
        self.update_out(n, t)

    def rail(self, n):
        """The safety rail that holds n's ban now, or None."""
        if sum(1 for m in self.nodes.values() if m.banned) >= self.cfg['max_bans']:
            return 'max_bans'
        vis = self.visible()
        need = self.cfg['require_healthy_peer']
        if need == 'auto':
            need = len(vis) >= 2
        # in consensus = not out of consensus: a node that has not advanced yet is none of
        # stalled, failed, lagging or syncing
        if need and not any(m is not n and not m.out for m in vis):
            return 'require_healthy_peer'
        return None

    def decide_ban(self, t, n):
        assert not n.banned, 'a ban due for %s, already banned: not covered' % n.name
        rail = self.rail(n)
        if rail is None:
            n.banned, n.held = True, None
            self.emit(t, 'ban', 'critical', n, n.height, {'reason': n.period_reason})
        elif n.held != n.period_id:
            n.held = n.period_id
            self.emit(t, 'ban', 'critical', n, n.height, {'reason': n.period_reason, 'held': True, 'rail': rail})

    def redecide_held(self, t):
        """A held ban is decided again when the rail no longer holds (while its period lasts)."""
        for n in self.nodes.values():
            if n.held is not None and n.held == n.period_id and n.period_open and n.visible \
                    and self.rail(n) is None:
                self.decide_ban(t, n)

    def on_timer(self, timer):
        t, _, kind, name, token = timer
        n = self.nodes[name]
        if kind == 'stall':
            self.on_stall(t, n)
        elif kind == 'ban':
            self.decide_ban(t, n)
        elif kind == 'period_end':
            n.period_open = False                    # back in consensus for stable_after
            n.held = None
        elif kind == 'unban':
            n.banned = False
            self.emit(t, 'unban', 'info', n, n.height)
        elif kind == 'replace':
            self.decide_replacement(t, n)

    # ---- replaced (DETECTION.md, "replaced")
    def older_siblings(self, c):
        """Same chain (the model is one chain), namespace and workload, first seen before c."""
        return [p for p in self.nodes.values()
                if p is not c and c.workload is not None and p.workload == c.workload
                and p.namespace == c.namespace and p.first_seen is not None and p.first_seen < c.first_seen]

    def replace_deadline(self, c):
        at = max([c.first_seen] + [p.last_seen + p.cfg['stall_after'] for p in self.older_siblings(c)])
        return min(at, c.first_seen + c.cfg['replace_window'])

    def seen(self, t, n):
        """n signalled at t (any signal): first and last seen; successors' decisions move."""
        if n.first_seen is None:
            n.first_seen = t
            if self.first_signal is None:
                self.first_signal = t
            elif n.workload is not None and n.cfg['replace_window'] > 0 and \
                    t - self.first_signal >= n.cfg['stall_after']:
                n.successor = True
        n.last_seen = t
        for c in self.nodes.values():
            if c.successor and (c is n or n in self.older_siblings(c)):
                c.replace_token += 1
                self.timer(self.replace_deadline(c), 'replace', c, c.replace_token)

    def decide_replacement(self, t, c):
        c.successor = False
        cands = [p for p in self.older_siblings(c)
                 if p.visible and t - p.last_seen >= p.cfg['stall_after']]
        if not cands:
            return
        p = min(cands, key=lambda m: (-m.last_seen, m.name))   # last seen latest; equal: smaller name
        p.replaced_by = c.name
        self.emit(t, 'node_replaced', 'info', p, p.height, {'by': c.name, 'last_seen': rfc3339ms(p.last_seen)})
        # retires: out of consensus ends without back_in_consensus, its ban period ends,
        # not visible any more
        p.visible = False
        p.out = False
        p.period_open = False
        p.held = None
        p.stalled = p.lagging = False
        p.stall_token += 1
        assert not p.waiting and not any(m.waiting for m in self.visible()), \
            'a replacement while halt candidates wait: not covered'
        self.update_lag(t)

    # ---- the run
    def run(self):
        """The events in output order: (time, chain, node, kind, height). Replay ends at the last
        line: timers due after it do not fire. A live timer due at a signal's or file end's time
        is not covered (DETECTION.md does not order the two), nor are two events equal in all
        of (time, chain, node, kind, height) (their order would be the id's)."""
        for n in self.nodes.values():
            assert n.end is not None, 'no file_end for %s' % n.name
        items = sorted(self.signals + [(n.end, 1, 0, n.name, 'end', None) for n in self.nodes.values()],
                       key=lambda x: x[:3])
        for t, _, _, name, kind, data in items:
            while self.timers and self.timers[0][0] < t:
                timer = heapq.heappop(self.timers)
                if self.live(timer):
                    self.on_timer(timer)
                    self.redecide_held(timer[0])
            while self.timers and self.timers[0][0] == t and not self.live(self.timers[0]):
                heapq.heappop(self.timers)
            assert not (self.timers and self.timers[0][0] == t), \
                'a timer (%s of %s) falls on a line time %s: not covered' % (
                    self.timers[0][2], self.timers[0][3], rfc3339ms(t))
            n = self.nodes[name]
            if not n.visible:
                assert kind == 'end' or n.replaced_by is None, \
                    '%s signals after being replaced: not covered' % name
                continue
            if kind != 'end':
                self.seen(t, n)
            if kind in ADVANCES:
                self.on_advance(t, n, data)
            elif kind == 'vote_signed':
                self.on_vote(t, n, data)
            elif kind in MISS_KIND:
                self.on_missed(t, n, kind, data)
            elif kind == 'consensus_failure':
                self.on_failure(t, n, data)
            elif kind == 'double_sign_risk':
                h, reason = data
                self.emit(t, 'double_sign_risk', 'critical', n, h if h is not None else n.height + 1,
                          {'reason': reason} if reason else None)
            elif kind == 'others_misbehaviour':
                h, validator = data
                d = {'reason': 'others_misbehaviour'}
                if validator is not None:
                    d['validator'] = validator
                self.emit(t, 'double_sign_risk', 'info', n, h if h is not None else n.height, d)
            elif kind == 'upgrade_halt':
                self.on_upgrade(t, n, data)
            elif kind == 'syncing':
                self.on_syncing(t, n, data)
            elif kind == 'synced':
                self.on_synced(t, n)
            elif kind == 'end':
                if self.retire_at_end and t == n.end:
                    n.visible = False
            # RECORDED: no event
            self.redecide_held(t)
        order = lambda e: (e['time'], e['chain'], e['node'], e['event'], e.get('height', -1))
        self.events.sort(key=order)
        keys = [order(e) for e in self.events]
        assert len(keys) == len(set(keys)), 'two events equal in (time, chain, node, kind, height): not covered'
        return self.events
