"""Type stubs for the Rust extension module ``client._native``.

Every class here is a pyo3 class: created by ``__new__`` (there is no
``__init__`` to override) and not subclassable (``@final``).
"""

import datetime
import os
import pathlib
import ssl
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Literal, Self, SupportsFloat, SupportsIndex, TypeVar, final, overload

from ._errors import ClientSocketError
from ._query import Columns, Instant, Step

_E = TypeVar("_E", bound=ClientSocketError)

__all__ = [
    "Client",
    "Codec",
    "Connection",
    "DEFAULT_MAX_REPLY_BYTES",
    "Query",
    "Retry",
    "Server",
    "__version__",
    "cut_short",
    "error",
    "options",
    "tls_mode",
    "TlsConfig",
    "TlsSession",
    "window",
]

__version__: str
DEFAULT_MAX_REPLY_BYTES: int

@final
class Retry:
    """When to send a failed call again; see ``help(client.Retry)``."""

    def __new__(
        cls,
        attempts: int | None = None,
        backoff: float | None = None,
        cap: float | None = None,
    ) -> Self: ...
    @property
    def attempts(self) -> int: ...
    @property
    def backoff(self) -> float: ...
    @property
    def cap(self) -> float: ...
    def delay(self, failures: int) -> float: ...

@final
class Client:
    """A blocking client for the metrics server; see ``help(client.Client)``."""

    @overload
    def __new__(
        cls,
        host: str,
        port: int,
        timeout: float | None = None,
        *,
        max_reply_bytes: int | None = None,
        max_connections: int | None = None,
        retry: Retry | None = None,
        ssl: bool | ssl.SSLContext | None = None,
        tls_ca: str | os.PathLike[str] | None = None,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
    ) -> Self: ...
    @overload
    def __new__(
        cls,
        host: Sequence[tuple[str, int]],
        port: None = None,
        timeout: float | None = None,
        *,
        max_reply_bytes: int | None = None,
        max_connections: int | None = None,
        retry: Retry | None = None,
        ssl: bool | ssl.SSLContext | None = None,
        tls_ca: str | os.PathLike[str] | None = None,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
    ) -> Self: ...
    # A value is an int or float, or anything int() or float() takes without
    # loss (numpy scalars, Decimal, Fraction); bool is refused at run time.
    def put(
        self,
        key: str,
        value: SupportsFloat | SupportsIndex,
        timestamp: SupportsIndex | None = None,
    ) -> None: ...
    def get(
        self,
        key: str,
        *,
        since: Instant | None = None,
        until: Instant | None = None,
        step: Step | None = None,
        agg: str | None = None,
        max_points: int | None = None,
    ) -> dict[str, list[tuple[int, float]]]: ...
    def get_columns(
        self,
        key: str,
        *,
        since: Instant | None = None,
        until: Instant | None = None,
        step: Step | None = None,
        agg: str | None = None,
        max_points: int | None = None,
    ) -> Columns: ...
    def put_many(
        self,
        points: Iterable[
            tuple[str, SupportsFloat | SupportsIndex]
            | tuple[str, SupportsFloat | SupportsIndex, SupportsIndex | None]
        ],
        *,
        window: int | None = None,
    ) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    # Always False: an exception raised in the ``with`` block propagates, so
    # type checkers know code after the block is reached only without one.
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> Literal[False]: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def timeout(self) -> float | None: ...
    @property
    def max_reply_bytes(self) -> int: ...
    @property
    def addresses(self) -> list[tuple[str, int]]: ...
    @property
    def max_connections(self) -> int: ...
    @property
    def connection_count(self) -> int: ...
    @property
    def connection(self) -> Connection: ...
    def _read(self) -> dict[str, list[tuple[int, float]]]: ...

@final
class Connection:
    """Raw access to a client's connection (``client.connection``)."""

    def sendall(self, data: bytes | bytearray | memoryview) -> None: ...

# -- the codec under AsyncClient -------------------------------------------

@final
class Codec:
    """The protocol for ``AsyncClient``: encodes requests, decodes replies."""

    def __new__(cls, max_reply_bytes: int | None = None) -> Self: ...
    @staticmethod
    def put(
        key: str,
        value: SupportsFloat | SupportsIndex,
        timestamp: SupportsIndex | None = None,
    ) -> bytes: ...
    @staticmethod
    def get(key: str) -> bytes: ...
    @staticmethod
    def query(
        key: str,
        *,
        since: Instant | None = None,
        until: Instant | None = None,
        step: Step | None = None,
        agg: str | None = None,
        max_points: int | None = None,
        columns: bool = False,
    ) -> Query | None: ...
    @staticmethod
    def put_many(
        points: Iterable[
            tuple[str, SupportsFloat | SupportsIndex]
            | tuple[str, SupportsFloat | SupportsIndex, SupportsIndex | None]
        ],
    ) -> tuple[bytes, list[int]]: ...
    def expect(
        self,
        points: bool,
        count: int = 1,
        *,
        answer: Query | None = None,
        columns: bool = False,
        frame: bool = False,
    ) -> None: ...
    def feed(self, data: bytes) -> list[Any]: ...
    @property
    def pending(self) -> int: ...
    @property
    def idle(self) -> bool: ...

@final
class Query:
    """A query's requests: the query line, the plain get a server
    without queries answers instead, and (for ``get_columns``) the query
    asking for the columns reply."""

    @property
    def request(self) -> bytes: ...
    @property
    def fallback(self) -> bytes: ...
    @property
    def columns(self) -> bytes | None: ...
    @staticmethod
    def means_unsupported(message: str) -> bool: ...
    @staticmethod
    def means_no_columns(message: str) -> bool: ...

def error(
    kind: str,
    *,
    address: str | None = None,
    cause: BaseException | None = None,
    timed_out: bool = False,
    after: float | None = None,
    mid_reply: bool = False,
    answered: int = 0,
    total: int = 0,
    window: int = 0,
    rejected: list[tuple[int, str]] | None = None,
) -> Any: ...
def cut_short(error: _E, acknowledged: int, total: int) -> _E: ...
def options(
    host: str | Sequence[tuple[str, int]],
    port: int | None = None,
    timeout: float | None = None,
    max_reply_bytes: int | None = None,
    retry: Retry | None = None,
) -> tuple[list[tuple[str, int]], float | None, int]: ...
def window(window: int | None) -> int | None: ...
def tls_mode(
    ssl: bool | ssl.SSLContext | None = None,
    tls_ca: str | os.PathLike[str] | None = None,
    tls_cert: str | os.PathLike[str] | None = None,
    tls_key: str | os.PathLike[str] | None = None,
) -> TlsConfig | ssl.SSLContext | None: ...
@final
class TlsConfig:
    """A client's TLS in the Rust core: whom it trusts, what it presents."""

    def session(self, host: str, address: str) -> TlsSession: ...

@final
class TlsSession:
    """One connection's TLS state, for asyncio (``client._async_tls``)."""

    def outgoing(self) -> bytes: ...
    def encrypt(self, data: bytes | bytearray | memoryview) -> bytes: ...
    def feed(self, data: bytes) -> tuple[bytes, bytes]: ...
    @property
    def handshaking(self) -> bool: ...

# -- the embedded server ---------------------------------------------------

@final
class Server:
    """An embedded metrics server serving in background threads; see ``help(client.Server)``."""

    def __new__(
        cls,
        host: str = "127.0.0.1",
        port: int = 0,
        data: str | os.PathLike[str] | None = None,
        fsync: Literal["always", "everysec", "no"] | None = None,
        *,
        log: bool = False,
        wait: bool = True,
        max_memory: int | str | None = None,
        max_connections: int = 10000,
        idle_timeout: float | None = None,
        max_request_buffers: int | str = "256MiB",
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
        tls_client_ca: str | os.PathLike[str] | None = None,
        insecure: bool = False,
        store: str | None = None,
        graphite_port: int | None = None,
        http_port: int | None = None,
        retention: float | datetime.timedelta | str | None = None,
        head_window: float | datetime.timedelta | str | None = "2h",
    ) -> Self: ...
    @property
    def address(self) -> tuple[str, int]: ...
    @property
    def graphite_address(self) -> tuple[str, int] | None: ...
    @property
    def http_address(self) -> tuple[str, int] | None: ...
    @property
    def dashboard_url(self) -> str | None: ...
    @property
    def ready(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...
    @property
    def data(self) -> pathlib.Path | None: ...
    @property
    def fsync(self) -> Literal["always", "everysec", "no"]: ...
    @property
    def protected(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    # Always False, as for Client.
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> Literal[False]: ...
