#!/usr/bin/env python3
"""Loads a page in headless Chromium with the network off and reports what happened.

    python3 tests/dashboard/browser.py PAGE.html [--screenshot OUT.png] [--width 1280] [--max-height N]

Talks to Chromium over its DevTools protocol (a small WebSocket client on the standard library):
collects console errors, uncaught exceptions, log errors and any request that is not file: or
data:, measures every chart and its marks, and takes a full-page screenshot. Prints the report as
JSON; exits 1 when the page had errors or a chart drew nothing.
"""

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium():
    env = os.environ.get("CHROMIUM")
    if env:
        return env if shutil.which(env) or os.path.exists(env) else None
    for n in CHROMIUM_NAMES:
        p = shutil.which(n)
        if p:
            return p
    return None


class WebSocket:
    """Just enough of RFC 6455 for the DevTools protocol: text frames, client masking."""

    def __init__(self, url, timeout=30):
        assert url.startswith("ws://")
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port or 80)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, hostport, key))
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            head += chunk
        head, _, self.buf = head.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError("websocket handshake refused: %r" % head[:200])

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("websocket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, text, opcode=1):
        data = text.encode() if isinstance(text, str) else text
        head = bytes([0x80 | opcode])
        n = len(data)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(head + mask + masked)

    def recv(self):
        """The next text message (fragments joined); answers pings."""
        parts = []
        while True:
            b0, b1 = self._read(2)
            opcode, fin = b0 & 0x0F, b0 & 0x80
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 9:  # ping
                self.send(payload, opcode=10)
                continue
            if opcode == 8:
                raise ConnectionError("websocket closed by the browser")
            if opcode in (0, 1, 2):
                parts.append(payload)
                if fin:
                    return b"".join(parts).decode("utf-8", "replace")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class DevTools:
    def __init__(self, ws_url):
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.events = []

    def call(self, method, params=None, timeout=30):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params or {}}))
        deadline = time.time() + timeout
        while time.time() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)
        raise TimeoutError(method)

    def wait_event(self, name, timeout=30):
        for e in self.events:
            if e["method"] == name:
                return e
        deadline = time.time() + timeout
        while time.time() < deadline:
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == name:
                    return msg
        raise TimeoutError(name)

    def drain(self, seconds):
        """Collects events for a little while (late console messages)."""
        self.ws.sock.settimeout(seconds)
        try:
            while True:
                msg = json.loads(self.ws.recv())
                if "method" in msg:
                    self.events.append(msg)
        except (socket.timeout, TimeoutError):
            pass
        finally:
            self.ws.sock.settimeout(30)


# Runs in the page: sizes of every chart and its marks, and the tables.
MEASURE_JS = r"""
(function () {
  function box(e) { var r = e.getBoundingClientRect(); return {w: r.width, h: r.height}; }
  var out = {charts: [], tables: [], title: document.title};
  var svgs = document.querySelectorAll('svg.chart');
  for (var i = 0; i < svgs.length; i++) {
    var s = svgs[i], b = box(s);
    var marks = s.querySelectorAll('.bar, .point, .line, .ceiling, .ref');
    var nonzero = 0;
    for (var j = 0; j < marks.length; j++) { var m = box(marks[j]); if (m.w > 0 || m.h > 0) nonzero++; }
    var fig = s.closest('figure');
    var tbl = fig ? fig.querySelector('details.table-view table') : null;
    out.charts.push({id: s.getAttribute('data-chart'), w: b.w, h: b.h, marks: marks.length,
                     marks_nonzero: nonzero, table: tbl ? tbl.getAttribute('data-table') : null});
  }
  var ts = document.querySelectorAll('table');
  for (var k = 0; k < ts.length; k++) out.tables.push({id: ts[k].getAttribute('data-table'), rows: ts[k].rows.length});
  out.width = document.documentElement.scrollWidth;
  out.height = document.documentElement.scrollHeight;
  return JSON.stringify(out);
})()
"""


def check_page(page, screenshot=None, width=1280, max_height=None, open_tables=False, timeout=60):
    """Loads `page` (a file path) and returns the report dict."""
    chromium = find_chromium()
    if not chromium:
        raise FileNotFoundError("no chromium found (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="mllm-dash-chromium-")
    args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--disable-default-apps", "--disable-dev-shm-usage", "--mute-audio",
            "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
            "--host-resolver-rules=MAP * ~NOTFOUND", "--remote-debugging-port=0",
            "--remote-allow-origins=*", "--user-data-dir=" + profile,
            "--window-size=%d,900" % width, "about:blank"]
    errlog = open(os.path.join(profile, "chromium-stderr.txt"), "w+b")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=errlog)
    dt = None
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.time() + timeout
        port = None
        while time.time() < deadline:
            if proc.poll() is not None:
                errlog.seek(0)
                raise RuntimeError("chromium exited: %s" % errlog.read().decode(errors="replace")[-2000:])
            if os.path.exists(port_file):
                with open(port_file) as f:
                    lines = f.read().split()
                if lines:
                    port = int(lines[0])
                    break
            time.sleep(0.1)
        if port is None:
            raise TimeoutError("chromium did not open its DevTools port")
        targets = None
        while time.time() < deadline:
            try:
                with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                        "http://127.0.0.1:%d/json/list" % port, timeout=10) as r:
                    targets = [t for t in json.loads(r.read()) if t.get("type") == "page"]
                if targets:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        if not targets:
            raise TimeoutError("chromium has no page target")
        dt = DevTools(targets[0]["webSocketDebuggerUrl"])
        for m in ("Runtime.enable", "Log.enable", "Page.enable", "Network.enable"):
            dt.call(m)
        dt.call("Network.emulateNetworkConditions",
                {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        dt.call("Emulation.setDeviceMetricsOverride",
                {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False})
        url = "file://" + os.path.abspath(page)
        nav = dt.call("Page.navigate", {"url": url})
        if nav.get("errorText"):
            raise RuntimeError("navigation failed: %s" % nav["errorText"])
        dt.wait_event("Page.loadEventFired", timeout=timeout)
        if open_tables:
            dt.call("Runtime.evaluate", {"expression":
                    "document.querySelectorAll('details').forEach(function(d){d.open=true;})"})
        dt.drain(0.5)
        res = dt.call("Runtime.evaluate", {"expression": MEASURE_JS, "returnByValue": True})
        if res.get("exceptionDetails"):
            raise RuntimeError("measuring failed: %s" % res["exceptionDetails"])
        report = json.loads(res["result"]["value"])
        if screenshot:
            h = report["height"]
            if max_height:
                h = min(h, max_height)
            dt.call("Emulation.setDeviceMetricsOverride",
                    {"width": width, "height": int(h), "deviceScaleFactor": 1, "mobile": False})
            shot = dt.call("Page.captureScreenshot",
                           {"format": "png", "captureBeyondViewport": True,
                            "clip": {"x": 0, "y": 0, "width": width, "height": int(h), "scale": 1}})
            with open(screenshot, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
            report["screenshot"] = screenshot
        dt.drain(0.2)
        errors, requests = [], []
        for e in dt.events:
            m, p = e["method"], e.get("params", {})
            if m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                errors.append("exception: %s" % (d.get("exception", {}).get("description") or d.get("text")))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append("console.%s: %s" % (p["type"], " ".join(
                    str(a.get("value", a.get("description", ""))) for a in p.get("args", []))))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                errors.append("log: %s %s" % (p["entry"].get("text"), p["entry"].get("url", "")))
            elif m == "Network.requestWillBeSent":
                u = p.get("request", {}).get("url", "")
                if not (u.startswith("file:") or u.startswith("data:") or u == "about:blank"):
                    requests.append(u)
            elif m == "Network.loadingFailed":
                errors.append("load failed: %s" % p.get("errorText"))
        report["errors"] = errors
        report["network_requests"] = requests
        return report
    finally:
        if dt:
            dt.ws.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        errlog.close()
        shutil.rmtree(profile, ignore_errors=True)


def problems(report):
    """What is wrong with a page, from its report: errors, requests, charts that drew nothing."""
    out = list(report["errors"]) + ["network request: " + u for u in report["network_requests"]]
    if not report["charts"]:
        out.append("no charts")
    for c in report["charts"]:
        if not (c["w"] > 0 and c["h"] > 0):
            out.append("chart %s has size %sx%s" % (c["id"], c["w"], c["h"]))
        if c["marks"] == 0 or c["marks_nonzero"] != c["marks"]:
            out.append("chart %s: %d of %d marks drawn" % (c["id"], c["marks_nonzero"], c["marks"]))
        if not c["table"]:
            out.append("chart %s has no table under it" % c["id"])
    return out


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("page")
    ap.add_argument("--screenshot")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--max-height", type=int)
    ap.add_argument("--open-tables", action="store_true", help="open every table before the screenshot")
    a = ap.parse_args(argv)
    report = check_page(a.page, a.screenshot, a.width, a.max_height, a.open_tables)
    print(json.dumps(report, indent=1))
    bad = problems(report)
    for p in bad:
        print("problem: " + p, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
