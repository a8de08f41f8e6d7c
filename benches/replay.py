"""Start-up time: replaying the data file, ours against redis-server's AOF.

``python benches/replay.py [--points N] [--rounds R] [--dir DIR]`` writes
three files holding the same N points, one key per point (default
10,000,000):

- ``current.log``: our journal as the server writes it today (format 3:
  checksummed binary frames), written by the server itself through ``put_many``;
- ``format1.log``: the first format (plain ``put`` lines, no header);
- ``redis.aof``: redis' append-only file with one ``HSET key ts value`` per
  point (a hash per key, the closest redis has to a series).

Then, round after round (the order rotating), it starts
``python -m client serve --data`` on a copy of each log and ``redis-server
--appendonly yes`` on the AOF, and times each from process start until a
``get``/``HGET`` of the last key answers with its value. It prints seconds,
MB/s of log and the ratios redis/ours (above 1: ours is faster); each figure
is the median of the rounds. redis is skipped, with a line saying so, when
``redis-server`` is not installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional

BOUND = 600.0  # seconds any one start may take before the run is abandoned


def key(i: int) -> str:
    return f"m{i:08d}.cpu"


def value(i: int) -> float:
    return (i % 100_000) / 100


def timestamp(i: int) -> int:
    return 1_700_000_000 + i


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_format1(path: str, points: int) -> None:
    with open(path, "w") as f:
        step = 100_000
        for start in range(0, points, step):
            f.write("".join(f"put {key(i)} {value(i)!r} {timestamp(i)}\n"
                            for i in range(start, min(points, start + step))))


def write_current(path: str, points: int) -> None:
    from client import Client, Server
    with Server(data=path, fsync="no") as srv, Client(*srv.address, timeout=60) as cl:
        step = 100_000
        for start in range(0, points, step):
            cl.put_many([(key(i), value(i), timestamp(i))
                         for i in range(start, min(points, start + step))])


def write_aof(path: str, points: int) -> None:
    def bulk(text: str) -> str:
        return f"${len(text.encode())}\r\n{text}\r\n"
    with open(path, "w", newline="") as f:
        step = 100_000
        for start in range(0, points, step):
            f.write("".join("*4\r\n$4\r\nHSET\r\n" + bulk(key(i)) + bulk(str(timestamp(i)))
                            + bulk(repr(value(i)))
                            for i in range(start, min(points, start + step))))


def ask(port: int, request: bytes, done: Callable[[bytes], bool]) -> bool:
    """One request on a new connection; whether the reply satisfies `done`
    (False while the server refuses connections or is still loading)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=BOUND) as s:
            s.sendall(request)
            reply = b""
            while not done(reply):
                chunk = s.recv(65536)
                if not chunk:
                    return False
                reply += chunk
                if reply.startswith(b"-") and reply.endswith(b"\r\n"):
                    return False  # -LOADING
            return True
    except OSError:
        return False


def time_start(argv: List[str], port: int, request: bytes, expect: bytes, cwd: str) -> float:
    """Seconds from starting `argv` until `request` is answered with `expect`."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while not ask(port, request, lambda r: expect in r):
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited: {proc.stderr.read().decode()[-2000:]}")
            if time.perf_counter() - started > BOUND:
                raise RuntimeError(f"{argv} did not answer within {BOUND} s")
            time.sleep(0.01)  # polling a server that is loading: nothing to wait on
        return time.perf_counter() - started
    finally:
        proc.terminate()
        try:
            proc.wait(BOUND)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--dir", help="where to write the files, kept afterwards and reused by the next "
                                      "run with the same --points (default: a temporary directory)")
    args = parser.parse_args(argv)
    if args.points < 1 or args.rounds < 1:
        parser.error("--points and --rounds must be at least 1")

    own_dir = args.dir is None
    work = tempfile.mkdtemp(prefix="replay-bench-") if own_dir else args.dir
    try:
        n = args.points
        last = n - 1
        files = {"current": os.path.join(work, "current.log"),
                 "format1": os.path.join(work, "format1.log"),
                 "redis": os.path.join(work, "redis.aof")}
        writers = {"current": write_current, "format1": write_format1, "redis": write_aof}
        redis = shutil.which("redis-server")
        if redis is None:
            print("redis-server is not installed: skipping redis (apt-get install redis-server)")
            del files["redis"]
        stamp = os.path.join(work, "points")
        reuse = not own_dir and os.path.exists(stamp) and open(stamp).read() == str(n)
        for name, path in files.items():
            if reuse and os.path.exists(path):
                print(f"reusing {path}", file=sys.stderr, flush=True)
                continue
            t = time.perf_counter()
            writers[name](path, n)
            print(f"wrote {name}: {os.path.getsize(path) / 1e6:.0f} MB in {time.perf_counter() - t:.1f} s",
                  file=sys.stderr, flush=True)

        with open(stamp, "w") as f:
            f.write(str(n))
        want_ours = f"{key(last)} {value(last)!r} {timestamp(last)}\n".encode()
        want_redis = f"${len(repr(value(last)))}\r\n{value(last)!r}\r\n".encode()
        seconds: Dict[str, List[float]] = {name: [] for name in files}
        for round_ in range(args.rounds):
            order = list(files)
            order = order[round_ % len(order):] + order[:round_ % len(order)]
            for name in order:
                port = free_port()
                run_dir = tempfile.mkdtemp(dir=work)
                try:
                    if name == "redis":
                        shutil.copy(files[name], os.path.join(run_dir, "appendonly.aof"))
                        argv = [redis, "--port", str(port), "--bind", "127.0.0.1", "--dir", run_dir,
                                "--appendonly", "yes", "--appendfilename", "appendonly.aof",
                                "--appendfsync", "no", "--save", ""]
                        request = f"*3\r\n$4\r\nHGET\r\n${len(key(last))}\r\n{key(last)}\r\n" \
                                  f"${len(str(timestamp(last)))}\r\n{timestamp(last)}\r\n".encode()
                        took = time_start(argv, port, request, want_redis, run_dir)
                    else:
                        data = os.path.join(run_dir, "data.log")
                        shutil.copy(files[name], data)
                        argv = [sys.executable, "-m", "client", "serve", "--port", str(port),
                                "--data", data, "--fsync", "no"]
                        took = time_start(argv, port, f"get {key(last)}\n".encode(), want_ours, run_dir)
                finally:
                    shutil.rmtree(run_dir, ignore_errors=True)
                seconds[name].append(took)
                print(f"round {round_ + 1}: {name} {took:.2f} s", file=sys.stderr, flush=True)

        median = {name: statistics.median(s) for name, s in seconds.items()}
        print(f"replay of {n:,} points, one key per point, median of {args.rounds} round(s):")
        print("| file | size | seconds until it answers | MB/s |")
        print("|---|---|---|---|")
        labels = {"current": "ours, format 3 (binary frames)", "format1": "ours, format 1 (plain)",
                  "redis": "redis-server, AOF (HSET)"}
        for name, path in files.items():
            size = os.path.getsize(path)
            print(f"| {labels[name]} | {size / 1e6:.0f} MB | {median[name]:.2f} | "
                  f"{size / 1e6 / median[name]:.0f} |")
        if "redis" in median:
            for name in ("current", "format1"):
                print(f"redis / ours ({name}): {median['redis'] / median[name]:.2f}x")
        return 0
    finally:
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
