"""Bytes per key and per point held by the server, next to redis.

``python benches/store_memory.py [--keys N] [--points N]``

Starts ``python -m client serve`` and, when installed, ``redis-server`` (no
persistence) in their own processes, stores the same data in each and
prints the growth of each server's resident set size (RSS) divided by the
number of keys or points:

- keys: N keys named ``host<i>.cpu``, one point each (redis: ``SET key
  value``, and ``ZADD key ts value`` for a sorted set per key, the closest
  redis shape to a series);
- points: one key with N points in time order (redis: one sorted set).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
from typing import Callable, List, Tuple

import client


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ours(shape: str, n: int) -> float:
    server = subprocess.Popen(
        [sys.executable, "-m", "client", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        line = server.stdout.readline().decode()
        host, _, port = line.strip().rpartition(" ")[2].rpartition(":")
        c = client.Client(host, int(port), timeout=600)
        c.put("warm", 1.0, timestamp=1)
        before = rss(server.pid)
        batch = 10_000
        for start in range(0, n, batch):
            if shape == "keys":
                c.put_many([(f"host{i}.cpu", 1.5, 1_700_000_000) for i in range(start, min(n, start + batch))])
            else:
                c.put_many([("series", 1.5, 1_700_000_000 + i) for i in range(start, min(n, start + batch))])
        return (rss(server.pid) - before) / n
    finally:
        server.terminate()
        server.wait(30)


def resp(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def redis(command: Callable[[int], Tuple[str, ...]], n: int) -> float:
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        before = rss(server.pid)
        batch = 10_000
        for start in range(0, n, batch):
            count = min(n, start + batch) - start
            sock.sendall(b"".join(resp(*command(i)) for i in range(start, start + count)))
            seen, data = 0, b""
            while seen < count:
                data += sock.recv(1 << 20)
                seen = data.count(b"\r\n")
        sock.close()
        return (rss(server.pid) - before) / n
    finally:
        server.terminate()
        server.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--points", type=int, default=10_000_000)
    args = parser.parse_args()
    rows: List[Tuple[str, str, float]] = [
        ("per key (1 point each)", "client.Server", ours("keys", args.keys)),
        ("per point (one long series)", "client.Server", ours("points", args.points)),
    ]
    if shutil.which("redis-server"):
        rows += [
            ("per key (1 point each)", "redis SET", redis(lambda i: ("SET", f"host{i}.cpu", "1.5"), args.keys)),
            ("per key (1 point each)", "redis ZADD",
             redis(lambda i: ("ZADD", f"host{i}.cpu", "1700000000", "1.5"), args.keys)),
            ("per point (one long series)", "redis ZADD",
             redis(lambda i: ("ZADD", "series", str(1_700_000_000 + i), f"{1_700_000_000 + i}:1.5"), args.points)),
        ]
    print(f"keys: {args.keys:,}, points: {args.points:,} (RSS growth / count)")
    print("| what | server | bytes |")
    print("|---|---|---:|")
    for what, server, value in rows:
        print(f"| {what} | {server} | {value:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
