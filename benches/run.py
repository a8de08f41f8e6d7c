#!/usr/bin/env python3
"""The benchmark suite: one command, one table, one chart.

    python benches/run.py [--quick] [--only server] [--rounds N]
                          [--chart benches/results.png] [--json PATH]

Every figure is compared, in the same run, with what a user would otherwise
use: a pure-Python client in the course's canonical shape, a careful
pure-Python client (benches/pyclients.py) and the floor (what the same work
costs at C speed with no protocol logic at all). Each figure is the median of
several runs; ratios are computed between figures of the same run, so the
noise of a shared machine mostly cancels. See benches/README.md.

Only loopback addresses are used; every loop is bounded in count and time;
every process started here is stopped here.
"""

import argparse
import datetime
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from memory_probe import Floor  # noqa: E402
from pyclients import CanonicalClient, CarefulClient  # noqa: E402
from run_report import build_server_table, build_table, draw_chart, fmt_bytes, fmt_seconds, log, median  # noqa: E402
from run_servers import bench_servers, embedded_server, running, standin_server  # noqa: E402

try:
    from client import Client
except ImportError:  # pragma: no cover - explained at start-up
    sys.exit("benches/run.py needs the client package installed: pip install .")

FIRST_TS = 1642667947


# ---------------------------------------------------------------- helpers


# ---------------------------------------------------------------- dataset


def make_reply(points, keys, seed=1):
    """A `get *` reply: `keys` keys of points/keys points each, values as
    Python's str(float) writes them, timestamps ascending per key."""
    import random

    rng = random.Random(seed)
    per_key = points // keys
    parts = [b"ok\n"]
    shape = []
    for k in range(keys):
        key = f"srv{k:02d}.cpu"
        values = [round(rng.uniform(0, 100), 4) for _ in range(per_key)]
        parts.append(
            "".join(f"{key} {v} {FIRST_TS + j}\n" for j, v in enumerate(values)).encode()
        )
        shape.append([key, FIRST_TS, per_key])
    parts.append(b"\n")
    reply = b"".join(parts)
    return reply, {"reply_bytes": len(reply), "keys": shape}


# ---------------------------------------------------------------- get


def bench_get(address, shape, rounds, canonical_rounds):
    host, port = address
    contenders = {
        "client": Client(host, port, timeout=600),
        "careful": CarefulClient(host, port, 600),
        "floor": Floor(host, port, shape),
        "floor_nogc": Floor(host, port, shape, collector=False),
    }
    if canonical_rounds:
        contenders["canonical"] = CanonicalClient(host, port, 600)
    reference = contenders["client"].get("*")
    points = sum(map(len, reference.values()))
    for name, contender in contenders.items():
        if name in ("client", "floor", "floor_nogc", "canonical"):
            continue
        if contender.get("*") != reference:
            raise AssertionError(f"{name} disagrees with client.Client on get('*')")
    del reference
    times = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        measured = []
        for name in order:
            if name == "canonical" and len(times[name]) >= canonical_rounds:
                continue
            measured.append(name)
            started = time.perf_counter()
            result = contenders[name].get("*")
            times[name].append(time.perf_counter() - started)
            if name == "canonical" and len(times[name]) == 1:
                check = contenders["client"].get("*")
                if result != check:
                    raise AssertionError("canonical disagrees with client.Client")
                del check
            del result
        log(f"  get round {r + 1}/{rounds}: "
            + ", ".join(f"{n} {fmt_seconds(times[n][-1])}" for n in names if n in measured))
    for contender in contenders.values():
        contender.close()
    return {"points": points, "times": times}


def bench_memory(address, shape_path, contenders):
    out = {}
    for name in contenders:
        argv = [sys.executable, os.path.join(HERE, "memory_probe.py"), name,
                address[0], str(address[1]), shape_path]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"memory probe {name} failed: {done.stderr[-800:]}")
        out[name] = json.loads(done.stdout)
        log(f"  memory {name}: peak +{fmt_bytes(out[name]['peak_bytes'] - out[name]['baseline_bytes'])}, "
            f"result {fmt_bytes(out[name]['result_bytes'])}")
    return out


def bench_get_embedded(reply_path, rounds):
    """get("*") of the same 1,000,000 points stored in the embedded server
    (loaded with put_many): the end-to-end figure, server included."""
    server = embedded_server()
    if server is None:
        return None
    with running(server), open(reply_path, "rb") as f:
        lines = f.read().split(b"\n")[1:-2]
        points = []
        for line in lines:
            key, value, timestamp = line.split()
            points.append((key.decode(), float(value), int(timestamp)))
        del lines
        loader = Client(*server.address, timeout=600)
        for i in range(0, len(points), 100_000):
            loader.put_many(points[i:i + 100_000])
        loader.close()
        del points
        shape = {"reply_bytes": os.path.getsize(reply_path), "keys": []}
        probe = Client(*server.address, timeout=600)
        for key, series in probe.get("*").items():
            shape["keys"].append([key, series[0][0], len(series)])
        probe.close()
        return bench_get(server.address, shape, rounds, canonical_rounds=0)


# ---------------------------------------------------------------- put


PUT_KEY, PUT_VALUE, PUT_TS = "bench.put", 0.5, FIRST_TS
PUT_LINE = f"put {PUT_KEY} {PUT_VALUE} {PUT_TS}\n".encode()


def bench_put(address, count):
    """Single put: client.put against a raw sendall/recv ping-pong on the
    same TCP connection (a dup of the client's descriptor), and the
    pure-Python clients on their own connections.

    The contenders take turns one put at a time (the order rotating), each
    put timed on its own: round-trip latency on a shared machine jumps
    between modes (about 15 and 55 µs here) as other work comes and goes,
    and alternating at this grain gives every contender the same mix."""
    host, port = address
    sock = socket.create_connection(address)
    raw = sock.dup()
    with mock.patch.object(socket, "create_connection", lambda *a, **k: sock):
        client = Client(host, port)
    careful = CarefulClient(host, port)
    canonical = CanonicalClient(host, port)

    def raw_put():
        raw.sendall(PUT_LINE)
        reply = b""
        while not reply.endswith(b"\n\n"):
            try:
                reply += raw.recv(1024)
            except BlockingIOError:  # the client's 50 ms wait slices
                pass

    ops = {
        "client": lambda: client.put(PUT_KEY, PUT_VALUE, PUT_TS),
        "floor": raw_put,
        "careful": lambda: careful.put(PUT_KEY, PUT_VALUE, PUT_TS),
        "canonical": lambda: canonical.put(PUT_KEY, PUT_VALUE, PUT_TS),
    }
    for op in ops.values():
        for _ in range(200):  # warm-up
            op()
    names = list(ops)
    rotations = [names[i:] + names[:i] for i in range(len(names))]
    samples = {name: [] for name in names}
    clock = time.perf_counter_ns
    for i in range(count):
        for name in rotations[i % len(rotations)]:
            op = ops[name]
            started = clock()
            op()
            samples[name].append(clock() - started)
    client.close()
    raw.close()
    careful.close()
    canonical.close()
    # Per contender: the median latency of each block of 500 puts, so that
    # ratios can be taken block by block (the blocks interleave in time).
    block = 500
    per_op = {name: [median(v[i:i + block]) / 1e9 for i in range(0, len(v) - block + 1, block)]
              for name, v in samples.items()}
    log("  put µs: " + ", ".join(f"{n} {median(v) * 1e6:.1f}" for n, v in per_op.items()))
    return {"per_op": per_op, "count": count, "block": block}


PUT_MANY = 100_000


def put_many_points(n):
    return [(f"bench.many.{i % 100}", float(i % 1000) + 0.25, FIRST_TS + i // 100)
            for i in range(n)]


def raw_pipeline(address, payload, replies):
    """The floor of a pipelined batch: one writer thread sends every request
    line, the caller reads until every `ok\\n\\n` has arrived."""
    sock = socket.create_connection(address)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    expected = 4 * replies
    buffer = bytearray(expected)
    view = memoryview(buffer)
    started = time.perf_counter()
    writer = threading.Thread(target=sock.sendall, args=(payload,))
    writer.start()
    got = 0
    while got < expected:
        n = sock.recv_into(view[got:])
        if not n:
            raise ConnectionError("server closed the connection")
        got += n
    writer.join()
    elapsed = time.perf_counter() - started
    sock.close()
    if buffer.count(b"ok\n\n") != replies:
        raise AssertionError("raw pipeline: unexpected replies")
    return elapsed


def bench_put_many(address, n, rounds):
    host, port = address
    points = put_many_points(n)
    payload = b"".join(f"put {k} {v} {t}\n".encode() for k, v, t in points)
    client = Client(host, port, timeout=600)
    client.put_many(points[:1000])  # warm-up
    times = {"put_many": [], "sequential": [], "floor": []}
    for _ in range(rounds):
        started = time.perf_counter()
        client.put_many(points)
        times["put_many"].append(time.perf_counter() - started)
        put = client.put
        started = time.perf_counter()
        for key, value, ts in points:
            put(key, value, ts)
        times["sequential"].append(time.perf_counter() - started)
        times["floor"].append(raw_pipeline(address, payload, n))
        log("  put_many: " + ", ".join(f"{k} {fmt_seconds(v[-1])}" for k, v in times.items()))
    client.close()
    return {"points": n, "times": times}


# ---------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer runs, no canonical get (about 25 s instead of 5 min)")
    parser.add_argument("--chart", default=os.path.join(HERE, "results.png"),
                        help="PNG to write (default: %(default)s); 'none' for no chart")
    parser.add_argument("--json", help="also write every raw figure to this file")
    parser.add_argument("--only", choices=["server"],
                        help="run one section only: 'server' is the server throughput "
                             "(benches/loadgen), without the client benchmarks")
    parser.add_argument("--rounds", type=int,
                        help="rounds of the server throughput (default: 5, 1 with --quick)")
    parser.add_argument("--points", type=int, default=1_000_000, help=argparse.SUPPRESS)
    parser.add_argument("--keys", type=int, default=100, help=argparse.SUPPRESS)
    args = parser.parse_args()
    quick = args.quick
    started = time.monotonic()

    server_rounds = args.rounds or (1 if quick else 5)
    meta = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average": os.getloadavg(),
        "quick": quick,
        "only": args.only,
    }
    if args.only == "server":
        log("server throughput (benches/loadgen) ...")
        servers = bench_servers(quick, rounds=server_rounds)
        meta["seconds"] = time.monotonic() - started
        print()
        print(f"metrics-client server benchmarks, {meta['date']}; {meta['machine']}, "
              f"load average at start {meta['load_average'][0]:.2f}; "
              f"{server_rounds} rounds took {meta['seconds']:.0f} s")
        print()
        print(build_server_table(servers))
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"meta": meta, "servers": servers}, f, indent=1)
        return
    with tempfile.TemporaryDirectory(prefix="metrics-bench-") as tmp:
        log(f"generating a {args.points:,}-point reply ...")
        reply, shape = make_reply(args.points, args.keys)
        meta["reply_bytes"] = len(reply)
        reply_path = os.path.join(tmp, "reply.bin")
        with open(reply_path, "wb") as f:
            f.write(reply)
        del reply
        shape_path = os.path.join(tmp, "shape.json")
        with open(shape_path, "w") as f:
            json.dump(shape, f)

        log("get (against the stand-in server replaying the reply) ...")
        with running(standin_server(reply_path)) as standin:
            get = bench_get(standin.address, shape, rounds=3 if quick else 7,
                            canonical_rounds=0 if quick else 3)
            log("peak memory of one get, each in a fresh process ...")
            memory = bench_memory(standin.address, shape_path,
                                  ["client", "floor", "careful"] + ([] if quick else ["canonical"]))

        log("get from the embedded server ...")
        served = bench_get_embedded(reply_path, rounds=3 if quick else 5)

        log("put and put_many ...")
        server = embedded_server()
        if server is None:
            server = standin_server(reply_path)
            meta["put_server"] = "stand-in server"
        else:
            meta["put_server"] = "embedded server"
        with running(server):
            put = bench_put(server.address, count=5_000 if quick else 20_000)
            many = bench_put_many(server.address, PUT_MANY, rounds=2 if quick else 3)

    log("server throughput (benches/loadgen) ...")
    servers = bench_servers(quick, rounds=server_rounds)

    meta["seconds"] = time.monotonic() - started
    table = build_table(meta, get, served, memory, put, many, servers)
    print()
    print(f"metrics-client benchmarks, {meta['date']}; Python {meta['python']}, "
          f"{meta['machine']}, load average at start {meta['load_average'][0]:.2f}; "
          f"{'quick' if quick else 'full'} run took {meta['seconds']:.0f} s")
    print()
    print(table)
    if args.chart.lower() != "none" and draw_chart(args.chart, get, put, many, servers):
        print(f"\nchart: {args.chart}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "get": get, "get_embedded": served, "memory": memory, "put": put,
                       "put_many": many, "servers": servers}, f, indent=1)


if __name__ == "__main__":
    main()
