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
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from memory_probe import Floor  # noqa: E402
from pyclients import CanonicalClient, CarefulClient  # noqa: E402

try:
    from client import Client
except ImportError:  # pragma: no cover - explained at start-up
    sys.exit("benches/run.py needs the client package installed: pip install .")

LOADGEN_DIR = os.path.join(HERE, "loadgen")
LOADGEN = os.path.join(LOADGEN_DIR, "target", "release", "metrics-load")
FIRST_TS = 1642667947


# ---------------------------------------------------------------- helpers


def median(values):
    return statistics.median(values)


def paired(numerators, denominators):
    """Median of the ratios of figures measured in the same round."""
    return median([a / b for a, b in zip(numerators, denominators)])


def log(message):
    print(message, file=sys.stderr, flush=True)


def fmt_seconds(seconds):
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} µs"


def fmt_rate(per_second):
    if per_second >= 1e6:
        return f"{per_second / 1e6:.2f} M/s"
    return f"{per_second / 1e3:.1f} k/s"


def fmt_bytes(n):
    return f"{n / 1e6:.1f} MB"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """User + system CPU time of a process, from /proc (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


class ServerProcess:
    """A server in a subprocess that prints ``host port`` once it listens and
    stops when its stdin closes (or, for redis, on SIGTERM)."""

    def __init__(self, name, argv, announce=True, port=None, stop_with_stdin=True):
        self.name = name
        self.stop_with_stdin = stop_with_stdin
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if announce:
            line = self.proc.stdout.readline().split()
            if len(line) != 2:
                err = self.proc.stderr.read() if self.proc.poll() is not None else ""
                self.stop()
                raise RuntimeError(f"{name} did not start: {err.strip()[-500:]}")
            self.address = (line[0], int(line[1]))
        else:
            self.address = ("127.0.0.1", port)
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(self.address, timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        self.stop()
                        raise RuntimeError(f"{name} did not start") from None
                    time.sleep(0.05)

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            if self.stop_with_stdin:
                self.proc.stdin.close()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream and not stream.closed:
                stream.close()


@contextmanager
def running(server):
    try:
        yield server
    finally:
        server.stop()


def standin_server(reply_path):
    return ServerProcess(
        "stand-in server", [sys.executable, os.path.join(HERE, "standin_server.py"), reply_path]
    )


def embedded_server():
    """The embedded server in a subprocess, or None when this build has none."""
    try:
        return ServerProcess(
            "embedded server", [sys.executable, os.path.join(HERE, "serve_embedded.py")]
        )
    except RuntimeError as e:
        log(f"  (embedded server unavailable: {e})")
        return None


def asyncio_server():
    return ServerProcess(
        "course-style asyncio server", [sys.executable, os.path.join(HERE, "asyncio_server.py")]
    )


def redis_server():
    exe = shutil.which("redis-server")
    if not exe:
        return None
    port = free_port()
    argv = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"]
    return ServerProcess("redis-server", argv, announce=False, port=port, stop_with_stdin=False)


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


# ---------------------------------------------------------------- server


def ensure_loadgen():
    cargo = shutil.which("cargo")
    if cargo is None:
        if os.path.exists(LOADGEN):
            return LOADGEN
        raise RuntimeError("cargo is needed to build benches/loadgen")
    log("  building benches/loadgen (cargo build --release) ...")
    subprocess.run([cargo, "build", "--release", "--quiet", "--manifest-path",
                    os.path.join(LOADGEN_DIR, "Cargo.toml")], check=True, timeout=600)
    return LOADGEN


def loadgen(address, protocol, pipeline, requests, seconds, connections=50):
    argv = [LOADGEN, "--addr", f"{address[0]}:{address[1]}", "--protocol", protocol,
            "--connections", str(connections), "--pipeline", str(pipeline),
            "--requests", str(requests), "--seconds", str(seconds)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed: {done.stderr.strip()}")
    result = json.loads(done.stdout)
    if result["errors"] or result["closed"]:
        raise RuntimeError(f"loadgen saw errors: {result}")
    return result


def redis_benchmark(address, pipeline, requests, connections=50):
    exe = shutil.which("redis-benchmark")
    if not exe:
        return None
    argv = [exe, "-h", address[0], "-p", str(address[1]), "-c", str(connections),
            "-n", str(requests), "-P", str(pipeline), "-t", "set", "-q", "--csv"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    for line in done.stdout.splitlines():
        if line.startswith('"SET"'):
            return float(line.split(",")[1].strip('"'))
    raise RuntimeError(f"redis-benchmark: no SET line in {done.stdout!r} {done.stderr!r}")


def bench_servers(quick, rounds):
    """Put throughput of each server from 50 connections, with and without
    pipelining. All servers run at once (idle ones cost nothing) and each
    round loads them in turn, so ratios compare runs minutes apart at most."""
    ensure_loadgen()
    seconds = 4 if quick else 10
    # Requests per run: a few seconds' worth at the expected rate; `seconds`
    # bounds every run whatever the rate.
    plan = {
        1: {"fast": 100_000 if quick else 200_000, "slow": 40_000 if quick else 80_000},
        16: {"fast": 1_000_000 if quick else 2_000_000, "slow": 300_000 if quick else 600_000},
    }
    starters = [("embedded", embedded_server, "metrics", "fast"),
                ("asyncio", asyncio_server, "metrics", "slow"),
                ("redis", redis_server, "redis", "fast")]
    servers = {}
    try:
        for name, start, protocol, speed in starters:
            server = start()
            if server is None:
                log(f"  {name}: not available, skipped")
            else:
                servers[name] = (server, protocol, speed)
        # Warm-up, not measured: a fresh Python server's first run is up to
        # three times slower per request than its later ones.
        for server, protocol, _ in servers.values():
            loadgen(server.address, protocol, 1, 20_000, 5)
            loadgen(server.address, protocol, 16, 100_000, 5)
        results = {name: {p: {"loadgen": [], "redis_benchmark": []} for p in plan}
                   for name in servers}
        for r in range(rounds):
            for pipeline in plan:
                for name, (server, protocol, speed) in servers.items():
                    requests = plan[pipeline][speed]
                    cpu_before = cpu_seconds(server.pid)
                    run = loadgen(server.address, protocol, pipeline, requests, seconds)
                    run["server_cpu"] = cpu_seconds(server.pid) - cpu_before
                    entry = results[name][pipeline]
                    entry["loadgen"].append(run)
                    line = f"  round {r + 1}/{rounds} {name} P={pipeline}: {fmt_rate(run['rps'])}"
                    if name == "redis" and shutil.which("redis-benchmark"):
                        entry["redis_benchmark"].append(
                            redis_benchmark(server.address, pipeline, requests))
                        line += f" (redis-benchmark {fmt_rate(entry['redis_benchmark'][-1])})"
                    log(line)
    finally:
        for server, _, _ in servers.values():
            server.stop()
    for per_server in results.values():
        for entry in per_server.values():
            entry["rps_runs"] = [run["rps"] for run in entry["loadgen"]]
            entry["rps"] = median(entry["rps_runs"])
            if entry["redis_benchmark"]:
                entry["redis_benchmark_rps"] = median(entry["redis_benchmark"])
    return results


# ---------------------------------------------------------------- report


def check(ok):
    return "met" if ok else "**missed**"


def server_rows(servers):
    """The rows of the server throughput benchmark."""
    rows = []

    def cpu_per_request(entry):
        us = median(r["server_cpu"] / r["replies"] * 1e6 for r in entry["loadgen"])
        return f"{us:.2f} µs CPU/request"
    for pipeline in (1, 16):
        label = "no pipelining" if pipeline == 1 else f"pipelined, {pipeline} per batch"
        title = f"server `put` throughput, 50 connections, {label}"
        emb = servers.get("embedded", {}).get(pipeline)
        if emb:
            cpu = median(r["server_cpu"] / (r["cpu_user"] + r["cpu_sys"]) for r in emb["loadgen"])
            rows.append((title, "embedded server (metrics-load)", fmt_rate(emb["rps"]), "1",
                         f"server CPU = {cpu:.1f}x loadgen CPU; {cpu_per_request(emb)}"))
        else:
            rows.append((title, "embedded server", "not available", "", ""))
        asy = servers.get("asyncio", {}).get(pipeline)
        if asy:
            rel = tgt = ""
            if emb:
                ratio = paired(emb["rps_runs"], asy["rps_runs"])
                rel, tgt = f"embedded {ratio:.1f}x faster", f"≥ 20x: {check(ratio >= 20)}"
            rows.append(("", "course-style asyncio server", fmt_rate(asy["rps"]), rel, tgt))
        red = servers.get("redis", {}).get(pipeline)
        if red:
            rel = tgt = ""
            if emb:
                ratio = paired(emb["rps_runs"], red["rps_runs"])
                rel, tgt = f"embedded = {ratio:.2f}x redis", f"≥ 1x: {check(ratio >= 1)}"
            tgt += f"; redis {cpu_per_request(red)}"
            rows.append(("", "redis-server SET (metrics-load)", fmt_rate(red["rps"]), rel, tgt))
            if red.get("redis_benchmark_rps"):
                rel = tgt = ""
                if emb:
                    ratio = paired(emb["rps_runs"], red["redis_benchmark"])
                    rel, tgt = f"embedded = {ratio:.2f}x redis", f"≥ 1x: {check(ratio >= 1)}"
                rows.append(("", "redis-server SET (redis-benchmark)",
                             fmt_rate(red["redis_benchmark_rps"]), rel, tgt))
        else:
            rows.append(("", "redis-server", "not installed: skipped", "", ""))
    return rows


def markdown(rows):
    lines = ["| Benchmark | Contender | Median | Ratio | Target |",
             "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def build_server_table(servers):
    """The table of `--only server`."""
    return markdown(server_rows(servers))


def build_table(meta, get, served, memory, put, many, servers):
    rows = []
    times = get["times"]
    t = {n: median(v) for n, v in times.items()}

    def per_round(a, b):
        return paired(times[a], times[b])

    mb = meta["reply_bytes"] / 1e6
    title = f"`get(\"*\")`, {get['points']:,} points, {mb:.1f} MB reply"
    rows.append((title, "client.Client", fmt_seconds(t["client"]), "1", ""))
    ratio = per_round("client", "floor")
    rows.append(("", "floor: recv_into + C-speed build", fmt_seconds(t["floor"]),
                 f"client = {ratio:.2f}x floor", f"≤ 1.5x floor: {check(ratio <= 1.5)}"))
    rows.append(("", "floor with the cycle collector off", fmt_seconds(t["floor_nogc"]),
                 f"client = {per_round('client', 'floor_nogc'):.2f}x", "(for reference)"))
    ratio = per_round("careful", "client")
    rows.append(("", "careful pure Python", fmt_seconds(t["careful"]),
                 f"client {ratio:.1f}x faster", f"≥ 4x: {check(ratio >= 4)}"))
    if "canonical" in t:
        ratio = per_round("canonical", "client")
        rows.append(("", f"canonical course client ({len(times['canonical'])} runs)",
                     fmt_seconds(t["canonical"]), f"client {ratio:.0f}x faster",
                     f"≥ 20x: {check(ratio >= 20)}"))
    else:
        rows.append(("", "canonical course client", "skipped (--quick)", "", ""))
    if served:
        st = {n: median(v) for n, v in served["times"].items()}
        rows.append(("`get(\"*\")` of the same points from the embedded server", "client.Client",
                     fmt_seconds(st["client"]), "1", "(end to end, for reference)"))
        rows.append(("", "floor: recv_into + C-speed build", fmt_seconds(st["floor"]),
                     f"client = {paired(served['times']['client'], served['times']['floor']):.2f}x floor", ""))
        rows.append(("", "careful pure Python", fmt_seconds(st["careful"]),
                     f"client {paired(served['times']['careful'], served['times']['client']):.1f}x faster", ""))
    reply = meta["reply_bytes"]
    for i, (name, label) in enumerate([("client", "client.Client"), ("floor", "floor"),
                                       ("careful", "careful pure Python"),
                                       ("canonical", "canonical course client")]):
        if name not in memory:
            continue
        m = memory[name]
        ratio = m["overhead_bytes"] / reply
        target = f"≤ 1.5x reply: {check(ratio <= 1.5)}" if name == "client" else ""
        rows.append(("peak memory above the result (RSS)" if i == 0 else "", label,
                     f"{fmt_bytes(m['overhead_bytes'])} (result {fmt_bytes(m['result_bytes'])})",
                     f"{ratio:.2f}x reply bytes", target))
    p = {n: median(v) for n, v in put["per_op"].items()}
    ratio = paired(put["per_op"]["client"], put["per_op"]["floor"])
    rows.append((f"single `put` ({meta['put_server']})", "client.Client",
                 fmt_seconds(p["client"]), "1", ""))
    rows.append(("", "floor: raw sendall/recv, same connection", fmt_seconds(p["floor"]),
                 f"client = {ratio:.3f}x floor", f"≤ 1.10x: {check(ratio <= 1.10)}"))
    for name, label in (("careful", "careful pure Python"), ("canonical", "canonical course client")):
        ratio = paired(put["per_op"][name], put["per_op"]["client"])
        rows.append(("", label, fmt_seconds(p[name]), f"client {ratio:.2f}x faster", ""))
    m = {n: median(v) for n, v in many["times"].items()}
    n = many["points"]
    rows.append((f"`put_many`, {n:,} points ({meta['put_server']})", "client.put_many",
                 f"{fmt_seconds(m['put_many'])} ({fmt_rate(n / m['put_many'])})", "1", ""))
    ratio = paired(many["times"]["sequential"], many["times"]["put_many"])
    rows.append(("", "sequential client.put", f"{fmt_seconds(m['sequential'])} "
                 f"({fmt_rate(n / m['sequential'])})",
                 f"put_many {ratio:.0f}x the throughput", f"≥ 20x: {check(ratio >= 20)}"))
    ratio = paired(many["times"]["put_many"], many["times"]["floor"])
    rows.append(("", "floor: raw pipelined sendall + recv", f"{fmt_seconds(m['floor'])} "
                 f"({fmt_rate(n / m['floor'])})", f"put_many = {ratio:.2f}x floor", ""))
    rows += server_rows(servers)
    return markdown(rows)


def draw_chart(path, get, put, many, servers):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("  matplotlib is not installed (pip install matplotlib): no chart")
        return False
    colors = {"client.Client": "#d2691e", "floor": "#7f7f7f", "careful": "#4c72b0",
              "canonical": "#8c8cbf", "embedded": "#d2691e", "asyncio": "#4c72b0",
              "redis": "#c44e52"}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))

    ax = axes[0]
    labels = ["client.Client", "floor", "careful", "canonical"]
    names = ["client", "floor", "careful", "canonical"]
    values = [median(get["times"][n]) for n in names if n in get["times"]]
    labels = [label for label, n in zip(labels, names) if n in get["times"]]
    bars = ax.bar(labels, values, color=[colors[label] for label in labels])
    ax.set_yscale("log")
    ax.set_ylim(min(values) / 3, max(values) * 2)
    ax.set_ylabel("seconds (log scale)")
    ax.set_title(f'get("*"): {get["points"]:,} points')
    for bar, v in zip(bars, values):
        ax.annotate(fmt_seconds(v), (bar.get_x() + bar.get_width() / 2, v),
                    ha="center", va="bottom", fontsize=9)

    ax = axes[1]
    labels = ["client.Client", "floor", "careful", "canonical"]
    values = [median(put["per_op"][n]) * 1e6 for n in ["client", "floor", "careful", "canonical"]]
    values.append(1e6 * median(many["times"]["put_many"]) / many["points"])
    labels.append("put_many")
    bars = ax.bar(labels, values, color=[colors.get(label, "#d2691e") for label in labels])
    ax.set_ylabel("µs per put")
    ax.set_title("put: one round trip each; put_many pipelined")
    for bar, v in zip(bars, values):
        ax.annotate(f"{v:.1f}", (bar.get_x() + bar.get_width() / 2, v),
                    ha="center", va="bottom", fontsize=9)

    ax = axes[2]
    groups = [n for n in ("embedded", "asyncio", "redis") if n in servers]
    width = 0.8 / max(1, len(groups))
    for i, name in enumerate(groups):
        xs = [j + i * width for j in range(2)]
        ys = [servers[name][p]["rps"] for p in (1, 16)]
        ax.bar(xs, ys, width, label=name, color=colors[name])
        for x, y in zip(xs, ys):
            ax.annotate(fmt_rate(y).replace(" ", ""), (x, y), ha="center", va="bottom", fontsize=8)
    ax.set_xticks([j + width * (len(groups) - 1) / 2 for j in range(2)])
    ax.set_xticklabels(["no pipelining", "16 per batch"])
    ax.set_yscale("log")
    rates = [servers[n][p]["rps"] for n in groups for p in (1, 16)]
    if rates:
        ax.set_ylim(min(rates) / 3, max(rates) * 2)
    ax.set_ylabel("puts per second (log scale)")
    ax.set_title("server put throughput, 50 connections")
    ax.legend()
    fig.suptitle("metrics-client benchmarks (medians; same machine, same run)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


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
