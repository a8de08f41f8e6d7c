"""Helpers for the client's tests (the scriptable server in `scripted`, bounds in
`bounds`, re-exported here): a scriptable threaded TCP server on
loopback, an in-memory metrics server built on it, bounded waits, and a
TestCase base class whose tests can never hang.

Every wait here is bounded (``BOUND`` seconds unless told otherwise) and is a
wait on an observable condition, never a sleep standing in for one.
"""

from __future__ import annotations

import faulthandler
import os
import socket
import struct
import tempfile
import threading
import unittest
import warnings
from typing import Callable, Optional, Tuple

import client

from .bounds import BOUND, WATCHDOG, wait_until
from .scripted import (
    MetricsServer,
    MetricsStore,
    Peer,
    PeerClosed,
    Script,
    ScriptedServer,
    ServerStopped,
    ok_to_everything,
    respond,
)

__all__ = [
    "BOUND",
    "Script",
    "ScriptedServer",
    "MetricsServer",
    "MetricsStore",
    "Peer",
    "PeerClosed",
    "ServerStopped",
    "TestCase",
    "wait_until",
    "refused_address",
    "ipv6_loopback_available",
    "client_socket_state",
    "socket_queues",
    "wait_client_socket",
    "respond",
    "ok_to_everything",
]


# --------------------------------------------------------------------------
# Sockets and the kernel's view of them


class refused_address:
    """A loopback (host, port) where connecting is refused: the port is bound
    (so nobody else can take it) but not listening. Use as a context manager."""

    def __enter__(self) -> Tuple[str, int]:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        return self._sock.getsockname()[:2]

    def __exit__(self, *exc_info) -> None:
        self._sock.close()


def ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


TCP_ESTABLISHED = 0x01
TCP_CLOSE_WAIT = 0x08


def _proc_address(host: str, port: int) -> str:
    if ":" in host:
        words = struct.unpack("<4I", socket.inet_pton(socket.AF_INET6, host))
        return "".join("%08X" % w for w in words) + ":%04X" % port
    return "%08X:%04X" % (struct.unpack("<I", socket.inet_aton(host))[0], port)


def socket_queues(local: Tuple[str, int], remote: Tuple[str, int]) -> Optional[Tuple[int, int, int]]:
    """The kernel's (state, tx_queue, rx_queue) of the TCP connection from
    ``local`` to ``remote``, from /proc/net/tcp[6]; None if it is not found
    (or /proc is unavailable)."""
    want = (_proc_address(*local), _proc_address(*remote))
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as rows:
                next(rows)
                for row in rows:
                    fields = row.split()
                    if (fields[1], fields[2]) == want:
                        tx_queue, rx_queue = (int(q, 16) for q in fields[4].split(":"))
                        return int(fields[3], 16), tx_queue, rx_queue
        except OSError:
            continue
    return None


def client_socket_state(peer: Peer) -> Optional[Tuple[int, int]]:
    """The kernel's (state, rx_queue) of the client's end of ``peer``'s
    connection; None if it is not found (or /proc is unavailable)."""
    queues = socket_queues(peer.address, peer.server.address)
    return None if queues is None else (queues[0], queues[2])


def wait_client_socket(test: unittest.TestCase, peer: Peer,
                       predicate: Callable[[int, int], bool], what: str) -> None:
    """Waits (bounded) until the client's socket satisfies ``predicate(state,
    rx_queue)``; skips the test where the kernel's table cannot be read."""
    if not os.path.exists("/proc/net/tcp"):
        test.skipTest("needs /proc/net/tcp to observe the client's socket")

    def check():
        state = client_socket_state(peer)
        return state is not None and predicate(*state)
    wait_until(check, message=what)


# --------------------------------------------------------------------------
# TestCase


class TestCase(unittest.TestCase):
    """Base class: a watchdog bounds every test, and servers and clients made
    with ``self.server()`` / ``self.client()`` are cleaned up."""

    def setUp(self) -> None:
        super().setUp()
        faulthandler.dump_traceback_later(WATCHDOG, exit=True)
        self.addCleanup(faulthandler.cancel_dump_traceback_later)

    def server(self, script=None, **kwargs) -> ScriptedServer:
        server = ScriptedServer(script, **kwargs)
        self.addCleanup(server.stop)
        return server

    def metrics_server(self, **kwargs) -> MetricsServer:
        server = MetricsServer(**kwargs)
        self.addCleanup(server.stop)
        return server

    def tls_options(self) -> dict:
        """The client keywords of the transport under test: none for plain
        TCP (``support.transports.OverTls`` gives TLS's)."""
        return {}

    def client(self, server_or_address, **kwargs) -> client.Client:
        if isinstance(server_or_address, ScriptedServer):
            host, port = server_or_address.address
        else:
            host, port = server_or_address
        kwargs.setdefault("timeout", BOUND)
        for name, value in self.tls_options().items():
            kwargs.setdefault(name, value)
        c = client.Client(host, port, **kwargs)
        self.addCleanup(c.close)
        return c

    def async_client(self, *address, **kwargs) -> client.AsyncClient:
        """An AsyncClient on the transport under test (closed by the test)."""
        for name, value in self.tls_options().items():
            kwargs.setdefault(name, value)
        return client.AsyncClient(*address, **kwargs)

    def temporary_directory(self) -> str:
        """A new empty directory, removed with all it holds after the test."""
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        return tmp.name

    def embedded_server(self, **kwargs) -> client.Server:
        """The embedded server, on the transport under test."""
        server = client.Server(**kwargs)
        self.addCleanup(server.close)
        return server

    def run_forked(self, child: Callable[[], int]) -> int:
        """Runs ``child`` in a forked process and returns its exit code. The
        child exits with what ``child`` returns (4 if it raises); a child that
        does not finish within BOUND is killed and the test fails."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, 3.12+
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 4
            try:
                code = child()
            finally:
                os._exit(code)
        status = []
        waiter = threading.Thread(target=lambda: status.append(os.waitpid(pid, 0)[1]), daemon=True)
        waiter.start()
        waiter.join(BOUND)
        if waiter.is_alive():
            os.kill(pid, 9)
            waiter.join(BOUND)
            self.fail("the forked child did not finish")
        self.assertTrue(os.WIFEXITED(status[0]), status)
        return os.WEXITSTATUS(status[0])

    def assertElapsedBetween(self, elapsed: float, low: float, high: float) -> None:
        self.assertGreaterEqual(elapsed, low, f"took {elapsed:.4f} s, expected >= {low}")
        self.assertLessEqual(elapsed, high, f"took {elapsed:.4f} s, expected <= {high}")
