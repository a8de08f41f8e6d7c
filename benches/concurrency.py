"""Concurrency benchmarks: AsyncClient, the pooled Client, put_many.

``python benches/concurrency.py [--rounds N] [--quick]`` runs the embedded
server in a subprocess (``serve_embedded.py``) and prints a markdown table:
each comparison is made within one run, contenders taking turns within
each round (their order rotates from round to round); figures are medians
and each ratio is the median of the per-round ratios, printed with the
lowest and highest of them, so the noise of a shared machine shows. The
``put_many`` comparison, the most sensitive to noise (about 0.1 s each),
measures ``--pairs`` alternating pairs per round and takes each ratio
within a pair. Progress goes to stderr.

| Comparison | Contenders |
|---|---|
| one connection | ``await AsyncClient.put`` one at a time, against a raw asyncio streams ping-pong (``writer.write`` + ``reader.readuntil``) |
| 100 tasks | 100 tasks putting through one ``AsyncClient``, against 100 tasks each with its own streams connection (the course's shape), and against ``PipelinedClient`` below: pure Python, one connection, pipelined |
| ``get("*")`` | 1,000,000 points: ``AsyncClient.get`` against ``Client.get`` |
| 16 threads | one ``Client`` shared by 16 threads, against a ``Client`` per thread |
| ``put_many`` | 100,000 points: ``Client.put_many`` against the raw pipelined floor (a writer thread ``sendall``s the request bytes, the caller reads every reply) |
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import statistics
import subprocess
import sys
import threading
import time

import client

HERE = os.path.dirname(os.path.abspath(__file__))
# The same floor as benches/run.py measures, and the 100-task contenders
# asyncio_tasks.py measures on their own: one definition serves both.
sys.path.insert(0, HERE)
from asyncio_tasks import one_client, per_task  # noqa: E402
from run import raw_pipeline  # noqa: E402

FIRST_TS = 1642667947


def log(message):
    print(message, file=sys.stderr, flush=True)


class ServerProcess:
    """The embedded server in its own process, so its CPU time is not the
    client's GIL's; stops when its stdin closes."""

    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "serve_embedded.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        host, port = self.process.stdout.readline().split()
        self.address = (host, int(port))

    def stop(self):
        self.process.stdin.close()
        self.process.wait(30)


# ------------------------------------------------------------ pure Python


class PipelinedClient(asyncio.Protocol):
    """A careful pure-Python asyncio client: one connection, requests
    written at once, a queue of futures resolved in order as replies end."""

    def __init__(self):
        self.waiters = collections.deque()
        self.buffer = b""

    @classmethod
    async def connect(cls, host, port):
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(cls, host, port)
        return protocol

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        buffer = self.buffer + data
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            reply = buffer[start:end + 2]
            start = end + 2
            future = self.waiters.popleft()
            if not future.done():
                if reply.startswith(b"ok\n"):
                    future.set_result(None)
                else:
                    future.set_exception(RuntimeError(reply.decode()))
        self.buffer = buffer[start:]

    async def put(self, key, value, timestamp):
        future = asyncio.get_running_loop().create_future()
        self.transport.write(f"put {key} {value} {timestamp}\n".encode())
        self.waiters.append(future)
        await future

    def close(self):
        self.transport.close()


# ------------------------------------------------------------ benchmarks


def rotated(contenders, turn):
    """The contenders in the order of this turn: each goes first in turn."""
    shift = turn % len(contenders)
    return contenders[shift:] + contenders[:shift]


async def async_single(address, n, turn):
    """Seconds for n sequential puts: AsyncClient and raw streams."""
    host, port = address
    times = {}

    async def through_client():
        async with client.AsyncClient(host, port) as c:
            started = time.perf_counter()
            for i in range(n):
                await c.put("bench.single", i + 0.5, FIRST_TS + i)
            times["AsyncClient.put"] = time.perf_counter() - started

    async def raw():
        reader, writer = await asyncio.open_connection(host, port)
        started = time.perf_counter()
        for i in range(n):
            writer.write(f"put bench.single {i + 0.5} {FIRST_TS + i}\n".encode())
            await reader.readuntil(b"\n\n")
        times["raw streams"] = time.perf_counter() - started
        writer.close()

    for contender in rotated([through_client, raw], turn):
        await contender()
    return times


async def async_tasks(address, tasks, each, turn):
    """Seconds for `tasks` tasks doing `each` puts: through one
    AsyncClient, each on its own streams connection, and through one
    pure-Python pipelined connection."""
    host, port = address
    times = {}

    async def through_one_client():
        times["AsyncClient"] = await one_client(address, tasks, each)

    async def connection_per_task():
        times["connection per task"] = await per_task(address, tasks, each)

    async def pure_python():
        pipelined = await PipelinedClient.connect(host, port)

        async def through(t):
            for i in range(each):
                await pipelined.put(f"bench.task.{t}", i + 0.5, FIRST_TS + i)
        started = time.perf_counter()
        await asyncio.gather(*(through(t) for t in range(tasks)))
        times["pure-Python pipelined"] = time.perf_counter() - started
        pipelined.close()

    for contender in rotated([through_one_client, connection_per_task, pure_python], turn):
        await contender()
    return times


def big_get(address, turn):
    host, port = address
    times = {}
    results = []

    def blocking():
        c = client.Client(host, port)
        started = time.perf_counter()
        results.append(c.get("*"))
        times["Client.get"] = time.perf_counter() - started
        c.close()

    def asynchronous():
        async def fetch():
            async with client.AsyncClient(host, port) as c:
                started = time.perf_counter()
                results.append(await c.get("*"))
                times["AsyncClient.get"] = time.perf_counter() - started

        asyncio.run(fetch())

    for contender in rotated([blocking, asynchronous], turn):
        contender()
    if results[0] != results[1]:
        raise AssertionError("AsyncClient.get and Client.get disagree")
    return times


def threads(address, count, each, turn):
    host, port = address

    def run(clients):
        start = threading.Barrier(count + 1)

        def worker(n):
            c = clients[n % len(clients)]
            start.wait()
            for i in range(each):
                c.put(f"bench.thread.{n}", i + 0.5, FIRST_TS + i)

        workers = [threading.Thread(target=worker, args=(n,)) for n in range(count)]
        for w in workers:
            w.start()
        start.wait()
        started = time.perf_counter()
        for w in workers:
            w.join()
        return time.perf_counter() - started

    times = {}
    connections = []

    def one_shared():
        shared = client.Client(host, port)
        times["one shared Client"] = run([shared])
        connections.append(shared.connection_count)
        shared.close()

    def one_each():
        own = [client.Client(host, port) for _ in range(count)]
        times["a Client per thread"] = run(own)
        for c in own:
            c.close()

    for contender in rotated([one_shared, one_each], turn):
        contender()
    return times, connections[0]


class PutMany:
    """``put_many`` of the same points by ``Client`` and ``AsyncClient``,
    and the raw pipelined floor sending their bytes, made beforehand."""

    def __init__(self, address, n):
        self.address = address
        self.n = n
        self.points = [(f"bench.many.{i % 100}", float(i % 1000) + 0.25, FIRST_TS + i // 100)
                       for i in range(n)]
        self.payload = b"".join(f"put {k} {v} {t}\n".encode() for k, v, t in self.points)

    def pairs(self, count, turn):
        """`count` measurements of each contender, taking turns: one dict
        of seconds per turn."""
        host, port = self.address
        blocking = client.Client(host, port)
        blocking.put_many(self.points[:1000])  # connected and warm

        def through_client():
            started = time.perf_counter()
            blocking.put_many(self.points)
            return time.perf_counter() - started

        async def batch():
            async with client.AsyncClient(host, port) as ac:
                started = time.perf_counter()
                await ac.put_many(self.points)
                return time.perf_counter() - started

        contenders = [
            ("Client.put_many", through_client),
            ("AsyncClient.put_many", lambda: asyncio.run(batch())),
            ("raw pipelined floor", lambda: raw_pipeline(self.address, self.payload, self.n)),
        ]
        rounds = []
        for pair in range(count):
            times = {}
            for name, contender in rotated(contenders, turn + pair):
                times[name] = contender()
            rounds.append(times)
        blocking.close()
        return rounds


# ------------------------------------------------------------ the table


def ratios(rounds, a, b):
    """The median of the per-round ratios a/b, and their lowest and highest."""
    each = [r[a] / r[b] for r in rounds]
    return statistics.median(each), min(each), max(each)


def shown(ratio, what):
    middle, low, high = ratio
    what = f" {what}" if what else ""
    return f"{middle:.2f}x{what} ({low:.2f}-{high:.2f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer operations per round")
    parser.add_argument("--pairs", type=int, default=3,
                        help="put_many measurements of each contender per round (default: 3)")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    single_n = int(5000 * scale)
    tasks, each = 100, int(200 * scale)
    big = int(1_000_000 * (0.1 if args.quick else 1))
    many = int(100_000 * scale)

    server = ServerProcess()
    big_server = ServerProcess()
    batch = PutMany(server.address, many)
    try:
        log(f"loading {big} points for get('*') ...")
        loader = client.Client(*big_server.address)
        loader.put_many((f"big.{i % 100}", float(i % 997) + 0.5, FIRST_TS + i // 100)
                        for i in range(big))
        loader.close()
        results = collections.defaultdict(list)
        connections = []
        for r in range(args.rounds):
            log(f"round {r + 1}/{args.rounds}")
            results["single"].append(asyncio.run(async_single(server.address, single_n, r)))
            results["tasks"].append(asyncio.run(async_tasks(server.address, tasks, each, r)))
            results["get"].append(big_get(big_server.address, r))
            times, used = threads(server.address, 16, int(1000 * scale), r)
            results["threads"].append(times)
            connections.append(used)
            results["many"].extend(batch.pairs(args.pairs, r))
            for name, rounds in results.items():
                log(f"  {name}: " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in rounds[-1].items()))
    finally:
        server.stop()
        big_server.stop()

    def fig(section, name):
        return statistics.median(r[name] for r in results[section])

    def check(ok):
        return "met" if ok else "NOT met"

    rows = []
    s = results["single"]
    ratio = ratios(s, "AsyncClient.put", "raw streams")
    rows.append((f"{single_n} sequential puts, one connection",
                 f"AsyncClient {fig('single', 'AsyncClient.put') / single_n * 1e6:.1f} µs/put; "
                 f"raw streams {fig('single', 'raw streams') / single_n * 1e6:.1f} µs/put",
                 shown(ratio, "raw"), f"≤ 1.10x: {check(ratio[0] <= 1.10)}"))
    t = results["tasks"]
    total = tasks * each
    per_task = ratios(t, "connection per task", "AsyncClient")
    pipelined = ratios(t, "pure-Python pipelined", "AsyncClient")
    rows.append((f"{tasks} tasks x {each} puts",
                 f"AsyncClient {total / fig('tasks', 'AsyncClient'):,.0f} puts/s; "
                 f"connection per task {total / fig('tasks', 'connection per task'):,.0f}; "
                 f"pure-Python pipelined {total / fig('tasks', 'pure-Python pipelined'):,.0f}",
                 f"{shown(per_task, 'per-task')}, {shown(pipelined, 'pure Python')}",
                 f"≥ 4x: {check(per_task[0] >= 4)}; ≥ 1.5x: {check(pipelined[0] >= 1.5)}"))
    ratio = ratios(results["get"], "AsyncClient.get", "Client.get")
    rows.append((f"get('*') of {big:,} points",
                 f"AsyncClient {fig('get', 'AsyncClient.get'):.3f} s; Client {fig('get', 'Client.get'):.3f} s",
                 shown(ratio, "Client"), f"≤ 1.25x: {check(ratio[0] <= 1.25)}"))
    ratio = ratios(results["threads"], "a Client per thread", "one shared Client")
    done = 16 * int(1000 * scale)
    rows.append(("16 threads putting",
                 f"shared {done / fig('threads', 'one shared Client'):,.0f} puts/s "
                 f"(on {max(connections)} connections); per thread "
                 f"{done / fig('threads', 'a Client per thread'):,.0f} puts/s",
                 shown(ratio, ""), f"≥ 0.8x: {check(ratio[0] >= 0.8)}"))
    ratio = ratios(results["many"], "Client.put_many", "raw pipelined floor")
    async_ratio = ratios(results["many"], "AsyncClient.put_many", "raw pipelined floor")
    rows.append((f"put_many of {many:,} points",
                 f"Client {fig('many', 'Client.put_many'):.3f} s; AsyncClient "
                 f"{fig('many', 'AsyncClient.put_many'):.3f} s; floor {fig('many', 'raw pipelined floor'):.3f} s",
                 f"{shown(ratio, 'floor')}; AsyncClient {shown(async_ratio, 'floor')}",
                 f"≤ 1.5x: {check(ratio[0] <= 1.5)}"))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.rounds} rounds ({args.rounds * args.pairs} put_many turns), medians, "
          f"ratios with their lowest-highest; Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load average {load:.2f} at the end\n")
    print("| benchmark | figures | ratio | target |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
