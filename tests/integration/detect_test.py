"""Auto-detection over the shipped examples: every example log, whole and
cut to its first 20 lines (a stream's start: startup, peers, first blocks),
is recognised as its family with --chain auto, and random text is reported
unknown, not guessed. One test per example file and cut.

  python3 -m pytest -q -p no:cacheprovider tests/integration/detect_test.py --quorumwatch PATH
"""
import glob
import json
import os

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")
# Example folder -> family of its files (remote-signer logs are their own family).
FAMILY = {"cosmoshub": "cometbft", "cometbft-signers": None}


def examples():
    """(folder name, path, wanted family) of every example log."""
    out = []
    for folder in sorted(glob.glob(os.path.join(EXAMPLES, "*"))):
        ex = os.path.basename(folder)
        for path in sorted(glob.glob(os.path.join(folder, "*.log"))):
            want = FAMILY.get(ex, ex)
            if want is None:
                want = "cometbft-signers" if "_tmkms-" in path or "_horcrux-" in path else "cometbft"
            out.append((ex, path, want))
    return out


def cases():
    found = examples()
    if not found:  # never a vacuous pass
        return [pytest.param(None, None, None, None, id="no-examples")]
    return [pytest.param(ex, path, want, cut, id="%s/%s %s" % (
                ex, os.path.basename(path)[:40], "detected" if cut is None else "first 20 lines"))
            for ex, path, want in found for cut in (None, 20)]


def summary_family(qw, path, tmp_path):
    s = str(tmp_path / "s.json")
    r = qw("replay", "--format", "jsonl", "--summary", s, path, timeout=120)
    if r.rc != 0:
        return "exit %d: %s" % (r.rc, r.stderr[:200])
    with open(s) as f:
        return json.load(f)[0]["family"]


@pytest.mark.parametrize("ex,path,want,cut", cases())
def test_example_detected(qw, tmp_path, ex, path, want, cut):
    """<example>/<file> detected, whole and its first 20 lines"""
    assert path is not None, "no example logs under %s" % EXAMPLES
    if cut is not None:
        head = str(tmp_path / os.path.basename(path))
        with open(path, "rb") as src, open(head, "wb") as dst:
            for i, line in enumerate(src):
                if i == cut:
                    break
                dst.write(line)
        path = head
    got = summary_family(qw, path, tmp_path)
    assert got == want, "got %r, want %r" % (got, want)


def test_random_text_unknown(qw, tmp_path):
    """random text is reported unknown"""
    p = str(tmp_path / "noise.log")
    with open(p, "w") as f:
        f.write("hello world\nnothing to see here\n")
    r = qw("replay", "--format", "jsonl", p)
    assert r.rc == 0 and "family unknown" in r.stderr, r.stderr[:200]
