#!/usr/bin/env python3
"""What TLS costs a put: plain and TLS puts side by side in one run.

    python benches/tls.py [--puts N] [--rounds R]

Two embedded servers on loopback, one plain and one TLS (certificates made
for the run with the ``cryptography`` package, in a temporary directory).
Each round times N single puts through ``Client`` on each, alternating, so
the noise of a shared machine hits both alike; the figure is the median
round. Prints puts/s and microseconds per put for each, and the ratio
(TLS time over plain time; the goal is at most 1.3). A mutual-TLS server
(client certificate) is timed too, to show the handshake does not weigh
on puts. For reference, the same puts written by hand on a Python socket
and on a Python ``ssl.SSLSocket`` (sendall, recv_into) show what Python's
ssl record layer costs by itself. Every server started here is closed here.
"""

import argparse
import os
import socket
import ssl
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from tests.support.certificates import Certificates  # noqa: E402

try:
    from client import Client, Server
except ImportError:  # pragma: no cover - explained at start-up
    sys.exit("benches/tls.py needs the client package installed: pip install .")

GOAL = 1.3


def time_puts(client: Client, count: int) -> float:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puts", type=int, default=20_000, help="puts per round and client")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        certificates = Certificates(directory)
        trusting = ssl.create_default_context(cafile=certificates.ca.cert)
        presenting = ssl.create_default_context(cafile=certificates.ca.cert)
        presenting.load_cert_chain(certificates.client.cert, certificates.client.key)
        with Server() as plain, \
                Server(tls_cert=certificates.server.cert,
                       tls_key=certificates.server.key) as tls, \
                Server(tls_cert=certificates.server.cert, tls_key=certificates.server.key,
                       tls_client_ca=certificates.ca.cert) as mutual:
            clients = {
                "plain": Client(*plain.address),
                "tls": Client(*tls.address, ssl=trusting),
                "mutual tls": Client(*mutual.address, ssl=presenting),
                "py socket": raw(plain.address),
                "py ssl": raw(tls.address, trusting),
            }
            rounds = {name: [] for name in clients}
            for client in clients.values():
                time_puts(client, min(args.puts, 1000))  # warm-up
            for _ in range(args.rounds):
                for name, client in clients.items():
                    rounds[name].append(time_puts(client, args.puts))
            for client in clients.values():
                client.close()
    median = {name: statistics.median(times) for name, times in rounds.items()}
    print(f"{args.puts} single puts per round, median of {args.rounds} rounds, loopback")
    print(f"{'':12} {'puts/s':>10} {'us/put':>8} {'x plain':>8}")
    for name, seconds in median.items():
        print(f"{name:12} {args.puts / seconds:10.0f} {seconds / args.puts * 1e6:8.1f} "
              f"{seconds / median['plain']:8.2f}")
    ratio = median["tls"] / median["plain"]
    verdict = "within" if ratio <= GOAL else "OVER"
    print(f"TLS put / plain put: {ratio:.2f}x ({verdict} the {GOAL}x goal)")
    floor = median["py ssl"] / median["py socket"]
    print(f"by hand, Python ssl socket / Python socket: {floor:.2f}x (Python's ssl by itself)")


if __name__ == "__main__":
    main()
