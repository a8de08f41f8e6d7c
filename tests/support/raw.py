"""Raw protocol connections for the server's tests: bytes in, replies out,
with no client library in between. A reply ends at its first empty line.

Every read is bounded by the socket's timeout (``BOUND`` unless told
otherwise).
"""

from __future__ import annotations

import socket
from typing import Optional, Tuple

from . import BOUND

__all__ = ["RawConnection", "connect", "read_reply", "read_reply_or_eof"]


def connect(address: Tuple[str, int], rcvbuf: Optional[int] = None,
            timeout: float = BOUND) -> socket.socket:
    """A TCP connection with ``TCP_NODELAY`` (and a small receive buffer when
    ``rcvbuf`` is given, set before connecting so the window honours it)."""
    sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect(address)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _take_reply(buf: bytearray, scanned: int) -> Optional[bytes]:
    end = buf.find(b"\n\n", max(0, scanned - 1))
    if end < 0:
        return None
    reply = bytes(buf[:end + 2])
    del buf[:end + 2]
    return reply


def read_reply(sock: socket.socket, buf: bytearray) -> bytes:
    """One reply from ``sock``; ``buf`` keeps what was received beyond it.
    Scans each byte once, however small the reads. ConnectionError if the
    server closes first."""
    scanned = 0
    while True:
        reply = _take_reply(buf, scanned)
        if reply is not None:
            return reply
        scanned = len(buf)
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError(f"server closed the connection; have {bytes(buf)[:200]!r}")
        buf += chunk


def read_reply_or_eof(sock: socket.socket, buf: Optional[bytearray] = None) -> bytes:
    """One reply, or whatever arrived before the server closed (``b""`` for
    a connection closed without a word)."""
    buf = bytearray() if buf is None else buf
    try:
        return read_reply(sock, buf)
    except ConnectionError:
        rest = bytes(buf)
        buf.clear()
        return rest


class RawConnection:
    """A raw protocol connection that splits what it receives into replies."""

    def __init__(self, address: Tuple[str, int], timeout: float = BOUND) -> None:
        self.sock = connect(address, timeout=timeout)
        self.buf = bytearray()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> bytes:
        return read_reply(self.sock, self.buf)

    def ask(self, request: bytes) -> bytes:
        self.send(request)
        return self.reply()

    def read_to_close(self) -> bytes:
        """Everything until the server closes the connection."""
        data = bytes(self.buf)
        self.buf.clear()
        while True:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                return data
            data += chunk
