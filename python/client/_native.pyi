"""Type stubs for the Rust extension module ``client._native``."""

from types import TracebackType
from typing import Iterable, Optional, SupportsFloat, SupportsIndex, Tuple, Type, Union

from typing_extensions import Self

__version__: str
DEFAULT_MAX_REPLY_BYTES: int

Number = Union[int, float, SupportsFloat, SupportsIndex]
Timestamp = Union[int, SupportsIndex]
Point = Union[Tuple[str, Number], Tuple[str, Number, Optional[Timestamp]]]

class Client:
    """A blocking client for the metrics server; see ``help(client.Client)``."""

    def __init__(
        self,
        host: str,
        port: int,
        timeout: Optional[float] = None,
        *,
        max_reply_bytes: Optional[int] = None,
    ) -> None: ...
    def put(self, key: str, value: Number, timestamp: Optional[Timestamp] = None) -> None: ...
    def get(self, key: str) -> dict[str, list[tuple[int, float]]]: ...
    def put_many(self, points: Iterable[Point]) -> None: ...
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
    def connection(self) -> Connection: ...
    def _read(self) -> dict[str, list[tuple[int, float]]]: ...

class Connection:
    """Raw access to a client's connection (``client.connection``)."""

    def sendall(self, data: Union[bytes, bytearray, memoryview]) -> None: ...

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
