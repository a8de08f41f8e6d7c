"""Queries against the embedded server, as ratios measured side by side.

``python benches/query.py [--scale 1.0] [--repeat 5]``

Prints, each as the median of ``--repeat`` runs:

1. the last hour (360 points at 10 s) of a 10M-point series vs the same hour
   of a 10k-point series: a range read costs the points returned, not the
   points stored (goal: at most 2x);
2. a glob matching 100 of 1,000,000 keys vs ``get *`` over them (goal: at
   most 1/20). The first query after the keys were stored sorts them for
   the key index; that one-off cost is printed separately;
3. ``get_columns`` vs ``get`` (dict of lists of tuples) of 1M points
   (goal: columns at least 5x faster), end to end (``get_columns`` asks
   for the binary columns reply, ``get`` gets text lines) and from the
   reply bytes already received (``Codec.feed``: the text reply built into
   a dict and into columns, and the columns frame), which isolates
   building the result.

4. a 1-minute ``avg`` rollup of one day of 1,000 series at 10 s, read
   from sealed blocks, vs VictoriaMetrics' ``avg_over_time`` range query
   over the same points (Debian's ``victoria-metrics``; skipped, saying so,
   where it is absent) (goal: at least as fast).

``--scale`` shrinks every size (0.1: a tenth) for a quick look.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import struct
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from typing import Callable, List

import client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import graphite as graphite_bench  # noqa: E402  (its VictoriaMetrics runner)

HOUR = 3600


def timed(call: Callable[[], object], repeat: int) -> float:
    times: List[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def last_hour(c: client.Client, repeat: int, scale: float) -> None:
    long_n, short_n = int(10_000_000 * scale), 10_000
    for key, n in (("long", long_n), ("short", short_n)):
        end = 10 * n
        c.put_many(((key, float(i), end - 10 * (n - i)) for i in range(n)))
    long_t = timed(lambda: c.get("long", since=10 * long_n - HOUR, until=10 * long_n), repeat)
    short_t = timed(lambda: c.get("short", since=10 * short_n - HOUR, until=10 * short_n), repeat)
    got = len(c.get("long", since=10 * long_n - HOUR, until=10 * long_n)["long"])
    print(f"last hour ({got} points) of {long_n:,} vs {short_n:,} points: "
          f"{long_t * 1e3:.2f} ms vs {short_t * 1e3:.2f} ms = {long_t / short_t:.2f}x (goal <= 2x)")


def glob_vs_all(c: client.Client, repeat: int, scale: float) -> None:
    keys = int(1_000_000 * scale)
    c.put_many(((f"k{i:07d}.cpu", 1.0, 1) for i in range(keys)))
    pattern = "k00001??.cpu"  # 100 keys
    start = time.perf_counter()
    matched = len(c.get(pattern, since=0))
    first = time.perf_counter() - start
    glob_t = timed(lambda: c.get(pattern, since=0), repeat)
    all_t = timed(lambda: c.get("*"), max(1, repeat // 2))
    print(f"glob matching {matched} of {keys:,} keys vs get *: {glob_t * 1e3:.2f} ms vs {all_t * 1e3:.0f} ms "
          f"= 1/{all_t / glob_t:.0f} (goal <= 1/20); first query (sorts the keys once): {first * 1e3:.0f} ms")


def columns_frame(key: str, n: int) -> bytes:
    """The columns reply of ``n`` points ``(i, float(i))`` of ``key``, as
    the server writes it (blocks of 65,536 points)."""
    out = [b"ok\n\0CF1"]
    for start in range(0, n, 1 << 16):
        count = min(1 << 16, n - start)
        out.append(struct.pack("<I", len(key)) + key.encode() + struct.pack("<I", count))
        out.append(struct.pack(f"<{count}q", *range(start, start + count)))
        out.append(struct.pack(f"<{count}d", *map(float, range(start, start + count))))
    out.append(b"\0\0\0\0")
    return b"".join(out)


def columns_vs_dict(c: client.Client, repeat: int, scale: float) -> None:
    n = int(1_000_000 * scale)
    c.put_many((("col", float(i), i) for i in range(n)))
    dict_t = timed(lambda: c.get("col"), repeat)
    cols_t = timed(lambda: c.get_columns("col"), repeat)
    print(f"{n:,} points end to end: dict {dict_t * 1e3:.0f} ms (text reply), columns {cols_t * 1e3:.0f} ms "
          f"(columns reply) = {dict_t / cols_t:.1f}x (goal >= 5x)")
    reply = b"ok\n" + b"".join(f"col {float(i)} {i}\n".encode() for i in range(n)) + b"\n"
    frame = columns_frame("col", n)
    query = client._native.Codec.query("col", since=0)
    assert query is not None

    def feed(columns: bool, framed: bool = False) -> None:
        codec = client._native.Codec()
        codec.expect(True, answer=query if columns and not framed else None, columns=columns, frame=framed)
        codec.feed(frame if framed else reply)

    dict_t = timed(lambda: feed(False), repeat)
    cols_t = timed(lambda: feed(True), repeat)
    frame_t = timed(lambda: feed(True, framed=True), repeat)
    print(f"{n:,} points from the reply bytes: dict {dict_t * 1e3:.0f} ms, columns {cols_t * 1e3:.0f} ms "
          f"= {dict_t / cols_t:.1f}x; from the columns reply ({len(frame) / 1e6:.0f} MB vs "
          f"{len(reply) / 1e6:.0f} MB of text) {frame_t * 1e3:.1f} ms = {dict_t / frame_t:.0f}x")


def random_walk(rng: random.Random, n: int) -> List[float]:
    """A cpu-like gauge: a random walk with one decimal."""
    value, out = 50.0, []
    for _ in range(n):
        value = min(100.0, max(0.0, round(value + rng.gauss(0, 0.5), 1)))
        out.append(value)
    return out


def victoria_metrics_rollup(repeat: int, scale: float) -> None:
    """A 1-minute ``avg`` rollup of one day of 1,000 series at 10 s (8.64M
    points at scale 1) from our server with a data file, once the day is
    sealed into blocks, against the same points imported into Debian's
    ``victoria-metrics`` (``/api/v1/import``) and asked
    ``avg_over_time(...[1m])`` over ``/api/v1/query_range?step=60``; both on
    loopback, both answers parsed completely, timed side by side."""
    if graphite_bench.VICTORIA is None:
        print("rollup vs VictoriaMetrics: skipped (Debian package victoria-metrics is not installed)")
        return
    series, per_day = max(1, int(1000 * scale)), 8640
    day = (int(time.time()) // 86_400 - 2) * 86_400  # a whole day, two days ago
    rng = random.Random(7)
    data = {f"host{i:04d}.cpu": random_walk(rng, per_day) for i in range(series)}
    stamps = [day + 10 * j for j in range(per_day)]

    tmp = tempfile.mkdtemp(prefix="bench-query-")
    vm = graphite_bench.Victoria()
    try:
        with client.Server(data=os.path.join(tmp, "m.log")) as server, \
                client.Client(*server.address, timeout=600) as c:
            c.put_many((key, v, t) for key, values in data.items() for v, t in zip(values, stamps))
            blocks = os.path.join(tmp, "m.log.blocks")
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not (
                    os.path.isdir(blocks) and any(n.endswith(".block") for n in os.listdir(blocks))
                    and os.path.getsize(os.path.join(tmp, "m.log")) < 1024):
                time.sleep(0.2)
            ours_t = timed(lambda: c.get("*", since=day, until=day + 86_400, step=60), repeat)
            answer = c.get("*", since=day, until=day + 86_400, step=60)
            ours_points = sum(map(len, answer.values()))

        lines = "".join(json.dumps({"metric": {"__name__": key}, "values": values,
                                    "timestamps": [t * 1000 for t in stamps]}) + "\n"
                        for key, values in data.items()).encode()
        base = f"http://127.0.0.1:{vm.http_port}"
        urllib.request.urlopen(urllib.request.Request(f"{base}/api/v1/import", data=lines), timeout=600).read()
        urllib.request.urlopen(f"{base}/internal/force_flush", timeout=600).read()
        query = urllib.parse.urlencode({
            "query": 'avg_over_time({__name__=~"host.*"}[1m])',
            "start": day + 60, "end": day + 86_400, "step": 60,
        })

        def ask_vm() -> int:
            with urllib.request.urlopen(f"{base}/api/v1/query_range?{query}", timeout=600) as r:
                body = json.loads(r.read())
            return sum(len(s["values"]) for s in body["data"]["result"])

        deadline = time.monotonic() + 120
        vm_points = ask_vm()
        while vm_points < ours_points * 0.99 and time.monotonic() < deadline:
            time.sleep(0.5)
            vm_points = ask_vm()
        vm_t = timed(ask_vm, repeat)
    finally:
        vm.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"1-minute avg of one day of {series:,} series ({series * per_day:,} points; ours from blocks): "
          f"ours {ours_t * 1e3:.0f} ms ({ours_points:,} points) vs VictoriaMetrics {vm_t * 1e3:.0f} ms "
          f"({vm_points:,} points) = {vm_t / ours_t:.2f}x as fast (goal >= 1x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for bench in (last_hour, glob_vs_all, columns_vs_dict):
        with client.Server() as server, client.Client(*server.address, timeout=600) as c:
            bench(c, args.repeat, args.scale)
    victoria_metrics_rollup(args.repeat, args.scale)


if __name__ == "__main__":
    main()
