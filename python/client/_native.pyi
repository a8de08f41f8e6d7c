"""Type stubs for the Rust extension module ``client._native``."""

from types import TracebackType
from typing import (
    Any,
    Iterable,
    List,
    Optional,
    Sequence,
    SupportsFloat,
    SupportsIndex,
    Tuple,
    Type,
    Union,
    overload,
)

from typing_extensions import Self

__version__: str
DEFAULT_MAX_REPLY_BYTES: int

Number = Union[int, float, SupportsFloat, SupportsIndex]
Timestamp = Union[int, SupportsIndex]
Point = Union[Tuple[str, Number], Tuple[str, Number, Optional[Timestamp]]]

Address = Tuple[str, int]

class Retry:
    """When to send a failed call again; see ``help(client.Retry)``."""

    def __init__(
        self,
        attempts: Optional[int] = None,
        backoff: Optional[float] = None,
        cap: Optional[float] = None,
    ) -> None: ...
    @property
    def attempts(self) -> int: ...
    @property
    def backoff(self) -> float: ...
    @property
    def cap(self) -> float: ...
    def delay(self, failures: int) -> float: ...

class Client:
    """A blocking client for the metrics server; see ``help(client.Client)``."""

    @overload
    def __init__(
        self,
        host: str,
        port: int,
        timeout: Optional[float] = None,
        *,
        max_reply_bytes: Optional[int] = None,
        max_connections: Optional[int] = None,
        retry: Optional[Retry] = None,
    ) -> None: ...
    @overload
    def __init__(
        self,
        host: Sequence[Address],
        port: None = None,
        timeout: Optional[float] = None,
        *,
        max_reply_bytes: Optional[int] = None,
        max_connections: Optional[int] = None,
        retry: Optional[Retry] = None,
    ) -> None: ...
    def put(self, key: str, value: Number, timestamp: Optional[Timestamp] = None) -> None: ...
    def get(self, key: str) -> dict[str, list[tuple[int, float]]]: ...
    def put_many(self, points: Iterable[Point], *, window: Optional[int] = None) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def timeout(self) -> Optional[float]: ...
    @property
    def max_reply_bytes(self) -> int: ...
    @property
    def addresses(self) -> List[Address]: ...
    @property
    def max_connections(self) -> int: ...
    @property
    def connection_count(self) -> int: ...
    @property
    def connection(self) -> Connection: ...
    def _read(self) -> dict[str, list[tuple[int, float]]]: ...

class Connection:
    """Raw access to a client's connection (``client.connection``)."""

    def sendall(self, data: Union[bytes, bytearray, memoryview]) -> None: ...

# -- the codec under AsyncClient -------------------------------------------

class Codec:
    """The protocol for ``AsyncClient``: encodes requests, decodes replies."""

    def __init__(self, max_reply_bytes: Optional[int] = None) -> None: ...
    @staticmethod
    def put(key: str, value: Number, timestamp: Optional[Timestamp] = None) -> bytes: ...
    @staticmethod
    def get(key: str) -> bytes: ...
    @staticmethod
    def put_many(points: Iterable[Point]) -> Tuple[bytes, List[int]]: ...
    def expect(self, points: bool, count: int = 1) -> None: ...
    def feed(self, data: bytes) -> List[Any]: ...
    @property
    def pending(self) -> int: ...
    @property
    def idle(self) -> bool: ...

def error(
    kind: str,
    *,
    address: Optional[str] = None,
    cause: Optional[BaseException] = None,
    timed_out: bool = False,
    after: Optional[float] = None,
    mid_reply: bool = False,
    answered: int = 0,
    total: int = 0,
    window: int = 0,
    rejected: Optional[List[Tuple[int, str]]] = None,
) -> Any: ...
def options(
    host: Union[str, Sequence[Address]],
    port: Optional[int] = None,
    timeout: Optional[float] = None,
    max_reply_bytes: Optional[int] = None,
    retry: Optional[Retry] = None,
) -> Tuple[List[Address], Optional[float], int]: ...
def window(window: Optional[int]) -> Optional[int]: ...

# -- the embedded server ---------------------------------------------------

import os
import pathlib
from typing import Literal

class Server:
    """An embedded metrics server serving in background threads; see ``help(client.Server)``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        data: Optional[Union[str, "os.PathLike[str]"]] = None,
        fsync: Literal["always", "everysec", "no"] = "everysec",
        *,
        log: bool = False,
        wait: bool = True,
        max_memory: Optional[Union[int, str]] = None,
        max_connections: int = 10000,
        idle_timeout: Optional[float] = None,
        max_request_buffers: Union[int, str] = "256MiB",
    ) -> None: ...
    @property
    def address(self) -> Tuple[str, int]: ...
    @property
    def ready(self) -> bool: ...
    def wait(self, timeout: Optional[float] = None) -> bool: ...
    @property
    def data(self) -> Optional[pathlib.Path]: ...
    @property
    def fsync(self) -> Literal["always", "everysec", "no"]: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
