"""100 asyncio tasks on one ``AsyncClient`` against 100 plain connections.

``python benches/asyncio_tasks.py [--runs 5] [--tasks 100] [--each 200]
[--server inprocess|subprocess]`` measures, in each run, ``--tasks`` tasks
doing ``--each`` puts each: all through one ``AsyncClient``, and each on
its own ``asyncio.open_connection`` doing the same puts as ping-pong
(``writer.write`` then ``reader.readuntil``), on asyncio's default event
loop, against the embedded server ``client.Server``: in this process
(``inprocess``, the default: its threads then share the cores and the
process with the client) or in its own (``subprocess``; ``pinned``: on a
CPU of its own, this process on another, so that the server answers at
once whatever arrives). Each run starts a
fresh server and event loop and measures both contenders twice, taking
turns (the order rotates from run to run); its ratio is the per-connection
time over the ``AsyncClient`` time of its better turn each. Prints each
run's figures, then the median ratio and its spread (lowest-highest) over
the runs. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Tuple

import client

HERE = os.path.dirname(os.path.abspath(__file__))
FIRST_TS = 1642667947
TURNS = 2


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def one_client(address: Tuple[str, int], tasks: int, each: int) -> float:
    async with client.AsyncClient(*address) as c:
        async def task(t: int) -> None:
            for i in range(each):
                await c.put(f"bench.task.{t}", i + 0.5, FIRST_TS + i)
        started = time.perf_counter()
        await asyncio.gather(*(task(t) for t in range(tasks)))
        return time.perf_counter() - started


async def per_task(address: Tuple[str, int], tasks: int, each: int) -> float:
    connections = [await asyncio.open_connection(*address) for _ in range(tasks)]

    async def task(t: int) -> None:
        reader, writer = connections[t]
        for i in range(each):
            writer.write(f"put bench.task.{t} {i + 0.5} {FIRST_TS + i}\n".encode())
            await reader.readuntil(b"\n\n")
    started = time.perf_counter()
    await asyncio.gather(*(task(t) for t in range(tasks)))
    elapsed = time.perf_counter() - started
    for _, writer in connections:
        writer.close()
    return elapsed


CONTENDERS: Dict[str, Callable[[Tuple[str, int], int, int], "asyncio.Future[float]"]] = {
    "AsyncClient": one_client,  # type: ignore[dict-item]
    "connection per task": per_task,  # type: ignore[dict-item]
}


class Subprocess:
    """The embedded server in its own process (``serve_embedded.py``),
    with ``pinned`` on the last CPU while this process keeps the first."""

    def __init__(self, pinned: bool = False) -> None:
        command = [sys.executable, os.path.join(HERE, "serve_embedded.py")]
        if pinned:
            last = max(os.sched_getaffinity(0))
            command = ["taskset", "-c", str(last), *command]
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        host, port = self.process.stdout.readline().split()
        self.address = (host, int(port))

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(30)


class InProcess:
    def __init__(self) -> None:
        self.server = client.Server()
        self.address = self.server.address[:2]

    def close(self) -> None:
        self.server.close()


def one_run(kind: str, run: int, tasks: int, each: int) -> Dict[str, float]:
    server = InProcess() if kind == "inprocess" else Subprocess(pinned=kind == "pinned")
    try:
        names = list(CONTENDERS)
        shift = run % len(names)
        order = names[shift:] + names[:shift]
        best: Dict[str, float] = {}

        async def measure() -> None:
            for _ in range(TURNS):
                for name in order:
                    seconds = await CONTENDERS[name](server.address, tasks, each)
                    best[name] = min(best.get(name, seconds), seconds)

        asyncio.run(measure())
        return best
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--each", type=int, default=200)
    parser.add_argument("--server", choices=("inprocess", "subprocess", "pinned"), default="inprocess")
    args = parser.parse_args()
    total = args.tasks * args.each
    ratios: List[float] = []
    print(f"{args.tasks} tasks x {args.each} puts, server {args.server}, default event loop "
          f"({type(asyncio.new_event_loop()).__name__}), Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs")
    for run in range(args.runs):
        log(f"run {run + 1}/{args.runs}")
        best = one_run(args.server, run, args.tasks, args.each)
        ratio = best["connection per task"] / best["AsyncClient"]
        ratios.append(ratio)
        print(f"run {run + 1}: AsyncClient {total / best['AsyncClient']:,.0f} puts/s; "
              f"connection per task {total / best['connection per task']:,.0f} puts/s; "
              f"{ratio:.2f}x", flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"median {statistics.median(ratios):.2f}x over {args.runs} runs "
          f"(lowest {min(ratios):.2f}x, highest {max(ratios):.2f}x); target >= 4x: "
          f"{'met' if min(ratios) >= 4 else 'NOT met'} in every run; load average {load:.2f}")


if __name__ == "__main__":
    main()
