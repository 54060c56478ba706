#!/usr/bin/env python3
"""Turns perf run files into one self-contained HTML page (inline SVG, no network at view time).

    perf/dashboard.py RUN.json [RUN.json | FOLDER ...] [-o dashboard.html]   latest run + history
    perf/dashboard.py --compare BEFORE.json AFTER.json [-o compare.html]   two runs side by side

Run files come from perf/run (plain Google Benchmark JSON is read too). The history compares each
run with the previous one on the same machine and highlights drops of more than --threshold %.
"""
import argparse
import os
import sys

sys.dont_write_bytecode = True  # keep the source tree free of __pycache__
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboard"))

import analysis  # noqa: E402
import page  # noqa: E402
import runs  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", help="run files or folders of them")
    ap.add_argument("-o", "--output", help="HTML file to write (default: dashboard.html, or compare.html)")
    ap.add_argument("--compare", action="store_true", help="compare two runs: BEFORE AFTER")
    ap.add_argument("--threshold", type=float, default=analysis.THRESHOLD * 100,
                    help="percent change flagged as a regression (default %(default)s)")
    a = ap.parse_args(argv)
    threshold = a.threshold / 100.0
    try:
        if a.compare:
            if len(a.inputs) != 2:
                ap.error("--compare takes exactly two run files: BEFORE AFTER")
            before, after = runs.load(a.inputs[0]), runs.load(a.inputs[1])
            text = page.compare_page(before, after, threshold, sources=[os.path.basename(p) for p in a.inputs])
            out = a.output or "compare.html"
        else:
            loaded = runs.load_many(a.inputs)
            if not loaded:
                ap.error("no run files found in %s" % " ".join(a.inputs))
            text = page.dashboard(loaded, threshold,
                                  sources=[os.path.basename(r.path) for r in loaded if r.path])
            out = a.output or "dashboard.html"
    except (OSError, runs.RunFileError) as e:
        print("dashboard: error: %s" % e, file=sys.stderr)
        return 1
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    print("dashboard: wrote %s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
