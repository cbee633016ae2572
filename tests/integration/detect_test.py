#!/usr/bin/env python3
"""Auto-detection over the shipped examples: every example log, whole and
cut to its first 20 lines (a stream's start: startup, peers, first blocks),
is recognised as its family with --chain auto, and random text is reported
unknown, not guessed.
usage: detect_test.py PATH/TO/quorumwatch"""
import glob, json, os, subprocess, sys, tempfile

binary = os.path.abspath(sys.argv[1])
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'examples')
# Example folder -> family of its files (remote-signer logs are their own family).
FAMILY = {'cosmoshub': 'cometbft', 'cometbft-signers': None}
passed = failed = 0


def summary_family(path):
    with tempfile.TemporaryDirectory() as d:
        s = os.path.join(d, 's.json')
        r = subprocess.run([binary, 'replay', '--format', 'jsonl', '--summary', s, path],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            return 'exit %d: %s' % (r.returncode, r.stderr[:200])
        return json.load(open(s))[0]['family']


def check(name, ok, detail=''):
    global passed, failed
    if ok:
        passed += 1
        print('ok   ' + name)
    else:
        failed += 1
        print('FAIL %s %s' % (name, detail))


for folder in sorted(glob.glob(os.path.join(root, '*'))):
    ex = os.path.basename(folder)
    for path in sorted(glob.glob(os.path.join(folder, '*.log'))):
        want = FAMILY.get(ex, ex)
        if want is None:
            want = 'cometbft-signers' if '_tmkms-' in path or '_horcrux-' in path else 'cometbft'
        got = summary_family(path)
        check('%s/%s detected' % (ex, os.path.basename(path)[:40]), got == want,
              'got %r, want %r' % (got, want))
        with tempfile.TemporaryDirectory() as d:
            head = os.path.join(d, os.path.basename(path))
            with open(path, 'rb') as src, open(head, 'wb') as dst:
                for i, line in enumerate(src):
                    if i == 20:
                        break
                    dst.write(line)
            got = summary_family(head)
            check('%s/%s first 20 lines' % (ex, os.path.basename(path)[:40]), got == want,
                  'got %r, want %r' % (got, want))

with tempfile.TemporaryDirectory() as d:
    p = os.path.join(d, 'noise.log')
    open(p, 'w').write('hello world\nnothing to see here\n')
    r = subprocess.run([binary, 'replay', '--format', 'jsonl', p], capture_output=True, text=True)
    check('random text is reported unknown', r.returncode == 0 and 'family unknown' in r.stderr,
          r.stderr[:200])

print('%d passed, %d failed' % (passed, failed))
sys.exit(1 if failed else 0)
