"""The dashboard generator on recorded run files (perf/fixtures): every chart with its table,
numbers in the page equal to the inputs, regressions of more than 5% highlighted and no others,
comparison ratios. Run: python3 -m unittest discover -s tests/dashboard -p 'test_generator.py'
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PERF = os.path.join(ROOT, "perf")
FIX = os.path.join(PERF, "fixtures")
sys.dont_write_bytecode = True  # keep the source tree free of __pycache__
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(PERF, "dashboard"))

import analysis  # noqa: E402
import charts  # noqa: E402
import htmltree  # noqa: E402
import page  # noqa: E402
import runs  # noqa: E402


def fixture(name):
    return os.path.join(FIX, name)


def load_json(name):
    with open(fixture(name)) as f:
        return json.load(f)


def history_runs():
    return runs.load_many([fixture("history-1.json"), fixture("history-2.json"), fixture("history-3.json"),
                           fixture("other-machine.json")])


def data_value(node):
    return float(node.attrs["data-value"])


def charts_with_tables(doc):
    """{chart id: (svg node, table node under it)}; fails on a chart without its table."""
    out = {}
    for svg in doc.find_all("svg", cls="chart"):
        fig = svg.ancestor("figure")
        assert fig is not None, "chart %s is not in a figure" % svg.attrs["data-chart"]
        det = fig.find("details", cls="table-view")
        assert det is not None, "chart %s has no table view" % svg.attrs["data-chart"]
        out[svg.attrs["data-chart"]] = (svg, det.find("table"))
    return out


def rows_by_first_cells(table, n):
    return {tuple(c.text() for c in row[:n]): row for row in htmltree.table_rows(table)}


class ParseNames(unittest.TestCase):
    def test_e2e_names(self):
        p = runs.parse_name("Decode/SmolLM2-135M/q4_0/min_time:2.000")
        self.assertEqual((p["family"], p["backend"], p["type"], p["words"]), ("Decode", "cpu", "Q4_0", ["SmolLM2-135M"]))
        self.assertEqual(p["key_name"], "Decode/SmolLM2-135M/q4_0")

    def test_kernel_names(self):
        r = runs.normalize({"name": "BM_QuantMatmul/gemv_Q4_K/rows:2048/k:5632", "real_time": 2.0, "time_unit": "us",
                            "bytes_per_second": 5e9, "GFLOPS": 20.0, "iterations": 10, "label": "avx2"})
        self.assertEqual((r["kind"], r["op"], r["type"], r["shape"], r["backend"]), ("kernel", "gemv", "Q4_K", "2048x5632", "cpu"))
        self.assertEqual(r["metrics"]["GB_per_s"], 5.0)
        self.assertEqual(r["metrics"]["GFLOP_per_s"], 20.0)
        self.assertEqual(r["metrics"]["time_ns"], 2000.0)

    def test_backend_component_and_unknown_counters(self):
        r = runs.normalize({"name": "GEMV/4096x4096/Q4_K/vulkan/real_time", "real_time": 1.0, "time_unit": "ms",
                            "GB/s": 90.0, "GFLOP/s": 300.0, "occupancy": 0.5})
        self.assertEqual((r["backend"], r["kind"], r["type"], r["op"], r["shape"]), ("vulkan", "kernel", "Q4_K", "GEMV", "4096x4096"))
        self.assertEqual(r["key"], "vulkan:GEMV/4096x4096/Q4_K/vulkan")
        self.assertEqual(r["counters"]["occupancy"], 0.5)
        self.assertEqual((r["metrics"]["GB_per_s"], r["metrics"]["GFLOP_per_s"]), (90.0, 300.0))
        r = runs.normalize({"name": "Prefill128/backend:metal/Qwen2.5-0.5B/Q5_K_M", "tok/s": 10.0})
        self.assertEqual((r["backend"], r["kind"], r["model"], r["type"]), ("metal", "prefill", "Qwen2.5-0.5B", "Q5_K_M"))

    def test_bandwidth(self):
        results = [runs.normalize({"name": "MemoryReadBandwidth/1GiB/2threads/iterations:1", "bandwidth_GBps": 15.0}),
                   runs.normalize({"name": "BM_MemoryReadBandwidth1Thread/iterations:1", "bandwidth_GBps": 11.0})]
        self.assertEqual([r["kind"] for r in results], ["bandwidth", "bandwidth"])
        self.assertEqual(runs.bandwidth_from_results(results), (15.0, 2, 11.0))

    def test_plain_google_benchmark_file(self):
        run = runs.load(fixture("gbench-raw.json"))
        vk = run.by_key["vulkan:Decode/vulkan/SmolLM2-135M/q4_0"]
        self.assertEqual(vk["metrics"]["tok_per_s"], 200.0)  # the median aggregate, not a repetition
        self.assertEqual(vk["counters"]["joules_per_token"], 0.5)
        self.assertEqual(sum(1 for r in run.results if r["key"] == vk["key"]), 1)
        err = run.by_key["cpu:Decode/SmolLM2-135M/f16"]
        self.assertIn("could not be generated", err["error"])
        self.assertEqual(run.backends, ["cpu", "vulkan"])
        self.assertAlmostEqual(run.machine["memory_read_bandwidth_GBps"],
                               run.by_key["cpu:MemoryReadBandwidth/1GiB/2threads"]["metrics"]["GB_per_s"])

    def test_page_of_a_plain_file(self):
        run = runs.load(fixture("gbench-raw.json"))
        doc = htmltree.parse(page.dashboard([run]))
        found = charts_with_tables(doc)
        vk = found["roofline"][0].find(cls="point", data_key="vulkan:GEMV/4096x4096/Q4_K/vulkan")
        self.assertEqual(data_value(vk), 335.5)
        self.assertEqual(vk.attrs["fill"], "none")  # hollow: not the CPU
        bar = found["decode"][0].find("rect", cls="bar", data_key="vulkan:Decode/vulkan/SmolLM2-135M/q4_0")
        self.assertEqual(data_value(bar), 200.0)
        rows = htmltree.table_rows(doc.find("table", data_table="all-results"))
        err = next(r for r in rows if r[0].text() == "Decode/SmolLM2-135M/f16/min_time:2.000")
        self.assertIn("could not be generated", err[-1].text())
        headers = [th.text() for th in doc.find("table", data_table="all-results").find_all("th")]
        self.assertIn("joules_per_token", headers)
        self.assertIn("occupancy", headers)

    def test_not_a_run_file(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write('{"hello": 1}')
        try:
            with self.assertRaises(runs.RunFileError):
                runs.load(f.name)
        finally:
            os.unlink(f.name)


class LatestRunPage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.latest = runs.load(fixture("run-quick.json"))
        cls.html = page.dashboard([cls.latest])
        cls.doc = htmltree.parse(cls.html)

    def test_recorded_run_is_real(self):
        d = load_json("run-quick.json")
        self.assertEqual(d["schema"], runs.SCHEMA)
        self.assertTrue(d["google_benchmark"]["benchmarks"])
        self.assertTrue(all(r["backend"] == "cpu" for r in d["results"]))

    def test_every_chart_has_its_table(self):
        found = charts_with_tables(self.doc)
        self.assertEqual(set(found), {"decode", "prefill", "roofline"})
        for cid, (svg, table) in found.items():
            self.assertEqual(table.attrs["data-table"], cid)
            self.assertTrue(htmltree.table_rows(table), cid)
            self.assertTrue(svg.find_all(cls="bar") or svg.find_all(cls="point"), cid)

    def test_decode_numbers_equal_inputs(self):
        svg, table = charts_with_tables(self.doc)["decode"]
        rows = rows_by_first_cells(table, 3)
        decode = self.latest.of_kind("decode")
        self.assertTrue(decode)
        for r in decode:
            m = r["metrics"]
            bar = svg.find("rect", cls="bar", data_key=r["key"])
            self.assertEqual(data_value(bar), m["tok_per_s"])
            ref = svg.find("line", cls="ref", data_key=r["key"])
            self.assertEqual(data_value(ref), m["roofline_tok_per_s"])
            row = rows[(r["model"], r["type"], "cpu")]
            self.assertEqual(data_value(row[3]), m["tok_per_s"])
            self.assertEqual(row[3].text(), charts.fmt(m["tok_per_s"]))
            self.assertEqual(data_value(row[4]), m["roofline_tok_per_s"])
            self.assertEqual(data_value(row[5]), m["tok_per_s"] / m["roofline_tok_per_s"])
            self.assertEqual(data_value(row[6]), m["weight_MB"])
            self.assertEqual(len(rows), len(decode))

    def test_prefill_numbers_equal_inputs(self):
        svg, table = charts_with_tables(self.doc)["prefill"]
        rows = rows_by_first_cells(table, 3)
        prefill = self.latest.of_kind("prefill")
        self.assertTrue(prefill)
        for r in prefill:
            tok = r["metrics"]["tok_per_s"]
            self.assertEqual(data_value(svg.find("rect", cls="bar", data_key=r["key"])), tok)
            row = rows[(r["model"], r["type"], "cpu")]
            self.assertEqual(data_value(row[3]), tok)
            self.assertEqual(row[3].text(), charts.fmt(tok))

    def test_roofline_numbers_equal_inputs(self):
        svg, table = charts_with_tables(self.doc)["roofline"]
        kernels = [r for r in self.latest.of_kind("kernel") if "GFLOP_per_s" in r["metrics"] and "GB_per_s" in r["metrics"]]
        self.assertGreaterEqual(len(kernels), 40)
        rows = rows_by_first_cells(table, 4)
        self.assertEqual(len(rows), len(kernels))
        m = self.latest.machine
        for r in kernels:
            gf, gb = r["metrics"]["GFLOP_per_s"], r["metrics"]["GB_per_s"]
            self.assertEqual(data_value(svg.find(cls="point", data_key=r["key"])), gf)
            row = rows[(r["op"], r["type"], r["shape"], "cpu")]
            self.assertEqual([data_value(c) for c in row[4:7]], [gb, gf, gf / gb])
            bw, peak = analysis.roof_for(m, r["type"])
            self.assertEqual(data_value(row[7]), min(gf / gb * bw, peak))
        # The ceilings are the machine's measured bandwidths and estimated peaks.
        ceilings = {c.attrs["data-key"]: data_value(c) for c in svg.find_all(cls="ceiling")}
        self.assertEqual(ceilings["f32 FMA, 1 core"], m["memory_read_bandwidth_1thread_GBps"])
        self.assertEqual(ceilings["f32 FMA, 2 cores"], m["memory_read_bandwidth_GBps"])
        text = svg.text()
        self.assertIn(charts.fmt(m["peak_gflops"]["per_core"]) + " GFLOP/s", text)
        self.assertIn(charts.fmt(m["peak_gflops"]["int8_all_cores"]) + " GFLOP/s", text)

    def test_stamp(self):
        m = self.latest.machine
        machine = {r[0].text(): r[1].text() for r in htmltree.table_rows(self.doc.find("table", data_table="machine"))}
        self.assertIn(self.latest.commit, machine["commit"])
        self.assertEqual(machine["date"], self.latest.date)
        self.assertEqual(machine["CPU"], m["cpu_model"])
        self.assertEqual(machine["cores / threads"], "%d / %d" % (m["cores"], m["threads"]))
        self.assertEqual(machine["SIMD"], " ".join(m["simd"]))
        for v in m["vulkan"]:
            self.assertIn(v["device"], machine["Vulkan"])
            self.assertIn(v["driver"], machine["Vulkan"])
        self.assertIn(charts.fmt(m["memory_read_bandwidth_GBps"]) + " GB/s", machine["memory read bandwidth"])

    def test_all_results_table_has_every_benchmark_and_counter(self):
        table = self.doc.find("table", data_table="all-results")
        rows = htmltree.table_rows(table)
        self.assertEqual([r[0].text() for r in rows], [r["name"] for r in self.latest.results])
        headers = [th.text() for th in table.find_all("th")]
        for r in self.latest.results:
            for k in r["counters"]:
                self.assertIn(k, headers)

    def test_self_contained(self):
        self.assertNotRegex(self.html, r"(?i)\b(src|href)\s*=\s*[\"'](?!#)")
        self.assertNotRegex(self.html, r"(?i)https?://")
        self.assertNotRegex(self.html, r"(?i)@import|url\(")
        self.assertIn("<svg", self.html)
        self.assertIn("One quick run of this machine only", self.html)


class History(unittest.TestCase):
    EXPECTED = {  # (run index, key) flagged; see tests/dashboard/make_fixtures.py
        (1, "cpu:Decode/SmolLM2-135M/q4_0"),
        (1, "cpu:BM_QuantMatmul/gemv_Q4_0/rows:2048/k:5632"),
        (2, "cpu:Decode/SmolLM2-135M/q8_0"),
        (2, "cpu:Prefill128/SmolLM2-135M/q8_0"),
        (2, "cpu:BM_QuantMatmul/gemm128_Q4_0/rows:2048/k:5632"),
    }

    @classmethod
    def setUpClass(cls):
        cls.all_runs = history_runs()
        cls.same = [r for r in cls.all_runs if r.machine["cpu_model"] == "AMD EPYC"]
        cls.html = page.dashboard(cls.all_runs)
        cls.doc = htmltree.parse(cls.html)

    def test_analysis_flags_exactly_the_changes_over_5_percent(self):
        hist = analysis.history(self.same)
        flagged = {(i, k) for k, h in hist.items() for i in h["regressions"]}
        self.assertEqual(flagged, self.EXPECTED)
        # Exactly -5% and -4.9% stay unflagged; the numbers really are those.
        h = hist["cpu:Decode/SmolLM2-135M/q8_0"]
        self.assertAlmostEqual(h["changes"][1], -0.05, places=12)
        self.assertNotIn(1, h["regressions"])
        h = hist["cpu:BM_QuantMatmul/gemv_Q8_0/rows:2048/k:5632"]
        self.assertAlmostEqual(h["changes"][1], -0.049, places=12)
        self.assertEqual(h["regressions"], [])
        self.assertEqual(hist["cpu:Prefill128/Qwen2.5-0.5B/q4_0"]["improvements"], [1])

    def test_threshold_edges(self):
        self.assertFalse(analysis.is_regression(100.0, 95.0, True))
        self.assertTrue(analysis.is_regression(100.0, 94.99, True))
        self.assertFalse(analysis.is_regression(100.0, 105.0, False))
        self.assertTrue(analysis.is_regression(100.0, 105.01, False))
        self.assertTrue(analysis.is_regression(100.0, 97.0, True, threshold=0.02))

    def test_other_machine_left_out(self):
        self.assertEqual(len(self.same), 3)
        self.assertIn("1 run(s) from other machines or of another mode are left out", self.html)
        self.assertIn("History: 3 quick runs on this machine", self.html)

    def test_other_mode_left_out(self):
        full = runs.load(fixture("history-2.json"))
        full.data["mode"] = "full"
        doc = htmltree.parse(page.dashboard(self.same[:1] + [full] + self.same[2:]))
        rows = htmltree.table_rows(doc.find("table", data_table="regressions"))
        self.assertEqual({r[0].text() for r in rows}, {self.same[2].label})  # run 3 against run 1 only

    def test_regressions_table(self):
        table = self.doc.find("table", data_table="regressions")
        rows = htmltree.table_rows(table)
        self.assertEqual(len(rows), len(self.EXPECTED))
        hist = analysis.history(self.same)
        got = set()
        for row in rows:
            tr = row[0].parent
            self.assertIn("regression", tr.classes)
            run = next(i for i, r in enumerate(self.same) if r.label == row[0].text())
            key = next(k for k, h in hist.items() if page.long_title(h["result"]) == row[1].text())
            got.add((run, key))
            h = hist[key]
            self.assertEqual(data_value(row[4]), h["values"][run])
            self.assertEqual(data_value(row[5]), h["changes"][run])
        self.assertEqual(got, self.EXPECTED)
        self.assertIn("5 regressions", self.doc.find("header").text())

    def test_history_charts_and_tables(self):
        found = charts_with_tables(self.doc)
        self.assertTrue({"history-decode", "history-prefill", "history-kernels"} <= set(found))
        hist = analysis.history(self.same)
        for cid in ("history-decode", "history-prefill", "history-kernels"):
            svg, table = found[cid]
            rows = htmltree.table_rows(table)
            self.assertTrue(rows)
            kinds = {"history-decode": ("decode",), "history-prefill": ("prefill",)}.get(cid, ("kernel", "bandwidth"))
            for row in rows:
                key = next(k for k, h in hist.items()
                           if h["result"]["kind"] in kinds and page.result_title(h["result"]) == row[0].text())
                h = hist[key]
                for i, c in enumerate(row[2:]):
                    v = h["values"][i]
                    if v is None:
                        self.assertEqual(c.text(), "")
                        continue
                    self.assertEqual(data_value(c), v)
                    self.assertTrue(c.text().startswith(charts.fmt(v)))
                    self.assertEqual("regression" in c.classes, (i, key) in self.EXPECTED, (cid, key, i))
        # Decode/prefill charts: one line per benchmark; the flagged points are exactly the expected ones.
        for cid, kind in (("history-decode", "decode"), ("history-prefill", "prefill")):
            svg = found[cid][0]
            red = {(int(p.attrs["data-run"]), p.attrs["data-key"]) for p in svg.find_all(cls="regression")}
            self.assertEqual(red, {(i, k) for i, k in self.EXPECTED if hist[k]["result"]["kind"] == kind})
            for p in svg.find_all(cls="point"):
                h = hist[p.attrs["data-key"]]
                self.assertAlmostEqual(data_value(p), analysis.relative_index(h["values"])[int(p.attrs["data-run"])], places=9)
        # Kernel chart: a group is ringed in the runs where one of its shapes regressed.
        svg = found["history-kernels"][0]
        red = {(int(p.attrs["data-run"]), p.attrs["data-key"]) for p in svg.find_all(cls="regression")}
        self.assertEqual(red, {(1, "group:gemv Q4_0 · cpu"), (2, "group:gemm128 Q4_0 · cpu")})

    def test_vulkan_result_grouped_by_backend(self):
        svg, table = charts_with_tables(self.doc)["decode"]
        bars = [b.attrs["data-key"] for b in svg.find_all("rect", cls="bar")]
        self.assertIn("vulkan:Decode/vulkan/SmolLM2-135M/q4_0", bars)
        labels = [t.text() for t in svg.find_all("text")]
        self.assertIn("Q4_0 · vulkan", labels)
        self.assertIn(("SmolLM2-135M", "Q4_0", "vulkan"), rows_by_first_cells(table, 3))

    def test_threshold_option(self):
        html = page.dashboard(self.all_runs, threshold=0.25)
        doc = htmltree.parse(html)
        self.assertIsNone(doc.find("table", data_table="regressions"))
        html = page.dashboard(self.all_runs, threshold=0.01)
        rows = htmltree.table_rows(htmltree.parse(html).find("table", data_table="regressions"))
        self.assertGreater(len(rows), len(self.EXPECTED))


class Compare(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.before = runs.load(fixture("history-1.json"))
        cls.after = runs.load(fixture("history-2.json"))
        cls.html = page.compare_page(cls.before, cls.after)
        cls.doc = htmltree.parse(cls.html)

    def test_charts_and_tables(self):
        found = charts_with_tables(self.doc)
        self.assertEqual(set(found), {"compare-decode", "compare-prefill", "compare-kernels"})

    def test_ratios_equal_inputs(self):
        found = charts_with_tables(self.doc)
        checked = 0
        for cid in found:
            svg, table = found[cid]
            for row in htmltree.table_rows(table):
                checked += 1
                if cid == "compare-kernels":
                    key = next(r["key"] for r in self.after.results if page.result_title(r) == row[0].text())
                    b_cell, a_cell, ratio_cell = row[2], row[3], row[4]
                else:
                    key = next(r["key"] for r in self.after.of_kind(cid.split("-")[1])
                               if (r["model"], r["type"], r["backend"]) == tuple(c.text() for c in row[:3]))
                    b_cell, a_cell, ratio_cell = row[3], row[4], row[5]
                b, a = self.before.by_key[key], self.after.by_key[key]
                metric, _ = runs.primary_metric(a)
                bv, av = b["metrics"][metric], a["metrics"][metric]
                self.assertEqual(data_value(b_cell), bv)
                self.assertEqual(data_value(a_cell), av)
                self.assertEqual(data_value(ratio_cell), av / bv)
                self.assertEqual(ratio_cell.text(), "×%.3f" % (av / bv))
                flagged = "regression" in ratio_cell.classes
                self.assertEqual(flagged, analysis.is_regression(bv, av, True), key)
                if cid == "compare-kernels":
                    self.assertEqual(data_value(svg.find("rect", data_key=key)), av / bv)
                else:
                    self.assertEqual(data_value(svg.find("rect", data_key=key + "#before")), bv)
                    self.assertEqual(data_value(svg.find("rect", data_key=key + "#after")), av)
        self.assertEqual(checked, len(self.after.results))

    def test_known_changes(self):
        rows = {r["key"]: r for r in analysis.compare(self.before, self.after)[0]}
        self.assertAlmostEqual(rows["cpu:Decode/SmolLM2-135M/q4_0"]["ratio"], 0.94, places=12)
        self.assertTrue(rows["cpu:Decode/SmolLM2-135M/q4_0"]["regression"])
        self.assertFalse(rows["cpu:Decode/SmolLM2-135M/q8_0"]["regression"])  # exactly -5%
        self.assertTrue(rows["cpu:Prefill128/Qwen2.5-0.5B/q4_0"]["improvement"])
        self.assertTrue(rows["cpu:BM_QuantMatmul/gemv_Q4_0/rows:2048/k:5632"]["regression"])
        self.assertFalse(rows["cpu:BM_QuantMatmul/gemv_Q8_0/rows:2048/k:5632"]["regression"])
        summary = self.doc.find("section", id="stamps").text()
        self.assertIn("2 slower", summary)
        self.assertIn("1 faster", summary)

    def test_stamps_side_by_side(self):
        table = self.doc.find("table", data_table="stamps")
        rows = {r[0].text(): (r[1].text(), r[2].text()) for r in htmltree.table_rows(table)}
        self.assertIn(self.before.commit, rows["commit"][0])
        self.assertIn(self.after.commit, rows["commit"][1])

    def test_only_in_one_run(self):
        html = page.compare_page(runs.load(fixture("history-2.json")), runs.load(fixture("history-3.json")))
        table = htmltree.parse(html).find("table", data_table="only-one")
        got = {tuple(c.text() for c in r) for r in htmltree.table_rows(table)}
        self.assertEqual(got, {("BM_QuantMatmul/gemv_Q4_0/rows:576/k:1536 · cpu", "before"),
                               ("Decode/vulkan/SmolLM2-135M/q4_0 · vulkan", "after")})

    def test_self_contained(self):
        self.assertNotRegex(self.html, r"(?i)https?://")
        self.assertNotRegex(self.html, r"(?i)\b(src|href)\s*=\s*[\"'](?!#)")


class CommandLine(unittest.TestCase):
    def run_cli(self, *args):
        return subprocess.run([sys.executable, os.path.join(PERF, "dashboard.py")] + list(args),
                              capture_output=True, text=True, timeout=60)

    def test_folder_and_compare(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "dash.html")
            r = self.run_cli(FIX, "-o", out)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(out, encoding="utf-8") as f:
                text = f.read()
            self.assertIn('data-chart="history-decode"', text)
            out = os.path.join(d, "cmp.html")
            r = self.run_cli("--compare", fixture("history-1.json"), fixture("history-2.json"), "-o", out)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(out, encoding="utf-8") as f:
                self.assertIn('data-chart="compare-kernels"', f.read())

    def test_errors(self):
        r = self.run_cli("--compare", fixture("history-1.json"))
        self.assertNotEqual(r.returncode, 0)
        r = self.run_cli(os.path.join(FIX, "no-such-file.json"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("dashboard: error:", r.stderr)

    def test_run_script_parses(self):
        r = subprocess.run([sys.executable, os.path.join(PERF, "run"), "--help"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("--quick", r.stdout)


class Charts(unittest.TestCase):
    def test_fmt(self):
        self.assertEqual([charts.fmt(v) for v in (0, 0.012345, 1.23456, 12.3456, 123.456, 12345.6)],
                         ["0", "0.01235", "1.235", "12.35", "123.5", "12,346"])

    def test_ticks_cover_range(self):
        for lo, hi in ((0, 208.0), (0, 1.0), (0.8, 1.2), (87.3, 102.4)):
            t = charts._ticks(lo, hi)
            self.assertLessEqual(t[0], lo)
            self.assertGreaterEqual(t[-1], hi)

    def test_empty_charts_say_so(self):
        svg = charts.bar_chart("x", "t", "u", [])
        self.assertIn("no results", svg)
        self.assertIsNotNone(re.search(r'<svg class="chart" data-chart="x"', svg))


if __name__ == "__main__":
    unittest.main()
