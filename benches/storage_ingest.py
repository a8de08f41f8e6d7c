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

``--variant memory`` adds a contender each round: our server without
``--data`` (memory only: no journal, no seal), the ceiling of what any
change to the write-ahead log or the seal can win; ``--variant unsealed``
one with ``--data`` and a head window holding every point (the journal,
no seal). Their ratios to VM and to ours are printed too.
"""
from __future__ import annotations

import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Sequence, Tuple

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


def _ours(shape: Shape, new_args: List[str], ingest: Callable[..., float],
          memory: bool = False) -> Dict[str, float]:
    batches = list(shape.batches())  # built before the clock and the CPU count start
    server = Serve(new_args, memory=memory)
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


def _without_head_window(args: List[str]) -> List[str]:
    out, skip = [], False
    for arg in args:
        if not skip and arg != "--head-window":
            out.append(arg)
        skip = arg == "--head-window"
    return out


#: The extra contenders ``variants`` may name: our server's arguments
#: instead of the usual ones, and whether it runs without ``--data``.
VARIANTS: Dict[str, Tuple[Callable[[List[str]], List[str]], bool]] = {
    # --head-window needs --data; in memory nothing is sealed anyway
    "memory": (_without_head_window, True),
    # a head window holding every point: the journal, but no seal
    "unsealed": (lambda args: _without_head_window(args) + ["--head-window", "36500d"], False),
}


def rounds(shape: Shape, count: int, new_args: List[str], vm_args: List[str],
           ingest_ours: Callable[..., float], ingest_vm: Callable[..., float],
           log: Callable[[str], None], variants: Sequence[str] = ()) -> List[Dict[str, Dict[str, float]]]:
    """``count`` rounds of {"ours", "vm", *variants}, the order reversed
    every other round."""
    if VICTORIA is None:
        raise SystemExit("--only ingest needs VictoriaMetrics (Debian package victoria-metrics)")
    out = []
    for r in range(count):
        turns: List[Tuple[str, Callable[[], Dict[str, float]]]] = [
            ("ours", lambda: _ours(shape, new_args, ingest_ours))]
        for name in variants:
            edit, memory = VARIANTS[name]
            turns.append((name, lambda e=edit, m=memory: _ours(shape, e(new_args), ingest_ours, memory=m)))
        turns.append(("vm", lambda: _vm(shape, vm_args, ingest_vm)))
        got: Dict[str, Dict[str, float]] = {}
        for name, turn in turns[:: 1 if r % 2 == 0 else -1]:
            got[name] = turn()
        log(f"round {r + 1}: " + ", ".join(f"{name} {got[name]['rate'] / 1e6:.2f} M/s" for name in got)
            + f", ratio {got['ours']['rate'] / got['vm']['rate']:.2f}x")
        out.append(got)
    return out


def _spread(name: str, ratios: List[float]) -> str:
    return (f"{name} median {statistics.median(ratios):.2f}x (lowest {min(ratios):.2f}x, "
            f"highest {max(ratios):.2f}x)")


def report(shape: Shape, results: List[Dict[str, Dict[str, float]]]) -> str:
    load = psutil.getloadavg()
    lines = [f"# ingest only, shape 1: {shape.series:,} x {shape.points:,} = {shape.total:,} points; "
             f"{psutil.cpu_count()} CPUs, load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}", "",
             "| round | ours M points/s | VM M points/s | ratio | ours client / server CPU ns/point "
             "| VM sender / VM CPU ns/point |", "|---|---|---|---|---|---|"]
    for i, got in enumerate(results, 1):
        ours, vm = got["ours"], got["vm"]
        lines.append(f"| {i} | {ours['rate'] / 1e6:.2f} | {vm['rate'] / 1e6:.2f} | {ours['rate'] / vm['rate']:.2f}x "
                     f"| {ours['client_ns']:.0f} / {ours['server_ns']:.0f} "
                     f"| {vm['client_ns']:.0f} / {vm['server_ns']:.0f} |")
    lines.append("")
    lines.append(_spread("ratio", [g["ours"]["rate"] / g["vm"]["rate"] for g in results]))
    variants = [name for name in results[0] if name not in ("ours", "vm")]
    if variants:
        lines += ["", "| round | variant | M points/s | / VM | / ours | client / server CPU ns/point |",
                  "|---|---|---|---|---|---|"]
        for i, got in enumerate(results, 1):
            for name in variants:
                v = got[name]
                lines.append(f"| {i} | {name} | {v['rate'] / 1e6:.2f} | {v['rate'] / got['vm']['rate']:.2f}x "
                             f"| {v['rate'] / got['ours']['rate']:.2f}x | {v['client_ns']:.0f} / {v['server_ns']:.0f} |")
        lines.append("")
        for name in variants:
            lines.append(_spread(f"{name} / VM", [g[name]["rate"] / g["vm"]["rate"] for g in results]))
            lines.append(_spread(f"{name} / ours", [g[name]["rate"] / g["ours"]["rate"] for g in results]))
    return "\n".join(lines)


def main(args: Any, series: int, points: int, end: int, new_args: List[str], vm_args: List[str],
         ingest_ours: Callable[..., float], ingest_vm: Callable[..., float], log: Callable[[str], None]) -> None:
    shape = Shape("series", "srv", series, points, end)
    began = time.monotonic()
    results = rounds(shape, args.rounds, new_args, vm_args, ingest_ours, ingest_vm, log,
                     variants=args.variant or ())
    print(report(shape, results))
    print(f"\nrun took {time.monotonic() - began:.0f} s", file=sys.stderr)
