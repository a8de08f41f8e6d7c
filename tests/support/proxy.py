"""A delaying TCP proxy on loopback, for putting a real server's replies on
hold: the scenario of redis-py's CVE-2023-28858/28859 (a request abandoned
while its reply is in flight; the late reply must never answer a later
request).

Everything the client sends is forwarded to the upstream server at once.
What the server sends back passes through a gate shared by every
connection: ``hold(after=n)`` lets ``n`` more bytes through and keeps the rest
back; ``release()`` delivers everything held (to connections the client may
have closed meanwhile) and opens the gate again.

Every wait is bounded and on an observable condition (``wait_held``,
``wait_connections``); nothing here sleeps.
"""

from __future__ import annotations

import socket
import threading
from typing import List, Optional, Tuple

import client

from . import BOUND, TestCase
from .acceptor import Acceptor

__all__ = ["DelayingProxy", "ProxiedConnection", "ProxyTestCase"]


class ProxiedConnection:
    """One client connection and its upstream connection."""

    def __init__(self, proxy: "DelayingProxy", client: socket.socket,
                 upstream: socket.socket, index: int) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.index = index
        #: Bytes the client sent (all forwarded upstream).
        self.from_client = bytearray()
        #: Bytes the server sent, forwarded or held.
        self.from_server = bytearray()
        #: Server bytes delivered to the client (or attempted, after it left).
        self.delivered = 0
        #: Held bytes that could not be delivered because the client had gone.
        self.undeliverable = 0
        self.client_eof = False
        self.upstream_eof = False
        self._pending = bytearray()   # server bytes not yet delivered
        self._send_lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._pump_up, name=f"proxy-{index}-up", daemon=True),
            threading.Thread(target=self._pump_down, name=f"proxy-{index}-down", daemon=True),
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    @property
    def held(self) -> int:
        with self.proxy._cond:
            return len(self._pending)

    def _pump_up(self) -> None:
        """client -> server, through ``forward``."""
        while True:
            try:
                chunk = self.client.recv(1 << 16)
            except OSError:
                chunk = b""
            with self.proxy._cond:
                if chunk:
                    self.from_client += chunk
                else:
                    self.client_eof = True
                self.proxy._cond.notify_all()
            if not chunk:
                try:
                    self.upstream.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            try:
                self.forward(chunk)
            except OSError:
                return

    def forward(self, chunk: bytes) -> None:
        """Sends what the client sent on to the server, as it is."""
        self.upstream.sendall(chunk)

    def _pump_down(self) -> None:
        """server -> client, through the gate."""
        while True:
            try:
                chunk = self.upstream.recv(1 << 16)
            except OSError:
                chunk = b""
            with self.proxy._cond:
                if chunk:
                    self.from_server += chunk
                    self._pending += chunk
                else:
                    self.upstream_eof = True
                self.proxy._cond.notify_all()
            self.drain()
            if not chunk:
                return

    def drain(self) -> None:
        """Delivers what the gate allows, in order."""
        with self._send_lock:
            with self.proxy._cond:
                allowance = self.proxy._allowance
                n = len(self._pending) if allowance is None else min(allowance, len(self._pending))
                data = bytes(self._pending[:n])
                del self._pending[:n]
                if allowance is not None:
                    self.proxy._allowance = allowance - n
                finished = self.upstream_eof and not self._pending
            if data:
                try:
                    self.client.sendall(data)
                except OSError:
                    with self.proxy._cond:
                        self.undeliverable += len(data)
            with self.proxy._cond:
                self.delivered += len(data)
                self.proxy._cond.notify_all()
            if finished:
                try:
                    self.client.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(BOUND)
        self.client.close()
        self.upstream.close()


class DelayingProxy:
    """Listens on ``host`` (loopback) and forwards every connection to
    ``upstream`` (a ``(host, port)``), holding server bytes on demand."""

    #: What each connection is (a subclass may change what is forwarded).
    CONNECTION = ProxiedConnection

    def __init__(self, upstream: Tuple[str, int], host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self._acceptor = Acceptor(host, 0, self._accepted, name="proxy-accept")
        self.address: Tuple[str, int] = self._acceptor.address
        self._cond = threading.Condition()
        #: Server -> client bytes still allowed through; None: no limit.
        self._allowance: Optional[int] = None
        self.connections: List[ProxiedConnection] = []
        self.stopping = False
        self._acceptor.start()

    def __enter__(self) -> "DelayingProxy":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _accepted(self, client: socket.socket) -> bool:
        try:
            upstream = socket.create_connection(self.upstream, timeout=BOUND)
            upstream.settimeout(None)
        except OSError:
            client.close()
            return True
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._cond:
            if self.stopping:
                client.close()
                upstream.close()
                return False
            conn = self.CONNECTION(self, client, upstream, len(self.connections))
            self.connections.append(conn)
            conn.start()
            self._cond.notify_all()
            return True

    # -- the gate ----------------------------------------------------------

    def hold(self, after: int = 0) -> None:
        """From now on let only ``after`` more server bytes through (over all
        connections); the rest is held until ``release()``."""
        with self._cond:
            self._allowance = after

    def release(self) -> int:
        """Opens the gate and delivers everything held, each connection's
        bytes in order; returns how many bytes were held. Returns once they
        were handed to the kernel (or found undeliverable)."""
        with self._cond:
            self._allowance = None
            conns = list(self.connections)
            held = sum(len(c._pending) for c in conns)
        for conn in conns:
            conn.drain()
        return held

    def wait_held(self, count: int = 1, timeout: float = BOUND, exact: bool = False) -> int:
        """Waits until at least ``count`` server bytes (exactly ``count``
        with ``exact``) are held: the server has answered and the client has
        not got it all. Returns the number held."""
        def held():
            return sum(len(c._pending) for c in self.connections)

        def reached():
            return held() == count if exact else held() >= count
        with self._cond:
            if not self._cond.wait_for(reached, timeout):
                raise AssertionError(f"proxy holds {held()} bytes, expected "
                                     f"{'exactly ' if exact else ''}{count} within {timeout} s")
            return held()

    def wait_delivered(self, conn_index: int, count: int, timeout: float = BOUND) -> None:
        """Waits until connection ``conn_index`` delivered ``count`` bytes."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: len(self.connections) > conn_index
                and self.connections[conn_index].delivered >= count, timeout)
            if not ok:
                raise AssertionError(f"proxy connection {conn_index} did not deliver {count} bytes")

    def wait_client_eof(self, conn_index: int, timeout: float = BOUND) -> None:
        """Waits until the client closed connection ``conn_index``."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: len(self.connections) > conn_index
                and self.connections[conn_index].client_eof, timeout)
            if not ok:
                raise AssertionError(f"the client did not close proxy connection {conn_index}")

    # -- observing ---------------------------------------------------------

    @property
    def connection_count(self) -> int:
        with self._cond:
            return len(self.connections)

    def sent_by_client(self, index: int) -> bytes:
        with self._cond:
            return bytes(self.connections[index].from_client)

    def stop(self) -> None:
        with self._cond:
            if self.stopping:
                return
            self.stopping = True
            self._allowance = None
            conns = list(self.connections)
            self._cond.notify_all()
        self._acceptor.stop()
        for conn in conns:
            conn.close()


class ProxyTestCase(TestCase):
    """An embedded server behind a DelayingProxy: ``self.srv``, ``self.proxy``."""

    def setUp(self):
        super().setUp()
        self.srv = client.Server()
        self.addCleanup(self.srv.close)
        self.proxy = DelayingProxy(self.srv.address)
        self.addCleanup(self.proxy.stop)

    def direct(self):
        """A client straight to the server (no proxy), to set up or check data."""
        return self.client(self.srv.address)
