"""Queries (the query form of get): every answer compared with a reference
computed here, in plain Python, from a plain ``get *``; against the embedded
server (which answers queries) and against course-style servers (which
answer ``wrong command``, so the client computes the answer itself)."""

from __future__ import annotations

import asyncio
import datetime
import importlib.util
import random
import re
import unittest
from typing import Dict, List, Optional, Tuple

from client import AsyncClient, Client, ClientValueError, Server
from tests.support.course_servers import SplitAllServer

Result = Dict[str, List[Tuple[int, float]]]
AGGS = ["avg", "min", "max", "sum", "count", "last"]
KEYS = ["a.cpu", "a.mem", "b.cpu", "ab.cpu", "a.b.cpu", "host01.cpu", "host02.mem", "host1.cpu"]
PATTERNS = ["*", "a*", "a.*", "*.cpu", "{a,b}.cpu", "a?.cpu", "[ab]*", "a.b.cpu", "host0*.{cpu,mem}",
            "host[!0]*", "z*", "a.cpu"]


def glob_regex(pattern: str) -> "re.Pattern[str]":
    """Graphite glob to a regex (the test patterns' subset)."""
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out += "[^.]*"
        elif c == "?":
            out += "[^.]"
        elif c == "[":
            end = pattern.index("]", i + 2)
            body = pattern[i + 1:end]
            out += "(?![.])[^" + re.escape(body[1:]) + "]" if body.startswith("!") else "[" + re.escape(body) + "]"
            i = end
        elif c == "{":
            end = pattern.index("}", i)
            out += "(?:" + "|".join(glob_regex(o).pattern for o in pattern[i + 1:end].split(",")) + ")"
            i = end
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out)


def buckets(first: int, last: int, step: int) -> int:
    return last // step - first // step + 1


def consolidated(step: int, n: int, first: int, last: int) -> int:
    """The README's rule for max_points."""
    span = last - first + 1
    m0 = max(1, -(-span // (n * step)))
    for m in range(m0, m0 + 64):
        if buckets(first, last, m * step) <= n:
            return m * step
    if n >= 2:
        return -(-span // ((n - 1) * step)) * step
    below = max(0, -(first // step))  # ceil(-first / step)
    return max(below, last // step + 1, 1) * step


def reference(everything: Result, pattern: str, since: Optional[int], until: Optional[int],
              step: Optional[int], agg: str, points: Optional[int]) -> Result:
    regex = None if pattern == "*" else glob_regex(pattern)
    out: Result = {}
    for key, series in everything.items():
        if regex is not None and not regex.fullmatch(key):
            continue
        chosen = [(t, v) for t, v in series
                  if (since is None or t >= since) and (until is None or t < until)]
        if not chosen:
            continue
        width = step
        if points is not None:
            width = consolidated(step or 1, points, chosen[0][0], chosen[-1][0])
        if width is None:
            out[key] = chosen
            continue
        rolled: List[Tuple[int, float]] = []
        group: List[float] = []
        start = None
        for t, v in chosen + [(None, None)]:  # type: ignore[list-item]
            b = None if t is None else t // width * width
            if group and b != start:
                total = 0.0
                for x in group:
                    total += x
                value = {"avg": total / len(group), "sum": total, "count": float(len(group)),
                         "min": min(group), "max": max(group), "last": group[-1]}[agg]
                rolled.append((start, value))  # type: ignore[arg-type]
                group = []
            start = b
            if v is not None:
                group.append(v)
        out[key] = rolled
    return out


def random_case(rng: random.Random) -> Tuple[List[Tuple[str, float, int]], list]:
    puts = [(rng.choice(KEYS), rng.choice([rng.uniform(-100, 100), float(rng.randint(-5, 5))]),
             rng.randint(-60, 60)) for _ in range(rng.randint(0, 80))]
    queries = []
    for _ in range(12):
        since = rng.choice([None, rng.randint(-70, 70)])
        until = rng.choice([None, rng.randint(-70, 70)])
        step = rng.choice([None, rng.randint(1, 40)])
        points = rng.choice([None, None, rng.randint(1, 8)])
        queries.append((rng.choice(PATTERNS), since, until, step, rng.choice(AGGS), points))
    return puts, queries


class QueryAgreesWithReference(unittest.TestCase):
    """Random data (duplicates and out-of-order puts included), random queries."""

    def check(self, address: Tuple[str, int], cases: int, seed: int) -> None:
        rng = random.Random(seed)
        for case in range(cases):
            puts, queries = random_case(rng)
            prefix = f"c{seed}x{case}"
            with Client(*address, timeout=10) as client:
                for key, value, ts in puts:
                    client.put(f"{prefix}{key}", value, timestamp=ts)
                everything = {k[len(prefix):]: v for k, v in client.get("*").items() if k.startswith(prefix)}
                for pattern, since, until, step, agg, points in queries:
                    got = client.get(prefix + pattern if pattern != "*" else prefix + "*",
                                     since=since, until=until, step=step, agg=agg, max_points=points)
                    # A prefixed bare * is a glob within the first node.
                    want_pattern = pattern if pattern != "*" else "*"
                    want = reference(everything if pattern != "*" else
                                     {k: v for k, v in everything.items() if "." not in prefix + k.split(".")[0]
                                      and "." not in k},
                                     want_pattern, since, until, step, agg, points)
                    got = {k[len(prefix):]: v for k, v in got.items()}
                    self.assertEqual(got, want, (pattern, since, until, step, agg, points))

    def test_embedded_server(self) -> None:
        with Server() as server:
            self.check(server.address, 15, 1)

    def test_client_fallback_on_a_course_server(self) -> None:
        with SplitAllServer() as server:
            self.check(server.address, 10, 2)


class QueryApi(unittest.TestCase):
    def setUp(self) -> None:
        self.server = Server()
        self.addCleanup(self.server.close)
        self.client = Client(*self.server.address, timeout=10)
        self.addCleanup(self.client.close)
        for ts in range(0, 120, 10):
            self.client.put("host01.cpu", ts, timestamp=ts)
            self.client.put("host02.cpu", -ts, timestamp=ts)
        self.client.put("other", 1, timestamp=5)

    def test_globs_ranges_and_rollups(self) -> None:
        got = self.client.get("host0*.cpu", since=20, until=60, step=20, agg="max")
        self.assertEqual(got, {"host01.cpu": [(20, 30.0), (40, 50.0)], "host02.cpu": [(20, -20.0), (40, -40.0)]})
        self.assertEqual(self.client.get("host01.cpu", max_points=3, agg="count"),
                         {"host01.cpu": [(0, 4.0), (37, 4.0), (74, 4.0)]})  # 111 s in 3: 37 s
        self.assertEqual(self.client.get("host01.cpu", since=1000), {})
        self.assertEqual(self.client.get("host0{1,3}.cpu", until=10), {"host01.cpu": [(0, 0.0)]})

    def test_times_as_datetime_and_timedelta(self) -> None:
        at = datetime.datetime.fromtimestamp(29.5, datetime.timezone.utc)
        self.assertEqual(self.client.get("host01.cpu", since=at, until=datetime.timedelta(0))["host01.cpu"][0],
                         (30, 30.0))
        self.assertEqual(self.client.get("host01.cpu", since=datetime.timedelta(days=1)), {})
        self.assertEqual(self.client.get("host01.cpu", step=datetime.timedelta(minutes=1), agg="count"),
                         {"host01.cpu": [(0, 6.0), (60, 6.0)]})

    def test_bad_keywords_are_refused_before_sending(self) -> None:
        for kwargs in [{"step": 0}, {"step": datetime.timedelta(seconds=1.5)}, {"agg": "median"},
                       {"max_points": 0}, {"since": 2**70}]:
            with self.assertRaises(ClientValueError, msg=kwargs):
                self.client.get("host01.cpu", **kwargs)  # type: ignore[arg-type]
        with self.assertRaises(ClientValueError):
            self.client.get("host[0")
        with self.assertRaises(TypeError):
            self.client.get("host01.cpu", since=1.5)  # type: ignore[arg-type]

    def test_the_server_answers_bad_queries_specifically(self) -> None:
        self.client.connection.sendall(b"get k step=0\n")
        with self.assertRaisesRegex(Exception, "bad query: step must be a positive integer"):
            self.client._read()

    def test_columns_and_frames(self) -> None:
        try:
            import numpy
        except ImportError:
            self.skipTest("numpy is not installed (the numpy extra)")

        columns = self.client.get_columns("host0*.cpu", step=60, agg="sum")
        timestamps, values = columns["host01.cpu"]
        self.assertEqual(timestamps.dtype, numpy.int64)
        self.assertEqual(values.dtype, numpy.float64)
        self.assertEqual(timestamps.tolist(), [0, 60])
        self.assertEqual(values.tolist(), [150.0, 510.0])
        self.assertEqual(list(self.client.get_columns("other")), ["other"])
        try:
            from client import to_frame

            frame = to_frame(columns)
        except ImportError:
            self.skipTest("pandas is not installed")
        self.assertEqual(list(frame.columns), ["host01.cpu", "host02.cpu"])
        self.assertEqual(frame.index.tolist(), [0, 60])

    def test_async_client_gives_the_same_answers(self) -> None:
        if importlib.util.find_spec("numpy") is None:
            self.skipTest("numpy is not installed (the numpy extra): get_columns needs it")
        async def run(address: Tuple[str, int]) -> Tuple[Result, Result, list]:
            async with AsyncClient(*address, timeout=10) as client:
                a = await client.get("host0*.cpu", since=20, until=60, step=20, agg="max")
                b = await client.get("host0*.cpu", max_points=2)
                c = await client.get_columns("host01.cpu", step=60)
                return a, b, c["host01.cpu"][1].tolist()

        want = (self.client.get("host0*.cpu", since=20, until=60, step=20, agg="max"),
                self.client.get("host0*.cpu", max_points=2),
                [v for _, v in self.client.get("host01.cpu", step=60)["host01.cpu"]])
        self.assertEqual(asyncio.run(run(self.server.address)), want)
        with SplitAllServer() as course:
            with Client(*course.address, timeout=10) as client:
                for ts in range(0, 120, 10):
                    client.put("host01.cpu", ts, timestamp=ts)
                    client.put("host02.cpu", -ts, timestamp=ts)
            self.assertEqual(asyncio.run(run(course.address)), want)


if __name__ == "__main__":
    unittest.main()
