"""The TLS side of a scripted server's connection (``ScriptedServer(tls=)``):
OpenSSL through memory BIOs, so the peer's reader thread and its script's
thread (which answers) never share an ``SSLSocket``, which is not safe for
a read and a write at once. The bytes on the socket are TLS; everything
the peer records and sends is plaintext, so a script is the same on both
transports.
"""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Optional

__all__ = ["TlsLayer"]


class TlsLayer:
    def __init__(self, context: ssl.SSLContext, sock: socket.socket, bound: float) -> None:
        self._sock = sock
        self._bound = bound
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        #: Guards the SSL object (its state is shared by both directions).
        self._lock = threading.Lock()
        #: Keeps the TLS records of the two threads in the order they were made.
        self._send_lock = threading.Lock()
        self.handshaken = threading.Event()

    def received(self, chunk: bytes) -> Optional[bytes]:
        """The plaintext in ``chunk`` (bytes off the socket); ``None`` when
        TLS failed, which the peer takes as the client leaving."""
        with self._send_lock, self._lock:
            self._incoming.write(chunk)
            if not self.handshaken.is_set():
                try:
                    self._tls.do_handshake()
                    self.handshaken.set()
                except ssl.SSLWantReadError:
                    pass
                except (ssl.SSLError, OSError):
                    self._flush_quietly()
                    return None
                # Only the handshake answers from this thread: the script's
                # thread writes nothing before it is done.
                self._flush_quietly()
            plaintext = bytearray()
            while self.handshaken.is_set():
                try:
                    plaintext += self._tls.read(1 << 16)
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:
                    break  # close_notify: the end of the stream follows
                except (ssl.SSLError, OSError):
                    return None
            return bytes(plaintext)

    def send(self, data: bytes) -> None:
        """Encrypts ``data`` and sends it (OSError if the client has gone)."""
        with self._send_lock:
            self._sock.sendall(self.records(data))

    def records(self, data: bytes) -> bytes:
        """The TLS records for ``data``, not sent: a test may send them
        altered, straight on the socket."""
        if not self.handshaken.wait(self._bound):
            raise TimeoutError("the client did not finish the TLS handshake")
        with self._lock:
            self._tls.write(data)
            return self._outgoing.read()

    def _flush_quietly(self) -> None:
        records = self._outgoing.read()
        if records:
            try:
                self._sock.sendall(records)
            except OSError:
                pass
