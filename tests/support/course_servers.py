"""Week-6 course servers, the way learners write them, as test fixtures.

The course's week 6 asks for an asyncio server of the metrics protocol; the
public solutions nearly all follow the assignment's template: an
``asyncio.Protocol`` whose ``data_received`` decodes the bytes it was given
and answers them as ONE command. That works for a client that waits for
each reply, and breaks on pipelined requests in one of three ways, each
reproduced here (code written for this project in their style):

- ``SplitAllServer``: ``data.decode().strip().split()`` on the whole read;
  two commands in one read are one malformed command, answered with one
  ``error``;
- ``FirstLineServer``: handles ``data.decode().split("\\n")[0]`` and drops the
  rest of the read silently;
- ``OneLinePerReadServer``: buffers correctly but handles one line per
  ``data_received``, so commands left in the buffer wait for a read that
  never comes.

Each runs its own event loop in a thread on 127.0.0.1 and an ephemeral port.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Dict, List, Optional, Set, Tuple, Type

from tests.support import BOUND

__all__ = ["CourseServer", "SplitAllServer", "FirstLineServer", "OneLinePerReadServer",
           "COURSE_SERVERS"]


def process_data(storage: Dict[str, Dict[int, float]], data: str) -> str:
    """One command, as the course's template does it."""
    parts = data.strip().split()
    if not parts:
        return "error\nwrong command\n\n"
    command = parts[0]
    if command == "put" and len(parts) == 4:
        key, value, timestamp = parts[1], parts[2], parts[3]
        try:
            storage.setdefault(key, {})[int(timestamp)] = float(value)
        except ValueError:
            return "error\nwrong command\n\n"
        return "ok\n\n"
    if command == "get" and len(parts) == 2:
        key = parts[1]
        lines = ""
        for name, points in storage.items():
            if key == "*" or key == name:
                for timestamp in sorted(points):
                    lines += f"{name} {points[timestamp]} {timestamp}\n"
        return "ok\n" + lines + "\n"
    return "error\nwrong command\n\n"


class SplitAllProtocol(asyncio.Protocol):
    storage: Dict[str, Dict[int, float]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        resp = process_data(self.storage, data.decode())
        self.transport.write(resp.encode())  # type: ignore[attr-defined]


class FirstLineProtocol(asyncio.Protocol):
    storage: Dict[str, Dict[int, float]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        request = data.decode().split("\n")[0]
        self.transport.write(process_data(self.storage, request).encode())  # type: ignore[attr-defined]


class OneLinePerReadProtocol(asyncio.Protocol):
    storage: Dict[str, Dict[int, float]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = ""

    def data_received(self, data: bytes) -> None:
        self.buffer += data.decode()
        if "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            self.transport.write(process_data(self.storage, line).encode())  # type: ignore[attr-defined]


class CourseServer:
    """Runs ``PROTOCOL`` on its own loop in a thread; a context manager."""

    PROTOCOL: Type[asyncio.Protocol]
    #: What pipelined requests do to it, for test messages.
    FLAW = ""

    def __init__(self) -> None:
        # Each server has its own storage, as each learner's process does.
        storage: Dict[str, Dict[int, float]] = {}
        self._transports: Set[asyncio.BaseTransport] = set()
        transports = self._transports
        base = self.PROTOCOL

        def connection_made(protocol: asyncio.Protocol, transport: asyncio.BaseTransport) -> None:
            # Not the learners' code: lets stop() close what is still open.
            transports.add(transport)
            base.connection_made(protocol, transport)

        self._protocol = type(base.__name__, (base,), {
            "storage": storage, "connection_made": connection_made})
        self._loop = asyncio.new_event_loop()
        self._server: Optional[asyncio.AbstractServer] = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=type(self).__name__)
        self._thread.start()
        if not self._started.wait(BOUND) or self._server is None:
            raise RuntimeError(f"{type(self).__name__} did not start")
        sockname = self._server.sockets[0].getsockname()
        self.address: Tuple[str, int] = (sockname[0], sockname[1])

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(
                self._loop.create_server(self._protocol, "127.0.0.1", 0))
        finally:
            self._started.set()
        self._loop.run_forever()
        # Not wait_closed(): from Python 3.12 it waits for every client to
        # hang up, and a test's client may outlive the server.
        self._server.close()
        for transport in self._transports:
            transport.abort()
        # One pass of the loop runs the aborted connections' callbacks.
        self._loop.run_until_complete(asyncio.sleep(0))
        self._loop.close()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(BOUND)

    def __enter__(self) -> "CourseServer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class SplitAllServer(CourseServer):
    PROTOCOL = SplitAllProtocol
    FLAW = "answers a read holding several commands with one error"


class FirstLineServer(CourseServer):
    PROTOCOL = FirstLineProtocol
    FLAW = "answers the first command of a read and drops the others"


class OneLinePerReadServer(CourseServer):
    PROTOCOL = OneLinePerReadProtocol
    FLAW = "answers one command per read, leaving the others in its buffer"


COURSE_SERVERS: List[Type[CourseServer]] = [SplitAllServer, FirstLineServer, OneLinePerReadServer]
