#!/usr/bin/env python3
"""Makes the hand-made fixtures in perf/fixtures/ from a real run file.

    python3 tests/dashboard/make_fixtures.py perf/fixtures/run-quick.json

history-1/2/3.json: three runs of one machine with known changes (the tests assert exactly
which of them are flagged); other-machine.json: a run of another CPU, dated before them, that
the history must leave out; gbench-raw.json: plain Google Benchmark output with repetitions, an
error, a backend component in names and counters the generator does not know.
"""

import copy
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(os.path.dirname(os.path.dirname(HERE)), "perf", "fixtures")

# (run index, key) -> factor applied to the speed of that benchmark in that run, relative to
# the previous run. The comments say what the tests expect.
CHANGES = {
    1: {
        "cpu:Decode/SmolLM2-135M/q4_0": 0.94,                        # -6%: regression
        "cpu:Decode/SmolLM2-135M/q8_0": 0.95,                        # exactly -5%: not flagged
        "cpu:Prefill128/Qwen2.5-0.5B/q4_0": 1.10,                    # improvement
        "cpu:BM_QuantMatmul/gemv_Q4_0/rows:2048/k:5632": 0.90,       # regression
        "cpu:BM_QuantMatmul/gemv_Q8_0/rows:2048/k:5632": 0.951,      # -4.9%: not flagged
        "cpu:MemoryReadBandwidth/1GiB/2threads": 1.02,
    },
    2: {
        "cpu:Decode/SmolLM2-135M/q4_0": 1 / 0.94,                    # back: improvement
        "cpu:Decode/SmolLM2-135M/q8_0": 0.94,                        # -6% against run 2: regression
        "cpu:Prefill128/SmolLM2-135M/q8_0": 0.80,                    # regression
        "cpu:BM_QuantMatmul/gemm128_Q4_0/rows:2048/k:5632": 0.80,    # regression
    },
}
DROPPED_IN_3 = "cpu:BM_QuantMatmul/gemv_Q4_0/rows:576/k:1536"

RATE_METRICS = ("tok_per_s", "GB_per_s", "GFLOP_per_s", "items_per_s")
RATE_COUNTERS = ("tok/s", "bytes_per_second", "GFLOPS", "items_per_second")


def keep(r):
    if r["kind"] in ("decode", "prefill", "bandwidth"):
        return True
    return r["family"] == "QuantMatmul" and r.get("type") in ("Q4_0", "Q8_0")


def scale(r, f):
    for k in RATE_METRICS:
        if k in r["metrics"]:
            r["metrics"][k] *= f
    for k in RATE_COUNTERS:
        if k in r["counters"]:
            r["counters"][k] *= f
    if r["kind"] == "bandwidth":
        for k in ("bandwidth_GBps",):
            if k in r["counters"]:
                r["counters"][k] *= f
    if "time_ns" in r["metrics"]:
        r["metrics"]["time_ns"] /= f
    if r.get("real_time"):
        r["real_time"] /= f


def write(name, data):
    with open(os.path.join(FIXTURES, name), "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")


def main(src):
    base = json.load(open(src))
    base.pop("google_benchmark", None)
    base["results"] = [r for r in base["results"] if keep(r)]
    base["dirty"] = False
    base["mode"] = "quick"
    runs = []
    prev = base
    for i, (commit, date) in enumerate([("1" * 40, "2026-11-20T10:00:00+00:00"),
                                        ("2" * 40, "2026-11-21T10:00:00+00:00"),
                                        ("3" * 40, "2026-11-22T10:00:00+00:00")]):
        run = copy.deepcopy(prev)
        run.update(commit=commit, commit_short=commit[:10], date=date, subject="fixture run %d" % (i + 1))
        for r in run["results"]:
            f = CHANGES.get(i, {}).get(r["key"])
            if f:
                scale(r, f)
        if i == 2:
            run["results"] = [r for r in run["results"] if r["key"] != DROPPED_IN_3]
            vk = copy.deepcopy(next(r for r in run["results"] if r["key"] == "cpu:Decode/SmolLM2-135M/q4_0"))
            vk.update(name="Decode/vulkan/SmolLM2-135M/q4_0", key="vulkan:Decode/vulkan/SmolLM2-135M/q4_0",
                      backend="vulkan")
            scale(vk, 1.5)
            run["results"].append(vk)
            run["backends"] = ["cpu", "vulkan"]
        runs.append(run)
        prev = run
    for i, run in enumerate(runs):
        write("history-%d.json" % (i + 1), run)
    other = copy.deepcopy(runs[0])
    other.update(commit="0" * 40, commit_short="0" * 10, date="2026-11-19T10:00:00+00:00", subject="another machine")
    other["machine"]["cpu_model"] = "Some Other CPU"
    other["machine"]["cores"] = 8
    for r in other["results"]:
        scale(r, 2.0)
    write("other-machine.json", other)

    # Plain Google Benchmark output.
    raw = json.load(open(src))["google_benchmark"]
    pick = [e for e in raw["benchmarks"] if e["name"].split("/")[0] in ("Decode", "Prefill128", "MemoryReadBandwidth")
            or e["name"].startswith("BM_QuantMatmul/gemv_Q4_0/rows:576")][:8]
    extra = []
    for rep, t in enumerate((5.0, 4.0, 6.0)):
        extra.append({"name": "Decode/vulkan/SmolLM2-135M/q4_0/real_time", "run_name": "Decode/vulkan/SmolLM2-135M/q4_0/real_time",
                      "run_type": "iteration", "repetitions": 3, "repetition_index": rep, "threads": 1,
                      "iterations": 100, "real_time": t, "cpu_time": 1.0, "time_unit": "ms",
                      "tok/s": 1000.0 / t, "joules_per_token": 0.25 * (rep + 1)})
    for agg, t in (("mean", 5.0), ("median", 5.0), ("stddev", 1.0)):
        extra.append({"name": "Decode/vulkan/SmolLM2-135M/q4_0/real_time_" + agg,
                      "run_name": "Decode/vulkan/SmolLM2-135M/q4_0/real_time", "run_type": "aggregate",
                      "repetitions": 3, "threads": 1, "aggregate_name": agg, "aggregate_unit": "time",
                      "iterations": 3, "real_time": t, "cpu_time": 1.0, "time_unit": "ms",
                      "tok/s": 200.0 if agg != "stddev" else 40.0, "joules_per_token": 0.5})
    extra.append({"name": "GEMV/4096x4096/Q4_K/vulkan/real_time", "run_name": "GEMV/4096x4096/Q4_K/vulkan/real_time",
                  "run_type": "iteration", "repetitions": 1, "repetition_index": 0, "threads": 1, "iterations": 500,
                  "real_time": 100.0, "cpu_time": 20.0, "time_unit": "us", "GB/s": 94.5, "GFLOP/s": 335.5,
                  "occupancy": 0.75})
    extra.append({"name": "Decode/SmolLM2-135M/f16/min_time:2.000", "run_name": "Decode/SmolLM2-135M/f16/min_time:2.000",
                  "run_type": "iteration", "repetitions": 1, "repetition_index": 0, "threads": 1, "iterations": 0,
                  "real_time": 0.0, "cpu_time": 0.0, "time_unit": "ms", "error_occurred": True,
                  "error_message": "model file could not be generated"})
    write("gbench-raw.json", {"context": raw["context"], "benchmarks": pick + extra})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(FIXTURES, "run-quick.json"))
