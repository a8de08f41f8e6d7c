"""The Rust core's TLS under asyncio: ``AsyncClient`` with ``ssl=True`` or
``tls_*`` files.

asyncio moves the TCP bytes; a ``_native.TlsSession`` (rustls, the same
configuration, checks and error words as ``Client``) turns them into
plaintext for the client's protocol and its requests back into TLS
records. The client's protocol sees a transport of its own, and the
connection only once the handshake is done.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from . import _native
from ._errors import ClientSocketError

__all__ = ["TlsProtocol"]


class _PlaintextTransport:
    """What the client's protocol writes to: encrypts, then writes."""

    __slots__ = ("_tls", "_transport")

    def __init__(self, tls: _native.TlsSession, transport: asyncio.Transport) -> None:
        self._tls = tls
        self._transport = transport

    def write(self, data: Any) -> None:
        self._transport.write(self._tls.encrypt(data))

    def abort(self) -> None:
        self._transport.abort()

    def close(self) -> None:
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


class TlsProtocol(asyncio.Protocol):
    """TLS between asyncio and ``app``; ``handshake`` is resolved once the
    handshake is done (or fails with the error ``Client`` would raise)."""

    def __init__(self, tls: _native.TlsSession, app: asyncio.Protocol, address: str,
                 handshake: "asyncio.Future[None]") -> None:
        self._tls = tls
        self._app = app
        self._address = address
        self._handshake = handshake
        self._transport: Optional[asyncio.Transport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        transport.write(self._tls.outgoing())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self._handshake.cancelled():
            return  # the connection was given up (timed out) during the handshake
        try:
            plaintext, outgoing = self._tls.feed(data)
        except ClientSocketError as error:
            self._fail(error)
            return
        transport = self._transport
        assert transport is not None
        if outgoing:
            transport.write(outgoing)
        if not self._handshake.done() and not self._tls.handshaking:
            self._app.connection_made(_PlaintextTransport(self._tls, transport))  # type: ignore[arg-type]
            self._handshake.set_result(None)
        if plaintext:
            self._app.data_received(plaintext)

    def eof_received(self) -> Optional[bool]:
        try:
            plaintext, _ = self._tls.feed(b"")
        except ClientSocketError as error:
            self._fail(error)
            return None
        if plaintext:
            self._app.data_received(plaintext)
        return None  # the transport closes itself: connection_lost follows

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self._handshake.done():
            self._app.connection_lost(exc)
        elif exc is not None:
            self._handshake.set_exception(
                _native.error("connect", address=self._address, cause=exc,
                              timed_out=isinstance(exc, TimeoutError)))
        else:
            self._handshake.set_exception(_native.error(
                "connect", address=self._address,
                cause=ConnectionResetError("the server closed the connection during the TLS handshake")))

    def pause_writing(self) -> None:
        self._app.pause_writing()

    def resume_writing(self) -> None:
        self._app.resume_writing()

    def _fail(self, error: BaseException) -> None:
        """A TLS failure: the handshake's, or every call's on the connection."""
        if self._handshake.done():
            self._app.connection_lost(error)  # type: ignore[arg-type]
        else:
            self._handshake.set_exception(error)
        if self._transport is not None:
            self._transport.abort()
