"""Charts as plain inline SVG strings (no scripts, no external references).

Every chart is an <svg class="chart" data-chart=ID>; its marks carry a class (bar, point,
line, ceiling), data-key (what they stand for) and data-value (the exact number, as Python's
repr) so tests and readers can check the picture against the data, and a <title> tooltip.
"""

import html
import math

W = 960  # every chart's width in user units; CSS scales it down on narrow screens

# One colour per weight type, the same in every chart.
TYPE_COLORS = {
    "Q4_0": "#4e79a7", "Q8_0": "#f28e2b", "Q4_1": "#e15759", "Q5_0": "#76b7b2",
    "Q5_1": "#17becf", "Q4_K": "#59a14f", "Q5_K": "#c9a227", "Q6_K": "#b07aa1",
    "F16": "#ff9da7", "BF16": "#9c755f", "F32": "#7f7f7f", "Q4_K_M": "#2e7d32",
    "Q5_K_M": "#8d6e00",
}
SERIES = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#c9a227", "#b07aa1",
          "#ff9da7", "#9c755f", "#7f7f7f", "#17becf", "#8c564b", "#d62728", "#1f77b4"]
REGRESSION = "#d62728"
IMPROVEMENT = "#2ca02c"
MUTED = "#9aa0a6"


def esc(s):
    return html.escape(str(s), quote=True)


def fmt(v):
    """A number as the page shows it: about four significant digits, no exponent."""
    if v is None:
        return "–"
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return str(v)
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 1000:
        return "{:,.0f}".format(v)
    if a >= 100:
        return "{:.1f}".format(v)
    if a >= 10:
        return "{:.2f}".format(v)
    if a >= 1:
        return "{:.3f}".format(v)
    return "{:.4g}".format(v)


def dv(v):
    """data-value attribute text: exact."""
    return repr(float(v))


def type_color(t, _extra={}):
    if t in TYPE_COLORS:
        return TYPE_COLORS[t]
    if t not in _extra:
        _extra[t] = SERIES[len(_extra) % len(SERIES)]
    return _extra[t]


def _nice_step(span, target=6):
    if span <= 0:
        return 1.0
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _ticks(lo, hi, target=6):
    """Evenly spaced round numbers covering [lo, hi] (the first <= lo, the last >= hi)."""
    step = _nice_step(hi - lo, target)
    t = math.floor(lo / step + 1e-9) * step
    out = [round(t, 10)]
    while out[-1] < hi - step * 1e-9:
        t += step
        out.append(round(t, 10))
    return out


def fmt_tick(v):
    """An axis label: 5, 2.5, 0.02, 1,000."""
    if v == int(v):
        return "{:,}".format(int(v))
    return "{:g}".format(v)


def _svg_open(chart_id, height, title):
    return ('<svg class="chart" data-chart="%s" viewBox="0 0 %d %d" width="%d" height="%d" '
            'role="img" aria-label="%s" font-family="system-ui, sans-serif" font-size="12">'
            % (esc(chart_id), W, height, W, height, esc(title)))


def _empty(chart_id, title, message):
    return (_svg_open(chart_id, 60, title) +
            '<text x="%d" y="34" text-anchor="middle" fill="#666">%s</text></svg>'
            % (W // 2, esc(message)))


def bar_chart(chart_id, title, unit, groups, ref_name=None):
    """Horizontal bars in groups.

    groups: [(group label, [bar])], bar: dict(key, label, value, color, tooltip,
    optional ref (a marker drawn on the bar's row, e.g. the roofline), note (text after it),
    faded (drawn lighter, e.g. a 'before' bar)).
    """
    bars = [b for _, bs in groups for b in bs]
    if not bars:
        return _empty(chart_id, title, "no results")
    label_w, right_w, bar_h, gap, group_gap, top = 250, 190, 18, 4, 16, 34
    plot_w = W - label_w - right_w
    vmax = max(max(b["value"], b.get("ref") or 0) for b in bars) or 1.0
    ticks = _ticks(0, vmax * 1.04)
    xmax = ticks[-1]
    height = top + sum(22 + len(bs) * (bar_h + gap) + group_gap for _, bs in groups) + 26

    def x(v):
        return label_w + plot_w * (v / xmax)

    out = [_svg_open(chart_id, height, title)]
    # Grid and axis labels
    bottom = height - 26
    for t in ticks:
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e3e3e3"/>' % (x(t), top - 6, x(t), bottom))
        out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>' % (x(t), bottom + 16, fmt_tick(t)))
    out.append('<text x="%d" y="18" fill="#333" font-weight="600">%s</text>' % (label_w, esc(unit)))
    if ref_name and any(b.get("ref") for b in bars):
        lx = label_w + 80
        out.append('<line x1="%d" y1="14" x2="%d" y2="26" stroke="#222" stroke-width="2.5"/>' % (lx, lx))
        out.append('<text x="%d" y="24" fill="#333">%s</text>' % (lx + 8, esc(ref_name)))
    y = top
    for glabel, bs in groups:
        out.append('<text x="6" y="%d" font-weight="600" fill="#222">%s</text>' % (y + 14, esc(glabel)))
        y += 22
        for b in bs:
            w = max(x(b["value"]) - label_w, 0.0)
            cls = "bar" + (" regression" if b.get("regression") else "")
            opacity = ' fill-opacity="0.45"' if b.get("faded") else ""
            out.append('<text x="%d" y="%d" fill="#333">%s</text>' % (18, y + 13, esc(b["label"])))
            out.append('<rect class="%s" data-key="%s" data-value="%s" x="%d" y="%d" width="%.2f" height="%d" fill="%s"%s>'
                       '<title>%s</title></rect>'
                       % (cls, esc(b["key"]), dv(b["value"]), label_w, y, w, bar_h, b["color"], opacity,
                          esc(b.get("tooltip", fmt(b["value"])))))
            if b.get("ref"):
                rx = x(b["ref"])
                out.append('<line class="ref" data-key="%s" data-value="%s" x1="%.2f" y1="%d" x2="%.2f" y2="%d" '
                           'stroke="#222" stroke-width="2.5"><title>%s: %s</title></line>'
                           % (esc(b["key"]), dv(b["ref"]), rx, y - 2, rx, y + bar_h + 2,
                              esc(ref_name or "reference"), fmt(b["ref"])))
            note = b.get("note") or fmt(b["value"])
            tx = max(x(b["value"]), x(b.get("ref") or 0)) + 6
            color = REGRESSION if b.get("regression") else "#222"
            out.append('<text x="%.1f" y="%d" fill="%s">%s</text>' % (tx, y + 13, color, esc(note)))
            y += bar_h + gap
        y += group_gap
    out.append('</svg>')
    return "".join(out)


def ratio_chart(chart_id, title, items, threshold):
    """after/before ratios as bars left or right of 1.0. items: dict(key, label, ratio, tooltip)."""
    if not items:
        return _empty(chart_id, title, "no benchmarks in common")
    label_w, right_w, bar_h, gap, top = 330, 90, 14, 3, 34
    plot_w = W - label_w - right_w
    lo = min(min(i["ratio"] for i in items), 1 - 2 * threshold)
    hi = max(max(i["ratio"] for i in items), 1 + 2 * threshold)
    ticks = _ticks(lo, hi, 8)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    height = top + len(items) * (bar_h + gap) + 30

    def x(v):
        return label_w + plot_w * (v - lo) / (hi - lo)

    out = [_svg_open(chart_id, height, title)]
    bottom = height - 26
    for t in ticks:
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e3e3e3"/>' % (x(t), top - 6, x(t), bottom))
        out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">×%s</text>' % (x(t), bottom + 16, fmt_tick(t)))
    out.append('<text x="%d" y="18" fill="#333" font-weight="600">after / before (higher is faster)</text>' % label_w)
    for band in (1 - threshold, 1 + threshold):
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#bbb" stroke-dasharray="4 3"/>'
                   % (x(band), top - 6, x(band), bottom))
    y = top
    for it in items:
        r = it["ratio"]
        if r < 1 - threshold - 1e-12:
            color, cls = REGRESSION, "bar regression"
        elif r > 1 + threshold + 1e-12:
            color, cls = IMPROVEMENT, "bar improvement"
        else:
            color, cls = MUTED, "bar"
        x0, x1 = sorted((x(1.0), x(r)))
        out.append('<text x="6" y="%d" fill="#333" font-size="11">%s</text>' % (y + 11, esc(it["label"])))
        out.append('<rect class="%s" data-key="%s" data-value="%s" x="%.2f" y="%d" width="%.2f" height="%d" fill="%s">'
                   '<title>%s</title></rect>'
                   % (cls, esc(it["key"]), dv(r), x0, y, max(x1 - x0, 1.0), bar_h, color, esc(it.get("tooltip", ""))))
        out.append('<text x="%.1f" y="%d" fill="%s" font-size="11">×%s</text>'
                   % (max(x1, x(1.0)) + 4, y + 11, color if color != MUTED else "#444", "%.3f" % r))
        y += bar_h + gap
    out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333"/>' % (x(1.0), top - 6, x(1.0), bottom))
    out.append('</svg>')
    return "".join(out)


def _log_ticks(lo, hi):
    """Decades and their 2x, 5x between lo and hi (both > 0)."""
    out = []
    e = math.floor(math.log10(lo))
    while 10 ** e <= hi * 1.0001:
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo * 0.9999 <= v <= hi * 1.0001:
                out.append((v, m == 1))
        e += 1
    return out


def roofline(chart_id, title, points, ceilings):
    """Log-log roofline. points: dict(key, label, ai, gflops, gbs, color, marker ('circle',
    'square', 'diamond'), hollow, tooltip). ceilings: dict(name, bandwidth (GB/s), peak
    (GFLOP/s), dash)."""
    if not points:
        return _empty(chart_id, title, "no kernel results with both GB/s and GFLOP/s")
    left, right, top, bottom_pad = 70, 230, 20, 50
    height = 520
    plot_w, plot_h = W - left - right, height - top - bottom_pad
    ais = [p["ai"] for p in points]
    gfs = [p["gflops"] for p in points]
    ridges = [c["peak"] / c["bandwidth"] for c in ceilings if c.get("bandwidth") and c.get("peak")]
    xlo = 10 ** math.floor(math.log10(min(ais + ridges) / 3))
    xhi = 10 ** math.ceil(math.log10(max(ais + ridges) * 1.5))
    ys = gfs + [c["peak"] for c in ceilings if c.get("peak")]
    ylo = 10 ** math.floor(math.log10(min(ys) / 1.5))
    yhi = 10 ** math.ceil(math.log10(max(ys) * 1.5))

    def X(v):
        return left + plot_w * (math.log10(v) - math.log10(xlo)) / (math.log10(xhi) - math.log10(xlo))

    def Y(v):
        return top + plot_h * (1 - (math.log10(v) - math.log10(ylo)) / (math.log10(yhi) - math.log10(ylo)))

    out = [_svg_open(chart_id, height, title)]
    out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="#fcfcfc" stroke="#ccc"/>' % (left, top, plot_w, plot_h))
    for v, major in _log_ticks(xlo, xhi):
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>' % (X(v), top, X(v), top + plot_h, "#ddd" if major else "#f0f0f0"))
        out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>' % (X(v), top + plot_h + 16, fmt_tick(v)))
    for v, major in _log_ticks(ylo, yhi):
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>' % (left, Y(v), left + plot_w, Y(v), "#ddd" if major else "#f0f0f0"))
        out.append('<text x="%d" y="%.1f" text-anchor="end" fill="#555">%s</text>' % (left - 6, Y(v) + 4, fmt_tick(v)))
    out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#333">arithmetic intensity (FLOP per weight byte)</text>'
               % (left + plot_w / 2, height - 12))
    out.append('<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle" fill="#333">GFLOP/s</text>' % (top + plot_h / 2))
    labelled = []
    for c in ceilings:
        bw, peak = c.get("bandwidth"), c.get("peak")
        if not bw and not peak:
            continue
        pts = []
        if bw:
            x_end = peak / bw if peak else xhi
            x_end = min(x_end, xhi)
            x_start = max(xlo, ylo / bw)
            pts.append((X(x_start), Y(bw * x_start)))
            pts.append((X(x_end), Y(bw * x_end)))
        if peak:
            x_start = peak / bw if bw else xlo
            if not pts:
                pts.append((X(x_start), Y(peak)))
            pts.append((X(xhi), Y(peak)))
        dash = ' stroke-dasharray="7 4"' if c.get("dash") else ""
        tip = c["name"] + ": " + ", ".join(
            s for s in ((fmt(bw) + " GB/s") if bw else "", (fmt(peak) + " GFLOP/s") if peak else "") if s)
        out.append('<polyline class="ceiling" data-key="%s" data-value="%s" points="%s" fill="none" stroke="#333" stroke-width="1.8"%s>'
                   '<title>%s</title></polyline>'
                   % (esc(c["name"]), dv(bw or peak), " ".join("%.1f,%.1f" % p for p in pts), dash, esc(tip)))
        if peak:
            x_label = X(peak / bw) + 10 if bw else left + 6
            out.append('<text x="%.1f" y="%.1f" fill="#333" font-size="11">%s</text>'
                       % (x_label, Y(peak) - 5, esc(c["name"] + " · " + fmt(peak) + " GFLOP/s")))
        if bw and bw not in labelled:
            labelled.append(bw)
            xa = max(xlo, ylo / bw) * 1.6
            # The highest bandwidth is labelled above its line, the others below theirs.
            dy = -6 if bw == max(cc["bandwidth"] for cc in ceilings if cc.get("bandwidth")) else 14
            out.append('<text x="%.1f" y="%.1f" fill="#333" font-size="11" transform="rotate(%.1f %.1f %.1f)">%s</text>'
                       % (X(xa), Y(bw * xa) + dy, -math.degrees(math.atan2(plot_h / math.log10(yhi / ylo),
                                                                            plot_w / math.log10(xhi / xlo))),
                          X(xa), Y(bw * xa) + dy, esc(c.get("bandwidth_label") or fmt(bw) + " GB/s")))
    for p in points:
        cx, cy = X(p["ai"]), Y(p["gflops"])
        fill = "none" if p.get("hollow") else p["color"]
        common = ('class="point" data-key="%s" data-value="%s" fill="%s" stroke="%s" stroke-width="1.5" fill-opacity="0.85"'
                  % (esc(p["key"]), dv(p["gflops"]), fill, p["color"]))
        if p.get("marker") == "square":
            shape = '<rect %s x="%.1f" y="%.1f" width="9" height="9">' % (common, cx - 4.5, cy - 4.5)
            end = "</rect>"
        elif p.get("marker") == "diamond":
            shape = '<polygon %s points="%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f">' % (
                common, cx, cy - 6, cx + 6, cy, cx, cy + 6, cx - 6, cy)
            end = "</polygon>"
        else:
            shape = '<circle %s cx="%.1f" cy="%.1f" r="5">' % (common, cx, cy)
            end = "</circle>"
        out.append(shape + "<title>%s</title>" % esc(p.get("tooltip", p["label"])) + end)
    # Legend
    lx, ly = W - right + 16, top + 6
    seen = []
    for p in points:
        if p.get("legend") and p["legend"] not in [s[0] for s in seen]:
            seen.append((p["legend"], p["color"]))
    out.append('<text x="%d" y="%d" font-weight="600" fill="#333">weight type</text>' % (lx, ly + 8))
    ly += 20
    for name, color in seen:
        out.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d" fill="#333">%s</text>'
                   % (lx, ly, color, lx + 18, ly + 10, esc(name)))
        ly += 17
    markers = []
    for p in points:
        if p.get("marker_name") and p["marker_name"] not in [m[0] for m in markers]:
            markers.append((p["marker_name"], p.get("marker")))
    if markers:
        ly += 8
        out.append('<text x="%d" y="%d" font-weight="600" fill="#333">kernel</text>' % (lx, ly + 8))
        ly += 20
        for name, marker in markers:
            cx, cy = lx + 6, ly + 6
            if marker == "square":
                out.append('<rect x="%.1f" y="%.1f" width="9" height="9" fill="#555"/>' % (cx - 4.5, cy - 4.5))
            elif marker == "diamond":
                out.append('<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="#555"/>'
                           % (cx, cy - 6, cx + 6, cy, cx, cy + 6, cx - 6, cy))
            else:
                out.append('<circle cx="%.1f" cy="%.1f" r="5" fill="#555"/>' % (cx, cy))
            out.append('<text x="%d" y="%d" fill="#333">%s</text>' % (lx + 18, ly + 10, esc(name)))
            ly += 17
    hollow = any(p.get("hollow") for p in points)
    if hollow:
        ly += 8
        out.append('<circle cx="%d" cy="%d" r="5" fill="none" stroke="#555" stroke-width="1.5"/>'
                   '<text x="%d" y="%d" fill="#333">hollow: not the CPU</text>' % (lx + 6, ly + 6, lx + 18, ly + 10))
        ly += 17
    ly += 8
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333" stroke-width="1.8"/><text x="%d" y="%d" fill="#333">one core</text>'
               % (lx, ly + 6, lx + 14, ly + 6, lx + 18, ly + 10))
    ly += 17
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333" stroke-width="1.8" stroke-dasharray="7 4"/>'
               '<text x="%d" y="%d" fill="#333">whole machine</text>' % (lx, ly + 6, lx + 14, ly + 6, lx + 18, ly + 10))
    out.append('</svg>')
    return "".join(out)


def line_chart(chart_id, title, unit, x_labels, series, baseline=None):
    """History. x_labels: one label per run (oldest first). series: dict(key, name, color,
    values [value or None per run], regressions {run index: tooltip}, tooltips [per run]).
    baseline: a y value drawn as a reference line (100 for a relative index)."""
    if not series or len(x_labels) < 1:
        return _empty(chart_id, title, "no history")
    left, right, top, bottom_pad = 64, 250, 24, 100
    legend_rows = min(len(series), 22)
    height = max(360, top + legend_rows * 17 + 40)
    plot_w, plot_h = W - left - right, height - top - bottom_pad
    vals = [v for s in series for v in s["values"] if v is not None]
    if not vals:
        return _empty(chart_id, title, "no history")
    if baseline is not None:
        vals.append(baseline)
    lo, hi = min(vals), max(vals)
    pad = (hi - lo) * 0.1 or abs(hi) * 0.05 or 1.0
    ticks = _ticks(lo - pad, hi + pad)
    ylo, yhi = ticks[0], ticks[-1]
    n = len(x_labels)

    def X(i):
        return left + (plot_w * (i + 0.5) / n)

    def Y(v):
        return top + plot_h * (1 - (v - ylo) / (yhi - ylo))

    out = [_svg_open(chart_id, height, title)]
    out.append('<text x="%d" y="14" fill="#333" font-weight="600">%s</text>' % (left, esc(unit)))
    for t in ticks:
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e6e6e6"/>' % (left, Y(t), left + plot_w, Y(t)))
        out.append('<text x="%d" y="%.1f" text-anchor="end" fill="#555">%s</text>' % (left - 6, Y(t) + 4, fmt_tick(t)))
    if baseline is not None:
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#888" stroke-dasharray="5 4"/>'
                   % (left, Y(baseline), left + plot_w, Y(baseline)))
    step = max(1, math.ceil(n / 12))
    for i, lab in enumerate(x_labels):
        if i % step and i != n - 1:
            continue
        out.append('<text x="%.1f" y="%d" text-anchor="end" fill="#555" font-size="11" transform="rotate(-30 %.1f %d)">%s</text>'
                   % (X(i), top + plot_h + 16, X(i), top + plot_h + 16, esc(lab)))
    for s in series:
        pts = [(i, v) for i, v in enumerate(s["values"]) if v is not None]
        if len(pts) > 1:
            out.append('<polyline class="line" data-key="%s" points="%s" fill="none" stroke="%s" stroke-width="2"/>'
                       % (esc(s["key"]), " ".join("%.1f,%.1f" % (X(i), Y(v)) for i, v in pts), s["color"]))
        for i, v in pts:
            tip = (s.get("tooltips") or [None] * n)[i] or "%s: %s" % (s["name"], fmt(v))
            if i in s.get("regressions", {}):
                out.append('<circle class="point regression" data-key="%s" data-run="%d" data-value="%s" cx="%.1f" cy="%.1f" r="7" '
                           'fill="%s" stroke="%s" stroke-width="2.5"><title>%s</title></circle>'
                           % (esc(s["key"]), i, dv(v), X(i), Y(v), s["color"], REGRESSION, esc(tip + " — " + s["regressions"][i])))
            else:
                out.append('<circle class="point" data-key="%s" data-run="%d" data-value="%s" cx="%.1f" cy="%.1f" r="3.5" fill="%s">'
                           '<title>%s</title></circle>' % (esc(s["key"]), i, dv(v), X(i), Y(v), s["color"], esc(tip)))
    lx, ly = W - right + 16, top
    for s in series[:legend_rows]:
        name = s["name"] if len(s["name"]) <= 36 else s["name"][:35] + "…"
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/><text x="%d" y="%d" fill="#333" font-size="11">%s<title>%s</title></text>'
                   % (lx, ly + 6, lx + 14, ly + 6, s["color"], lx + 20, ly + 10, esc(name), esc(s["name"])))
        ly += 17
    if len(series) > legend_rows:
        out.append('<text x="%d" y="%d" fill="#666" font-size="11">… and %d more (see the table)</text>'
                   % (lx, ly + 10, len(series) - legend_rows))
        ly += 17
    if any(s.get("regressions") for s in series):
        out.append('<circle cx="%d" cy="%d" r="6" fill="#fff" stroke="%s" stroke-width="2.5"/><text x="%d" y="%d" fill="%s" font-size="11">regression</text>'
                   % (lx + 7, ly + 12, REGRESSION, lx + 20, ly + 16, REGRESSION))
    out.append('</svg>')
    return "".join(out)
