"""The connection under ``AsyncClient``: an asyncio ``Protocol`` that
writes requests as they are made and hands each reply, decoded by the Rust
codec, to the waiter queued for it (see ``_async`` for the rules)."""

from __future__ import annotations

import asyncio
import collections
import copy
import os
import socket
import ssl as _ssl
from typing import Any, Deque, List, Optional, Tuple, Union

from . import _native
from ._errors import ClientProtocolError, ClientReplyError, ClientSocketError

#: Most reads of what a lost connection still holds (64 KiB each): more
#: than the kernel buffers of a connection.
_DRAIN_READS = 256


class _Batch:
    """A ``put_many`` under way: counts its replies, keeps its refusals."""

    __slots__ = ("future", "answered", "rejected", "total", "window", "progress", "stalled")

    def __init__(self, loop: asyncio.AbstractEventLoop, total: int, window: int) -> None:
        self.future: "asyncio.Future[None]" = loop.create_future()
        self.answered = 0
        #: ``(index, message)`` of every point the server refused.
        self.rejected: List[Tuple[int, str]] = []
        self.total = total
        #: The most requests unanswered at once.
        self.window = min(total, window)
        #: Resolved at the next reply, for a sender waiting for room.
        self.progress: Optional["asyncio.Future[None]"] = None
        #: Set when the server answered part of it and fell silent.
        self.stalled = False

    def acknowledged(self, count: int) -> None:
        self.answered += count
        progress = self.progress
        if progress is not None and not progress.done():
            progress.set_result(None)
        if self.answered == self.total and not self.future.done():
            self.future.set_result(None)

    def refused(self, error: Any) -> None:
        if error.__class__ is ClientProtocolError:
            self.rejected.append((self.answered, error.message))
        self.acknowledged(1)

    def fail(self, error: BaseException) -> None:
        for waiting in (self.progress, self.future):
            if waiting is not None and not waiting.done():
                waiting.set_exception(error)


class _Stalled(Exception):
    """Carries a stalled batch's error past the retry loop."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


class _Part:
    """Requests of a batch written together: one queue entry for all."""

    __slots__ = ("batch", "remaining")

    def __init__(self, batch: _Batch, count: int) -> None:
        self.batch = batch
        self.remaining = count


_Waiter = Union["asyncio.Future[Any]", _Part]


class _Connection(asyncio.Protocol):
    """One connection: writes requests, hands each reply to its waiter."""

    def __init__(self, max_reply_bytes: int, address: str) -> None:
        self.codec = _native.Codec(max_reply_bytes)
        #: ``host:port``, for TLS errors naming the server.
        self.address = address
        self.waiters: Deque[_Waiter] = collections.deque()
        self.transport: Optional[asyncio.Transport] = None
        self.loop = asyncio.get_running_loop()
        #: Set once the connection may no longer be used.
        self.lost = False
        #: Requests made while others are in flight, written together at
        #: the end of this pass of the event loop: one system call for the
        #: requests of many tasks instead of one each.
        self.unsent: List[bytes] = []
        #: Replies that woke tasks and whose ``_uncork`` has not run yet.
        #: Until then every request waits in ``unsent``, even on an idle
        #: connection: the tasks one read of replies woke run in the next
        #: pass of the loop, and their requests must leave in one write.
        #: Writing the first at once (the connection being idle) would send
        #: it alone; a server that answers it before the others arrive
        #: answers it alone too, that task wakes alone, and the tasks split
        #: into ever smaller groups, each costing a write, a read and a
        #: wake-up of the loop (4x fewer puts/s with the server on a core of
        #: its own).
        self.corks = 0
        self.pid = os.getpid()
        self._writable: Optional["asyncio.Future[None]"] = None

    # -- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            replies = self.codec.feed(data)
        except ClientReplyError as error:
            self.discard(error, "a malformed reply")
            return
        waiters = self.waiters
        for reply in replies:
            if reply.__class__ is int:
                # `reply` acknowledgements in a row.
                count: int = reply
                while count:
                    waiter = waiters[0]
                    if isinstance(waiter, _Part):
                        taken = min(count, waiter.remaining)
                        waiter.remaining -= taken
                        count -= taken
                        if not waiter.remaining:
                            waiters.popleft()
                        waiter.batch.acknowledged(taken)
                    else:
                        waiters.popleft()
                        count -= 1
                        if not waiter.done():  # else cancelled: thrown away
                            waiter.set_result(None)
                continue
            waiter = waiters[0]
            if isinstance(waiter, _Part):
                waiter.remaining -= 1
                if not waiter.remaining:
                    waiters.popleft()
                waiter.batch.refused(reply)
                continue
            waiters.popleft()
            if waiter.done():
                pass  # cancelled: the reply is read and thrown away
            elif reply.__class__ is ClientProtocolError:
                waiter.set_exception(reply)
            else:
                waiter.set_result(reply)
        if replies:
            # Resolving a future only schedules its task: scheduled after
            # them, `_uncork` writes what they send, in one write.
            self.corks += 1
            self.loop.call_soon(self._uncork)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self.lost:
            return
        if isinstance(exc, OSError) and not isinstance(exc, _ssl.SSLError) and self.waiters:
            # A failed write makes asyncio drop the connection without
            # reading what the server sent before it went away: replies that
            # still answer calls (and count in a batch's ``acknowledged``).
            unread = self._unread()
            if unread:
                self.data_received(unread)
                if self.lost:  # they were malformed
                    return
        self.lost = True
        self.unsent.clear()
        if isinstance(exc, ClientSocketError):
            error: BaseException = exc  # the Rust core's TLS, described already
        elif isinstance(exc, _ssl.SSLError):
            error = _native.error("tls", address=self.address, cause=exc)
        elif exc is not None:
            error = _native.error("socket", cause=exc)
        else:
            error = _native.error("closed", mid_reply=not self.codec.idle)
        self._fail_all(error, "")
        self._wake_writer(error)

    def _unread(self) -> bytes:
        """What the kernel still holds for us, read without waiting (the
        peer is gone, so nothing more can come): at most ``_DRAIN_READS``
        reads of a plain (not TLS) socket."""
        transport = self.transport
        sock = None if transport is None else transport.get_extra_info("socket")
        if sock is None or transport.get_extra_info("sslcontext") is not None:  # type: ignore[union-attr]
            return b""
        chunks = []
        try:
            # A duplicate descriptor: asyncio's socket object does not read.
            with socket.socket(fileno=os.dup(sock.fileno())) as raw:
                raw.setblocking(False)
                for _ in range(_DRAIN_READS):
                    chunk = raw.recv(1 << 16)
                    if not chunk:
                        break
                    chunks.append(chunk)
        except OSError:  # nothing more (EAGAIN), or the reset itself
            pass
        return b"".join(chunks)

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake_writer(None)

    # -- used by AsyncClient

    def send(self, request: bytes, points: bool, waiter: _Waiter,
             answer: Optional[_native.Query] = None, columns: bool = False, frame: bool = False) -> None:
        """Sends one request; its reply goes to ``waiter``. Never awaits, so
        a request is either queued for writing with its waiter, or neither.
        Alone on the connection it is written at once (no added latency);
        behind other requests it joins the next write."""
        if self.corks:
            self.unsent.append(request)  # `_uncork` writes it
        elif self.waiters or self.unsent:
            if not self.unsent:
                self.loop.call_soon(self.flush)
            self.unsent.append(request)
        else:
            self.transport.write(request)  # type: ignore[union-attr]
        if answer is None and not columns:
            self.codec.expect(points)
        else:
            self.codec.expect(points, answer=answer, columns=columns, frame=frame)
        self.waiters.append(waiter)

    def send_many(self, requests: memoryview, count: int, batch: _Batch) -> None:
        """Writes ``count`` requests of ``batch`` (their bytes)."""
        self.flush()
        self.transport.write(requests)  # type: ignore[union-attr]
        self.codec.expect(False, count)
        self.waiters.append(_Part(batch, count))

    def _uncork(self) -> None:
        self.corks -= 1
        if not self.corks:
            self.flush()

    def flush(self) -> None:
        """Writes the requests waiting in ``unsent``."""
        if self.unsent and not self.lost:
            data = b"".join(self.unsent)
            self.unsent.clear()
            self.transport.write(data)  # type: ignore[union-attr]

    async def writable(self) -> None:
        """Waits while asyncio's write buffer is above its high mark."""
        if self._writable is not None and not self._writable.done():
            await self._writable

    def discard(self, error: BaseException, reason: str = "") -> None:
        """Gives up the connection. Every waiter gets ``error``; with a
        ``reason``, only the first does, and the others learn that the
        connection was dropped because of ``reason``."""
        if self.lost:
            return
        self.lost = True
        self.unsent.clear()
        self._fail_all(error, reason)
        self._wake_writer(error)
        if self.transport is not None:
            self.transport.abort()

    def _fail_all(self, error: BaseException, reason: str) -> None:
        first = True
        failed_batches = set()
        while self.waiters:
            waiter = self.waiters.popleft()
            if isinstance(waiter, _Part):
                batch = waiter.batch
                if batch.future.done() or id(batch) in failed_batches:
                    continue
                failed_batches.add(id(batch))
            elif waiter.done():
                continue
            if first:
                failure = error
            elif not reason:
                # Each task raises its own instance (tracebacks attach to it).
                failure = copy.copy(error)
            else:
                failure = _native.error("socket", cause=ConnectionAbortedError(
                    f"the connection was dropped after {reason} of an earlier call on it"))
            first = False
            if isinstance(waiter, _Part):
                waiter.batch.fail(failure)
            else:
                waiter.set_exception(failure)

    def _wake_writer(self, error: Optional[BaseException]) -> None:
        writable = self._writable
        if writable is not None and not writable.done():
            if error is None:
                writable.set_result(None)
            else:
                writable.set_exception(error)
