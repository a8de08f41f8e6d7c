"""Reads of sealed series against the server before the storage engine,
side by side in one run: the ``get`` rows of ``storage.py`` alone, with
medians, so a change to the read path can be measured in about a minute.

Both servers get shape 1 of ``storage.py`` (``--scale`` multiplies its
1,000 series of 20,000 points; 1.0 is the full size; the newest point in
the day before yesterday) through ``put_many``; ours (``serve --head-window 2h``) then seals everything
(one block per day once merged), the old wheel's (``--old-python``) keeps it in memory. Then ``get <key>``
of one series and ``get *``, the two servers taking turns (the first of
each pair alternating), read raw from the socket, the replies compared.
Prints the median and best of each, and the ratio of the medians
(new / old: at most 1 means no slower).

``python benches/sealed_reads.py [--scale S] [--reps N] [--old-python PATH]``
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from children import Serve, wait  # noqa: E402
from storage import NEW_ARGS, POINTS, SERIES, ingest_ours, log, sealed, turns  # noqa: E402
from storage_data import STEP, Shape  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the 1,000 series; default 1.0")
    parser.add_argument("--reps", type=int, default=7, help="get * turns per server (get <key>: 10x); default 7")
    parser.add_argument("--old-python", default="/work/venv-old/bin/python",
                        help="an interpreter with the wheel from before the storage engine")
    args = parser.parse_args()
    now = int(time.time())
    # The newest point in the day before yesterday: every day it touches is
    # over, so the merges leave one block per day whatever the time now.
    end = now - now % 86_400 - 86_400 - STEP
    shape = Shape("series", "srv", max(1, round(SERIES * args.scale)), POINTS, end)
    begun = time.monotonic()
    started: List[Serve] = []
    try:
        log(f"{shape.series:,} x {shape.points:,} = {shape.total:,} points")
        new = Serve(NEW_ARGS)
        started.append(new)
        ingest_ours(new, shape)
        wait(lambda: sealed(new), 120 + shape.total * 20e-6, "the seal", pause=0.2)
        log("new server sealed")
        old = Serve(python=args.old_python)
        started.append(old)
        ingest_ours(old, shape)
        log("old server loaded")
        key = shape.keys[len(shape.keys) // 2]
        rows = [(f"`get <key>`, {shape.points:,} points", turns(new, old, key, args.reps * 10)),
                (f"`get *`, {shape.series:,} x {shape.points:,}", turns(new, old, "*", args.reps))]
    finally:
        for server in reversed(started):
            server.close()
    print(f"# {shape.series:,} series x {shape.points:,} points; {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}; run took {time.monotonic() - begun:.0f} s\n")
    print("| read | reply | new, median (best) | old, median (best) | ratio of medians |")
    print("|---|---|---|---|---|")
    for what, t in rows:
        new_m, old_m = statistics.median(t["new"]), statistics.median(t["old"])
        print(f"| {what} | {t['bytes'][0] / 2**20:,.1f} MiB | {new_m * 1e3:,.2f} ms ({min(t['new']) * 1e3:,.2f}) "
              f"| {old_m * 1e3:,.2f} ms ({min(t['old']) * 1e3:,.2f}) | {new_m / old_m:.2f}x |")


if __name__ == "__main__":
    main()
