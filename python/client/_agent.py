"""``python -m client agent``: send this machine's figures every interval.

Every interval the agent samples ``<name>.cpu`` (percent), ``<name>.memory``
(used bytes), ``<name>.disk`` (used bytes of the root file system),
``<name>.net_sent`` and ``<name>.net_recv`` (bytes since boot) with psutil
(an optional dependency: ``pip install 'metrics-client[agent]'``), stamps
them with the current second and sends them with ``Client.put_many``
(at most ``window`` requests unanswered at once: ``window=1`` for a server
that handles one command per read, as most course servers do). Pipelined
by default; a server that answers part of a pipelined batch and then falls
silent (the client's timeout says so) makes the agent switch to
``window=1`` for good, say so once, and send the batch again at once.

When the server cannot be reached the points stay in a bounded buffer (the
oldest are dropped beyond ``buffer_size``, and the status line says so) and
are sent, oldest first, with the next sample once the server is back. A point leaves the buffer only
after the server acknowledged it, so nothing within the bound is lost. A
batch cut short by a failure is sent again; the points it did store are
then stored a second time under the same key and timestamp, which the
server treats as a replacement with the same value, so no duplicate appears.

:class:`Agent` takes its metric source, connection factory, clock, sleep and
output as arguments, so tests drive it without psutil, without a network and
without waiting.
"""

from __future__ import annotations

import collections
import math
import os
import socket
import sys
import time
from typing import Any, Callable, Deque, Dict, List, Optional, TextIO, Tuple

from ._errors import ClientError, ClientRejectedError, ClientReplyError, ClientSocketError, ClientTimeoutError

__all__ = ["Agent", "AgentError", "PsutilSource", "METRICS", "INSTALL_HINT", "default_name", "validate_name"]

#: Metric suffixes, in the order they are sent.
METRICS = ("cpu", "memory", "disk", "net_sent", "net_recv")

INSTALL_HINT = "install with pip install 'metrics-client[agent]'"

#: Points sent per ``put_many`` call; a batch acknowledged leaves the buffer
#: at once, so a failure later in a long backlog does not resend it.
BATCH_POINTS = 1000

#: What ``put_many`` takes: a point with its key, ``(key, value, timestamp)``.
KeyedPoint = Tuple[str, float, int]


class AgentError(Exception):
    """A failure the command line reports as one ``error:`` line."""


class PsutilSource:
    """Reads the five figures with psutil (imported here, lazily)."""

    def __init__(self, disk_path: Optional[str] = None) -> None:
        try:
            import psutil  # noqa: PLC0415 - optional dependency
        except ImportError as exc:
            raise AgentError(f"the agent needs psutil ({exc}); {INSTALL_HINT}") from None
        self._psutil: Any = psutil
        self._disk_path = disk_path or os.path.abspath(os.sep)
        self._first = True

    def __call__(self) -> Dict[str, Optional[float]]:
        """One sample; a figure that cannot be read this time is ``None``
        (the agent skips it and says so in the status line)."""
        psutil = self._psutil
        sample: Dict[str, Optional[float]] = {}
        # cpu_percent() measures since its previous call; the first call has
        # none, so it measures over a short blocking window instead.
        first, self._first = self._first, False
        sample["cpu"] = self._read(lambda: psutil.cpu_percent(interval=0.1 if first else None))
        sample["memory"] = self._read(lambda: psutil.virtual_memory().used)
        sample["disk"] = self._read(lambda: psutil.disk_usage(self._disk_path).used)
        net = self._read(psutil.net_io_counters)  # None when there is no interface
        sample["net_sent"] = getattr(net, "bytes_sent", None)
        sample["net_recv"] = getattr(net, "bytes_recv", None)
        return sample

    def _read(self, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except (OSError, self._psutil.Error):
            return None


class Agent:
    """The sampling loop. ``run()`` returns the exit status.

    - ``connect()`` returns a client-like object with ``put_many(points)``
      and ``close()`` (normally ``Client(host, port, timeout)``).
    - ``source()`` returns ``{suffix: number}`` for one sample.
    - ``clock()`` gives the wall time stamped on points (``time.time``),
      ``monotonic()`` and ``sleep(seconds)`` pace the intervals.
    - ``count``: stop after that many intervals (``None``: run until Ctrl-C).
    - ``buffer_size``: most points kept while the server is unreachable.
    - ``window``: ``put_many``'s window (``None``: pipelined as far as the
      client allows; ``1``: one request at a time, which any server handles).
      A pipelined batch that stalls switches it to ``1`` (``fell_back``).
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        source: Callable[[], Dict[str, Optional[float]]],
        *,
        name: str,
        interval: float = 10.0,
        count: Optional[int] = None,
        buffer_size: int = 10_000,
        server: str = "the server",
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        out: Optional[TextIO] = None,
        batch_points: int = BATCH_POINTS,
        window: Optional[int] = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        if count is not None and count < 1:
            raise ValueError("count must be at least 1")
        if buffer_size < 1:
            raise ValueError("buffer_size must be at least 1")
        if window is not None and window < 1:
            raise ValueError("window must be at least 1")
        self.connect = connect
        self.source = source
        self.name = name
        self.interval = interval
        self.count = count
        self.buffer_size = buffer_size
        self.server = server
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.out = out
        self.batch_points = batch_points
        self.window = window
        #: Points not yet acknowledged, oldest first. Between intervals it
        #: holds at most ``buffer_size`` points; during one it may also hold
        #: the new sample, so a server that is back gets everything.
        self.buffer: Deque[KeyedPoint] = collections.deque()
        #: Totals since start.
        self.sent = 0
        self.dropped = 0
        self.rejected = 0
        #: True once a stalled pipelined batch made the agent send one
        #: request at a time.
        self.fell_back = False
        self._client: Any = None

    # -- one interval -------------------------------------------------------

    def tick(self) -> str:
        """Samples, buffers, tries to send everything; returns the status line."""
        timestamp = int(self.clock())
        skipped = []
        fresh: List[KeyedPoint] = []
        for suffix, value in self.source().items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                skipped.append(suffix)
                continue
            fresh.append((f"{self.name}.{suffix}", value, timestamp))
        self.buffer.extend(fresh)
        sent, rejected, failure = self.flush()
        # Whatever could not be sent is kept up to the bound; beyond it the
        # oldest points go.
        dropped = max(0, len(self.buffer) - self.buffer_size)
        for _ in range(dropped):
            self.buffer.popleft()
        self.dropped += dropped
        clock = time.strftime("%H:%M:%S", time.localtime(timestamp))
        if failure is None:
            line = f"{clock} sent {sent} point{'s' if sent != 1 else ''} to {self.server}"
            backlog = sent - len(fresh) + rejected
            if backlog > 0:
                line += f" ({backlog} from the buffer)"
        else:
            line = f"{clock} {self.server} unavailable ({failure})"
            if sent:
                line += f"; sent {sent}"
            line += f"; {len(self.buffer)} point{'s' if len(self.buffer) != 1 else ''} buffered (max {self.buffer_size})"
        if rejected:
            line += f"; server refused {rejected}"
        if dropped:
            line += f"; buffer full, dropped the {dropped} oldest"
        if skipped:
            line += f"; no value for {', '.join(skipped)}"
        return line

    def flush(self) -> Tuple[int, int, Optional[str]]:
        """Sends the buffer, oldest first, in batches. Returns ``(points
        stored, points refused, failure text or None)``. Points leave the
        buffer only once their batch is answered."""
        sent = rejected = 0
        while self.buffer:
            batch = [self.buffer[i] for i in range(min(len(self.buffer), self.batch_points))]
            try:
                if self._client is None:
                    self._client = self.connect()
                self._client.put_many(batch, window=self.window)
            except ClientRejectedError as exc:
                # Answered: every point but the refused ones is stored, and
                # sending the refused ones again would be refused again.
                refused = len({index for index, _ in exc.rejected})
                rejected += refused
                sent += len(batch) - refused
            except ClientTimeoutError as exc:
                if not self._stalled_pipelining(exc):
                    self._disconnect()
                    self.sent += sent
                    self.rejected += rejected
                    return sent, rejected, _reason(exc)
                # The server handles one command per read. Sending the whole
                # batch again, one request at a time, is safe: the points
                # it did store are stored again under the same key and
                # timestamp, and a repeated put with the same key and
                # timestamp replaces the value (with the same one), so no
                # point is lost and none appears twice.
                self._fall_back(exc)
                continue
            except (ClientSocketError, ClientReplyError) as exc:
                # The connection is gone (or spoke garbage and was dropped):
                # keep the batch, reconnect next interval.
                self._disconnect()
                self.sent += sent
                self.rejected += rejected
                return sent, rejected, _reason(exc)
            except ClientError as exc:
                # Invalid points cannot become valid by waiting: stop rather
                # than let them block the buffer forever.
                self._disconnect()
                raise AgentError(f"cannot send points: {exc}") from None
            else:
                sent += len(batch)
            for _ in batch:
                self.buffer.popleft()
        self.sent += sent
        self.rejected += rejected
        return sent, rejected, None

    def _stalled_pipelining(self, exc: ClientTimeoutError) -> bool:
        """A pipelined batch the server answered in part, then fell silent
        on: the sign of a server that handles one command per read. (A
        server that answered nothing at all is down or slow, not that.)"""
        return self.window != 1 and _PIPELINING_HINT in str(exc) and bool(exc.acknowledged)

    def _fall_back(self, exc: ClientTimeoutError) -> None:
        self._disconnect()
        self.window = 1
        self.fell_back = True
        clock = time.strftime("%H:%M:%S", time.localtime(self.clock()))
        self._print(
            f"{clock} {self.server} stalled on pipelined requests ({_reason(exc)}); "
            "sending one request at a time from now on (as --window 1)"
        )

    def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing a broken client is best effort
                pass

    # -- the loop -----------------------------------------------------------

    def run(self) -> int:
        """Runs ``count`` intervals (or until interrupted) and returns 0.
        Raises AgentError when points are still unsent at the end."""
        start = self.monotonic()
        done = 0
        try:
            while True:
                self._print(self.tick())
                done += 1
                if self.count is not None and done >= self.count:
                    break
                # Deadlines on a fixed grid: a slow interval does not shift
                # the following ones.
                delay = start + done * self.interval - self.monotonic()
                if delay < 0:  # running late: wait for the next slot
                    delay %= self.interval
                self.sleep(delay)
        finally:
            self._disconnect()
        if self.buffer:
            raise AgentError(
                f"{len(self.buffer)} point{'s' if len(self.buffer) != 1 else ''} "
                f"could not be sent to {self.server}"
            )
        return 0

    def _print(self, line: str) -> None:
        out = self.out if self.out is not None else sys.stdout
        print(line, file=out, flush=True)


#: Part of the message of a batch the server stopped answering part-way
#: (``ClientTimeoutError``): the sign of a server that handles one command
#: per read.
_PIPELINING_HINT = "may not support pipelining"


def _reason(exc: BaseException) -> str:
    # What the operating system said ("Connection refused") when it said
    # something; otherwise the whole message.
    strerror = getattr(exc, "strerror", None)
    if isinstance(exc, ClientError) and isinstance(strerror, str) and strerror:
        return strerror
    return str(exc) or type(exc).__name__


def validate_name(name: str) -> str:
    """The key prefix must be a non-empty run of printable, non-space characters."""
    if not name:
        raise ValueError("must not be empty")
    bad = [char for char in name if char.isspace() or not char.isprintable()]
    if bad:
        raise ValueError(f"must not contain whitespace or control characters, found {bad[0]!r}")
    return name


def default_name() -> str:
    """This machine's host name, made safe for a key."""
    name = "".join("_" if char.isspace() or not char.isprintable() else char for char in socket.gethostname())
    return name or "localhost"

