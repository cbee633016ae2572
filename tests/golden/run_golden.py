#!/usr/bin/env python3
"""Runs one golden replay scenario and compares its events with expected.jsonl.

usage: run_golden.py BINARY SCENARIO_DIR

The scenario directory holds:
  *.log, *.log.zst   input files, passed to the replay sorted by name
  args               one line of extra replay arguments (shell-like quoting;
                     relative paths are relative to the scenario directory,
                     which is the replay's working directory); may be empty
  config.yaml        optional, referenced from args
  expected.jsonl     the events that must come out, in output order

The replay runs as
  BINARY replay [--threads N] ARGS... --format jsonl FILES...
three times: without --threads, with --threads 1 and with --threads 4; the
three outputs must be byte-identical. Every output line must be a JSON object
with a non-empty string `id`. The events are then compared pairwise, in order,
with expected.jsonl: the same number of events and, for each pair, equal
`time`, `event`, `severity`, `chain`, `node`, `height` and `namespace` (a key
absent on one side must be absent on the other), and every key listed in the
expected `detail` equal in the actual `detail` (other detail keys are not
checked). Exit status: 0 all good, 1 a check failed, 2 usage or setup error.
"""
import difflib
import glob
import json
import os
import shlex
import subprocess
import sys

COMPARED = ('time', 'event', 'severity', 'chain', 'node', 'height', 'namespace')
TIMEOUT_S = 600


def fail_usage(msg):
    print('run_golden: ' + msg, file=sys.stderr)
    sys.exit(2)


def load_expected(path):
    events = []
    with open(path, encoding='utf-8') as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                e = json.loads(line)
            except ValueError as ex:
                fail_usage('%s:%d: not JSON: %s' % (path, n, ex))
            if not isinstance(e, dict):
                fail_usage('%s:%d: not a JSON object' % (path, n))
            for k in ('time', 'event', 'severity', 'chain', 'node'):
                if k not in e:
                    fail_usage('%s:%d: lacks "%s"' % (path, n, k))
            events.append(e)
    return events


def run(binary, scenario, args, files, threads):
    cmd = [binary, 'replay']
    if threads is not None:
        cmd += ['--threads', str(threads)]
    cmd += args + ['--format', 'jsonl'] + files
    try:
        r = subprocess.run(cmd, cwd=scenario, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return cmd, None, b'', ('timed out after %d s' % TIMEOUT_S).encode()
    return cmd, r.returncode, r.stdout, r.stderr


def show_cmd(cmd):
    return ' '.join(shlex.quote(c) for c in cmd)


def project(e):
    """The compared part of an event, as one stable line for diffs."""
    o = {k: e[k] for k in COMPARED if k in e}
    if isinstance(e.get('detail'), dict):
        o['detail'] = e['detail']
    return json.dumps(o, sort_keys=True, ensure_ascii=False)


def compare(expected, actual):
    """Returns a list of problems (empty when they match)."""
    problems = []
    for i, (x, a) in enumerate(zip(expected, actual), 1):
        for k in COMPARED:
            if (k in x) != (k in a):
                problems.append('event %d: "%s" %s in expected, %s in actual' % (
                    i, k, 'present' if k in x else 'absent', 'present' if k in a else 'absent'))
            elif k in x and x[k] != a[k]:
                problems.append('event %d: %s: expected %r, got %r' % (i, k, x[k], a[k]))
        xd = x.get('detail') or {}
        ad = a.get('detail')
        if xd and not isinstance(ad, dict):
            problems.append('event %d: expected detail %s, got %r' % (i, json.dumps(xd), ad))
        else:
            for k, v in xd.items():
                if k not in ad:
                    problems.append('event %d: detail.%s missing (expected %r)' % (i, k, v))
                elif ad[k] != v:
                    problems.append('event %d: detail.%s: expected %r, got %r' % (i, k, v, ad[k]))
    if len(expected) != len(actual):
        problems.append('expected %d event(s), got %d' % (len(expected), len(actual)))
    return problems


def readable_diff(expected, actual):
    """A unified diff of the compared fields: actual events are cut down to the
    detail keys the expected event at the same position lists."""
    def cut(a, x):
        a = dict(a)
        if isinstance(a.get('detail'), dict):
            keys = (x or {}).get('detail') or {}
            a['detail'] = {k: a['detail'][k] for k in keys if k in a['detail']}
            if not a['detail']:
                del a['detail']
        return a
    exp_lines = [project(x) for x in expected]
    act_lines = [project(cut(a, expected[i] if i < len(expected) else None)) for i, a in enumerate(actual)]
    return '\n'.join(difflib.unified_diff(exp_lines, act_lines, 'expected.jsonl', 'actual', lineterm='', n=2))


def main(argv):
    if len(argv) != 3:
        fail_usage('usage: run_golden.py BINARY SCENARIO_DIR')
    binary = os.path.abspath(argv[1])
    scenario = os.path.abspath(argv[2])
    name = os.path.basename(scenario.rstrip('/'))
    if not os.access(binary, os.X_OK):
        fail_usage('not an executable: ' + binary)
    exp_path = os.path.join(scenario, 'expected.jsonl')
    if not os.path.isfile(exp_path):
        fail_usage('no expected.jsonl in ' + scenario)
    args = []
    args_path = os.path.join(scenario, 'args')
    if os.path.isfile(args_path):
        with open(args_path, encoding='utf-8') as f:
            args = shlex.split(f.read())
    files = sorted(os.path.basename(p) for p in
                   glob.glob(os.path.join(scenario, '*.log')) + glob.glob(os.path.join(scenario, '*.log.zst')))
    expected = load_expected(exp_path)

    problems = []
    outputs = {}
    first_cmd = None
    for threads in (None, 1, 4):
        cmd, rc, out, err = run(binary, scenario, args, files, threads)
        first_cmd = first_cmd or cmd
        label = 'default threads' if threads is None else '--threads %d' % threads
        if rc != 0:
            problems.append('%s: exit status %s\n  command: %s\n  stderr: %s' % (
                label, rc, show_cmd(cmd), err.decode('utf-8', 'replace').strip()[-2000:]))
        outputs[label] = out
    labels = list(outputs)
    for other in labels[1:]:
        if outputs[other] != outputs[labels[0]]:
            a = outputs[labels[0]].decode('utf-8', 'replace').splitlines()
            b = outputs[other].decode('utf-8', 'replace').splitlines()
            d = '\n'.join(list(difflib.unified_diff(a, b, labels[0], other, lineterm='', n=1))[:60])
            problems.append('stdout with %s differs from stdout with %s:\n%s' % (other, labels[0], d))

    actual = []
    text = outputs[labels[0]].decode('utf-8', 'replace')
    lines = text.split('\n')
    if lines and lines[-1] == '':
        lines.pop()
    for n, line in enumerate(lines, 1):
        try:
            e = json.loads(line)
        except ValueError:
            problems.append('stdout line %d is not JSON: %s' % (n, line[:200]))
            continue
        if not isinstance(e, dict):
            problems.append('stdout line %d is not a JSON object: %s' % (n, line[:200]))
            continue
        if not isinstance(e.get('id'), str) or not e.get('id'):
            problems.append('stdout line %d has no "id": %s' % (n, line[:200]))
        actual.append(e)

    mismatches = compare(expected, actual)
    problems += mismatches
    if problems:
        print('golden %s: FAILED' % name)
        print('  command: %s  (in %s)' % (show_cmd(first_cmd), scenario))
        for p in problems:
            print('  - ' + p.replace('\n', '\n    '))
        if mismatches:
            diff = readable_diff(expected, actual)
            if diff:
                print('  diff of the compared fields (- expected, + actual):')
                for l in diff.split('\n'):
                    print('    ' + l)
        print('0 passed, 1 failed')
        return 1
    print('golden %s: ok (%d event(s))' % (name, len(expected)))
    print('1 passed, 0 failed')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
