"""A stand-in for one of our servers from before the columns reply: the
embedded server behind a proxy that answers every request with a
``format=`` option as that server did (``bad query: unknown option
'format' ...``) and forwards everything else. It records the requests it
refused, so a test sees whether (and how often) a client asked.

It answers one request at a time, as the clients send their gets: a
refused request answered while an earlier reply is still on its way would
overtake it.
"""

from __future__ import annotations

from typing import List

from .proxy import DelayingProxy, ProxiedConnection

__all__ = ["PreFormatProxy", "REFUSAL"]

#: The answer of a server from before ``format`` (the message its query
#: parser gave for an unknown option).
REFUSAL = (b"error\nbad query: unknown option 'format' "
           b"(options: from, until, step, agg, points, match)\n\n")


class _RefusingConnection(ProxiedConnection):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        #: The start of a request line whose end has not arrived.
        self.unfinished = b""

    def forward(self, chunk: bytes) -> None:
        """Forwards whole request lines, refusing ``format=`` queries."""
        *lines, self.unfinished = (self.unfinished + chunk).split(b"\n")
        for line in lines:
            if b" format=" not in line:
                self.upstream.sendall(line + b"\n")
                continue
            with self.proxy._cond:
                self.proxy.refused.append(line)  # type: ignore[attr-defined]
                self._pending += REFUSAL
            self.drain()


class PreFormatProxy(DelayingProxy):
    """``PreFormatProxy(server.address)``: that server, as if from before
    ``format=columns``; ``refused`` lists the request lines it refused."""

    CONNECTION = _RefusingConnection

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.refused: List[bytes] = []
        super().__init__(*args, **kwargs)
