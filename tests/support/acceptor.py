"""A listening socket and the thread that accepts on it, shared by the
scripted server and the delaying proxy: each accepted connection (with
TCP_NODELAY) goes to a callback, and ``stop()`` wakes the thread through a
socket pair, so it never polls and stops at once."""

from __future__ import annotations

import select
import socket
import threading
from typing import Callable, Tuple

from .bounds import BOUND


class Acceptor:
    """Listens on ``(host, port)`` and calls ``on_accept(sock)`` in its own
    thread for every connection, until ``on_accept`` returns False or
    ``stop()`` is called. ``reuse_address`` lets a fixed port be bound again
    while the last connections on it are in TIME_WAIT."""

    def __init__(self, host: str, port: int, on_accept: Callable[[socket.socket], bool], *,
                 name: str, reuse_address: bool = False) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        if reuse_address:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.listener.bind((host, port))
            self.listener.listen(128)
        except BaseException:
            self.listener.close()
            raise
        self.address: Tuple[str, int] = self.listener.getsockname()[:2]
        self._on_accept = on_accept
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while True:
            ready, _, _ = select.select([self.listener, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                sock, _ = self.listener.accept()
            except OSError:
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if not self._on_accept(sock):
                return

    def stop(self) -> None:
        """Wakes and joins the thread (bounded), then closes the sockets."""
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._thread.join(BOUND)
        self.listener.close()
        self._wake_r.close()
        self._wake_w.close()
