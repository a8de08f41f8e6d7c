"""The servers benches/run.py measures side by side (ours embedded, the
course-style asyncio server, redis-server, a stand-in that replays a
recorded reply) as child processes, and the server-throughput rounds that
drive them with the Rust load generator and redis-benchmark."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

from run_report import fmt_rate, log, median

HERE = os.path.dirname(os.path.abspath(__file__))
LOADGEN_DIR = os.path.join(HERE, "loadgen")
LOADGEN = os.path.join(LOADGEN_DIR, "target", "release", "metrics-load")


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
