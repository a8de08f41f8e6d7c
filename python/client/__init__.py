"""Client for a small plain-text TCP metrics protocol, with a Rust core.

>>> from client import Client
>>> client = Client("127.0.0.1", 8888, timeout=15)     # doctest: +SKIP
>>> client.put("huginn.cpu", 0.5, timestamp=1642667947)  # doctest: +SKIP
>>> client.get("*")                                      # doctest: +SKIP
{'huginn.cpu': [(1642667947, 0.5)]}
"""

from typing import TYPE_CHECKING, Any

from ._errors import (
    ClientError,
    ClientProtocolError,
    ClientRejectedError,
    ClientReplyError,
    ClientSocketError,
    ClientTimeoutError,
    ClientTypeError,
    ClientValueError,
)
from ._native import DEFAULT_MAX_REPLY_BYTES, Client, Connection, Retry, Server, __version__
from ._query import to_frame

if TYPE_CHECKING:
    from ._async import AsyncClient


def __getattr__(name: str) -> Any:
    # AsyncClient is imported when first used: asyncio takes most of this
    # package's import time, which a server or a blocking client need not pay
    # (``python -m client serve`` starts about 35 ms sooner).
    if name == "AsyncClient":
        from ._async import AsyncClient

        globals()["AsyncClient"] = AsyncClient
        return AsyncClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "Client",
    "AsyncClient",
    "Retry",
    "Connection",
    "Server",
    "ClientError",
    "ClientSocketError",
    "ClientTimeoutError",
    "ClientProtocolError",
    "ClientRejectedError",
    "ClientReplyError",
    "ClientValueError",
    "ClientTypeError",
    "DEFAULT_MAX_REPLY_BYTES",
    "to_frame",
    "__version__",
]
