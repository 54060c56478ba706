"""The HTML pages: one self-contained file each (inline CSS, inline SVG, a few lines of script).

Every chart sits in a <figure class="block"> followed by <details class="table-view"> holding a
<table class="data" data-table=ID> with the same numbers (data-value holds each exact value).
"""

import datetime
import re

import analysis
import charts
from charts import esc, fmt, dv, type_color
from runs import geomean

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       margin: 0; color: #1f2328; background: #f6f7f9; }
header { background: #1f2a44; color: #fff; padding: 18px 28px 14px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header .stamp { color: #c9d3e6; font-size: 13px; }
header .stamp b { color: #fff; }
nav { padding: 8px 28px; background: #e9edf3; font-size: 13px; position: sticky; top: 0; z-index: 2; }
nav a { margin-right: 14px; color: #1f4b99; text-decoration: none; }
nav button { float: right; font-size: 12px; }
main { padding: 8px 28px 40px; max-width: 1100px; }
section { margin-top: 18px; }
h2 { font-size: 18px; margin: 22px 0 6px; border-bottom: 1px solid #d6dbe3; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 0 0 2px; }
p.note { color: #555; margin: 2px 0 8px; font-size: 13px; }
figure.block { background: #fff; border: 1px solid #dde2ea; border-radius: 6px; margin: 12px 0;
               padding: 12px 14px; }
figure.block figcaption { margin-bottom: 6px; }
svg.chart { display: block; max-width: 100%; height: auto; }
details.table-view { margin-top: 6px; }
details.table-view summary { cursor: pointer; color: #1f4b99; font-size: 13px; }
table { border-collapse: collapse; font-size: 12.5px; margin-top: 6px; }
th, td { border: 1px solid #e1e4ea; padding: 3px 8px; text-align: left; }
th { background: #f0f2f6; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.regression td, td.regression { background: #fde2e1; color: #a4161a; font-weight: 600; }
tr.improvement td, td.improvement { background: #e3f6e4; color: #1b6e20; }
table.machine td:first-child { color: #555; width: 210px; }
tr.differs td { background: #fff4ce; }
.warn { background: #fff4ce; border: 1px solid #e5c65c; padding: 6px 10px; border-radius: 4px; }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 12px; }
.badge.bad { background: #d62728; color: #fff; }
.badge.good { background: #2ca02c; color: #fff; }
footer { color: #777; font-size: 12px; padding: 0 28px 24px; }
"""

SCRIPT = """
(function () {
  var b = document.getElementById('toggle-tables');
  if (!b) return;
  b.addEventListener('click', function () {
    var ds = document.querySelectorAll('details.table-view');
    var open = b.getAttribute('data-open') !== '1';
    for (var i = 0; i < ds.length; i++) ds[i].open = open;
    b.setAttribute('data-open', open ? '1' : '0');
    b.textContent = open ? 'Hide all tables' : 'Show all tables';
  });
})();
"""


# ---------------------------------------------------------------- pieces

def cell(text, value=None, cls=None):
    return {"text": text, "value": value, "cls": cls}


def num(v, cls=None):
    return cell(fmt(v), v, cls)


def table(table_id, headers, rows, row_classes=None):
    out = ['<table class="data" data-table="%s"><thead><tr>' % esc(table_id)]
    out += ["<th>%s</th>" % esc(h) for h in headers]
    out.append("</tr></thead><tbody>")
    for i, row in enumerate(rows):
        rc = (row_classes or {}).get(i)
        out.append('<tr class="%s">' % rc if rc else "<tr>")
        for c in row:
            if not isinstance(c, dict):
                c = cell(c)
            classes = []
            attrs = ""
            if c.get("value") is not None:
                classes.append("num")
                attrs = ' data-value="%s"' % dv(c["value"])
            if c.get("cls"):
                classes.append(c["cls"])
            cls = ' class="%s"' % " ".join(classes) if classes else ""
            out.append("<td%s%s>%s</td>" % (cls, attrs, esc(c["text"])))
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def block(block_id, title, note, svg, table_html):
    """A chart with its table under it (the note is HTML)."""
    return ('<figure class="block" id="%s"><figcaption><h3>%s</h3>%s</figcaption>%s'
            '<details class="table-view"><summary>Table</summary>%s</details></figure>'
            % (esc(block_id), esc(title), '<p class="note">%s</p>' % note if note else "", svg, table_html))


def page(title, header_html, nav, body, footer):
    links = "".join('<a href="#%s">%s</a>' % (esc(a), esc(t)) for a, t in nav)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<title>%s</title><style>%s</style></head><body>"
            "<header>%s</header><nav>%s<button type=\"button\" id=\"toggle-tables\">Show all tables</button></nav>"
            "<main>%s</main><footer>%s</footer><script>%s</script></body></html>\n"
            % (esc(title), CSS, header_html, links, body, footer, SCRIPT))


def pct_num(threshold):
    """A threshold as the page states it: 5, 2.5."""
    return "%g" % round(threshold * 100, 6)


def pct(v):
    return "%.1f%%" % (100 * v) if v is not None else "–"


def signed_pct(v):
    return "%+.1f%%" % (100 * v) if v is not None else ""


def result_title(r):
    kind = r.get("kind")
    bits = []
    if kind in ("decode", "prefill"):
        bits = [r.get("model") or r.get("shape") or r["name"], r.get("type") or ""]
    elif kind == "kernel":
        bits = [r.get("op") or r.get("family"), r.get("type") or "", r.get("shape") or ""]
    else:
        bits = [r["name"].split("/iterations:")[0]]
    return " ".join(b for b in bits if b) + " · " + r["backend"]


def long_title(r):
    """result_title with the suite named, for lists that mix decode, prefill and kernels."""
    if r.get("kind") in ("decode", "prefill"):
        return r["family"] + " " + result_title(r)
    return result_title(r)


def natural(s):
    """Sort key that orders '576x1536' before '2048x5632'."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s or "")]


def type_order(t):
    order = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "F16", "BF16", "F32"]
    return (order.index(t) if t in order else len(order), t or "")


def _groups_by_model(results):
    groups = {}
    for r in results:
        groups.setdefault(r.get("model") or r.get("shape") or r["name"], []).append(r)
    for k in groups:
        groups[k].sort(key=lambda r: (type_order(r.get("type")), r["backend"]))
    return groups


# ---------------------------------------------------------------- the machine

def machine_rows(run):
    m = run.machine
    d = run.data
    peaks = m.get("peak_gflops") or {}
    vk = m.get("vulkan")
    if vk:
        vulkan = "; ".join("%s (driver %s%s)" % (v.get("device", "?"), v.get("driver", "?"),
                                                   ", " + v["driver_info"] if v.get("driver_info") else "")
                           for v in vk)
    else:
        vulkan = m.get("vulkan_note") or "none found"
    rows = [
        ("commit", "%s%s%s" % (d.get("commit") or "unknown", " (uncommitted changes)" if d.get("dirty") else "",
                               " — " + d["subject"] if d.get("subject") else "")),
        ("date", d.get("date") or "unknown"),
        ("mode", d.get("mode") or "–"),
        ("backends", ", ".join(run.backends) or "–"),
        ("CPU", m.get("cpu_model") or "unknown"),
        ("cores / threads", "%s / %s" % (m.get("cores", "?"), m.get("threads", "?"))),
        ("clock", ("%s MHz" % fmt(m["cpu_mhz"])) if m.get("cpu_mhz") else "–"),
        ("SIMD", " ".join(m.get("simd") or []) or "–"),
        ("Vulkan", vulkan),
        ("memory read bandwidth", ("%s GB/s (%s threads)" % (fmt(m["memory_read_bandwidth_GBps"]),
                                                            m.get("memory_read_bandwidth_threads", "?")))
         if m.get("memory_read_bandwidth_GBps") else "not measured"),
        ("memory read bandwidth, 1 thread", ("%s GB/s" % fmt(m["memory_read_bandwidth_1thread_GBps"]))
         if m.get("memory_read_bandwidth_1thread_GBps") else "not measured"),
        ("peak compute (estimate)", ("f32 %s GFLOP/s per core, %s in all; int8 dot %s per core, %s in all — %s"
                                     % (fmt(peaks.get("per_core")), fmt(peaks.get("all_cores")),
                                        fmt(peaks.get("int8_per_core")), fmt(peaks.get("int8_all_cores")),
                                        peaks.get("basis", ""))) if peaks else "unknown"),
    ]
    if m.get("os"):
        rows.append(("OS", m["os"]))
    if d.get("build"):
        b = d["build"]
        rows.append(("build", ", ".join("%s %s" % (k, v) for k, v in b.items())))
    return rows


def machine_table(run, table_id="machine"):
    rows = machine_rows(run)
    out = ['<table class="machine" data-table="%s"><tbody>' % table_id]
    for k, v in rows:
        out.append("<tr><td>%s</td><td>%s</td></tr>" % (esc(k), esc(v)))
    out.append("</tbody></table>")
    return "".join(out)


def stamp_line(run):
    m = run.machine
    bits = ["<b>%s</b>" % esc(run.label), esc(run.short_date + " UTC") if run.short_date else "",
            esc(m.get("cpu_model") or ""),
            esc("%s cores" % m["cores"]) if m.get("cores") else "",
            esc("%s GB/s read" % fmt(m["memory_read_bandwidth_GBps"])) if m.get("memory_read_bandwidth_GBps") else "",
            esc((run.data.get("mode") or "") + " run") if run.data.get("mode") else ""]
    return " · ".join(b for b in bits if b)


# ---------------------------------------------------------------- latest-run sections

def e2e_block(run, kind):
    results = run.of_kind(kind)
    groups = _groups_by_model(results)
    chart_groups = []
    rows = []
    for model, rs in groups.items():
        bars = []
        for r in rs:
            m = r["metrics"]
            tok = m.get("tok_per_s")
            if tok is None:
                continue
            roof = m.get("roofline_tok_per_s") if kind == "decode" else None
            frac = tok / roof if roof else None
            note = "%s tok/s" % fmt(tok) + (" · %s of roofline" % pct(frac) if frac else "")
            bars.append({"key": r["key"], "label": "%s · %s" % (r.get("type") or "?", r["backend"]),
                         "value": tok, "color": type_color(r.get("type")), "ref": roof, "note": note,
                         "tooltip": "%s: %s tok/s%s" % (result_title(r), fmt(tok),
                                                         (", roofline %s tok/s" % fmt(roof)) if roof else "")})
            if kind == "decode":
                rows.append([model, r.get("type") or "", r["backend"], num(tok), num(roof),
                             cell(pct(frac), frac), num(m.get("weight_MB")), num(m.get("GB_per_s")),
                             num(m.get("time_ns") / 1e6 if m.get("time_ns") else None)])
            else:
                rows.append([model, r.get("type") or "", r["backend"], num(tok),
                             num(m.get("time_ns") / 1e6 if m.get("time_ns") else None)])
        if bars:
            chart_groups.append((model, bars))
    if kind == "decode":
        title = "Decode: tokens per second"
        note = ("One token at a time after an 8-token prompt, per model shape, weight type and backend. "
                "The black tick is the roofline: memory read bandwidth / weight bytes read per token.")
        headers = ["model", "type", "backend", "tok/s", "roofline tok/s", "of roofline", "weights MB",
                   "weights GB/s", "ms per iteration"]
        svg = charts.bar_chart("decode", title, "tok/s", chart_groups, ref_name="roofline (bandwidth / weight bytes)")
    else:
        title = "Prefill: tokens per second"
        note = "A 128-token prompt in one batch, per model shape, weight type and backend."
        headers = ["model", "type", "backend", "tok/s", "ms per iteration"]
        svg = charts.bar_chart("prefill", title, "tok/s", chart_groups)
    return block(kind, title, note, svg, table(kind, headers, rows))


def roofline_block(run):
    m = run.machine
    points = []
    rows = []
    kernels = [r for r in run.of_kind("kernel") if analysis.roofline_point(r)]
    kernels.sort(key=lambda r: (r["backend"], r.get("op") or "", type_order(r.get("type")), natural(r.get("shape"))))
    for r in kernels:
        ai, gf, gb = analysis.roofline_point(r)
        bw, peak = analysis.roof_for(m, r.get("type")) if r["backend"] == "cpu" else (None, None)
        att = analysis.attainable(ai, bw, peak) if (bw or peak) else None
        frac = gf / att if att else None
        op = (r.get("op") or "").lower()
        marker = "circle" if "gemv" in op else "square" if "gemm" in op else "diamond"
        points.append({"key": r["key"], "label": result_title(r), "ai": ai, "gflops": gf, "gbs": gb,
                       "color": type_color(r.get("type")), "marker": marker, "marker_name": r.get("op") or r["family"],
                       "legend": r.get("type") or r["family"], "hollow": r["backend"] != "cpu",
                       "tooltip": "%s: %s GFLOP/s, %s GB/s, %s FLOP/byte%s" % (
                           result_title(r), fmt(gf), fmt(gb), fmt(ai),
                           (", %s of the roof" % pct(frac)) if frac else "")})
        rows.append([r.get("op") or r["family"], r.get("type") or "", r.get("shape") or "", r["backend"],
                     num(gb), num(gf), num(ai), num(att), cell(pct(frac), frac), r.get("label") or ""])
    peaks = m.get("peak_gflops") or {}
    ceilings = []
    bw1 = m.get("memory_read_bandwidth_1thread_GBps")
    bwall = m.get("memory_read_bandwidth_GBps")
    threads = m.get("memory_read_bandwidth_threads")
    if bw1 or peaks.get("per_core"):
        ceilings.append({"name": "f32 FMA, 1 core", "bandwidth": bw1, "peak": peaks.get("per_core"),
                         "bandwidth_label": "%s GB/s, 1 thread" % fmt(bw1) if bw1 else None})
        if peaks.get("int8_per_core"):
            ceilings.append({"name": "int8 dot, 1 core", "bandwidth": bw1, "peak": peaks.get("int8_per_core")})
    if bwall or peaks.get("all_cores"):
        ceilings.append({"name": "f32 FMA, %s cores" % (m.get("cores") or "all"), "bandwidth": bwall,
                         "peak": peaks.get("all_cores"), "dash": True,
                         "bandwidth_label": "%s GB/s, %s threads" % (fmt(bwall), threads or "all") if bwall else None})
        if peaks.get("int8_all_cores"):
            ceilings.append({"name": "int8 dot, %s cores" % (m.get("cores") or "all"), "bandwidth": bwall,
                             "peak": peaks.get("int8_all_cores"), "dash": True})
    title = "Kernels against the roofline"
    note = ("Each point is one single-threaded kernel run: GFLOP/s (2·rows·k·tokens per second) against FLOPs per "
            "weight byte. Slanted lines: measured memory read bandwidth (%s GB/s with one thread, %s GB/s with %s); "
            "flat lines: estimated peak compute (%s). The table's roof is the one-core bound for the kernel's type."
            % (fmt(bw1), fmt(bwall), ("%s threads" % threads) if threads else "all threads",
               esc(peaks.get("basis", "unknown"))))
    svg = charts.roofline("roofline", title, points, ceilings)
    headers = ["kernel", "type", "shape", "backend", "GB/s", "GFLOP/s", "FLOP/byte", "roof GFLOP/s",
               "of roof", "ISA"]
    return block("roofline", title, note, svg, table("roofline", headers, rows))


def all_results_table(run, table_id="all-results"):
    counters = []
    for r in run.results:
        for k in r.get("counters", {}):
            if k not in counters:
                counters.append(k)
    headers = ["benchmark", "backend", "kind", "type", "shape", "time", "iterations"] + counters + ["label"]
    rows = []
    for r in run.results:
        t = r.get("real_time")
        row = [r["name"], r["backend"], r.get("kind") or "", r.get("type") or "", r.get("shape") or "",
               cell("%s %s" % (fmt(t), r.get("time_unit", "")) if t is not None else "–", t),
               cell(str(r.get("iterations", "")), r.get("iterations"))]
        for k in counters:
            v = r.get("counters", {}).get(k)
            row.append(num(v) if v is not None else "")
        row.append(r.get("error") or r.get("label") or "")
        rows.append(row)
    return table(table_id, headers, rows)


# ---------------------------------------------------------------- history

def history_section(runs, threshold):
    hist = analysis.history(runs, threshold)
    labels = ["%s %s" % (r.label, r.short_date[5:] if r.short_date else "") for r in runs]
    out = []
    regressions = []
    for h in hist.values():
        for i in h["regressions"]:
            regressions.append((i, h))
    regressions.sort(key=lambda x: (-x[0], x[1]["key"]))
    if regressions:
        rows = []
        for i, h in regressions:
            prev = next(h["values"][j] for j in range(i - 1, -1, -1) if h["values"][j] is not None)
            rows.append([runs[i].label, long_title(h["result"]), h["metric"], num(prev), num(h["values"][i]),
                         cell(signed_pct(h["changes"][i]), h["changes"][i], "regression")])
        out.append('<p class="warn"><span class="badge bad">%d</span> regression%s of more than %s%% between consecutive runs.</p>'
                   % (len(regressions), "" if len(regressions) == 1 else "s", pct_num(threshold)))
        out.append('<details class="table-view regressions"%s><summary>Regressions</summary>%s</details>'
                   % (" open" if len(rows) <= 12 else "", table("regressions", ["run", "benchmark", "metric", "before", "after", "change"], rows,
                           {i: "regression" for i in range(len(rows))})))
    else:
        out.append('<p class="note">No regression of more than %s%% between consecutive runs.</p>' % pct_num(threshold))

    def series_for(members, name, key, color):
        vals = analysis.group_index(members) if len(members) > 1 else analysis.relative_index(
            members[0]["values"], members[0]["higher"])
        regs = {}
        for mbr in members:
            for i in mbr["regressions"]:
                regs.setdefault(i, []).append("%s %s" % (result_title(mbr["result"]), signed_pct(mbr["changes"][i])))
        tips = []
        for i, v in enumerate(vals):
            if v is None:
                tips.append(None)
                continue
            if len(members) == 1:
                mv = members[0]["values"][i]
                tips.append("%s @ %s: %s %s (%s of first)" % (name, runs[i].label, fmt(mv),
                                                              members[0]["metric"].replace("_per_s", "/s"),
                                                              "%.1f%%" % v))
            else:
                tips.append("%s @ %s: %.1f%% of first (geomean of %d)" % (name, runs[i].label, v, len(members)))
        return {"key": key, "name": name, "color": color, "values": vals,
                "regressions": {i: "regressed: " + "; ".join(t) for i, t in regs.items()}, "tooltips": tips}

    def history_table(table_id, members):
        headers = ["benchmark", "metric"] + [r.label for r in runs]
        rows, classes = [], {}
        for n, h in enumerate(members):
            row = [result_title(h["result"]), h["metric"].replace("_per_s", "/s")]
            for i, v in enumerate(h["values"]):
                if v is None:
                    row.append("")
                    continue
                c = h["changes"][i]
                cls = "regression" if i in h["regressions"] else ("improvement" if i in h["improvements"] else None)
                row.append(cell(fmt(v) + (" (%s)" % signed_pct(c) if c is not None else ""), v, cls))
            if h["regressions"]:
                classes[n] = "has-regression"
            rows.append(row)
        return table(table_id, headers, rows, classes)

    for kind, title in (("decode", "Decode tok/s over time"), ("prefill", "Prefill tok/s over time")):
        members = [h for h in hist.values() if h["result"].get("kind") == kind]
        if not members:
            continue
        members.sort(key=lambda h: (h["result"].get("model") or "", type_order(h["result"].get("type")), h["result"]["backend"]))
        series = [series_for([h], result_title(h["result"]), h["key"], charts.SERIES[i % len(charts.SERIES)])
                  for i, h in enumerate(members)]
        svg = charts.line_chart("history-" + kind, title, "% of the first run shown (tok/s)", labels, series, baseline=100.0)
        out.append(block("history-" + kind, title,
                         "Each line is one model · type · backend relative to its first run; red rings mark a drop of more "
                         "than %s%% from the previous run. The table has the absolute numbers." % pct_num(threshold),
                         svg, history_table("history-" + kind, members)))
    members = [h for h in hist.values() if h["result"].get("kind") in ("kernel", "bandwidth", None)
               or h["result"].get("kind") not in ("decode", "prefill")]
    if members:
        members.sort(key=lambda h: (h["result"]["backend"], h["result"].get("kind") or "", h["result"].get("op") or "",
                                    type_order(h["result"].get("type")), natural(h["result"].get("shape"))))
        groups = {}
        for h in members:
            r = h["result"]
            if r.get("kind") == "kernel":
                gname = "%s %s · %s" % (r.get("op") or r["family"], r.get("type") or "", r["backend"])
            else:
                gname = result_title(r)
            groups.setdefault(gname, []).append(h)
        series = [series_for(ms, name, "group:" + name, charts.SERIES[i % len(charts.SERIES)])
                  for i, (name, ms) in enumerate(groups.items())]
        title = "Kernels and memory bandwidth over time"
        svg = charts.line_chart("history-kernels", title, "% of the first run shown (geometric mean over shapes)",
                                labels, series, baseline=100.0)
        out.append(block("history-kernels", title,
                         "One line per kernel and weight type (geometric mean over its shapes, each relative to its first run). "
                         "A ring marks a run where any of its shapes dropped more than %s%%; the table lists every shape." % pct_num(threshold),
                         svg, history_table("history-kernels", members)))
    return "".join(out), len(regressions)


# ---------------------------------------------------------------- pages

def dashboard(runs, threshold=analysis.THRESHOLD, sources=()):
    if not runs:
        raise ValueError("no runs")
    latest = runs[-1]
    # History compares like with like: runs of the latest run's machine and mode (a quick run's
    # short kernel timings against a full run's would flag noise).
    fp, mode = latest.machine_fingerprint(), latest.data.get("mode")
    same = [r for r in runs if r.machine_fingerprint() == fp and r.data.get("mode") == mode]
    body = []
    body.append('<section id="machine"><h2>Machine and run</h2>%s</section>' % machine_table(latest))
    body.append('<section id="latest"><h2>Latest run</h2>')
    body.append(e2e_block(latest, "decode"))
    body.append(e2e_block(latest, "prefill"))
    body.append(roofline_block(latest))
    body.append('<details class="table-view all-results"><summary>Every benchmark of this run, with all counters</summary>%s</details>'
                % all_results_table(latest))
    body.append("</section>")
    nav = [("machine", "Machine"), ("decode", "Decode"), ("prefill", "Prefill"), ("roofline", "Roofline")]
    n_reg = 0
    if len(same) > 1:
        hist_html, n_reg = history_section(same, threshold)
        note = ""
        if len(same) < len(runs):
            note = ('<p class="note">%d run(s) from other machines or of another mode are left out of the history.</p>'
                    % (len(runs) - len(same)))
        body.append('<section id="history"><h2>History: %d %sruns on this machine</h2>%s%s</section>'
                    % (len(same), (mode + " ") if mode else "", note, hist_html))
        nav.append(("history", "History"))
    else:
        body.append('<section id="history"><h2>History</h2><p class="note">One %srun of this machine only: give the '
                    'generator several run files (or their folder) to see the history.</p></section>'
                    % ((mode + " ") if mode else ""))
    head = ('<h1>mllm performance</h1><div class="stamp">%s%s</div>'
            % (stamp_line(latest), (' · <span class="badge bad">%d regression%s</span>' % (n_reg, "" if n_reg == 1 else "s"))
               if n_reg else ""))
    foot = "Generated by perf/dashboard.py on %s from %s." % (
        datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        esc(", ".join(sources) if sources else "%d run(s)" % len(runs)))
    return page("mllm performance — %s" % latest.label, head, nav, "".join(body), foot)


def compare_page(before, after, threshold=analysis.THRESHOLD, sources=()):
    rows, only_b, only_a = analysis.compare(before, after, threshold)
    body = []
    # The two stamps side by side.
    mb, ma = machine_rows(before), machine_rows(after)
    st = ['<table class="machine compare" data-table="stamps"><thead><tr><th></th><th>before</th><th>after</th></tr></thead><tbody>']
    for (k, vb), (_, va) in zip(mb, ma):
        diff = ' class="differs"' if vb != va and k not in ("commit", "date") else ""
        st.append("<tr%s><td>%s</td><td>%s</td><td>%s</td></tr>" % (diff, esc(k), esc(vb), esc(va)))
    st.append("</tbody></table>")
    warn = ""
    if before.machine_fingerprint() != after.machine_fingerprint():
        warn = '<p class="warn">The two runs come from different machines: ratios mix code and hardware changes.</p>'
    n_reg = sum(1 for r in rows if r["regression"])
    n_imp = sum(1 for r in rows if r["improvement"])
    gm = geomean([r["speedup"] for r in rows])
    summary = ('<p>%d benchmarks in both runs: <span class="badge bad">%d slower</span> and '
               '<span class="badge good">%d faster</span> by more than %s%%; geometric mean speedup ×%s.</p>'
               % (len(rows), n_reg, n_imp, pct_num(threshold), "%.3f" % gm if gm else "–"))
    body.append('<section id="stamps"><h2>Runs</h2>%s%s%s</section>' % (warn, summary, "".join(st)))

    def ratio_cell(r):
        cls = "regression" if r["regression"] else ("improvement" if r["improvement"] else None)
        return cell("×%.3f" % r["ratio"], r["ratio"], cls)

    def row_classes(rs):
        return {i: ("regression" if r["regression"] else "improvement") for i, r in enumerate(rs)
                if r["regression"] or r["improvement"]}

    for kind, title in (("decode", "Decode tok/s, before and after"), ("prefill", "Prefill tok/s, before and after")):
        rs = [r for r in rows if r["after"].get("kind") == kind]
        rs.sort(key=lambda r: (r["after"].get("model") or "", type_order(r["after"].get("type")), r["after"]["backend"]))
        groups = {}
        for r in rs:
            a = r["after"]
            color = type_color(a.get("type"))
            lab = "%s · %s" % (a.get("type") or "?", a["backend"])
            g = groups.setdefault(a.get("model") or a.get("shape") or a["name"], [])
            g.append({"key": r["key"] + "#before", "label": lab + " before", "value": r["b"], "color": color, "faded": True,
                      "tooltip": "%s before (%s): %s tok/s" % (result_title(a), before.label, fmt(r["b"]))})
            g.append({"key": r["key"] + "#after", "label": lab + " after", "value": r["a"], "color": color,
                      "regression": r["regression"], "note": "%s tok/s ×%.3f" % (fmt(r["a"]), r["ratio"]),
                      "tooltip": "%s after (%s): %s tok/s, ×%.3f" % (result_title(a), after.label, fmt(r["a"]), r["ratio"])})
        svg = charts.bar_chart("compare-" + kind, title, "tok/s (light: before %s, dark: after %s)" % (before.label, after.label),
                               list(groups.items()))
        trows = [[r["after"].get("model") or "", r["after"].get("type") or "", r["after"]["backend"], num(r["b"]), num(r["a"]),
                  ratio_cell(r), cell(signed_pct(r["ratio"] - 1), r["ratio"] - 1)] for r in rs]
        body.append(block("compare-" + kind, title, "Light bars: before; dark bars: after, with after/before.", svg,
                          table("compare-" + kind, ["model", "type", "backend", "before tok/s", "after tok/s", "ratio", "change"],
                                trows, row_classes(rs))))
    rs = [r for r in rows if r["after"].get("kind") not in ("decode", "prefill")]
    rs.sort(key=lambda r: (r["after"]["backend"], r["after"].get("kind") or "", r["after"].get("op") or "",
                           type_order(r["after"].get("type")), natural(r["after"].get("shape"))))
    items = [{"key": r["key"], "label": result_title(r["after"]), "ratio": r["speedup"],
              "tooltip": "%s: %s → %s %s (×%.3f)" % (result_title(r["after"]), fmt(r["b"]), fmt(r["a"]),
                                                     r["metric"].replace("_per_s", "/s"), r["ratio"])} for r in rs]
    title = "Kernels and bandwidth: after / before"
    svg = charts.ratio_chart("compare-kernels", title, items, threshold)
    trows = [[result_title(r["after"]), r["metric"].replace("_per_s", "/s"), num(r["b"]), num(r["a"]), ratio_cell(r),
              cell(signed_pct(r["ratio"] - 1), r["ratio"] - 1)] for r in rs]
    body.append(block("compare-kernels", title,
                      "Speed ratio per kernel (its primary metric); red: more than %s%% slower, green: more than %s%% faster."
                      % (pct_num(threshold), pct_num(threshold)), svg,
                      table("compare-kernels", ["benchmark", "metric", "before", "after", "ratio", "change"], trows, row_classes(rs))))
    if only_b or only_a:
        lst = table("only-one", ["benchmark", "only in"],
                    [[r["name"] + " · " + r["backend"], "before"] for r in only_b] +
                    [[r["name"] + " · " + r["backend"], "after"] for r in only_a])
        body.append('<section id="only"><h2>In one run only</h2>%s</section>' % lst)
    head = ('<h1>mllm performance: %s → %s</h1><div class="stamp">before: %s<br>after: %s</div>'
            % (esc(before.label), esc(after.label), stamp_line(before), stamp_line(after)))
    nav = [("stamps", "Runs"), ("compare-decode", "Decode"), ("compare-prefill", "Prefill"), ("compare-kernels", "Kernels")]
    foot = "Generated by perf/dashboard.py --compare on %s%s." % (
        datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        " from " + esc(", ".join(sources)) if sources else "")
    return page("mllm: %s vs %s" % (before.label, after.label), head, nav, "".join(body), foot)

