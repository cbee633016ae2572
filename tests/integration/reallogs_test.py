#!/usr/bin/env python3
"""The real-log corpus (tests/reallogs/README.md): every case replayed with
family auto-detection, its events and summary checked against what an
operator reading the lines concludes.

usage: reallogs_test.py BINARY CORPUS_DIR [--only FAMILY] [--case NAME] [--patterns DIR]

Prints one line per case and a tally per family; exit 0 when every case
passes, 1 when one fails, 2 on a usage or corpus error (a case without
provenance for every line, say).
"""
import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

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


def run_case(binary, yaml_path, patterns):
    case, log_path = load_case(yaml_path)
    problems = []
    with tempfile.TemporaryDirectory(prefix="qw-reallogs-") as tmp:
        node = case.get("node") or os.path.splitext(os.path.basename(log_path))[0]
        target = os.path.join(tmp, node + ".log")
        shutil.copyfile(log_path, target)
        # Year-less stamps take the file's year: that of the first source's date.
        first = case["sources"][0]["date"]
        year = first.year if isinstance(first, (datetime.date, datetime.datetime)) else int(str(first)[:4])
        stamp = datetime.datetime(year, 12, 31, 23, 0, tzinfo=datetime.timezone.utc).timestamp()
        os.utime(target, (stamp, stamp))
        summary_path = os.path.join(tmp, "summary.json")
        cmd = [binary, "replay", "--chain", "auto", "--format", "jsonl", "--summary", summary_path]
        if patterns:
            cmd += ["--patterns", patterns]
        if case.get("config"):
            cfg = os.path.join(tmp, "config.yaml")
            with open(cfg, "w", encoding="utf-8") as f:
                f.write(case["config"])
            cmd += ["-c", cfg]
        cmd.append(target)
        proc = subprocess.run(cmd, capture_output=True, timeout=120)
        if proc.returncode != 0:
            return ["replay exited %d: %s" % (proc.returncode, proc.stderr.decode(errors="replace")[-500:])], ""
        events = []
        for line in proc.stdout.decode("utf-8").splitlines():
            if line.strip():
                events.append(json.loads(line))
        with open(summary_path, encoding="utf-8") as f:
            summary = json.load(f)
    stderr = proc.stderr.decode(errors="replace")

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("corpus")
    ap.add_argument("--only")
    ap.add_argument("--case")
    ap.add_argument("--patterns")
    args = ap.parse_args()
    tally = {}
    failed = errors = 0
    for family in sorted(os.listdir(args.corpus)):
        folder = os.path.join(args.corpus, family)
        if not os.path.isdir(folder) or (args.only and family != args.only):
            continue
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".yaml"):
                continue
            if args.case and name[:-5] != args.case:
                continue
            path = os.path.join(folder, name)
            t = tally.setdefault(family, [0, 0])
            t[1] += 1
            try:
                problems, _ = run_case(args.binary, path, args.patterns)
            except (CorpusError, yaml.YAMLError) as e:
                print("ERROR %s/%s: %s" % (family, name, e))
                errors += 1
                continue
            if problems:
                failed += 1
                print("FAIL  %s/%s" % (family, name[:-5]))
                for p in problems:
                    print("      " + p)
            else:
                t[0] += 1
                print("ok    %s/%s" % (family, name[:-5]))
    print()
    for family, (ok, n) in sorted(tally.items()):
        print("%-18s %d/%d" % (family, ok, n))
    total = sum(n for _, n in tally.values())
    if total == 0:
        print("no cases found in %s" % args.corpus)
        return 2
    if errors:
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
