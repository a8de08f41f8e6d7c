"""Servers that acknowledge part of a pipelined batch and then drop the
connection, for ``put_many``'s ``acknowledged`` count.

- ``acks_then_closes(n, ...)``: a ``ScriptedServer`` script answering the
  first ``n`` requests, optionally each reply in several pieces (each sent
  once the client has read the one before, so the replies arrive in several
  reads), then the start of one more reply, then a close (FIN) or a reset.
- ``StopsReadingServer(n)``: acknowledges the first ``n`` requests, stops
  reading, and resets the connection once the client is stuck sending with
  every acknowledgement delivered to it: the client learns of the reset from
  its write, with the acknowledgements still unread in its receive buffer.
  Used with ``small_send_buffer()``, so that a chunk of the batch cannot fit
  in the kernel's buffers.

The waits on the client's socket read the kernel's table (/proc/net/tcp);
every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from typing import Iterator, Optional, Tuple
from unittest import mock

from . import BOUND, MetricsStore, Peer, Script, socket_queues, wait_until

__all__ = ["acks_then_closes", "StopsReadingServer", "small_send_buffer", "proc_available", "REPLY"]

REPLY = b"ok\n\n"


def proc_available() -> bool:
    return os.path.exists("/proc/net/tcp")


def acks_then_closes(count: int, *, pieces: int = 1, reset: bool = False, tail: bytes = b"ok\n",
                     store: Optional[MetricsStore] = None) -> Script:
    """Answers ``ok\\n\\n`` to the first ``count`` requests (storing their
    points in ``store`` if given), each reply in ``pieces`` sends (with
    ``pieces > 1``, each once the client has read the previous one), then
    sends ``tail`` (part of the next request's reply: it must not count)
    and closes the connection, or resets it with ``reset``."""
    size = -(-len(REPLY) // pieces)
    parts = [REPLY[i:i + size] for i in range(0, len(REPLY), size)]

    def read(peer: Peer) -> bool:
        queues = socket_queues(peer.address, peer.server.address)
        return queues is not None and queues[2] == 0

    def script(peer: Peer) -> None:
        for _ in range(count):
            line = peer.read_line()
            if store is not None:
                store.handle(line.rstrip(b"\n"))
            for part in parts:
                peer.send(part)
                if len(parts) > 1:
                    wait_until(lambda: read(peer), message="the client to read a piece of a reply")
        if tail:
            peer.read_line()  # the request it starts to answer
            peer.send(tail)
        if reset:
            peer.abort()
        else:
            peer.close()
    return script


class StopsReadingServer:
    """See the module's docstring. ``stop()`` (or the context manager) ends
    it; ``errors`` holds what went wrong in its thread."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.errors: list = []
        self.listener = socket.socket()
        # Inherited by the accepted socket: little room for unread requests.
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.settimeout(BOUND)
        self.address: Tuple[str, int] = self.listener.getsockname()[:2]
        self._thread = threading.Thread(target=self._serve, name="stops-reading", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, peer = self.listener.accept()
        except OSError as error:
            self.errors.append(f"accept: {error}")
            return
        with conn:
            conn.settimeout(BOUND)
            lines = 0
            try:
                while lines < self.count:
                    chunk = conn.recv(4096)
                    if not chunk:
                        self.errors.append(f"the client closed after {lines} requests")
                        return
                    lines += chunk.count(b"\n")
                conn.sendall(REPLY * self.count)
                client_side = peer[:2]

                def stuck() -> bool:
                    ours = socket_queues(self.address, client_side)
                    theirs = socket_queues(client_side, self.address)
                    # Everything we sent is with the client, which has bytes
                    # it cannot send: it is blocked writing.
                    return ours is not None and theirs is not None and ours[1] == 0 and theirs[1] > 0
                wait_until(stuck, message="the client to be stuck sending")
            except (OSError, AssertionError) as error:
                self.errors.append(repr(error))
            # SO_LINGER 0: close() sends RST.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def stop(self) -> None:
        self.listener.close()
        self._thread.join(BOUND)

    def __enter__(self) -> "StopsReadingServer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def small_send_buffer(size: int = 4096) -> Iterator[None]:
    """``Client``'s connections (made through ``socket.create_connection``)
    get a ``size``-byte send buffer, which also stops its growing."""
    original = socket.create_connection

    def create_connection(*args, **kwargs):  # type: ignore[no-untyped-def]
        sock = original(*args, **kwargs)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        return sock

    with mock.patch("socket.create_connection", create_connection):
        yield
