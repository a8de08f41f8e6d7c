"""The Python objects ``get`` builds: exact values, exact types, order, no
leaks, and tuples kept out of the cycle collector (src/python/results.rs,
src/protocol/reply.rs)."""

import gc
import random
import struct
import sys
import tracemalloc

import client
from tests.support import TestCase, respond

TRICKY_VALUES = [
    "0.1", "0.5", "2.0", "301", "-7", "007.25", "-0.0", "0.30000000000000004",
    "1e+16", "4.2e-05", "5e-324", "1.7976931348623157e+308", "123456789012345.6",
    "9007199254740993", "100000000000000000000", "3.141592653589793", "-2.5e-300",
]


def parse_reference(reply: bytes) -> dict:
    """What ``get`` must return, computed the plain Python way."""
    result: dict = {}
    for line in reply.decode().split("\n")[1:-2]:
        key, value, timestamp = line.split()
        result.setdefault(key, []).append((int(timestamp), float(value)))
    for points in result.values():
        points.sort(key=lambda p: p[0])  # stable
    return result


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


class GetResultsTest(TestCase):
    def get_with_reply(self, reply: bytes) -> dict:
        server = self.server(respond(lambda line: reply if line.startswith(b"get") else None))
        with client.Client(*server.address, timeout=10) as c:
            return c.get("*")

    def test_large_reply_matches_a_plain_python_parse(self):
        rng = random.Random(5)
        lines = []
        for i in range(60_000):
            key = f"k{rng.randrange(7)}.cpu"  # keys interleaved, out of order
            if rng.random() < 0.05:
                value = rng.choice(TRICKY_VALUES)
            else:
                value = repr(round(rng.uniform(-1e6, 1e6), rng.randrange(0, 12)))
            timestamp = rng.randrange(-10**12, 10**12) if i % 3 else 1_600_000_000 + i
            lines.append(f"{key} {value} {timestamp}\n")
        reply = ("ok\n" + "".join(lines) + "\n").encode()
        got = self.get_with_reply(reply)
        want = parse_reference(reply)
        self.assertEqual(list(got), list(want))  # order of first appearance
        for key, points in want.items():
            self.assertIs(type(got[key]), list)
            self.assertEqual(len(got[key]), len(points))
            for (ts, value), (want_ts, want_value) in zip(got[key], points):
                self.assertIs(type(ts), int)
                self.assertIs(type(value), float)
                self.assertEqual(ts, want_ts)
                self.assertEqual(bits(value), bits(want_value), (key, ts, want_value))

    def test_values_parse_exactly_as_python_float(self):
        reply = "ok\n" + "".join(f"v {text} {i}\n" for i, text in enumerate(TRICKY_VALUES)) + "\n"
        got = self.get_with_reply(reply.encode())
        self.assertEqual([bits(v) for _, v in got["v"]],
                         [bits(float(text)) for text in TRICKY_VALUES])

    def test_tuples_are_untracked_and_survive_collections(self):
        reply = b"ok\n" + b"".join(b"k %d.5 %d\n" % (i, i) for i in range(5000)) + b"\n"
        got = self.get_with_reply(reply)
        points = got["k"]
        self.assertTrue(gc.is_tracked(got))
        self.assertTrue(gc.is_tracked(points))
        self.assertFalse(any(gc.is_tracked(p) for p in points))
        gc.collect()
        self.assertEqual(points, [(i, i + 0.5) for i in range(5000)])
        # One reference from the list, one from getrefcount's argument.
        self.assertEqual(sys.getrefcount(points[0]), 2)

    def test_repeated_gets_do_not_leak(self):
        reply = b"ok\n" + b"".join(b"k%d %d.25 %d\n" % (i % 10, i, i) for i in range(20_000)) + b"\n"
        server = self.server(respond(lambda line: reply if line.startswith(b"get") else None))
        with client.Client(*server.address, timeout=10) as c:
            c.get("*")  # warm-up: buffers, caches
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                for _ in range(5):
                    result = c.get("*")
                    del result
                after = tracemalloc.get_traced_memory()[0]
            finally:
                tracemalloc.stop()
        # 20,000 points are about 2.7 MB of objects: a leak of even one
        # object per point would show as hundreds of kilobytes per call.
        self.assertLess(after - before, 100_000)
