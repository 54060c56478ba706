"""What the pages say about runs: rooflines, history with regressions, before/after ratios."""

from runs import primary_metric, geomean

THRESHOLD = 0.05  # a change of more than 5% is flagged

QUANT_INT8 = "int8"
FLOAT = "f32"


def compute_class(qtype):
    """Which compute peak bounds a kernel of this weight type: quantized types run integer dot
    products on 8-bit activations; F16/BF16/F32 run float FMAs."""
    if qtype in ("F16", "BF16", "F32", "F64"):
        return FLOAT
    return QUANT_INT8


def roof_for(machine, qtype, scope="core"):
    """(bandwidth GB/s, peak GFLOP/s) bounding a kernel: one thread's bandwidth and one core's
    peak (the kernel suites are single-threaded), or the whole machine's with scope='machine'."""
    peaks = machine.get("peak_gflops") or {}
    cls = compute_class(qtype)
    if scope == "core":
        bw = machine.get("memory_read_bandwidth_1thread_GBps") or machine.get("memory_read_bandwidth_GBps")
        peak = peaks.get("int8_per_core" if cls == QUANT_INT8 else "per_core")
    else:
        bw = machine.get("memory_read_bandwidth_GBps")
        peak = peaks.get("int8_all_cores" if cls == QUANT_INT8 else "all_cores")
    return bw, peak


def roofline_point(result):
    """(arithmetic intensity FLOP/byte, GFLOP/s, GB/s) or None."""
    m = result.get("metrics", {})
    gf, gb = m.get("GFLOP_per_s"), m.get("GB_per_s")
    if not gf or not gb:
        return None
    return gf / gb, gf, gb


def attainable(ai, bw, peak):
    """The roofline at an arithmetic intensity: min(peak, ai * bandwidth)."""
    cands = [v for v in ((ai * bw) if bw else None, peak) if v]
    return min(cands) if cands else None


def is_regression(prev, cur, higher_is_better, threshold=THRESHOLD):
    """More than `threshold` worse. A tiny tolerance keeps exactly-5% out despite rounding."""
    if prev is None or cur is None or prev <= 0:
        return False
    if higher_is_better:
        return cur < prev * (1 - threshold) * (1 - 1e-12)
    return cur > prev * (1 + threshold) * (1 + 1e-12)


def is_improvement(prev, cur, higher_is_better, threshold=THRESHOLD):
    return is_regression(cur, prev, higher_is_better, threshold)


def change(prev, cur):
    """Relative change of the metric, cur / prev - 1."""
    if prev is None or cur is None or prev == 0:
        return None
    return cur / prev - 1


def history(runs, threshold=THRESHOLD):
    """Per benchmark key, its primary metric across runs (oldest first) and the runs where it
    regressed against the previous run that has it.

    Returns {key: dict(key, result (latest), metric, higher, values [per run or None],
    changes [per run or None], regressions [run indexes], improvements [run indexes])}.
    """
    out = {}
    for i, run in enumerate(runs):
        for r in run.results:
            if r.get("error"):
                continue
            key = r["key"]
            if key not in out:
                metric, higher = primary_metric(r)
                out[key] = {"key": key, "result": r, "metric": metric, "higher": higher,
                            "values": [None] * len(runs), "changes": [None] * len(runs),
                            "regressions": [], "improvements": []}
            h = out[key]
            h["result"] = r
            h["values"][i] = r.get("metrics", {}).get(h["metric"])
    for h in out.values():
        prev = None
        for i, v in enumerate(h["values"]):
            if v is None:
                continue
            if prev is not None:
                h["changes"][i] = change(prev, v)
                if is_regression(prev, v, h["higher"], threshold):
                    h["regressions"].append(i)
                elif is_improvement(prev, v, h["higher"], threshold):
                    h["improvements"].append(i)
            prev = v
    return out


def relative_index(values, higher=True):
    """Values as % of the first one present (speed, so a time metric is inverted)."""
    base = next((v for v in values if v), None)
    if not base:
        return [None] * len(values)
    return [None if not v else (100.0 * v / base if higher else 100.0 * base / v) for v in values]


def group_index(members):
    """Relative index of a group of series: per run, the geometric mean of the members'
    indexes present in that run."""
    n = len(members[0]["values"])
    idx = [relative_index(m["values"], m["higher"]) for m in members]
    out = []
    for i in range(n):
        out.append(geomean([s[i] for s in idx if s[i]]))
    return out


def compare(before, after, threshold=THRESHOLD):
    """Benchmarks of two runs side by side. Returns (rows, only_before, only_after); a row is
    dict(key, before, after (results), metric, higher, b, a (values), ratio (a/b), speedup
    (>1 is faster), regression, improvement)."""
    rows = []
    for r in after.results:
        if r.get("error"):
            continue
        b = before.by_key.get(r["key"])
        if b is None or b.get("error"):
            continue
        metric, higher = primary_metric(r)
        bv, av = b.get("metrics", {}).get(metric), r.get("metrics", {}).get(metric)
        if bv is None or av is None or bv == 0 or av == 0:
            continue
        ratio = av / bv
        rows.append({"key": r["key"], "before": b, "after": r, "metric": metric, "higher": higher,
                     "b": bv, "a": av, "ratio": ratio, "speedup": ratio if higher else 1 / ratio,
                     "regression": is_regression(bv, av, higher, threshold),
                     "improvement": is_improvement(bv, av, higher, threshold)})
    only_before = [r for r in before.results if r["key"] not in after.by_key]
    only_after = [r for r in after.results if r["key"] not in before.by_key]
    return rows, only_before, only_after
