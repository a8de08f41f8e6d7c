"""Does growing the store stall other clients?

``python benches/growth_stalls.py [--keys N] [--points N] [--batch N]``

Starts two ``python -m client serve`` processes. A writer process grows the
store of the first with ``put_many`` (first ``--keys`` new keys, one point
each; then one key to ``--points`` points in time order) while this
process, as another client, times single puts one after another, taking
turns between the growing server and the other, idle one (the control: what
the machine's own scheduling noise costs a put). Prints, per phase, the
worst and the 99th percentile latency of the single puts on each, and the
slowest ``put_many`` call of the writer. The goal: no single put waits more
than 50 ms. On a loaded machine both servers' worst cases rise together;
what matters is the growing server's against the control's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import List, Tuple

import client

WRITER = r"""
import sys, time, client
host, port, phase, total, batch = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
c = client.Client(host, port, timeout=600)
slowest = 0.0
for start in range(0, total, batch):
    n = min(batch, total - start)
    if phase == "keys":
        points = [(f"grow.{i}", 1.0, 1) for i in range(start, start + n)]
    else:
        points = [("series", 0.5, i) for i in range(start, start + n)]
    t = time.perf_counter()
    c.put_many(points)
    slowest = max(slowest, time.perf_counter() - t)
print(f"{slowest:.4f}", flush=True)
"""


def percentile(sorted_values: List[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


def phase(address, control, name: str, total: int, batch: int) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, address[0], str(address[1]), name, str(total), str(batch)],
        stdout=subprocess.PIPE,
        env=env,
    )
    latencies: List[float] = []
    controls: List[float] = []
    timer = client.Client(*address, timeout=60)
    idle = client.Client(*control, timeout=60)
    started = time.perf_counter()
    i = 0
    while writer.poll() is None:
        t = time.perf_counter()
        timer.put("probe", 1.0, timestamp=i)
        latencies.append(time.perf_counter() - t)
        t = time.perf_counter()
        idle.put("probe", 1.0, timestamp=i)
        controls.append(time.perf_counter() - t)
        i += 1
        # About 2,000 probes a second: enough to catch any 50 ms stall while
        # leaving the writer most of the CPU.
        time.sleep(0.0005)
    elapsed = time.perf_counter() - started
    slowest_batch = float(writer.stdout.read().decode().strip() or "nan")
    writer.wait()
    timer.close()
    idle.close()
    latencies.sort()
    controls.sort()
    print(
        f"| {name:<6} | {total:>12,} | {elapsed:>7.1f} s | {len(latencies):>8,} | "
        f"{percentile(latencies, 0.99) * 1e3:>7.2f} ms | {latencies[-1] * 1e3:>8.2f} ms | "
        f"{percentile(controls, 0.99) * 1e3:>7.2f} ms | {controls[-1] * 1e3:>8.2f} ms | "
        f"{slowest_batch * 1e3:>8.1f} ms |",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000_000)
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=10_000, help="points per put_many call")
    args = parser.parse_args()
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "client", "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        growing, control = (address_of(server) for server in servers)
        print("| phase  |       grows to | time      |   probes |   p99 put |  worst put | control p99 | control worst | slowest put_many |")
        print("|--------|---------------:|-----------|---------:|----------:|-----------:|------------:|--------------:|-----------------:|")
        phase(growing, control, "keys", args.keys, args.batch)
        phase(growing, control, "points", args.points, args.batch)
    finally:
        for server in servers:
            server.terminate()
            server.wait(30)
    return 0


def address_of(server: subprocess.Popen) -> Tuple[str, int]:
    line = server.stdout.readline().decode()
    host, _, port = line.strip().rpartition(" ")[2].rpartition(":")
    return host, int(port)


if __name__ == "__main__":
    sys.exit(main())
