"""``AsyncClient``: the client for asyncio programs.

asyncio does the I/O (a ``Protocol`` on the running loop, uvloop's too);
the protocol itself is the Rust codec ``_native.Codec``, the one ``Client``
uses: the same validation, request bytes, reply decoding and result
building. Python only moves bytes and wakes tasks.

Calls from many tasks share one connection: each request is written as soon
as it is made (pipelined) and its waiter queued; replies come back in order
and each wakes its own waiter. A waiter whose task was cancelled stays in
the queue, so its reply is still read (and thrown away) and can never be
taken for the reply to a later request.

Error-to-connection rules are ``Client``'s: an ``error`` answer leaves the
connection usable; a timeout, a reset, a malformed reply or bytes nobody
asked for discard it (every call waiting on it fails), and the next call
opens a new one.
"""

from __future__ import annotations

import asyncio
import os
import ssl as _ssl
import weakref
from types import TracebackType
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Type, Union

from . import _native
from ._address import host_port
from ._async_connection import _Batch, _Connection, _Stalled
from ._async_tls import TlsProtocol
from ._errors import ClientProtocolError, ClientSocketError
from ._query import Columns, Instant, Step

__all__ = ["AsyncClient"]

Result = Dict[str, List[Tuple[int, float]]]
_Path = Union[str, "os.PathLike[str]"]

#: Requests written at once by ``put_many`` when no window is given: large
#: enough to amortise each write, small enough to keep memory flat.
_CHUNK = 4096

#: Clients alive in this process: a forked child must not use the parent's
#: connections (it drops its reference to them, never closing them).
_clients: "weakref.WeakSet[AsyncClient]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for each in list(_clients):
        each._connection = None
        each._connect_lock = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class AsyncClient:
    """A client for asyncio: ``await put/get/put_many``, ``async with``.

    ``AsyncClient(host, port, timeout=None, *, max_reply_bytes=None,
    retry=None, ssl=None, tls_ca=None, tls_cert=None, tls_key=None)`` takes
    the same arguments as :class:`Client` (also a list of ``(host, port)``
    pairs) and raises the same errors; TLS is the Rust core's for
    ``ssl=True`` and ``tls_*`` files, Python's ``ssl`` for an
    ``ssl.SSLContext``. It connects on
    first use (or ``await client.connect()``, or ``async with``). Calls
    from many tasks share one connection, pipelined: each task gets its own
    reply. ``timeout`` bounds each call, connecting included; a timeout
    discards the connection (the calls waiting on it fail too). A cancelled
    call's reply is read and thrown away. ``close()`` aborts every call
    under way.
    """

    def __init__(self, host: Union[str, Sequence[Tuple[str, int]]], port: Optional[int] = None,
                 timeout: Optional[float] = None, *, max_reply_bytes: Optional[int] = None,
                 retry: Optional[_native.Retry] = None,
                 ssl: Union[bool, None, _ssl.SSLContext] = None,
                 tls_ca: Optional[_Path] = None, tls_cert: Optional[_Path] = None,
                 tls_key: Optional[_Path] = None) -> None:
        addresses, seconds, limit = _native.options(host, port, timeout, max_reply_bytes, retry)
        #: None (plain text), the Rust core's TLS, or the caller's context.
        self._tls: Union[None, _native.TlsConfig, _ssl.SSLContext] = _native.tls_mode(
            ssl, tls_ca, tls_cert, tls_key)
        self._addresses: List[Tuple[str, int]] = addresses
        self._preferred = 0
        self._timeout: Optional[float] = seconds
        self._max_reply_bytes: int = limit
        self._retry = retry
        #: Neither a timeout nor retries: calls take the shortest path.
        self._plain = seconds is None and retry is None
        self._connection: Optional[_Connection] = None
        self._connect_lock: Optional[asyncio.Lock] = None
        self._closed = False
        #: Set once a server answered a query ``wrong command``: queries are
        #: then computed from a plain get without asking again.
        self._lacks_queries = False
        #: Set once a server refused ``format=columns``: ``get_columns`` then
        #: asks for text without asking again.
        self._lacks_columns = False
        _clients.add(self)

    # -- the calls

    async def put(self, key: str, value: Any, timestamp: Optional[int] = None) -> None:
        """Stores ``value`` for ``key`` at ``timestamp`` (default: now)."""
        # Encoded once: every attempt sends the same timestamp.
        request = _native.Codec.put(key, value, timestamp)
        connection = self._connection
        if self._plain and connection is not None and not connection.lost:
            # The common case inline: no timeout, no retry, connected.
            future = connection.loop.create_future()
            connection.send(request, False, future)
            await future
        else:
            await self._call(request, False)

    async def get(self, key: str, *, since: Optional[Instant] = None, until: Optional[Instant] = None,
                  step: Optional[Step] = None, agg: Optional[str] = None,
                  max_points: Optional[int] = None) -> Result:
        """Returns ``{key: [(timestamp, value), ...]}`` as ``Client.get``,
        with the same query keywords (and the same fallback)."""
        query = _native.Codec.query(key, since=since, until=until, step=step, agg=agg, max_points=max_points)
        if query is not None:
            answer: Result = await self._query(query, False)
            return answer
        request = _native.Codec.get(key)
        connection = self._connection
        if self._plain and connection is not None and not connection.lost:
            future = connection.loop.create_future()
            connection.send(request, True, future)
            result: Result = await future
            return result
        result = await self._call(request, True)
        return result

    async def get_columns(self, key: str, *, since: Optional[Instant] = None, until: Optional[Instant] = None,
                          step: Optional[Step] = None, agg: Optional[str] = None,
                          max_points: Optional[int] = None) -> Columns:
        """``get`` as numpy columns, as ``Client.get_columns``."""
        import numpy  # noqa: F401  (refused before anything is sent)

        query = _native.Codec.query(key, since=since, until=until, step=step, agg=agg, max_points=max_points,
                                    columns=True)
        assert query is not None and query.columns is not None
        if not self._lacks_columns:
            try:
                columns: Columns = await self._call(query.columns, True, None, True, frame=True)
                return columns
            except ClientProtocolError as error:
                if not _native.Query.means_no_columns(error.message):
                    raise
                self._lacks_columns = True
                if _native.Query.means_unsupported(error.message):
                    self._lacks_queries = True
        columns = await self._query(query, True)
        return columns

    async def _query(self, query: _native.Query, columns: bool) -> Any:
        """The query itself, or, on a server without queries, the plain get
        whose reply the codec turns into the same answer."""
        if not self._lacks_queries:
            try:
                return await self._call(query.request, True, None, columns)
            except ClientProtocolError as error:
                if not _native.Query.means_unsupported(error.message):
                    raise
                self._lacks_queries = True
        return await self._call(query.fallback, True, query, columns)

    async def put_many(self, points: Iterable[Any], *, window: Optional[int] = None) -> None:
        """Stores many points, pipelined, as ``Client.put_many``: at most
        ``window`` requests unanswered at once (``None``: no limit but
        asyncio's write buffer). ``window=1`` works with any server. A
        connection lost part-way raises ClientSocketError whose
        ``acknowledged`` says how many points the server answered."""
        limit = _native.window(window)
        requests, ends = _native.Codec.put_many(points)
        if not ends:
            return
        failures = 0
        while True:
            try:
                await self._batch(requests, ends, limit)
                return
            except _Stalled as stalled:
                # Never retried (as Client): the server would stall again.
                raise stalled.error from None
            except ClientSocketError as error:
                failures = await self._before_retry(error, failures)

    async def connect(self) -> None:
        """Opens the connection now, if there is none."""
        await self._usable_connection(self._deadline())

    def close(self) -> None:
        """Closes the connection: calls under way raise ClientSocketError at
        once, later calls raise it too. Never waits."""
        self._closed = True
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.discard(_native.error("closed_during_call"))

    async def __aenter__(self) -> "AsyncClient":
        await self.connect()
        return self

    async def __aexit__(self, exc_type: Optional[Type[BaseException]],
                        exc: Optional[BaseException], tb: Optional[TracebackType]) -> bool:
        self.close()
        return False

    def __repr__(self) -> str:
        address = ",".join(host_port(h, p) for h, p in self._addresses)
        if self._closed:
            state = "closed"
        elif self._connection is not None and not self._connection.lost:
            state = "connected"
        else:
            state = "disconnected"
        return f"<client.AsyncClient {address} timeout={self._timeout} {state}>"

    @property
    def host(self) -> str:
        """The (first) server's host name or address, as given."""
        return self._addresses[0][0]

    @property
    def port(self) -> int:
        """The (first) server's port."""
        return self._addresses[0][1]

    @property
    def addresses(self) -> List[Tuple[str, int]]:
        """Every server address given."""
        return list(self._addresses)

    @property
    def timeout(self) -> Optional[float]:
        """Seconds each call may take, or None."""
        return self._timeout

    @property
    def max_reply_bytes(self) -> int:
        """The largest reply accepted, in bytes."""
        return self._max_reply_bytes

    # -- inside

    def _deadline(self) -> Optional[float]:
        if self._timeout is None:
            return None
        return asyncio.get_running_loop().time() + self._timeout

    async def _call(self, request: bytes, points: bool, answer: Optional[_native.Query] = None,
                    columns: bool = False, frame: bool = False) -> Any:
        failures = 0
        while True:
            try:
                return await self._attempt(request, points, answer, columns, frame)
            except ClientSocketError as error:
                failures = await self._before_retry(error, failures)

    async def _before_retry(self, error: ClientSocketError, failures: int) -> int:
        """Waits before the next attempt, or re-raises ``error``."""
        failures += 1
        retry = self._retry
        if retry is None or failures >= retry.attempts or self._closed:
            raise error
        await asyncio.sleep(retry.delay(failures))
        if self._closed:
            raise _native.error("closed_during_call") from error
        return failures

    async def _attempt(self, request: bytes, points: bool, answer: Optional[_native.Query] = None,
                       columns: bool = False, frame: bool = False) -> Any:
        connection = self._connection
        deadline = None
        if self._timeout is not None:
            deadline = asyncio.get_running_loop().time() + self._timeout
        if connection is None or connection.lost:
            connection = await self._usable_connection(deadline)
        future = asyncio.get_running_loop().create_future()
        connection.send(request, points, future, answer, columns, frame)
        if deadline is None:
            return await future
        timer = asyncio.get_running_loop().call_at(
            deadline, self._timed_out, connection, future)
        try:
            return await future
        finally:
            timer.cancel()

    def _timed_out(self, connection: _Connection, waiter: Union["asyncio.Future[Any]", _Batch]) -> None:
        if isinstance(waiter, _Batch):
            if waiter.future.done():
                return
            error = _native.error("stalled", answered=waiter.answered, total=waiter.total,
                                  window=waiter.window, after=self._timeout)
            waiter.stalled = True
            waiter.fail(error)
        else:
            if waiter.done():
                return
            error = _native.error("timeout", after=self._timeout)
            waiter.set_exception(error)
        # Like Client: after a timeout the connection is discarded, so a late
        # reply can never be read as another call's. The call that timed out
        # has its error; the others learn why their connection went away.
        connection.discard(_native.error("socket", cause=ConnectionAbortedError(
            "the connection was dropped after a timeout of an earlier call on it")))

    async def _batch(self, requests: bytes, ends: List[int], window: Optional[int]) -> None:
        loop = asyncio.get_running_loop()
        deadline = self._deadline()
        connection = self._connection
        if connection is None or connection.lost:
            connection = await self._usable_connection(deadline)
        total = len(ends)
        batch = _Batch(loop, total, total if window is None else window)
        view = memoryview(requests)
        timer = None
        if deadline is not None:
            timer = loop.call_at(deadline, self._timed_out, connection, batch)
        try:
            sent = 0
            while sent < total:
                room = _CHUNK if window is None else window - (sent - batch.answered)
                if room <= 0:
                    batch.progress = loop.create_future()
                    await batch.progress
                    continue
                end = min(total, sent + room, sent + _CHUNK)
                start = ends[sent - 1] if sent else 0
                connection.send_many(view[start:ends[end - 1]], end - sent, batch)
                sent = end
                await connection.writable()
            await batch.future
        except ClientSocketError as error:
            if batch.stalled:
                raise _Stalled(error) from None
            # As Client's: the message and ``acknowledged`` say how many
            # points the server answered, so the caller can resend the rest.
            raise _native.cut_short(error, batch.answered, total) from error.__cause__
        finally:
            if timer is not None:
                timer.cancel()
            if batch.future.done() and not batch.future.cancelled():
                # Failed while the sender waited for room: the error was
                # raised from ``progress``; the same one here is retrieved,
                # so asyncio does not log it as never retrieved.
                batch.future.exception()
        if batch.rejected:
            raise _native.error("rejected", rejected=batch.rejected, total=total)

    async def _usable_connection(self, deadline: Optional[float]) -> _Connection:
        if self._closed:
            raise _native.error("closed_by_user")
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            connection = self._connection
            if connection is not None and not connection.lost:
                return connection
            connection = await self._open(deadline)
            if self._closed:
                connection.discard(_native.error("closed_during_call"))
                raise _native.error("closed_during_call")
            self._connection = connection
            return connection

    async def _connect(self, host: str, port: int, address: str) -> _Connection:
        """One connection, its TLS handshake done."""
        loop = asyncio.get_running_loop()
        tls = self._tls
        if isinstance(tls, _native.TlsConfig):
            connection = _Connection(self._max_reply_bytes, address)
            handshake: "asyncio.Future[None]" = loop.create_future()
            session = tls.session(host, address)
            transport, _ = await loop.create_connection(
                lambda: TlsProtocol(session, connection, address, handshake), host, port)
            try:
                await handshake
            except BaseException:
                transport.abort()
                raise
            return connection
        ssl_context: Optional[_ssl.SSLContext] = tls
        _, made = await loop.create_connection(
            lambda: _Connection(self._max_reply_bytes, address), host, port,
            ssl=ssl_context, server_hostname=host if ssl_context else None)
        return made

    async def _open(self, deadline: Optional[float]) -> _Connection:
        """Connects to the address that worked last, else the next ones."""
        loop = asyncio.get_running_loop()
        count = len(self._addresses)
        error: Optional[BaseException] = None
        for step in range(count):
            index = (self._preferred + step) % count
            host, port = self._addresses[index]
            address = host_port(host, port)
            limit = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                connection = await asyncio.wait_for(self._connect(host, port, address), limit)
            except ClientSocketError as exc:
                # From the Rust core's TLS: a refused handshake is final (as
                # below), a connection lost during it tries the next address.
                if isinstance(exc.__cause__, _ssl.SSLError):
                    raise
                error = exc
            except asyncio.TimeoutError:
                error = _native.error("connect", address=address,
                                      cause=TimeoutError("timed out"), timed_out=True)
            except _ssl.SSLError as exc:
                # The ssl error is chained as the cause.
                raise _native.error("tls", address=address, cause=exc)  # noqa: B904
            except OSError as exc:
                error = _native.error("connect", address=address, cause=exc,
                                      timed_out=isinstance(exc, TimeoutError))
            else:
                self._preferred = index
                return connection
        assert error is not None
        raise error
