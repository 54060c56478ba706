"""Run files: reading them, and turning Google Benchmark entries into typed results.

A run file (schema "mllm-perf-run/1", written by perf/run) is one JSON object:

    schema, commit, commit_short, dirty, branch, subject, date, mode, duration_s, command,
    machine   {cpu_model, cores, threads, cpu_mhz, simd[], vulkan[{device, driver, ...}],
               memory_read_bandwidth_GBps, memory_read_bandwidth_threads,
               memory_read_bandwidth_1thread_GBps, peak_gflops {per_core, all_cores, basis}, ...}
    backends  the backends that have results in this run
    results   one object per benchmark, see normalize()
    google_benchmark {context, benchmarks}: the raw output, kept for anyone who wants more

A plain Google Benchmark JSON file (--benchmark_out_format=json) is read too: it becomes a run
with what its context says about the machine and an unknown commit.
"""

import json
import math
import os
import re
import statistics

SCHEMA = "mllm-perf-run/1"

# Path components that name a backend. CPU suites carry none and default to "cpu".
BACKENDS = ("cpu", "vulkan", "metal", "cuda", "hip", "opencl", "sycl", "webgpu", "npu", "qnn")
DEFAULT_BACKEND = "cpu"

# Google Benchmark's own suffixes: how a benchmark was run, not what it measures.
_META_ARGS = ("iterations", "min_time", "min_warmup_time", "repeats", "real_time", "manual_time",
              "process_time")

# GGUF tensor types and llama.cpp's mixed file types, matched at the end of a component
# ("q4_0", "gemv_Q4_K", "Q4_K_M").
_TYPE_RE = re.compile(
    r"(?:^|[_\-.])((?:i?q[1-8]_(?:k(?:_[sml])?|[01]|xxs|xs|s|m|nl))|bf16|f16|f32|f64)$", re.I)

_TIME_TO_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

# For each kind of result, the metric history and comparisons follow, and whether higher is better.
PRIMARY = {
    "decode": ("tok_per_s", True),
    "prefill": ("tok_per_s", True),
    "bandwidth": ("GB_per_s", True),
}


class RunFileError(ValueError):
    pass


def canonical_type(t):
    return t.upper() if t else t


def _split_name(name):
    return [c for c in name.split("/") if c != ""]


def _is_meta(component):
    key = component.split(":", 1)[0]
    return key in _META_ARGS


def _number(s):
    try:
        v = float(s)
    except ValueError:
        return None
    return int(v) if v.is_integer() and "." not in s and "e" not in s.lower() else v


def parse_name(name):
    """Splits a benchmark name into its parts.

    Names look like Family/Shape.../Type/... with optional key:value arguments and Google
    Benchmark's meta suffixes; the backend is any component naming one (or backend:NAME).
    Returns dict(family, backend, type, op, model, params, shape, key_name).
    """
    parts = _split_name(name)
    family = parts[0] if parts else name
    family_clean = family[3:] if family.startswith("BM_") else family
    backend = None
    qtype = None
    op = None
    words = []  # components that are neither arguments nor backend/type
    params = {}
    kept = [family]
    for i, comp in enumerate(parts[1:]):
        if _is_meta(comp):
            continue
        kept.append(comp)
        low = comp.lower()
        m = re.fullmatch(r"backend[:=](\w+)", low)
        if m:
            backend = m.group(1)
            continue
        if low in BACKENDS:
            backend = low
            continue
        if ":" in comp:
            k, v = comp.split(":", 1)
            n = _number(v)
            params[k] = n if n is not None else v
            continue
        n = _number(comp)
        if n is not None:
            params["arg%d" % len(params)] = n
            continue
        m = _TYPE_RE.search(comp)
        if m and qtype is None:
            qtype = canonical_type(m.group(1))
            rest = comp[: m.start(1)].rstrip("_-.")
            if rest:
                if op is None:
                    op = rest
                else:
                    words.append(rest)
            continue
        words.append(comp)
    if qtype is None:
        m = _TYPE_RE.search(family_clean)
        if m:
            qtype = canonical_type(m.group(1))
    # Thread counts are part of what is measured, so they stay in the key; the meta suffixes
    # (min_time, iterations...) differ between quick and full runs and do not.
    key_name = "/".join(kept)
    shape_bits = list(words)
    if params:
        vals = [str(v) for k, v in params.items() if k not in ("threads",)]
        if vals:
            shape_bits.append("x".join(vals))
    return {
        "family": family_clean,
        "backend": backend or DEFAULT_BACKEND,
        "backend_in_name": backend is not None,
        "type": qtype,
        "op": op,
        "words": words,
        "params": params,
        "shape": "/".join(shape_bits) if shape_bits else "",
        "key_name": key_name,
    }


def _kind(family, counters):
    f = family.lower()
    if f.startswith("decode"):
        return "decode"
    if f.startswith("prefill"):
        return "prefill"
    if "bandwidth" in f:
        return "bandwidth"
    return "kernel"


def _tok_counter(counters):
    for k in counters:
        kl = k.lower().replace(" ", "")
        if kl in ("tok/s", "tok_per_s", "tokens/s", "tokens_per_second", "tok_s", "tokps"):
            return counters[k]
    return None


def _counter(counters, *names):
    low = {k.lower(): v for k, v in counters.items()}
    for n in names:
        if n.lower() in low:
            return low[n.lower()]
    return None


_RESERVED = {"name", "run_name", "run_type", "family_index", "per_family_instance_index",
             "repetitions", "repetition_index", "threads", "iterations", "real_time", "cpu_time",
             "time_unit", "label", "error_occurred", "error_message", "aggregate_name",
             "aggregate_unit", "big_o", "rms"}


def counters_of(entry):
    """The numeric fields of a Google Benchmark entry that are counters (user counters and
    bytes/items_per_second)."""
    out = {}
    for k, v in entry.items():
        if k in _RESERVED:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        out[k] = float(v)
    return out


def normalize(entry):
    """One Google Benchmark entry -> one result of the run file."""
    name = entry.get("run_name") or entry["name"]
    p = parse_name(name)
    counters = counters_of(entry)
    kind = _kind(p["family"], counters)
    metrics = {}
    unit = entry.get("time_unit", "ns")
    if "real_time" in entry:
        metrics["time_ns"] = float(entry["real_time"]) * _TIME_TO_NS.get(unit, 1.0)
    tok = _tok_counter(counters)
    if tok is not None:
        metrics["tok_per_s"] = tok
    roof = _counter(counters, "roofline_tok/s", "roofline_tok_per_s", "roofline_tok_s")
    if roof is not None:
        metrics["roofline_tok_per_s"] = roof
    wmb = _counter(counters, "weight_MB", "weights_MB")
    if wmb is not None:
        metrics["weight_MB"] = wmb
    bw_counter = _counter(counters, "bandwidth_GBps", "bandwidth_GB/s", "GB/s", "GBps")
    bps = _counter(counters, "bytes_per_second")
    if kind == "bandwidth":
        if bw_counter is not None:
            metrics["GB_per_s"] = bw_counter
        elif bps is not None:
            metrics["GB_per_s"] = bps / 1e9
    else:
        if bps is not None:
            metrics["GB_per_s"] = bps / 1e9
        elif bw_counter is not None and kind == "kernel":
            metrics["GB_per_s"] = bw_counter
        if bw_counter is not None and kind != "kernel":
            # End-to-end suites report the machine's bandwidth they were measured against.
            metrics["machine_GB_per_s"] = bw_counter
    gf = _counter(counters, "GFLOPS", "GFLOP/s", "GFLOP_per_s", "gflops_per_s")
    if gf is None:
        tf = _counter(counters, "TFLOPS", "TFLOP/s")
        if tf is not None:
            gf = tf * 1e3
    if gf is None:
        fl = _counter(counters, "FLOPS", "FLOP/s", "flops_per_second")
        if fl is not None:
            gf = fl / 1e9
    if gf is not None:
        metrics["GFLOP_per_s"] = gf
    ips = _counter(counters, "items_per_second")
    if ips is not None:
        metrics["items_per_s"] = ips
    model = None
    if kind in ("decode", "prefill") and p["words"]:
        model = p["words"][0]
    op = p["op"]
    words = p["words"]
    if kind == "kernel" and op is None:
        # "Attention/decode/..." -> "Attention decode"; a bare family names itself.
        if words and not re.match(r"\d", words[0]) and not re.search(r"\d+x\d+", words[0]):
            op = p["family"] + " " + words[0]
            words = words[1:]
        else:
            op = p["family"]
    if kind in ("decode", "prefill"):
        shape = model or p["shape"]
    else:
        bits = list(words) if kind == "kernel" else []
        dims = "x".join(str(v) for k, v in p["params"].items() if k != "threads")
        if dims:
            bits.append(dims)
        shape = "/".join(bits) or p["shape"]
    result = {
        "name": name,
        "key": "%s:%s" % (p["backend"], p["key_name"]),
        "backend": p["backend"],
        "kind": kind,
        "family": p["family"],
        "op": op,
        "model": model,
        "type": p["type"],
        "shape": shape,
        "params": p["params"],
        "label": entry.get("label", ""),
        "metrics": metrics,
        "counters": counters,
        "iterations": entry.get("iterations"),
        "real_time": entry.get("real_time"),
        "cpu_time": entry.get("cpu_time"),
        "time_unit": unit,
    }
    if entry.get("error_occurred"):
        result["error"] = entry.get("error_message", "error")
    return result


def primary_metric(result):
    """(metric name, higher is better) that history and comparisons follow for a result."""
    kind = result.get("kind")
    m = result.get("metrics", {})
    if kind in PRIMARY and PRIMARY[kind][0] in m:
        return PRIMARY[kind]
    for name in ("tok_per_s", "GFLOP_per_s", "GB_per_s", "items_per_s"):
        if name in m:
            return name, True
    return "time_ns", False


def results_from_benchmarks(benchmarks):
    """Normalizes a Google Benchmark 'benchmarks' list. With repetitions the median aggregate
    stands for a benchmark (or the median of its repetitions when aggregates are missing)."""
    by_name = {}
    order = []
    medians = {}
    for e in benchmarks:
        name = e.get("run_name") or e.get("name")
        if not name:
            continue
        if e.get("run_type") == "aggregate":
            if e.get("aggregate_name") == "median":
                medians[name] = e
            continue
        if name not in by_name:
            by_name[name] = []
            order.append(name)
        by_name[name].append(e)
    for name in medians:
        if name not in by_name:
            order.append(name)
    out = []
    for name in order:
        if name in medians:
            out.append(normalize(medians[name]))
            continue
        reps = by_name[name]
        if len(reps) == 1:
            out.append(normalize(reps[0]))
            continue
        results = [normalize(e) for e in reps]
        merged = dict(results[0])
        merged["metrics"] = {}
        for k in results[0]["metrics"]:
            vals = [r["metrics"][k] for r in results if k in r["metrics"]]
            merged["metrics"][k] = statistics.median(vals)
        out.append(merged)
    return out


def machine_from_context(context):
    """What a Google Benchmark context says about the machine."""
    m = {}
    if not context:
        return m
    if "host_name" in context:
        m["hostname"] = context["host_name"]
    if "num_cpus" in context:
        m["threads"] = context["num_cpus"]
    if "mhz_per_cpu" in context:
        m["cpu_mhz"] = context["mhz_per_cpu"]
    if "caches" in context:
        m["caches"] = context["caches"]
    return m


def bandwidth_from_results(results):
    """(GB/s with the most threads, its thread count, GB/s with one thread) from memory bandwidth
    benchmarks; None where missing. The thread count comes from a 'Nthreads'/'threads:N' part."""
    best = None
    one = None
    for r in results:
        if r["kind"] != "bandwidth" or "GB_per_s" not in r["metrics"]:
            continue
        threads = 1
        m = re.search(r"(\d+)_?threads?(?![a-z])", r["name"], re.I) or re.search(r"threads:(\d+)", r["name"])
        if m:
            threads = int(m.group(1))
        gbs = r["metrics"]["GB_per_s"]
        if threads == 1:
            one = gbs if one is None else max(one, gbs)
        if best is None or threads > best[1] or (threads == best[1] and gbs > best[0]):
            best = (gbs, threads)
    if best is None:
        return None, None, one
    return best[0], best[1], one


class Run:
    """One run file, loaded."""

    def __init__(self, data, path=None):
        self.data = data
        self.path = path
        if data.get("schema") == SCHEMA and isinstance(data.get("results"), list):
            self.results = [r for r in data["results"] if isinstance(r, dict) and r.get("name")]
            self.machine = data.get("machine") or {}
        elif isinstance(data.get("benchmarks"), list):
            # A plain Google Benchmark file.
            self.results = results_from_benchmarks(data["benchmarks"])
            self.machine = machine_from_context(data.get("context", {}))
            bw, threads, one = bandwidth_from_results(self.results)
            if bw is not None:
                self.machine["memory_read_bandwidth_GBps"] = bw
                self.machine["memory_read_bandwidth_threads"] = threads
            if one is not None:
                self.machine["memory_read_bandwidth_1thread_GBps"] = one
            self.data = {"schema": None, "date": data.get("context", {}).get("date", ""),
                         "commit": None, "machine": self.machine}
        else:
            raise RunFileError("%s: neither a run file nor Google Benchmark JSON" % (path or "input"))
        for r in self.results:
            r.setdefault("backend", DEFAULT_BACKEND)
            r.setdefault("metrics", {})
            r.setdefault("key", "%s:%s" % (r["backend"], r.get("name", "")))
        self.by_key = {r["key"]: r for r in self.results}

    @property
    def date(self):
        return self.data.get("date") or ""

    @property
    def commit(self):
        return self.data.get("commit") or ""

    @property
    def label(self):
        c = (self.data.get("commit_short") or self.commit)[:8]
        if not c:
            c = os.path.basename(self.path) if self.path else "run"
        if self.data.get("dirty"):
            c += "+"
        return c

    @property
    def short_date(self):
        d = self.date
        return d[:16].replace("T", " ") if d else ""

    @property
    def backends(self):
        seen = []
        for r in self.results:
            if r["backend"] not in seen:
                seen.append(r["backend"])
        return seen

    def machine_fingerprint(self):
        m = self.machine
        vk = tuple(sorted(v.get("device", "") for v in (m.get("vulkan") or [])))
        return (m.get("cpu_model") or m.get("hostname") or "", m.get("cores") or m.get("threads"), vk)

    def of_kind(self, kind):
        return [r for r in self.results if r.get("kind") == kind and not r.get("error")]


def load(path):
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise RunFileError("%s: not JSON (%s)" % (path, e)) from e
    if not isinstance(data, dict):
        raise RunFileError("%s: not a JSON object" % path)
    return Run(data, path)


def load_many(paths):
    """Run files from files and folders (every *.json inside), oldest first."""
    files = []
    for p in paths:
        if os.path.isdir(p):
            files.extend(os.path.join(p, f) for f in sorted(os.listdir(p)) if f.endswith(".json"))
        else:
            files.append(p)
    runs = [load(f) for f in files]
    runs.sort(key=lambda r: r.date)
    return runs


def geomean(values):
    vals = [v for v in values if v and v > 0]
    if not vals:
        return None
    return math.exp(sum(math.log(v) for v in vals) / len(vals))
