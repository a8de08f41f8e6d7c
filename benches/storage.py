"""The storage engine side by side with VictoriaMetrics and with the server
before the engine, in one run on the same machine and the same data.

Shapes (``--scale`` multiplies the number of series and of keys; 1.0 is
the full size): 1,000 series x 20,000 points, 1,000,000 keys of one point
each, and for the growth figures shape 1 with 10x the points per series
(200,000, our server only). Values: a random walk with one decimal;
timestamps 10 s apart, ending in the day before yesterday (UTC), so the
head window (2 h) holds nothing once the seal has run and every day is
merged into one block, whatever the time of the run.

Every server is a child process on loopback: ours (``<python> -m client
serve --head-window 2h``, default ``fsync everysec``), the old wheel's
(``--old-python``, everything in memory) and VictoriaMetrics (Debian's
``victoria-metrics``, Graphite listener; skipped with a note when absent).

- ingest: ours ``Client.put_many`` over one connection until the last call
  is acknowledged and a ``get`` of the last key has all its points; VM the
  same points as plaintext over one connection until a
  ``sum(count_over_time(...))`` query counts them all. The points are built
  beforehand (untimed) when there are at most ``PREBUILD`` of them.
- disk: every byte of the data directory / points, once ours has sealed
  (blocks written, one per day, the journal a few hundred bytes) and VM
  was told ``/internal/force_flush`` and its merges stopped (bounded).
- start-up: spawn until the first answer holding the data (ours a
  ``get <key>`` of its last hour, VM ``/api/v1/export`` of the same hour),
  and the RSS then; every server restarted in turn, ``--restarts`` times,
  median; ``python -c 'import client'`` takes a turn too (the
  interpreter's share of ours).
- get: ``get <key>`` of one 20,000-point series and ``get *`` of shape 1
  from the new server (read from its blocks) and the old one, taking turns,
  read raw from the socket; best of ``--reps``; the replies are compared.

``python benches/storage.py [--scale S] [--old-python PATH] [--json PATH]
[--chart PATH]`` prints a markdown table (progress goes to stderr).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
from typing import Any, Callable, Dict, List, Optional, Tuple

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from children import VICTORIA, Serve, Victoria, dir_bytes, wait  # noqa: E402
from storage_data import Shape, feed_plaintext, feed_put_many, raw_get  # noqa: E402
from storage_report import chart, table  # noqa: E402

SERIES, POINTS, KEYS, GROWTH = 1000, 20_000, 1_000_000, 10
PREBUILD = 25_000_000
NEW_ARGS = ["--head-window", "2h"]
#: VictoriaMetrics' defaults, but for the series one query may touch (the
#: count over a million keys) and a retention that keeps the history.
VM_ARGS = ["-search.maxUniqueTimeseries=100000000", "-retentionPeriod=100y"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def prebuilt(shape: Shape, make: Callable[[Shape], Any]) -> Any:
    items = make(shape)
    return list(items) if shape.total <= PREBUILD else items


def ingest_ours(server: Serve, shape: Shape, batches: Any = None) -> float:
    """Points per second, sent until acknowledged and readable; the
    ``put_many`` batches are built here unless given."""
    from client import Client
    batches = prebuilt(shape, Shape.batches) if batches is None else batches
    took = feed_put_many(server.port, iter(batches))
    key, count = shape.last_key()
    start = time.perf_counter()
    with Client("127.0.0.1", server.port, timeout=600) as client:
        got = len(client.get(key).get(key, []))
    if got != count:
        raise SystemExit(f"{key}: {got} points read back, {count} put")
    return shape.total / (took + time.perf_counter() - start)


def vm_count(vm: Victoria, shape: Shape) -> int:
    """The points VM answers for the shape's keys. Each query's filter is
    new (an alternative no key matches), so VM's cache of which series a
    filter matched cannot hide series added since an earlier poll."""
    prefix = shape.keys[0].split("0", 1)[0]
    window = shape.end - shape.first + 3600
    query = f'sum(count_over_time({{__name__=~"{prefix}.*|nothing{time.monotonic_ns()}"}}[{window}s]))'
    path = "/api/v1/query?" + urllib.parse.urlencode({"query": query, "time": shape.end + 1, "nocache": 1})
    result = json.loads(vm.get(path, timeout=600))["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def ingest_vm(vm: Victoria, shape: Shape, phases: Dict[str, float], chunks: Any = None) -> float:
    """Points per second until a count query sees them all; ``phases``
    gets the seconds of sending, until VM counts the rows as added to its
    storage (``vm_rows_added_to_storage_total``), and until they are
    counted by a query. The plaintext chunks are built here unless given."""
    chunks = prebuilt(shape, Shape.plaintext) if chunks is None else chunks
    took = feed_plaintext(vm.graphite_port, iter(chunks))
    phases["sent_s"] = took
    start = time.perf_counter()
    deadline = start + 120 + shape.total * 20e-6
    while vm_count(vm, shape) < shape.total:  # each query paces the next
        if "stored_s" not in phases and vm.rows() >= shape.total:
            phases["stored_s"] = took + time.perf_counter() - start
        if time.perf_counter() > deadline:
            raise SystemExit(f"VictoriaMetrics counts {vm_count(vm, shape)} of {shape.total} points")
        time.sleep(0.05)
    phases.setdefault("stored_s", took + time.perf_counter() - start)
    phases["counted_s"] = took + time.perf_counter() - start
    return shape.total / phases["counted_s"]


def sealed(server: Serve) -> bool:
    """Blocks written, one per day (merged), the journal holding no point."""
    blocks = server.data + ".blocks"
    names = os.listdir(blocks) if os.path.isdir(blocks) else []
    done = [n for n in names if n.endswith(".block")]
    days = {n.split("-", 1)[0] for n in done}
    return (bool(done) and len(days) == len(done) and not any(n.endswith(".tmp") for n in names)
            and os.path.getsize(server.data) < 4096)


def settle_vm(vm: Victoria) -> str:
    """Flushes VM and waits (at most 120 s) until no merge has run and the
    directory's size has not moved for 3 polls a second apart."""
    vm.get("/internal/force_flush")
    sizes: List[int] = []
    start = time.monotonic()
    while time.monotonic() - start < 120:
        busy = vm.metric("vm_active_merges") > 0
        sizes.append(-1 if busy else dir_bytes(vm.dir))
        if len(sizes) >= 3 and sizes[-1] >= 0 and len(set(sizes[-3:])) == 1:
            return f"settled after {time.monotonic() - start:.0f} s"
        time.sleep(1)
    return "still merging after 120 s (measured as it was)"


#: The first answer asks for the last hour of one key (361 points of a
#: series, the one point of a key of shape 2): the same answer whatever the
#: history holds.
FIRST_SPAN = 3600


def first_answer_ours(server: Serve, key: str, end: int, bound: float) -> None:
    from client import Client, ClientError
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        try:
            with Client("127.0.0.1", server.port, timeout=bound) as client:
                if client.get(key, since=end - FIRST_SPAN, until=end + 1):
                    return
        except ClientError:
            pass
        time.sleep(0.001)
    raise SystemExit(f"no answer from port {server.port} in {bound} s")


def first_answer_vm(vm: Victoria, key: str, end: int, bound: float) -> None:
    path = "/api/v1/export?" + urllib.parse.urlencode(
        {"match[]": f'{{__name__="{key}"}}', "start": end - FIRST_SPAN, "end": end})
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        try:
            if b'"values"' in vm.get(path, timeout=bound):
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if vm.proc is not None and vm.proc.poll() is not None:
            raise SystemExit(f"VictoriaMetrics exited ({vm.proc.returncode}) while starting")
        time.sleep(0.001)
    raise SystemExit(f"no answer from VictoriaMetrics in {bound} s")


def restart(child: Any, shape: Shape) -> Dict[str, float]:
    """Stops the child, starts it again; seconds to the first answer and
    the RSS then."""
    child.stop()
    start = time.perf_counter()
    if isinstance(child, Victoria):
        child.spawn()
        first_answer_vm(child, shape.keys[0], shape.end, 300)
    else:
        child.start()
        first_answer_ours(child, shape.keys[0], shape.end, 300)
    took = time.perf_counter() - start
    return {"startup_s": took, "rss": psutil.Process(child.pid).memory_info().rss}


def interpreter_start(python: str) -> Dict[str, float]:
    """``python -c 'import client'``: the part of our start-up that is the
    interpreter's and the package's imports (asyncio is most of it), not
    the server's."""
    import subprocess
    start = time.perf_counter()
    subprocess.run([python, "-c", "import client"], check=True, timeout=120)
    return {"startup_s": time.perf_counter() - start, "rss": 0}


def turns(new: Serve, old: Serve, target: str, n: int) -> Dict[str, List[float]]:
    """``n`` gets of ``target`` from each server, taking turns; the first
    replies compared."""
    times: Dict[str, List[float]] = {"new": [], "old": []}
    digests = {}
    for i in range(n):
        pair = [("new", new), ("old", old)][:: 1 if i % 2 == 0 else -1]
        for name, server in pair:
            took, size, digest = raw_get(server.port, target, digest=(i == 0))
            times[name].append(took)
            if i == 0:
                digests[name] = (size, digest)
    if digests["new"] != digests["old"]:
        raise SystemExit(f"get {target}: the new and old servers answer differently {digests}")
    times["bytes"] = [float(digests["new"][0])]
    return times


def gets(new: Serve, old: Serve, shape: Shape, reps: int) -> Dict[str, Any]:
    """``get <key>`` and ``get *``, the new and the old server taking
    turns (the first of each pair alternating); best of ``reps``."""
    key = shape.keys[len(shape.keys) // 2]
    out: Dict[str, Any] = {}
    for what, target, n in (("get_one", key, reps * 10), ("get_all", "*", reps)):
        times = turns(new, old, target, n)
        out[what] = {name: min(times[name]) for name in ("new", "old")}
        out[what]["bytes"] = int(times["bytes"][0])
        log(f"{what}: new {out[what]['new'] * 1e3:.1f} ms, old {out[what]['old'] * 1e3:.1f} ms")
    return out


def data_end() -> int:
    """The newest point: in the day before yesterday, so every day the data
    touches is over (past the head window too) and the merges leave one
    block per day whatever the time now."""
    now = int(time.time())
    return now - now % 86_400 - 86_400 - 10


def run(args: argparse.Namespace, started: List[Any]) -> Dict[str, Any]:
    end = data_end()
    series = max(1, round(SERIES * args.scale))
    shapes = {
        "series": Shape("series", "srv", series, POINTS, end),
        "keys": Shape("keys", "key", max(1, round(KEYS * args.scale)), 1, end, seed=8),
        "growth": Shape("growth", "srv", series, POINTS * GROWTH, end),
    }
    figures: Dict[str, Any] = {"scale": args.scale, "shapes": {n: [s.series, s.points] for n, s in shapes.items()},
                               "ingest": {}, "disk": {}, "startup": {}, "notes": []}

    def child(c: Any) -> Any:
        started.append(c)
        return c

    vm_ok = VICTORIA is not None
    if not vm_ok:
        figures["notes"].append("VictoriaMetrics skipped: Debian package victoria-metrics is not installed")
    old_ok = os.path.exists(args.old_python) and not args.only
    if not old_ok:
        figures["notes"].append(f"old server skipped: {args.old_python} not found")
    ours: Dict[str, Serve] = {}
    vms: Dict[str, Victoria] = {}

    def seal(name: str) -> None:
        """Waits for the seal of ``ours[name]``, then measures its disk."""
        server, start = ours[name], time.monotonic()
        wait(lambda: sealed(server), 120 + shapes[name].total * 20e-6, f"the seal of {name}", pause=0.2)
        log(f"{name} sealed {time.monotonic() - start:.1f} s after its ingest")
        server.stop()  # measured at rest, as VM is
        figures["disk"][f"new/{name}"] = {"bytes": dir_bytes(server.dir), "journal": os.path.getsize(server.data),
                                          "keys": os.path.getsize(os.path.join(server.data + ".blocks", "keys"))}

    # One contender at a time: each ingest starts once the previous one's
    # background work (our seal, VM's merges) is over.
    for name in args.only or ("series", "keys"):
        shape = shapes[name]
        log(f"{name}: {shape.series:,} x {shape.points:,} = {shape.total:,} points")
        ours[name] = child(Serve(NEW_ARGS))
        figures["ingest"][f"new/{name}"] = ingest_ours(ours[name], shape)
        seal(name)
        if vm_ok:
            vms[name] = child(Victoria(VM_ARGS))
            phases = figures.setdefault("vm_phases", {}).setdefault(name, {})
            figures["ingest"][f"vm/{name}"] = ingest_vm(vms[name], shape, phases)
            log(f"VictoriaMetrics {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))
            figures["notes"].append(f"VictoriaMetrics {name}: {settle_vm(vms[name])}, then stopped")
            # A clean stop writes everything VM holds in memory (and its
            # caches, under cache/) to the directory.
            vms[name].stop()
            root = vms[name].dir
            figures["disk"][f"vm/{name}"] = {"bytes": dir_bytes(root), **{
                part: dir_bytes(os.path.join(root, part)) for part in os.listdir(root)}}
        if args.only:
            continue
        always = child(Serve(NEW_ARGS + ["--fsync", "always"]))
        figures["ingest"][f"new-always/{name}"] = ingest_ours(always, shape)
        always.close()
        log(f"ingest {name}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in figures["ingest"].items() if name in k))
    old: Optional[Serve] = None
    if old_ok:
        old = child(Serve(python=args.old_python))
        figures["ingest"]["old/series"] = ingest_ours(old, shapes["series"])
        old.stop()
        figures["disk"]["old/series"] = {"bytes": dir_bytes(old.dir)}
    if not args.only:
        log(f"growth: {shapes['growth'].total:,} points")
        ours["growth"] = child(Serve(NEW_ARGS))
        figures["ingest"]["new/growth"] = ingest_ours(ours["growth"], shapes["growth"])
        seal("growth")
    for k, v in figures["disk"].items():
        v["per_point"] = v["bytes"] / shapes[k.split("/")[1]].total
    log("disk: " + ", ".join(f"{k} {v['per_point']:.2f} B/point" for k, v in figures["disk"].items()))

    turns: List[Tuple[str, Any, Shape]] = [(f"new/{n}", s, shapes[n]) for n, s in ours.items()]
    turns += [(f"vm/{n}", v, shapes[n]) for n, v in vms.items()]
    if old is not None:
        turns.append(("old/series", old, shapes["series"]))
    for r in range(args.restarts):
        for name, c, shape in turns:
            figures["startup"].setdefault(name, []).append(restart(c, shape))
        figures["startup"].setdefault("python", []).append(interpreter_start(sys.executable))
        log(f"restart {r + 1}: " + ", ".join(f"{n} {figures['startup'][n][-1]['startup_s'] * 1e3:.0f} ms"
                                             for n, _, _ in turns))
    if old is not None:
        figures["get"] = gets(ours["series"], old, shapes["series"], args.reps)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiplies the series (1,000) and keys (1,000,000); default 1.0, the full size")
    parser.add_argument("--old-python", default="/work/venv-old/bin/python",
                        help="an interpreter with the wheel from before the storage engine")
    parser.add_argument("--restarts", type=int, default=3, help="restarts of each server (median; default 3)")
    parser.add_argument("--reps", type=int, default=3, help="get * repetitions per server (get <key>: 10x)")
    parser.add_argument("--only", choices=("series", "keys", "ingest"), action="append",
                        help="series/keys: ingest and restart only this shape (ours and VM; no fsync=always, old"
                             " server, growth or gets), printing only start-up; repeatable. ingest: the shape-1"
                             " ingest row alone, ours and VM taking turns, with CPU per point")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --only ingest (default 3)")
    parser.add_argument("--variant", choices=("memory", "unsealed"), action="append",
                        help="--only ingest: also our server without --data (memory), or with a head window"
                             " holding every point (unsealed: journal, no seal), each round; repeatable")
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--chart", default=os.path.join(HERE, "storage.png"), help="PNG to draw, or 'none'")
    args = parser.parse_args()
    if args.only and "ingest" in args.only:
        if len(args.only) > 1:
            parser.error("--only ingest runs alone")
        import storage_ingest
        storage_ingest.main(args, max(1, round(SERIES * args.scale)), POINTS, data_end(),
                            NEW_ARGS, VM_ARGS, ingest_ours, ingest_vm, log)
        return
    started: List[Any] = []
    begun = time.monotonic()
    try:
        figures = run(args, started)
    finally:
        for c in reversed(started):
            c.close()
    figures["seconds"] = time.monotonic() - begun
    if args.only:
        for name, runs in figures["startup"].items():
            print(f"{name}: start-up " + ", ".join(f"{r['startup_s'] * 1e3:.1f}" for r in runs) + " ms; RSS "
                  + ", ".join(f"{r['rss'] / 2**20:.1f}" for r in runs) + " MiB")
        return
    s1, s2 = figures["shapes"]["series"], figures["shapes"]["keys"]
    print(f"# scale {args.scale:g}: shape 1 {s1[0]:,} series x {s1[1]:,} points, shape 2 {s2[0]:,} keys x 1 point, "
          f"x10: {s1[0]:,} x {figures['shapes']['growth'][1]:,}; {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}; run took {figures['seconds']:.0f} s\n")
    print(table(figures))
    for note in figures["notes"]:
        print(f"\n- {note}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=1)
    if args.chart != "none":
        print("\n" + chart(figures, args.chart))


if __name__ == "__main__":
    main()
