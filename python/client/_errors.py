"""Exceptions raised by :class:`client.Client`.

Every failure is a :class:`ClientError`, so ``except ClientError`` is enough
for code that only needs to know that a call failed. The subclasses also
derive from the matching built-in exception, so code written against
``ConnectionError``, ``TimeoutError``, ``ValueError`` or ``TypeError`` keeps
working.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "ClientError",
    "ClientSocketError",
    "ClientTimeoutError",
    "ClientProtocolError",
    "ClientRejectedError",
    "ClientReplyError",
    "ClientValueError",
    "ClientTypeError",
]


class ClientError(Exception):
    """Base class of every error raised by the client."""


class ClientSocketError(ClientError, ConnectionError):
    """The connection could not be opened, or failed during a call.

    The connection is discarded; the next call opens a new one. Where the
    operating system reported the failure, :attr:`errno` and
    :attr:`strerror` say what it said (as on any ``OSError``), and the
    original exception is chained as ``__cause__``; :attr:`address` is the
    ``host:port`` a failed connection attempt was made to.

    For ``put_many`` (of :class:`Client` and :class:`AsyncClient`),
    :attr:`acknowledged` says how many points, from the start of the batch,
    the server answered before the connection failed, timed out or stalled
    (the message says it too): those are stored, or were refused (which
    sending them again would not change). ``points[acknowledged:]`` may or
    may not be stored; sending them again is safe, since a repeated put
    with the same key and timestamp replaces the value with the same one.
    """

    #: ``put_many``: points of the batch the server answered before the
    #: connection failed; ``None`` for other calls, and when nothing of the
    #: batch was sent (the connection could not be opened).
    acknowledged: Optional[int]

    def __init__(self, message: str, address: Optional[str] = None,
                 errno: Optional[int] = None, strerror: Optional[str] = None) -> None:
        # One argument: OSError must not read (errno, strerror) from args.
        super().__init__(message)
        #: ``"host:port"`` of a failed connection attempt, else ``None``.
        self.address = address
        self.errno = errno
        self.strerror = strerror
        self.acknowledged = None

    def __str__(self) -> str:
        # OSError would print "[Errno N] strerror" once errno is set.
        return str(self.args[0]) if self.args else ""


class ClientTimeoutError(ClientSocketError, TimeoutError):
    """A call did not finish within the client's ``timeout``.

    The connection is discarded, so a late reply can never be mistaken for
    the answer to a later request.
    """


class ClientProtocolError(ClientError):
    """The server answered ``error``; :attr:`message` holds its text.

    The connection stays usable.
    """

    def __init__(self, message: str, *args: object) -> None:
        super().__init__(message, *args)
        #: The server's error message, e.g. ``"wrong command"``.
        self.message = message

    def __str__(self) -> str:
        return f"server replied with an error: {self.message}"


class ClientRejectedError(ClientProtocolError):
    """:meth:`Client.put_many` was answered ``error`` for some points.

    :attr:`rejected` lists ``(index, message)`` pairs, ``index`` being the
    point's position in the iterable given to ``put_many``. Every other point
    was stored.
    """

    def __init__(self, message: str, rejected: "list[tuple[int, str]]", total: int) -> None:
        super().__init__(message, rejected, total)
        #: ``(index, server message)`` for every refused point.
        self.rejected = rejected
        #: How many points were sent.
        self.total = total

    def __str__(self) -> str:
        return self.message


class ClientReplyError(ClientError):
    """The server sent bytes that are not a valid reply (garbage, a reply
    cut short, extra bytes, or a reply above ``max_reply_bytes``).

    The connection is discarded.
    """


class ClientValueError(ClientError, ValueError):
    """An argument has the right type but an unusable value; nothing was sent."""


class ClientTypeError(ClientError, TypeError):
    """An argument has the wrong type; nothing was sent."""
