"""The dashboard at ``/`` in a real headless Chromium (Debian's
``chromium``) against a server holding data: the DOM it builds (one chart
per series, every point drawn) and a screenshot of what it drew, on a
laptop-sized and a phone-sized window. Skipped where Chromium is absent
(a failure under CI=true, where .ci/run installs it).
Also, without a browser: the page loads nothing from another origin."""
from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import unittest
import zlib
from typing import List, Tuple

from client import Client, Server
from tests.support import BOUND, TestCase, wait_until
from tests.support.dependencies import requires
from tests.support.graphite import http_get

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)

#: The line colour of the light theme (--line in dashboard.css).
LINE = (0x2F, 0x6F, 0xED)


def decode_png(data: bytes) -> Tuple[int, int, List[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    at, idat, width, height, channels = 8, b"", 0, 0, 0
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        at += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: List[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(line) if channels == 3 else bytes(b for i, b in enumerate(line) if i % 4 != 3))
        previous = line
    return width, height, rows


def line_pixels(rows: List[bytes], top: int, bottom: int) -> int:
    """Pixels close to the line colour in rows [top, bottom)."""
    count = 0
    for row in rows[top:bottom]:
        for x in range(0, len(row), 3):
            r, g, b = row[x], row[x + 1], row[x + 2]
            if abs(r - LINE[0]) < 40 and abs(g - LINE[1]) < 40 and abs(b - LINE[2]) < 40:
                count += 1
    return count


class Assets(TestCase):
    def test_the_page_loads_nothing_from_another_origin(self) -> None:
        with Server(http_port=0) as server:
            base = server.dashboard_url
            status, kind, html = http_get(base)
            self.assertEqual((status, kind), (200, "text/html; charset=utf-8"))
            loaded = re.findall(rb'(?:src|href)="([^"]+)"', html)
            self.assertEqual(sorted(loaded), [b"dashboard.css", b"dashboard.js"])
            for name, wanted in ((b"dashboard.js", "text/javascript"), (b"dashboard.css", "text/css")):
                status, kind, body = http_get(base + name.decode())
                self.assertEqual(status, 200)
                self.assertTrue(kind.startswith(wanted), kind)
                self.assertNotRegex(body, rb"https?://|//[a-z0-9.-]+\.[a-z]{2,}/|@import")
            status, _, _ = http_get(base + "nothing-here")
            self.assertEqual(status, 404)


@requires("Chromium is not installed (Debian package chromium)" if CHROMIUM is None else None)
class InChromium(TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.server = Server(graphite_port=0, http_port=0)
        self.addCleanup(self.server.close)
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        self.addCleanup(shutil.rmtree, self.profile, True)
        now = int(time.time())
        self.counts = {}
        lines = []
        for host, gap in ((1, None), (2, 7)):
            n = 0
            for i in range(80):
                if gap is not None and i % 10 == gap:
                    continue
                lines.append(b"dash.host%d.cpu %d %d\n" % (host, 40 + (i % 20) * 2 + host, now - 10 * i))
                n += 1
            self.counts[f"dash.host{host}.cpu"] = n
        with socket.create_connection(self.server.graphite_address, timeout=BOUND) as sock:
            sock.sendall(b"".join(lines))
        with Client(*self.server.address, timeout=BOUND) as client:
            wait_until(lambda: sum(map(len, client.get("*").values())) == len(lines), timeout=BOUND,
                       message="the points to be stored")
        self.url = self.server.dashboard_url + "#glob=dash.*.cpu&range=15min"

    def chromium(self, *args: str, size: str) -> subprocess.CompletedProcess[bytes]:
        # Loopback only: no background traffic, no first-run or update checks.
        argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--force-color-profile=srgb", "--hide-scrollbars",
                f"--user-data-dir={self.profile}", f"--window-size={size}",
                "--virtual-time-budget=5000", *args, self.url]
        done = subprocess.run(argv, capture_output=True, timeout=90)
        self.assertEqual(done.returncode, 0, done.stderr[-2000:])
        return done

    def test_charts_in_the_dom(self) -> None:
        dom = self.chromium("--dump-dom", size="1280,900").stdout.decode()
        self.assertIn('data-state="ready"', dom)
        charts = re.findall(r'<section class="chart" data-target="([^"]+)" data-points="(\d+)" data-drawn="(\d+)"', dom)
        self.assertEqual([c[0] for c in charts], ["dash.host1.cpu", "dash.host2.cpu"])
        for target, points, drawn in charts:
            self.assertEqual(int(points), self.counts[target])
            self.assertEqual(int(drawn), self.counts[target])
        self.assertRegex(dom, r'id="status"[^>]*>Updated ')

    def screenshot(self, size: str) -> Tuple[int, int, List[bytes]]:
        path = os.path.join(self.profile, "shot.png")
        self.chromium(f"--screenshot={path}", size=size)
        with open(path, "rb") as f:
            return decode_png(f.read())

    def test_screenshot_on_a_laptop_shows_two_charts_side_by_side(self) -> None:
        width, height, rows = self.screenshot("1280,800")
        self.assertEqual((width, height), (1280, 800))
        left = [row[: width // 2 * 3] for row in rows]
        right = [row[width // 2 * 3:] for row in rows]
        self.assertGreater(line_pixels(left, 100, 400), 200, "no line drawn in the left chart")
        self.assertGreater(line_pixels(right, 100, 400), 200, "no line drawn in the right chart")

    def test_screenshot_on_a_phone_stacks_the_charts(self) -> None:
        width, height, rows = self.screenshot("390,844")
        self.assertEqual(width, 390)
        # One column: a line in the first chart's band and in the second's.
        self.assertGreater(line_pixels(rows, 100, 330), 100, "no line in the first chart")
        self.assertGreater(line_pixels(rows, 330, 600), 100, "no line in the second chart")
        self.assertLess(line_pixels(rows, 650, height), 20, "something drawn below the two charts")


if __name__ == "__main__":
    unittest.main()
