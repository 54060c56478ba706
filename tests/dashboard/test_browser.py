"""Browser test: headless Chromium loads the generated pages from disk with the network off,
finds no console errors or requests, takes a screenshot, and every chart and its marks rendered
with a non-zero size.

    python3 tests/dashboard/test_browser.py     (exit 77 = skipped: no chromium)

Set DASHBOARD_SCREENSHOT_DIR to keep the screenshots (ctest keeps them in its build folder).
"""

import os
import struct
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIX = os.path.join(ROOT, "perf", "fixtures")
sys.dont_write_bytecode = True  # keep the source tree free of __pycache__
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "perf", "dashboard"))

import browser  # noqa: E402
import page  # noqa: E402
import runs  # noqa: E402

SKIP = 77


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise AssertionError("%s is not a PNG" % path)
    return struct.unpack(">II", head[16:24])


@unittest.skipUnless(browser.find_chromium(), "no chromium (apt-get install chromium)")
class Browser(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = os.environ.get("DASHBOARD_SCREENSHOT_DIR") or cls.tmp.name
        os.makedirs(cls.out, exist_ok=True)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def load(self, name, html, expected_charts):
        path = os.path.join(self.tmp.name, name + ".html")
        with open(path, "w", encoding="utf-8") as f:
            f.write(html)
        shot = os.path.join(self.out, name + ".png")
        report = browser.check_page(path, screenshot=shot, width=1280)
        self.assertEqual(report["errors"], [])
        self.assertEqual(report["network_requests"], [])
        self.assertEqual(browser.problems(report), [])
        ids = {c["id"] for c in report["charts"]}
        self.assertEqual(ids, expected_charts)
        for c in report["charts"]:
            self.assertGreater(c["w"], 100, c)
            self.assertGreater(c["h"], 50, c)
            self.assertGreater(c["marks"], 0, c)
            self.assertEqual(c["marks_nonzero"], c["marks"], c)
            self.assertEqual(c["table"], c["id"])
        w, h = png_size(shot)
        self.assertEqual(w, 1280)
        self.assertGreater(h, 1000)
        self.assertGreater(os.path.getsize(shot), 20000)
        return report

    def test_dashboard_with_history(self):
        loaded = runs.load_many([FIX])
        self.load("dashboard", page.dashboard(loaded),
                  {"decode", "prefill", "roofline", "history-decode", "history-prefill", "history-kernels"})

    def test_compare(self):
        html = page.compare_page(runs.load(os.path.join(FIX, "history-1.json")),
                                 runs.load(os.path.join(FIX, "history-3.json")))
        self.load("compare", html, {"compare-decode", "compare-prefill", "compare-kernels"})

    def test_detects_errors_and_requests(self):
        """The checker itself: a page that misbehaves is caught."""
        path = os.path.join(self.tmp.name, "bad.html")
        with open(path, "w") as f:
            f.write('<!DOCTYPE html><html><body><img src="http://example.invalid/x.png">'
                    '<script>console.error("boom"); undefined_function();</script></body></html>')
        report = browser.check_page(path)
        text = " ".join(report["errors"])
        self.assertIn("boom", text)
        self.assertIn("undefined_function", text)
        self.assertTrue(report["network_requests"] or "load failed" in text, report)
        self.assertIn("no charts", browser.problems(report))


if __name__ == "__main__":
    if not browser.find_chromium():
        print("test_browser: skipped: no chromium (apt-get install chromium)")
        sys.exit(SKIP)
    unittest.main()
