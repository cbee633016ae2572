"""The postmortem report: `quorumwatch replay --report FILE.html` (suite 'integration').

1. Structure: the data the page carries, for golden scenarios, checked against
   what does not come from quorumwatch: the scenario's expected events (made
   by the reference model, tests/model) give the markers and, paired as
   docs/REPORT.md says, the spans; the logs themselves give every height
   sample and its lag behind the chain's head.
2. --since/--until on the node_stall scenario: what is reported, the spans cut
   at the window, the summary's figures worked out from the scenario's times.
3. A real browser: Debian's chromium, headless, opens reports from disk: no
   console errors, the page says it rendered, the expected elements are in
   its DOM, and a screenshot is not blank.

  python3 -m pytest -q -p no:cacheprovider tests/integration/report_test.py --quorumwatch PATH
"""

import datetime
import glob
import json
import os
import re
import shutil
import struct
import subprocess
import zlib

import pytest

from harness import UTC

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "golden")
EXAMPLE = os.path.join(HERE, "..", "..", "examples", "cosmoshub")
DATA_RE = re.compile(r'<script id="qw-data" type="application/json">(.*?)</script>', re.S)
COMMIT_RE = re.compile(r"(?i)(finalizing commit of block|committed state).*?\bheight=(\d+)")


def us(stamp):
    """RFC 3339 -> microseconds since the epoch (finer digits dropped)."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z", stamp)
    base = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    return int(base.timestamp()) * 1000000 + int(frac)


def ms(stamp):
    """RFC 3339 -> milliseconds since the epoch, floored (as the report writes times)."""
    return us(stamp) // 1000


def replay(qw, args, cwd, tmp_path, name="report.html"):
    out = os.path.join(str(tmp_path), name)
    p = subprocess.run([qw, "replay", "--format", "jsonl", "--report", out] + args, cwd=cwd,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    events = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    return out, events


def page_data(path):
    html = open(path, encoding="utf-8").read()
    assert "@QW_DATA@" not in html
    found = DATA_RE.findall(html)
    assert len(found) == 1, "one data element"
    assert "<" not in found[0], "no '<' inside the data (it could end its script element)"
    return json.loads(found[0])


def golden_case(name):
    d = os.path.join(GOLDEN, name)
    args = open(os.path.join(d, "args")).read().split() if os.path.exists(os.path.join(d, "args")) else []
    files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(d, "*.log")))
    expected = [json.loads(l) for l in open(os.path.join(d, "expected.jsonl")) if l.strip()]
    return d, args + files, expected


def key(ev):
    if not ev.get("node"):
        return ""
    return ev["namespace"] + "/" + ev["node"] if ev.get("namespace") else ev["node"]


def spans_from(events, end):
    """docs/REPORT.md, "Spans": which event opens and which closes each kind."""
    opens = {"node_stalled": "stalled", "out_of_consensus": "out_of_consensus",
             "node_syncing": "syncing", "chain_halted": "halted", "upgrade_halt": "upgrade_halt"}
    closes = {"node_recovered": ["stalled", "upgrade_halt"],
              "back_in_consensus": ["out_of_consensus", "held"],
              "node_synced": ["syncing"], "chain_resumed": ["halted"],
              "unban": ["held", "banned"]}
    open_, out = {}, []
    for e in events:
        k, t, kind = key(e), ms(e["time"]), e["event"]
        d = e.get("detail", {})
        opened = None
        if kind in opens:
            opened = opens[kind]
        elif kind == "ban":
            if d.get("held"):
                opened = "held"
            else:
                for o in [x for x in open_ if x == (k, "held")]:
                    open_.pop(o)["end"] = t
                opened = "banned"
        for c in closes.get(kind, []):
            if (k, c) in open_:
                open_.pop((k, c))["end"] = t
        if kind == "chain_resumed":  # the chain runs again: no node waits for an upgrade
            for o in [x for x in open_ if x[1] == "upgrade_halt"]:
                open_.pop(o)["end"] = t
        if opened and (k, opened) not in open_:
            s = {"node": k, "kind": "banned" if opened == "held" else opened, "start": t, "end": None,
                 "held": opened == "held", "reason": d.get("reason", "") if opened != "held" else None}
            open_[(k, opened)] = s
            out.append(s)
    for s in out:
        s["open"] = s["end"] is None
        if s["end"] is None:
            s["end"] = end
    return out


def log_heights(scenario_dir, files):
    """(pod -> [(us, height)] of the commit lines), all commit lines."""
    by_pod, every = {}, []
    for f in files:
        pod = f.split("_")[0]
        for line in open(os.path.join(scenario_dir, f), encoding="utf-8"):
            m = COMMIT_RE.search(line)
            if m:
                t = us(line.split(" ", 1)[0])
                by_pod.setdefault(pod, []).append((t, int(m.group(2))))
                every.append((t, int(m.group(2))))
    return by_pod, sorted(every)


GOLDEN_CASES = ["node_stall", "upgrade_halt", "chain_halt", "safety_rails", "unban", "flapping_ban",
                "ban_31min", "missed_precommits"]


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_structure_matches_the_model_and_the_logs(qw_bin, tmp_path, name):
    d, args, expected = golden_case(name)
    path, events = replay(qw_bin, args, d, tmp_path)
    data = page_data(path)
    assert len(data["chains"]) == 1
    chain = data["chains"][0]
    assert chain["name"] == expected[0]["chain"] if expected else True
    end = data["end"]

    # Markers: every event the model expects, at its time, on its node.
    got = sorted((e["time"], e["kind"], e["node"]) for e in chain["events"])
    want = sorted((ms(e["time"]), e["event"], key(e)) for e in expected)
    assert got == want
    assert chain["events_omitted"] == {}
    by_id = {e["id"]: e for e in events}
    for m in chain["events"]:
        assert json.loads(m["json"]) == by_id[m["id"]], "a marker's JSON is the event's line"
        if m["kind"] in ("ban", "out_of_consensus", "node_stalled") and m["node"]:
            assert m["evidence"], "the lines behind %s" % m["kind"]

    # Spans: the model's events paired by docs/REPORT.md's rules.
    got_spans = sorted((s["node"], s["kind"], s["start"], s["end"], s["open"], s["held"])
                       for s in chain["spans"])
    want_spans = sorted((s["node"], s["kind"], s["start"], s["end"], s["open"], s["held"])
                        for s in spans_from(expected, end))
    assert got_spans == want_spans
    for s in chain["spans"]:
        if s["kind"] == "out_of_consensus":
            assert s["reason"] == "lagging"
        if s["held"]:
            assert s["rail"] in ("max_bans", "require_healthy_peer", "operator_hold")

    # Heights and lag, from the commit lines of the logs: at each sample the
    # node's height is the highest it had committed by then, and its lag is
    # the highest any node had committed by then, minus that.
    by_pod, every = log_heights(d, [a for a in args if a.endswith(".log")])
    assert sorted(n["pod"] for n in chain["nodes"]) == sorted(by_pod)
    for n in chain["nodes"]:
        own = by_pod[n["pod"]]
        hs = n["heights"]
        assert hs, n["name"]
        assert [h[0] for h in hs] == sorted(h[0] for h in hs)
        assert hs[-1][1] == max(h for _, h in own)
        others = [tt for pod, lines in by_pod.items() if pod != n["pod"] for tt, _ in lines]
        for t, h, lag in hs:
            # A sample at millisecond t was taken in [t, t + 1 ms): lines before
            # t were seen, lines inside that millisecond may have been.
            lo, hi = t * 1000, t * 1000 + 1000
            seen = max([x for tt, x in own if tt < lo], default=-1)
            maybe = [x for tt, x in own if lo <= tt < hi]
            assert h == seen or h in maybe, (n["name"], t, h, seen, maybe)
            if all(not (lo - 1000 <= tt < hi + 1000) for tt in others) and not maybe:
                head = max(x for tt, x in every if tt < lo)
                assert lag == head - h, (n["name"], t, h, head)

    # The summary is the replay's (--summary has the same objects).
    assert [r["node"] for r in chain["summary"]] == sorted(r["node"] for r in chain["summary"])


def test_same_input_same_bytes(qw_bin, tmp_path):
    d, args, _ = golden_case("safety_rails")
    a, _ = replay(qw_bin, args, d, tmp_path, "a.html")
    b, _ = replay(qw_bin, ["--threads", "1"] + args, d, tmp_path, "b.html")
    assert open(a, "rb").read() == open(b, "rb").read()


def test_since_until(qw_bin, tmp_path):
    """node_stall: val-b out of consensus 04:03:45.474-04:07:20.318 (lagging),
    stalled 04:04:09.110-04:07:12.310 (stall_after 60 s: its last commit was at
    04:03:09.110)."""
    d, args, expected = golden_case("node_stall")
    summary = os.path.join(str(tmp_path), "s.json")
    path, events = replay(qw_bin, ["--since", "2025-01-02T04:05:00Z", "--summary", summary] + args,
                          d, tmp_path)
    assert [(e["event"], e["time"]) for e in events] == [
        ("node_recovered", "2025-01-02T04:07:12.310Z"), ("back_in_consensus", "2025-01-02T04:07:20.318Z")]
    rows = {r["node"]: r for r in json.load(open(summary))}
    # Out of consensus inside the window: 04:05:00 to 04:07:20.318.
    assert rows["val-b"]["seconds_out_of_consensus"] == pytest.approx(140.318, abs=0.002)
    # The stall that began before the window counts whole: 04:03:09.110 to 04:07:12.310.
    assert rows["val-b"]["longest_stall_seconds"] == pytest.approx(243.2, abs=0.002)
    assert rows["val-a"]["seconds_out_of_consensus"] == 0
    data = page_data(path)
    since = ms("2025-01-02T04:05:00Z")
    assert data["window"] == {"since": since, "until": None}
    assert data["start"] == since
    chain = data["chains"][0]
    assert sorted(e["kind"] for e in chain["events"]) == ["back_in_consensus", "node_recovered"]
    spans = {s["kind"]: s for s in chain["spans"]}
    assert spans["out_of_consensus"]["start"] == since
    assert spans["out_of_consensus"]["began"] == ms("2025-01-02T04:03:45.474Z")
    assert spans["stalled"]["start"] == since and spans["stalled"]["end"] == ms("2025-01-02T04:07:12.310Z")
    assert all(h[0] >= since for n in chain["nodes"] for h in n["heights"])

    # --until: the lines after it are not read; what was open then stays open.
    path, events = replay(qw_bin, ["--until", "2025-01-02T04:05:00Z", "--summary", summary] + args,
                          d, tmp_path)
    assert [(e["event"], e["time"]) for e in events] == [
        ("out_of_consensus", "2025-01-02T04:03:45.474Z"), ("node_stalled", "2025-01-02T04:04:09.110Z")]
    rows = {r["node"]: r for r in json.load(open(summary))}
    assert rows["val-b"]["seconds_out_of_consensus"] == pytest.approx(74.526, abs=0.002)
    assert rows["val-b"]["status"] == "out_of_consensus"
    data = page_data(path)
    assert data["end"] == since
    for s in data["chains"][0]["spans"]:
        assert s["open"] and s["end"] == since
    assert all(h[0] < since for n in data["chains"][0]["nodes"] for h in n["heights"])


@pytest.mark.parametrize("bad", [["--since", "yesterday"], ["--until", "2025-01-02T04:05:00Z trailing"],
                                 ["--since", "2025-01-02T05:00:00Z", "--until", "2025-01-02T04:00:00Z"]])
def test_bad_window_is_refused(qw_bin, tmp_path, bad):
    d, args, _ = golden_case("node_stall")
    p = subprocess.run([qw_bin, "replay"] + bad + args, cwd=d, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2
    assert "--since" in p.stderr or "--until" in p.stderr


def test_unwritable_report_fails(qw_bin, tmp_path):
    d, args, _ = golden_case("node_stall")
    p = subprocess.run([qw_bin, "replay", "--report", "/nonexistent/dir/r.html"] + args, cwd=d,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "/nonexistent/dir/r.html: cannot write" in p.stderr


# --------------------------------------------------------------------------
# A real browser


def chromium_bin():
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: install Debian's package chromium (tools/setup and CI do)")
    return path


def browse(html, tmp_path, *extra):
    profile = os.path.join(str(tmp_path), "profile")
    cmd = [chromium_bin(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--user-data-dir=" + profile, "--enable-logging=stderr", "--v=0",
           "--window-size=1400,1800"] + list(extra) + ["file://" + os.path.abspath(html)]
    env = dict(os.environ, HOME=str(tmp_path))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    console = [l for l in p.stderr.splitlines() if "CONSOLE" in l or "Uncaught" in l]
    assert console == [], "the page wrote to the console:\n" + "\n".join(console)
    return p.stdout


def png_pixels(path):
    """(width, height, rows of RGB(A) bytes) of an 8-bit non-interlaced PNG."""
    raw = open(path, "rb").read()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, ihdr = 8, b"", None
    while pos < len(raw):
        n, kind = struct.unpack(">I4s", raw[pos:pos + 8])
        body = raw[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = ihdr
    assert depth == 8 and interlace == 0 and ctype in (2, 6)
    bpp = 3 if ctype == 2 else 4
    data, stride, rows, prev = zlib.decompress(idat), w * bpp, [], bytearray(w * bpp)
    for y in range(h):
        f, line = data[y * (stride + 1)], bytearray(data[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


def test_browser_renders_the_report(qw_bin, tmp_path):
    d, args, expected = golden_case("safety_rails")
    path, _ = replay(qw_bin, args, d, tmp_path)
    data = page_data(path)
    dom = browse(path, tmp_path, "--dump-dom")
    assert re.search(r'<body[^>]*data-rendered="ok"', dom), dom[:2000]
    chain = data["chains"][0]
    assert 'class="qw-chain" data-chain="%s"' % chain["name"] in dom
    def elements(tag, cls):
        return [e for e in re.findall(r'<%s\b[^>]*>' % tag, dom)
                if re.search(r'\bclass="(?:[^"]* )?%s(?: [^"]*)?"' % cls, e)]

    def attr(e, name):
        m = re.search(r'\b%s="([^"]*)"' % name, e)
        return m.group(1) if m else None

    heights = elements("polyline", "qw-height")
    assert sorted(attr(e, "data-node") for e in heights) == sorted(n["name"] for n in chain["nodes"])
    assert sorted(attr(e, "data-node") for e in elements("polyline", "qw-lag")) == \
        sorted(n["name"] for n in chain["nodes"])
    # Every span and marker of the data is an element of the page, with its times.
    spans = elements("rect", "qw-span")
    assert len(spans) == len(chain["spans"])
    assert len([s for s in spans if 'data-held="true"' in s]) == len([s for s in chain["spans"] if s["held"]]) == 1
    assert sorted((attr(e, "data-node"), attr(e, "data-kind"), int(attr(e, "data-start")),
                   int(attr(e, "data-end"))) for e in spans) == \
        sorted((s["node"], s["kind"], s["start"], s["end"]) for s in chain["spans"])
    markers = [e for e in re.findall(r'<[a-z]+\b[^>]*>', dom)
               if re.search(r'\bclass="(?:[^"]* )?qw-marker(?: [^"]*)?"', e)]
    assert sorted((attr(e, "data-id"), attr(e, "data-kind"), int(attr(e, "data-time"))) for e in markers) == \
        sorted((e["id"], e["kind"], e["time"]) for e in chain["events"])
    assert dom.count('class="qw-summary"') == 1
    assert len(re.findall(r'<tr[^>]*data-node=', dom)) >= len(chain["summary"])
    assert 'class="qw-thresholds"' in dom
    assert len(re.findall(r'class="qw-filter-kind"', dom)) == len({e["kind"] for e in chain["events"]})

    shot = os.path.join(str(tmp_path), "shot.png")
    browse(path, tmp_path, "--screenshot=" + shot, "--hide-scrollbars")
    w, h, bpp, rows = png_pixels(shot)
    assert (w, h) == (1400, 1800)
    colours, inked = set(), 0
    for row in rows[::4]:
        for x in range(0, w * bpp, bpp * 4):
            px = row[x:x + 3]
            colours.add(px)
            inked += px != b"\xff\xff\xff"
    assert len(colours) > 20, "a screenshot of many colours (charts, spans), not a blank page"
    assert inked > (w // 4) * (h // 4) // 50


def test_browser_renders_the_example(qw_bin, tmp_path):
    files = sorted(glob.glob(os.path.join(EXAMPLE, "*.log")))
    path, _ = replay(qw_bin, ["-c", os.path.join(EXAMPLE, "quorumwatch.yaml")] + files, EXAMPLE,
                     tmp_path)
    dom = browse(path, tmp_path, "--dump-dom")
    assert re.search(r'<body[^>]*data-rendered="ok"', dom)
    assert 'id="qw-error"' not in dom or re.search(r'<pre id="qw-error"[^>]*>\s*</pre>', dom)


def test_browser_zooms_to_seconds(qw_bin, tmp_path):
    """#view=FROM/TO in the address opens the page zoomed there: ten seconds
    of node_stall's stall, with tick labels in seconds."""
    d, args, _ = golden_case("node_stall")
    path, _ = replay(qw_bin, args, d, tmp_path)
    html = os.path.join(str(tmp_path), "zoom.html")
    shutil.copy(path, html)
    dom = browse(html + "#view=2025-01-02T04:05:00Z/2025-01-02T04:05:10Z", tmp_path, "--dump-dom")
    assert re.search(r'<body[^>]*data-rendered="ok"', dom)
    ranges = re.findall(r'<span class="qw-range">([^<]*)</span>', dom)
    assert ranges == ["2025-01-02 04:05:00.000 → 2025-01-02 04:05:10.000 (10s)"]
    ticks = re.findall(r'<text class="qw-tick"[^>]*>(.*?)</text>', dom)
    labels = [re.sub(r"<[^>]*>", " ", t).split()[0] for t in ticks]
    assert labels and all(re.fullmatch(r"04:05:(0\d|10)", l) for l in labels), labels
    assert len(labels) >= 3
