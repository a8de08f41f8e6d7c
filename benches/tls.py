#!/usr/bin/env python3
"""What TLS costs: plain and TLS side by side in one run.

    python benches/tls.py [--puts N] [--rounds R] [--points P] [--get-points G]

(defaults: 31 rounds of 2000 puts, put_many of 200,000 points, get * of 1M;
every thread on one CPU unless --all-cpus)

Embedded servers on loopback, plain and TLS (certificates made for the run
with the ``cryptography`` package, in a temporary directory). Every figure
is the median of R rounds, the clients timed in turn within each round so
the noise of a shared machine hits all alike. Measured:

- single puts through ``Client``: plain, TLS in the Rust core (``tls_ca=``,
  the default path), mutual TLS (a client certificate), and TLS through
  Python's ``ssl`` (``ssl=<SSLContext>``, the slower path);
- ``put_many`` of P points, plain and native TLS;
- ``get("*")`` of G points (1M by default), plain and native TLS.

Goals (ratios of the same run): a TLS put at most 1.3x a plain put,
``put_many`` at most 1.3x, ``get *`` at most 1.2x; and what TLS adds to a
put above plain TCP, on the native path, at most a fifth of what it adds on
the Python ``ssl`` path. For reference, puts written by hand on a Python
socket and on a Python ``ssl.SSLSocket`` show what Python's ssl costs by
itself. Every server started here is closed here.
"""

import argparse
import os
import socket
import ssl
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from tests.support.certificates import Certificates  # noqa: E402

try:
    from client import Client, Server
except ImportError:  # pragma: no cover - explained at start-up
    sys.exit("benches/tls.py needs the client package installed: pip install .")

PUT_GOAL = 1.3
PUT_MANY_GOAL = 1.3
GET_GOAL = 1.2
#: The native path's extra cost per put over the Python ssl path's, at most.
EXTRA_GOAL = 0.2


def time_puts(client, count: int) -> float:
    """Seconds for `count` puts, one at a time."""
    started = time.perf_counter()
    for i in range(count):
        client.put("bench.tls", float(i), 1_700_000_000 + i)
    return time.perf_counter() - started


class RawPuts:
    """Puts written by hand on a socket (or SSL socket): the floor of any
    client over that socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray(16384)

    def put(self, key: str, value: float, timestamp: int) -> None:
        self.sock.sendall(f"put {key} {value!r} {timestamp}\n".encode())
        if not self.sock.recv_into(self.buffer):
            raise ConnectionError("the server closed the connection")

    def close(self) -> None:
        self.sock.close()


def raw(address: tuple, context: "ssl.SSLContext | None" = None) -> RawPuts:
    sock = socket.create_connection(address)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname=address[0])
    return RawPuts(sock)


def timed_rounds(timers: Dict[str, Callable[[], float]], rounds: int) -> Dict[str, List[float]]:
    """The seconds of each timer in each of `rounds`, the timers run in turn
    within a round: many short rounds, so a burst of load from elsewhere
    spoils few of them, and the timers of one round saw the same load."""
    times: Dict[str, List[float]] = {name: [] for name in timers}
    for _ in range(rounds):
        for name, timer in timers.items():
            times[name].append(timer())
    return times


def median(times: Dict[str, List[float]]) -> Dict[str, float]:
    return {name: statistics.median(each) for name, each in times.items()}


def paired_ratio(times: Dict[str, List[float]], over: str, under: str) -> float:
    """The median over rounds of `over`'s time / `under`'s in the same round."""
    return statistics.median(a / b for a, b in zip(times[over], times[under]))


def paired_extra(times: Dict[str, List[float]], over: str, under: str) -> float:
    """The median over rounds of `over`'s time - `under`'s in the same round."""
    return statistics.median(a - b for a, b in zip(times[over], times[under]))


def verdict(ratio: float, goal: float) -> str:
    return f"{ratio:.2f}x ({'within' if ratio <= goal else 'OVER'} the {goal}x goal)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puts", type=int, default=2_000, help="puts per round and client")
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--points", type=int, default=200_000, help="points per put_many")
    parser.add_argument("--get-points", type=int, default=1_000_000, help="points a get * returns")
    parser.add_argument("--all-cpus", action="store_true",
                        help="let the scheduler spread the threads (default: all on one CPU)")
    args = parser.parse_args()
    if not args.all_cpus and hasattr(os, "sched_setaffinity"):
        # Client and server threads on one CPU (set before any thread
        # starts, so all inherit it): a put's latency is then the work done
        # for it, not where the scheduler woke the server's thread, which
        # on a shared 2-core machine moves figures by 2x from round to round.
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with tempfile.TemporaryDirectory() as directory:
        certs = Certificates(directory)
        trusting = ssl.create_default_context(cafile=certs.ca.cert)
        native = {"tls_ca": certs.ca.cert}
        mine = {"tls_cert": certs.client.cert, "tls_key": certs.client.key}
        tls_files = {"tls_cert": certs.server.cert, "tls_key": certs.server.key}
        with Server() as plain, Server(**tls_files) as tls, \
                Server(**tls_files, tls_client_ca=certs.ca.cert) as mutual, \
                Server() as plain_get, Server(**tls_files) as tls_get:
            clients = {
                "plain": Client(*plain.address),
                "tls": Client(*tls.address, **native),
                "mutual tls": Client(*mutual.address, **native, **mine),
                "python ssl": Client(*tls.address, ssl=trusting),
                "py socket": raw(plain.address),
                "py ssl socket": raw(tls.address, trusting),
            }
            for client in clients.values():
                time_puts(client, min(args.puts, 1000))  # warm-up
            put_times = timed_rounds(
                {name: (lambda c=c: time_puts(c, args.puts)) for name, c in clients.items()}, args.rounds)
            batch = [(f"bench.many.{i % 1000}", float(i), 1_700_000_000 + i) for i in range(args.points)]

            def put_many(client: Client) -> float:
                started = time.perf_counter()
                client.put_many(batch)
                return time.perf_counter() - started

            many_times = timed_rounds({"plain": lambda: put_many(clients["plain"]),
                                       "tls": lambda: put_many(clients["tls"])}, max(5, args.rounds // 3))
            getters = {"plain": Client(*plain_get.address), "tls": Client(*tls_get.address, **native)}
            keys = 1000
            per_key = max(1, args.get_points // keys)
            loading = [(f"bench.get.{k}", float(t), 1_600_000_000 + t)
                       for k in range(keys) for t in range(per_key)]
            for client in getters.values():
                client.put_many(loading)

            def get_all(client: Client) -> float:
                started = time.perf_counter()
                got = client.get("*")
                elapsed = time.perf_counter() - started
                assert sum(map(len, got.values())) == keys * per_key
                return elapsed

            get_times = timed_rounds({name: (lambda c=c: get_all(c)) for name, c in getters.items()},
                                     max(5, args.rounds // 5))
            for client in [*clients.values(), *getters.values()]:
                client.close()
    puts, many, gets = median(put_times), median(many_times), median(get_times)
    where = "all CPUs" if args.all_cpus else "one CPU"
    print(f"{args.puts} single puts per round, median of {args.rounds} rounds, loopback, {where}")
    print(f"{'':14} {'puts/s':>10} {'us/put':>8} {'x plain':>8}")
    for name, seconds in puts.items():
        print(f"{name:14} {args.puts / seconds:10.0f} {seconds / args.puts * 1e6:8.1f} "
              f"{paired_ratio(put_times, name, 'plain'):8.2f}")
    print(f"put_many of {args.points} points: plain {many['plain'] * 1e3:.1f} ms, "
          f"tls {many['tls'] * 1e3:.1f} ms")
    print(f"get * of {keys * per_key} points: plain {gets['plain'] * 1e3:.1f} ms, "
          f"tls {gets['tls'] * 1e3:.1f} ms")
    print("(ratios: the median over rounds of the ratio within a round)")
    print()
    print(f"TLS put / plain put:           {verdict(paired_ratio(put_times, 'tls', 'plain'), PUT_GOAL)}")
    print(f"TLS put_many / plain put_many: "
          f"{verdict(paired_ratio(many_times, 'tls', 'plain'), PUT_MANY_GOAL)}")
    print(f"TLS get * / plain get *:       {verdict(paired_ratio(get_times, 'tls', 'plain'), GET_GOAL)}")
    native_extra = paired_extra(put_times, "tls", "plain") / args.puts * 1e6
    python_extra = paired_extra(put_times, "python ssl", "plain") / args.puts * 1e6
    share = native_extra / python_extra if python_extra > 0 else float("inf")
    print(f"what TLS adds to a put: native {native_extra:.1f} us, Python ssl {python_extra:.1f} us: "
          f"{share:.2f} of it ({'within' if share <= EXTRA_GOAL else 'OVER'} the {EXTRA_GOAL} goal)")
    floor = paired_ratio(put_times, "py ssl socket", "py socket")
    print(f"by hand, Python ssl socket / Python socket: {floor:.2f}x (Python's ssl by itself)")


if __name__ == "__main__":
    main()
