"""``storage.py --only ingest``: the shape-1 ingest row alone, for working
on the write path (about 15 s a round at full scale).

Each round ingests shape 1 into a fresh server of ours (``fsync
everysec``) and a fresh VictoriaMetrics, the order alternating, timed as
the full run times them (until readable). Besides the rates it prints the
CPU time per point of each side: ours split between this process (the
client: ``put_many``'s encoding and its socket calls) and the server's
process, VM's between the plaintext sender and VM. The CPU figures say
which side bounds the rate: the sum of the two when they do not overlap,
the larger when they do. Ratios are per round; the summary gives the
median and the spread.
"""
from __future__ import annotations

import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Tuple

import psutil
from children import VICTORIA, Serve, Victoria
from storage_data import Shape


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _self_cpu() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


def _measured(run: Callable[[], float], pid: int, total: int) -> Dict[str, float]:
    """The rate ``run`` returns, with the CPU ns per point of this process
    and of the server ``pid`` while it ran."""
    server, client = _cpu(pid), _self_cpu()
    rate = run()
    return {"rate": rate, "client_ns": (_self_cpu() - client) / total * 1e9,
            "server_ns": (_cpu(pid) - server) / total * 1e9}


def _ours(shape: Shape, new_args: List[str], ingest: Callable[..., float]) -> Dict[str, float]:
    batches = list(shape.batches())  # built before the clock and the CPU count start
    server = Serve(new_args)
    try:
        return _measured(lambda: ingest(server, shape, batches), server.pid, shape.total)
    finally:
        server.close()


def _vm(shape: Shape, vm_args: List[str], ingest: Callable[..., float]) -> Dict[str, float]:
    chunks = list(shape.plaintext())
    vm = Victoria(vm_args)
    try:
        return _measured(lambda: ingest(vm, shape, {}, chunks), vm.pid, shape.total)
    finally:
        vm.close()


def rounds(shape: Shape, count: int, new_args: List[str], vm_args: List[str],
           ingest_ours: Callable[..., float], ingest_vm: Callable[..., float],
           log: Callable[[str], None]) -> List[Tuple[Dict[str, float], Dict[str, float]]]:
    """``count`` rounds of (ours, VM), the order alternating."""
    if VICTORIA is None:
        raise SystemExit("--only ingest needs VictoriaMetrics (Debian package victoria-metrics)")
    out = []
    for r in range(count):
        turns: List[Tuple[str, Callable[[], Dict[str, float]]]] = [
            ("ours", lambda: _ours(shape, new_args, ingest_ours)),
            ("vm", lambda: _vm(shape, vm_args, ingest_vm))]
        got: Dict[str, Dict[str, float]] = {}
        for name, turn in turns[:: 1 if r % 2 == 0 else -1]:
            got[name] = turn()
        log(f"round {r + 1}: ours {got['ours']['rate'] / 1e6:.2f} M/s, VM {got['vm']['rate'] / 1e6:.2f} M/s, "
            f"ratio {got['ours']['rate'] / got['vm']['rate']:.2f}x")
        out.append((got["ours"], got["vm"]))
    return out


def report(shape: Shape, results: List[Tuple[Dict[str, float], Dict[str, float]]]) -> str:
    load = psutil.getloadavg()
    lines = [f"# ingest only, shape 1: {shape.series:,} x {shape.points:,} = {shape.total:,} points; "
             f"{psutil.cpu_count()} CPUs, load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}", "",
             "| round | ours M points/s | VM M points/s | ratio | ours client / server CPU ns/point "
             "| VM sender / VM CPU ns/point |", "|---|---|---|---|---|---|"]
    for i, (ours, vm) in enumerate(results, 1):
        lines.append(f"| {i} | {ours['rate'] / 1e6:.2f} | {vm['rate'] / 1e6:.2f} | {ours['rate'] / vm['rate']:.2f}x "
                     f"| {ours['client_ns']:.0f} / {ours['server_ns']:.0f} "
                     f"| {vm['client_ns']:.0f} / {vm['server_ns']:.0f} |")
    ratios = [o["rate"] / v["rate"] for o, v in results]
    lines.append("")
    lines.append(f"ratio median {statistics.median(ratios):.2f}x (lowest {min(ratios):.2f}x, "
                 f"highest {max(ratios):.2f}x)")
    return "\n".join(lines)


def main(args: Any, series: int, points: int, end: int, new_args: List[str], vm_args: List[str],
         ingest_ours: Callable[..., float], ingest_vm: Callable[..., float], log: Callable[[str], None]) -> None:
    shape = Shape("series", "srv", series, points, end)
    began = time.monotonic()
    results = rounds(shape, args.rounds, new_args, vm_args, ingest_ours, ingest_vm, log)
    print(report(shape, results))
    print(f"\nrun took {time.monotonic() - began:.0f} s", file=sys.stderr)
