"""Shared by the example generators examples/<family>/make.py (stdlib only).

Long on purpose: the one transcription of the detection model that the
families share (BasicSim, StrictSim, TimerSim) and the writing helpers; a
copy per family would drift.

Each make.py writes its family's example logs and golden replay expectations. What they have in
common lives here:

  * the time formats of the outputs (rfc3339nano, rfc3339ms) and event_json, the line format of
    tests/golden/examples_<family>/expected.jsonl;
  * three transcriptions of docs/DETECTION.md that compute the expected events of a timeline,
    never from the program's output:
      TimerSim   stall / ban / period_end / unban timers (factom, livepeer)
      StrictSim  the same rules, stricter about timers at line times, sorts its events (dash, decred)
      BasicSim   advances, stall, lag, syncing, own misses and double-sign risk, no bans
                 (algorand, tezos)
  * writing or checking the outputs: write_or_check (a {path: text} map), write_example,
    main_listed and main_tree (a generator that writes under a root, checked in a temporary one).

A make.py imports it with:

    sys.dont_write_bytecode = True
    sys.path.insert(0, os.path.dirname(HERE))
    import examplegen
"""
import heapq
import json
import os
import shutil
import tempfile
import time as _t

S = 1_000_000_000
MS = 1_000_000


def rfc3339nano(t):
    secs, frac = divmod(t, S)
    return _t.strftime('%Y-%m-%dT%H:%M:%S', _t.gmtime(secs)) + '.%09dZ' % frac


def rfc3339ms(t):
    secs, frac = divmod(t, S)
    return _t.strftime('%Y-%m-%dT%H:%M:%S', _t.gmtime(secs)) + '.%03dZ' % (frac // MS)


def event_json(e, ensure_ascii=True):
    """One line of expected.jsonl: an event dict with an integer 'time' (ns since the epoch)."""
    out = {'time': rfc3339ms(e['time']), 'event': e['event'], 'severity': e['severity'],
           'chain': e['chain'], 'node': e['node'], 'namespace': e['namespace']}
    if 'height' in e:
        out['height'] = e['height']
    if 'detail' in e:
        out['detail'] = e['detail']
    return json.dumps(out, ensure_ascii=ensure_ascii)


# ------------------------------------------------------------------ writing and checking
def write_or_check(files, root, check, announce=False, prune=None):
    """files: {absolute path: text}. With check, prints 'differs: <path>' for each file that is not
    as given; else writes them (printing 'wrote <path>' with announce) and, with prune (a folder),
    removes the .log files there that are not in files. Returns the number of differing files."""
    bad = 0
    for path, text in sorted(files.items()):
        if check:
            try:
                with open(path, encoding='utf-8') as f:
                    same = f.read() == text
            except OSError:
                same = False
            if not same:
                print('differs: ' + os.path.relpath(path, root))
                bad += 1
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'w', encoding='utf-8') as f:
                f.write(text)
            if announce:
                print('wrote ' + os.path.relpath(path, root))
    if not check and prune is not None:
        for name in os.listdir(prune):
            if name.endswith('.log') and os.path.join(prune, name) not in files:
                os.remove(os.path.join(prune, name))
    return bad


def write_example(outroot, family, logs, args, events, config=None, ensure_ascii=True):
    """Writes under outroot: examples/<family>/ (its old .log files removed) the logs [(name, text)]
    and, if given, quorumwatch.yaml; tests/golden/examples_<family>/args (args, then the logs'
    paths) and expected.jsonl. Returns the written paths relative to outroot."""
    ex = os.path.join(outroot, 'examples', family)
    gold = os.path.join(outroot, 'tests', 'golden', 'examples_' + family)
    os.makedirs(ex, exist_ok=True)
    os.makedirs(gold, exist_ok=True)
    for f in os.listdir(ex):
        if f.endswith('.log'):
            os.remove(os.path.join(ex, f))
    for name, text in logs:
        with open(os.path.join(ex, name), 'w', encoding='utf-8') as out:
            out.write(text)
    rels = []
    if config is not None:
        with open(os.path.join(ex, 'quorumwatch.yaml'), 'w', encoding='utf-8') as out:
            out.write(config)
        rels.append(os.path.join('examples', family, 'quorumwatch.yaml'))
    names = sorted(name for name, _ in logs)
    with open(os.path.join(gold, 'args'), 'w', encoding='utf-8') as out:
        out.write(args + ' '.join('../../../examples/%s/%s' % (family, n) for n in names) + '\n')
    with open(os.path.join(gold, 'expected.jsonl'), 'w', encoding='utf-8') as out:
        for e in events:
            out.write(event_json(e, ensure_ascii) + '\n')
    return [os.path.join('examples', family, n) for n in names] + rels + [
        os.path.join('tests', 'golden', 'examples_' + family, 'args'),
        os.path.join('tests', 'golden', 'examples_' + family, 'expected.jsonl')]


def main_listed(argv, write, repo):
    """write(root) -> the written paths relative to root. --check: writes into a temporary root
    and prints 'differs: <path>' for each path whose file in repo is not the same."""
    if len(argv) > 1 and argv[1] == '--check':
        with tempfile.TemporaryDirectory() as tmp:
            rels = write(tmp)
            bad = [r for r in rels if not os.path.exists(os.path.join(repo, r)) or
                   open(os.path.join(tmp, r), 'rb').read() != open(os.path.join(repo, r), 'rb').read()]
            for r in bad:
                print('differs: ' + r)
            return 1 if bad else 0
    write(repo)
    return 0


def main_tree(argv, write, repo, family):
    """write(root). --check: writes into a temporary root and compares every file it wrote in
    examples/<family> and tests/golden/examples_<family> with repo's."""
    if argv[1:] == ['--check']:
        tmp = tempfile.mkdtemp()
        try:
            write(tmp)
            bad = []
            for rel in ('examples/' + family, 'tests/golden/examples_' + family):
                for f in sorted(os.listdir(os.path.join(tmp, rel))):
                    a = open(os.path.join(tmp, rel, f), 'rb').read()
                    p = os.path.join(repo, rel, f)
                    if not os.path.exists(p) or open(p, 'rb').read() != a:
                        bad.append(os.path.join(rel, f))
            if bad:
                print('differs: ' + ', '.join(bad))
                return 1
            print('examples/%s: up to date' % family)
            return 0
        finally:
            shutil.rmtree(tmp)
    write(repo)
    return 0


# ------------------------------------------------------------------ docs/DETECTION.md
class _HeapSim:
    """What TimerSim and StrictSim have in common: events, the timer heap, visible nodes, the head."""

    def emit(self, t, kind, severity, n, height=None, detail=None):
        e = {'time': t, 'event': kind, 'severity': severity, 'chain': self.chain, 'node': n.name,
             'namespace': self.namespace}
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


class TimerSimNode:
    def __init__(self, node):
        self.name = node.pod
        self.node = node
        self.visible = True
        self.height = None
        self.last_adv = None
        self.stall_token = 0
        self.stalled = False
        self.failed = False
        self.lagging = False
        self.syncing = False
        self.was_in = False
        self.out = False
        self.period_open = False
        self.period_id = 0
        self.period_end_token = 0
        self.banned = False
        self.unban_token = 0
        self.missed = []


class TimerSim(_HeapSim):
    """docs/DETECTION.md, literally (factom, livepeer): stall / ban / period_end / unban timers on
    a heap, a timer firing before a line at the same time; events in emission order (the caller sorts).
    nodes: objects with .pod, .file, .lines [(t, ...)] and .facts [(t, kind, data)]."""

    def __init__(self, nodes, cfg, chain, namespace):
        self.cfg = cfg
        self.chain = chain
        self.namespace = namespace
        self.nodes = {n.pod: TimerSimNode(n) for n in nodes}
        self.events = []
        self.timers = []
        self.seq = 0
        self.facts = []
        for idx, n in enumerate(sorted(nodes, key=lambda n: n.file)):
            for t, kind, data in n.facts:
                self.facts.append((t, idx, kind, n.pod, data))
            self.facts.append((n.lines[-1][0], idx, 'end', n.pod, None))
        self.facts.sort(key=lambda f: (f[0], f[1], f[2] == 'end'))

    def update_lag(self, t):
        head = self.head()
        for n in self.visible():
            if n.height is None:
                continue
            lag = head - n.height > self.cfg['max_lag'] and not (n.syncing and not n.was_in)
            if lag != n.lagging:
                n.lagging = lag
                self.update_out(n, t)

    def update_out(self, n, t):
        reason = None
        if n.visible:
            if n.failed:
                reason = 'consensus_failure'
            elif n.stalled:
                reason = 'stalled'
            elif n.lagging:
                reason = 'lagging'
            elif n.syncing and n.was_in:
                reason = 'syncing'
        if reason and not n.out:
            n.out = True
            self.emit(t, 'out_of_consensus', 'warning', n, n.height, {'reason': reason})
            n.unban_token += 1
            n.period_end_token += 1
            if not n.period_open:
                n.period_open = True
                n.period_id += 1
                self.timer(t + self.cfg['ban_after'], 'ban', n, n.period_id)
        elif not reason and n.out:
            n.out = False
            self.emit(t, 'back_in_consensus', 'info', n, n.height)
            n.period_end_token += 1
            if not n.banned:
                self.timer(t + self.cfg['stable_after'], 'period_end', n, n.period_end_token)
            if n.banned and self.cfg['auto_unban']:
                n.unban_token += 1
                self.timer(t + self.cfg['unban_after'], 'unban', n, n.unban_token)
        if not n.out and not n.syncing and n.height is not None and n.visible:
            n.was_in = True

    def on_adv(self, t, n, h):
        if n.height is not None and h <= n.height:
            return
        if n.stalled:
            self.emit(t, 'node_recovered', 'info', n, h)
            n.stalled = False
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
        self.update_lag(t)
        self.update_out(n, t)

    def on_stall(self, t, n):
        vis = [m for m in self.visible() if m.height is not None]
        if len(vis) >= 2:
            hs = [m.height for m in vis]
            ts = [m.last_adv for m in vis]
            assert not (max(hs) - min(hs) <= 1 and max(ts) - min(ts) <= self.cfg['stall_after']), \
                'a chain-halt candidate: not covered by this scenario'
        n.stalled = True
        self.emit(t, 'node_stalled', 'warning', n, n.height)
        self.update_out(n, t)

    def on_ban(self, t, n, period_id):
        if not (n.period_open and n.period_id == period_id) or n.banned:
            return
        assert sum(1 for m in self.nodes.values() if m.banned) < self.cfg['max_bans']
        vis = [m for m in self.visible() if m.height is not None]   # "visible": has a height
        if len(vis) >= 2:
            assert any(m is not n and not m.out and not m.banned for m in vis), 'held ban: not covered'
        n.banned = True
        self.emit(t, 'ban', 'critical', n, n.height, {'reason': 'stalled'})

    def run(self):
        fi = 0
        while fi < len(self.facts):
            t, _, kind, pod, data = self.facts[fi]
            if self.timers and self.timers[0][0] <= t:
                tt, _, tkind, n, token = heapq.heappop(self.timers)
                if not n.visible:
                    continue
                if tkind == 'stall' and token == n.stall_token and not n.stalled:
                    self.on_stall(tt, n)
                elif tkind == 'ban':
                    self.on_ban(tt, n, token)
                elif tkind == 'period_end' and token == n.period_end_token and not n.out:
                    n.period_open = False
                elif tkind == 'unban' and token == n.unban_token and n.banned and not n.out:
                    n.banned = False
                    n.period_open = False
                    self.emit(tt, 'unban', 'info', n, n.height)
                continue
            fi += 1
            n = self.nodes[pod]
            if not n.visible:
                continue
            if kind == 'adv':
                self.on_adv(t, n, data)
            elif kind == 'missed':
                n.missed.append(1)
                in_window = sum(n.missed[-self.cfg['window']:])
                sev = 'warning' if in_window > self.cfg['max_missed'] else 'info'
                self.emit(t, 'missed_precommit', sev, n, data,
                          {'kind': 'missed_vote', 'missed_in_window': in_window,
                           'window': self.cfg['window'], 'max': self.cfg['max_missed']})
            elif kind == 'syncing':
                target = data
                if not n.syncing and (target is None or n.height is None or target - n.height > self.cfg['max_lag']):
                    n.syncing = True
                    self.emit(t, 'node_syncing', 'warning', n, target if target is not None else n.height,
                              {'target_height': target} if target is not None else None)
                    self.update_out(n, t)
            elif kind == 'synced':
                if n.syncing:
                    n.syncing = False
                    self.emit(t, 'node_synced', 'info', n, n.height)
                    self.update_out(n, t)
            elif kind == 'others':
                # others_misbehaviour: double_sign_risk info, height = the line's, else the node's last
                h, validator = data
                self.emit(t, 'double_sign_risk', 'info', n, h if h is not None else n.height,
                          {'reason': 'others_misbehaviour', 'validator': validator})
            elif kind == 'round_timeout':
                pass            # recorded only
            elif kind == 'end':
                n.visible = False
            else:
                raise ValueError(kind)
        return self.events


class StrictSimNode:
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


class StrictSim(_HeapSim):
    """docs/DETECTION.md (dash, decred): like TimerSim, but a line comes before a timer due at
    the same instant only if none is (asserted), dead timers are dropped, timers after the last
    line do not fire, and run() returns the events in output order.
    nodes: objects with .pod, .lines [(t, ...)] and .facts [(t, kind, data)]."""

    def __init__(self, nodes, cfg, chain, namespace):
        self.cfg = cfg
        self.chain = chain
        self.namespace = namespace
        self.nodes = {n.pod: StrictSimNode(n) for n in nodes}
        self.events = []
        self.timers = []
        self.seq = 0
        self.facts = []
        for n in nodes:
            for t, kind, data in n.facts:
                self.facts.append((t, 0, kind, n.pod, data))
            self.facts.append((max(t for t, _ in n.lines), 1, 'end', n.pod, None))
        self.facts.sort(key=lambda f: (f[0], f[1]))

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


class BasicSimNode:
    def __init__(self, name):
        self.name = name
        self.height = -1
        self.last_adv = None
        self.stalled = False
        self.syncing = False
        self.lagging = False
        self.ooc = False
        self.was_in = False
        self.period_start = None
        self.ring = []


class BasicSim:
    """docs/DETECTION.md for: advances (block_committed / block_produced), stall, lag,
    syncing/synced, chain's own misses (vote_missed / slot_skipped), own double-sign risk,
    others' misbehaviour. Asserts the cases it does not model (chain halt, bans) stay out. (algorand, tezos; algod gives
    only advances, stall, lag and syncing/synced.) run(facts): facts are (t, pod, kind, data)."""

    def __init__(self, pods, chain, namespace, stall_after, max_lag, ban_after, missed_window=None,
                 missed_max=None):
        self.chain = chain
        self.namespace = namespace
        self.stall_after = stall_after
        self.max_lag = max_lag
        self.ban_after = ban_after
        self.missed_window = missed_window
        self.missed_max = missed_max
        self.nodes = {p: BasicSimNode(p) for p in pods}
        self.events = []

    def emit(self, t, kind, sev, n, height, detail=None):
        e = {'time': t, 'event': kind, 'severity': sev, 'chain': self.chain, 'node': n.name,
             'namespace': self.namespace, 'height': height}
        if detail:
            e['detail'] = detail
        self.events.append(e)

    def head(self):
        return max(n.height for n in self.nodes.values())

    def update(self, n, t):
        reason = None
        if n.stalled:
            reason = 'stalled'
        elif n.lagging:
            reason = 'lagging'
        elif n.syncing and n.was_in:
            reason = 'syncing'
        if reason and not n.ooc:
            n.ooc = True
            n.period_start = t
            self.emit(t, 'out_of_consensus', 'warning', n, n.height, {'reason': reason})
        elif not reason and n.ooc:
            n.ooc = False
            assert t - n.period_start < self.ban_after, 'a ban would be due: not modelled'
            self.emit(t, 'back_in_consensus', 'info', n, n.height)
        if not n.ooc and not n.syncing and n.height >= 0:
            n.was_in = True

    def check_lag(self, t):
        h = self.head()
        for m in self.nodes.values():
            if m.height < 0:
                continue
            lag = h - m.height > self.max_lag and not (m.syncing and not m.was_in)
            if lag != m.lagging:
                m.lagging = lag
                self.update(m, t)

    def advance(self, t, n, h):
        if h <= n.height:
            return
        n.height = h
        n.last_adv = t
        if n.stalled:
            n.stalled = False
            self.emit(t, 'node_recovered', 'info', n, h)
        if n.syncing:
            others = any(m is not n and m.height >= 0 for m in self.nodes.values())
            if others and self.head() - h <= self.max_lag:
                n.syncing = False
                self.emit(t, 'node_synced', 'info', n, h)
        self.check_lag(t)
        self.update(n, t)

    def missed(self, t, n, h, kind):
        n.ring.append(1)
        n.ring = n.ring[-self.missed_window:]
        sev = 'warning' if sum(n.ring) > self.missed_max else 'info'
        self.emit(t, 'missed_precommit', sev, n, h if h is not None else n.height + 1, {'kind': kind})

    def fire_stalls(self, until):
        while True:
            due = [(m.last_adv + self.stall_after, m.name) for m in self.nodes.values()
                   if m.last_adv is not None and not m.stalled and m.last_adv + self.stall_after < until]
            if not due:
                return
            t, name = min(due)
            n = self.nodes[name]
            others = [m for m in self.nodes.values() if m.height >= 0]
            hs = [m.height for m in others]
            assert not (len(others) >= 2 and max(hs) - min(hs) <= 1), 'chain halt: not modelled'
            n.stalled = True
            self.emit(t, 'node_stalled', 'warning', n, n.height)
            self.update(n, t)

    def run(self, facts):
        for t, pod, kind, data in sorted(facts, key=lambda f: f[0]):
            for m in self.nodes.values():
                if m.last_adv is not None:
                    assert m.last_adv + self.stall_after != t, 'a stall deadline falls on a line time'
            self.fire_stalls(t)
            n = self.nodes[pod]
            if kind == 'adv':
                self.advance(t, n, data)
            elif kind == 'syncing':
                if not n.syncing:
                    n.syncing = True
                    self.emit(t, 'node_syncing', 'warning', n, n.height)
                    self.update(n, t)
            elif kind == 'synced':
                if n.syncing:
                    n.syncing = False
                    self.emit(t, 'node_synced', 'info', n, n.height)
                    self.update(n, t)
            elif kind == 'missed':
                self.missed(t, n, data[0], data[1])
            elif kind == 'dsr':
                self.emit(t, 'double_sign_risk', 'critical', n, data[0], {'reason': data[1]})
            elif kind == 'others':
                self.emit(t, 'double_sign_risk', 'info', n, n.height, {'reason': 'others_misbehaviour'})
            else:
                raise ValueError(kind)
        self.events.sort(key=lambda e: (e['time'], e['chain'], e['node'], e['event']))
        return self.events
