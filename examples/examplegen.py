"""Shared by the example generators examples/<family>/make.py (stdlib only).

Each make.py writes its family's example logs and golden replay expectations. What they have in
common lives here:

  * the reference model of docs/DETECTION.md, tests/model/qwmodel.py (shared with
    tests/golden/make_scenarios.py), loaded by path as `examplegen.qwmodel`, and model_events(),
    which runs it over a make.py's timeline: expected events never come from the program's output;
  * rfc3339nano (CRI time stamps) and event_json, the line format of
    tests/golden/examples_<family>/expected.jsonl;
  * writing or checking the outputs: write_or_check (a {path: text} map), write_example,
    main_listed and main_tree (a generator that writes under a root, checked in a temporary one).

A make.py imports it with:

    sys.dont_write_bytecode = True
    sys.path.insert(0, os.path.dirname(HERE))
    import examplegen
"""
import importlib.util
import os
import shutil
import sys
import tempfile
import time as _t

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_model():
    """tests/model/qwmodel.py, imported by path (no __pycache__ left behind)."""
    sys.dont_write_bytecode = True
    spec = importlib.util.spec_from_file_location('qwmodel', os.path.join(REPO, 'tests', 'model', 'qwmodel.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


qwmodel = _load_model()

S = 1_000_000_000


def rfc3339nano(t):
    secs, frac = divmod(t, S)
    return _t.strftime('%Y-%m-%dT%H:%M:%S', _t.gmtime(secs)) + '.%09dZ' % frac


def event_json(e, ensure_ascii=True):
    """One line of expected.jsonl: an event dict with an integer 'time' (ns since the epoch)."""
    return qwmodel.event_json(e, ensure_ascii)


def model_events(chain, family, nodes, detail_keys, config=None, node_config=None):
    """Runs the reference model (tests/model/qwmodel.py) for one chain of the family `family`
    (its pattern file's defaults), with the chain's configuration `config` and the nodes'
    `node_config` ({node: {'signer': True, ...}}) as in a quorumwatch.yaml.
    nodes: [(name, namespace, signals [(t, signal, data)], the last line time of each file)].
    Returns the events in output order, each detail reduced to detail_keys[kind] (what
    expected.jsonl asserts)."""
    m = qwmodel.Model(chain, family=family, config=config, nodes=node_config)
    for name, namespace, signals, ends in nodes:
        m.node(name, namespace)
        for t, kind, data in signals:
            m.signal(t, name, kind, data)
        for t in ends:
            m.file_end(name, t)
    return qwmodel.expectation(m.run(), detail_keys)


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
