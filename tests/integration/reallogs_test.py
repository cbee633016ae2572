"""The real-log corpus (tests/reallogs/README.md): every case replayed with
family auto-detection, its events and summary checked against what an
operator reading the lines concludes. One test per case (id FAMILY/CASE; -k
picks a family or a case). A case whose files break the corpus rules (a line
without provenance, an unknown key) fails with the reason.

  python3 -m pytest -q -p no:cacheprovider tests/integration/reallogs_test.py --quorumwatch PATH
      [--reallogs CORPUS_DIR] [--reallogs-patterns DIR]

CORPUS_DIR defaults to tests/reallogs; --reallogs-patterns DIR replays with
--patterns DIR instead of the built-in packs.
"""
import datetime
import json
import os
import re
import shutil

import pytest
import yaml

SEVERE = ("warning", "critical")
CASE_KEYS = {"sources", "family", "node", "config", "expect", "why"}
SOURCE_KEYS = {"lines", "from", "date", "version", "note"}
EXPECT_KEYS = {"events", "allowed", "summary"}
EVENT_KEYS = {"event", "severity", "height", "count", "detail"}
SUMMARY_KEYS = {"last_height", "first_height", "commits_at_least", "status", "family",
                "lines_matched_at_least"}


class CorpusError(Exception):
    pass


def parse_range(text, n):
    text = str(text).strip()
    if text == "all":
        return set(range(1, n + 1))
    out = set()
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+))?\s*", part)
        if not m:
            raise CorpusError("lines: %r is not a range like 1-14 or 3,5-9" % text)
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        if a < 1 or b > n or a > b:
            raise CorpusError("lines: %r is outside 1-%d" % (text, n))
        out.update(range(a, b + 1))
    return out


def load_case(yaml_path):
    with open(yaml_path, encoding="utf-8") as f:
        case = yaml.safe_load(f)
    if not isinstance(case, dict):
        raise CorpusError("not a mapping")
    unknown = set(case) - CASE_KEYS
    if unknown:
        raise CorpusError("unknown key(s): %s" % ", ".join(sorted(unknown)))
    for key in ("sources", "family", "expect", "why"):
        if not case.get(key):
            raise CorpusError("missing %s" % key)
    log_path = yaml_path[:-len(".yaml")] + ".log"
    if not os.path.exists(log_path):
        raise CorpusError("no %s" % os.path.basename(log_path))
    with open(log_path, "rb") as f:
        data = f.read()
    n = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    covered = {}
    for src in case["sources"]:
        unknown = set(src) - SOURCE_KEYS
        if unknown:
            raise CorpusError("source: unknown key(s): %s" % ", ".join(sorted(unknown)))
        for key in ("lines", "from", "date", "version"):
            if not src.get(key):
                raise CorpusError("source: missing %s" % key)
        for line in parse_range(src["lines"], n):
            if line in covered:
                raise CorpusError("line %d has two sources" % line)
            covered[line] = src
    missing = [i for i in range(1, n + 1) if i not in covered]
    if missing:
        raise CorpusError("line(s) without a source: %s" % missing[:10])
    exp = case["expect"]
    unknown = set(exp) - EXPECT_KEYS
    if unknown:
        raise CorpusError("expect: unknown key(s): %s" % ", ".join(sorted(unknown)))
    for e in exp.get("events") or []:
        unknown = set(e) - EVENT_KEYS
        if unknown or "event" not in e:
            raise CorpusError("expect.events: %r needs `event` and only %s" % (e, sorted(EVENT_KEYS)))
    unknown = set(exp.get("summary") or {}) - SUMMARY_KEYS
    if unknown:
        raise CorpusError("expect.summary: unknown key(s): %s" % ", ".join(sorted(unknown)))
    return case, log_path


def event_matches(want, got):
    if got.get("event") != want["event"]:
        return False
    for key in ("severity", "height"):
        if key in want and got.get(key) != want[key]:
            return False
    for k, v in (want.get("detail") or {}).items():
        if (got.get("detail") or {}).get(k) != v:
            return False
    return True


def run_case(qw, yaml_path, patterns, tmp):
    """Replays one case in the folder tmp: (problems, stderr)."""
    case, log_path = load_case(yaml_path)
    problems = []
    node = case.get("node") or os.path.splitext(os.path.basename(log_path))[0]
    target = os.path.join(tmp, node + ".log")
    shutil.copyfile(log_path, target)
    # Year-less stamps take the file's year: that of the first source's date.
    first = case["sources"][0]["date"]
    year = first.year if isinstance(first, (datetime.date, datetime.datetime)) else int(str(first)[:4])
    stamp = datetime.datetime(year, 12, 31, 23, 0, tzinfo=datetime.timezone.utc).timestamp()
    os.utime(target, (stamp, stamp))
    summary_path = os.path.join(tmp, "summary.json")
    args = ["replay", "--chain", "auto", "--format", "jsonl", "--summary", summary_path]
    if patterns:
        args += ["--patterns", patterns]
    if case.get("config"):
        cfg = os.path.join(tmp, "config.yaml")
        with open(cfg, "w", encoding="utf-8") as f:
            f.write(case["config"])
        args += ["-c", cfg]
    args.append(target)
    proc = qw(*args, timeout=120)
    if proc.rc != 0:
        return ["replay exited %d: %s" % (proc.rc, proc.stderr[-500:])], ""
    events = []
    for line in proc.out.decode("utf-8").splitlines():
        if line.strip():
            events.append(json.loads(line))
    with open(summary_path, encoding="utf-8") as f:
        summary = json.load(f)
    stderr = proc.stderr

    rows = [r for r in summary if r.get("node") == node] or summary
    families = sorted({r.get("family") for r in rows})
    if families != [case["family"]]:
        problems.append("family: want %s, got %s" % (case["family"], families))

    exp = case["expect"]
    wanted = exp.get("events") or []
    used = set()
    for want in wanted:
        hits = [i for i, e in enumerate(events) if event_matches(want, e)]
        if "count" in want and len(hits) != want["count"]:
            problems.append("%r: want %d, got %d" % (want, want["count"], len(hits)))
        elif not hits:
            problems.append("missing %r" % want)
        used.update(hits)
    allowed = set(exp.get("allowed") or [])
    for i, e in enumerate(events):
        if i in used or e.get("severity") not in SEVERE:
            continue
        if e["event"] in allowed or any(event_matches(w, e) for w in wanted):
            continue
        problems.append("unexpected %s %s at height %s (%s)" % (
            e.get("severity"), e["event"], e.get("height"), json.dumps(e.get("detail"))))

    want_sum = exp.get("summary") or {}
    if want_sum:
        if len(rows) != 1:
            problems.append("summary: want one node row, got %d" % len(rows))
        else:
            row = rows[0]
            for key, want in want_sum.items():
                if key == "commits_at_least":
                    if (row.get("commits") or 0) < want:
                        problems.append("summary commits: want >= %d, got %s" % (want, row.get("commits")))
                elif key == "lines_matched_at_least":
                    if (row.get("lines_matched") or 0) < want:
                        problems.append("summary lines_matched: want >= %d, got %s" % (
                            want, row.get("lines_matched")))
                elif row.get(key) != want:
                    problems.append("summary %s: want %r, got %r" % (key, want, row.get(key)))
    if problems:
        problems.append("stderr: " + stderr.strip().replace("\n", " | ")[-400:])
    return problems, stderr


def corpus_cases(corpus):
    """(family, case file) of every case, sorted."""
    out = []
    for family in sorted(os.listdir(corpus)):
        folder = os.path.join(corpus, family)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if name.endswith(".yaml"):
                out.append((family, os.path.join(folder, name)))
    return out


def corpus_dir(config):
    return os.path.abspath(config.getoption("--reallogs") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reallogs"))


@pytest.fixture
def corpus(request):
    return corpus_dir(request.config)


def pytest_generate_tests(metafunc):
    if "case_path" not in metafunc.fixturenames:
        return
    corpus = corpus_dir(metafunc.config)
    found = corpus_cases(corpus) if os.path.isdir(corpus) else []
    if not found:  # never a vacuous pass
        metafunc.parametrize("case_path", [pytest.param(None, id="no-cases")])
    else:
        metafunc.parametrize("case_path", [
            pytest.param(p, id="%s/%s" % (f, os.path.basename(p)[:-5])) for f, p in found])


def test_case(qw, request, case_path, corpus, tmp_path):
    """<family>/<case>: the operator's expectations hold"""
    assert case_path is not None, "no cases found in %s" % corpus
    try:
        problems, _ = run_case(qw, case_path, request.config.getoption("--reallogs-patterns"),
                               str(tmp_path))
    except (CorpusError, yaml.YAMLError) as e:
        pytest.fail("corpus error in %s: %s" % (os.path.relpath(case_path, corpus), e),
                    pytrace=False)
    assert not problems, "\n".join(problems)
