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
   (goal: columns at least 5x faster), end to end and from the reply bytes
   already received (``Codec.feed``), which isolates building the result.

``--scale`` shrinks every size (0.1: a tenth) for a quick look.
``victoria_metrics_rollup`` is the comparison with VictoriaMetrics'
``avg_over_time``: it needs the new storage engine's figures and Debian's
``victoria-metrics``; it is left for that work (see its docstring).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, List

import client

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


def columns_vs_dict(c: client.Client, repeat: int, scale: float) -> None:
    n = int(1_000_000 * scale)
    c.put_many((("col", float(i), i) for i in range(n)))
    dict_t = timed(lambda: c.get("col"), repeat)
    cols_t = timed(lambda: c.get_columns("col"), repeat)
    print(f"{n:,} points end to end: dict {dict_t * 1e3:.0f} ms, columns {cols_t * 1e3:.0f} ms "
          f"= {dict_t / cols_t:.1f}x (goal >= 5x)")
    reply = b"ok\n" + b"".join(f"col {float(i)} {i}\n".encode() for i in range(n)) + b"\n"
    query = client._native.Codec.query("col", since=0)
    assert query is not None

    def feed(columns: bool) -> None:
        codec = client._native.Codec()
        codec.expect(True, answer=query if columns else None, columns=columns)
        codec.feed(reply)

    dict_t = timed(lambda: feed(False), repeat)
    cols_t = timed(lambda: feed(True), repeat)
    print(f"{n:,} points from the reply bytes: dict {dict_t * 1e3:.0f} ms, columns {cols_t * 1e3:.0f} ms "
          f"= {dict_t / cols_t:.1f}x")


def victoria_metrics_rollup() -> None:
    """TO BE FINISHED with the new storage engine: a 1-minute ``avg`` rollup
    of one day of 1,000 series at 10 s (8.64M points) through
    ``get('*', since=..., until=..., step=60)``, against the same data
    imported into Debian's ``victoria-metrics`` (``/api/v1/import``) and
    queried with ``avg_over_time(metric[1m])`` over
    ``/api/v1/query_range?step=60``, both on loopback, timed side by side."""
    raise NotImplementedError("needs the new storage engine and victoria-metrics; see the docstring")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for bench in (last_hour, glob_vs_all, columns_vs_dict):
        with client.Server() as server, client.Client(*server.address, timeout=600) as c:
            bench(c, args.repeat, args.scale)


if __name__ == "__main__":
    main()
