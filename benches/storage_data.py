"""The data of ``storage.py``: cpu-like series (a random walk in tenths,
so every value has one decimal) at 10 s steps, ending more than a day ago,
in the two shapes of the comparison, fed to our server (``put_many``) and
to VictoriaMetrics (Graphite plaintext), and a raw-socket ``get``.

The same seed gives the same points to every server.
"""
from __future__ import annotations

import itertools
import socket
import time
from typing import Iterator, List, Tuple

import numpy as np

STEP = 10
#: Points per ``put_many`` call and per plaintext chunk.
BATCH = 100_000

Point = Tuple[str, float, int]


class Shape:
    """``series`` keys of ``points`` points each (a random walk per key),
    timestamps ``STEP`` apart, the last ``end``; with ``points == 1`` the
    keys' single points are spread over the day before ``end`` instead."""

    def __init__(self, name: str, prefix: str, series: int, points: int, end: int, seed: int = 7) -> None:
        self.name, self.series, self.points, self.end = name, series, points, end
        self.keys = [f"{prefix}{i}.cpu" for i in range(series)]
        self.seed = seed

    @property
    def total(self) -> int:
        return self.series * self.points

    @property
    def first(self) -> int:
        return self.end - STEP * max(self.points - 1, 8639)

    def _walk(self, rng: np.random.Generator, rows: int) -> np.ndarray:
        """Tenths: each row a walk from 20-80 % by steps of -0.3..+0.3,
        kept inside 0-100 %."""
        start = rng.integers(200, 800, size=(rows, 1))
        steps = rng.integers(-3, 4, size=(rows, self.points))
        return np.clip(start + np.cumsum(steps, axis=1), 0, 1000)

    def columns(self) -> Iterator[Tuple[List[str], np.ndarray, np.ndarray]]:
        """(keys, timestamps, values in tenths), about ``BATCH`` points at a
        time, key by key in order."""
        rng = np.random.default_rng(self.seed)
        if self.points == 1:
            for lo in range(0, self.series, BATCH):
                hi = min(lo + BATCH, self.series)
                idx = np.arange(lo, hi)
                yield self.keys[lo:hi], self.end - STEP * (idx % 8640), rng.integers(0, 1001, size=hi - lo)
            return
        ts = self.end - STEP * np.arange(self.points - 1, -1, -1, dtype=np.int64)
        rows = max(1, BATCH // self.points)
        for lo in range(0, self.series, rows):
            hi = min(lo + rows, self.series)
            walk = self._walk(rng, hi - lo)
            keys = [k for k in self.keys[lo:hi] for _ in range(self.points)]
            yield keys, np.tile(ts, hi - lo), walk.reshape(-1)

    def batches(self) -> Iterator[List[Point]]:
        """``put_many`` batches: (key, value, timestamp)."""
        for keys, ts, tenths in self.columns():
            yield list(zip(keys, (tenths / 10).tolist(), ts.tolist()))

    def plaintext(self) -> Iterator[bytes]:
        """The same points as Graphite plaintext lines (``str(float)``
        writes each value as ``put_many`` sends it)."""
        for batch in self.batches():
            yield "".join(f"{k} {v!r} {t}\n" for k, v, t in batch).encode()

    def last_key(self) -> Tuple[str, int]:
        """A key fed last and how many points it has."""
        return self.keys[-1], self.points


def feed_put_many(port: int, batches: Iterator[List[Point]]) -> float:
    """Seconds inside ``put_many`` calls (one connection, the default
    window): each returns once the server acknowledged every point."""
    from client import Client
    took = 0.0
    with Client("127.0.0.1", port, timeout=600) as client:
        for batch in batches:
            start = time.perf_counter()
            client.put_many(batch)
            took += time.perf_counter() - start
    return took


def feed_plaintext(port: int, chunks: Iterator[bytes]) -> float:
    """Seconds inside ``sendall`` over one connection, closed at the end."""
    took = 0.0
    with socket.create_connection(("127.0.0.1", port), timeout=600) as sock:
        for chunk in chunks:
            start = time.perf_counter()
            sock.sendall(chunk)
            took += time.perf_counter() - start
        start = time.perf_counter()
    return took + time.perf_counter() - start


def raw_get(port: int, key: str, digest: bool = False) -> Tuple[float, int, str]:
    """Seconds from sending ``get <key>`` until the reply's last byte, on a
    fresh connection, reading into one buffer (no parsing, so the figure is
    the server's); with the reply's size and, asked, its SHA-1."""
    import hashlib
    sha = hashlib.sha1() if digest else None
    buf = bytearray(1 << 22)
    view = memoryview(buf)
    size, tail = 0, b""
    with socket.create_connection(("127.0.0.1", port), timeout=600) as sock:
        start = time.perf_counter()
        sock.sendall(f"get {key}\n".encode())
        for _ in itertools.count():
            n = sock.recv_into(view)
            if n == 0:
                raise SystemExit(f"the server on port {port} closed the connection mid-reply")
            size += n
            if sha is not None:
                sha.update(view[:n])
            # A reply ends with its first empty line: no line inside is empty.
            tail = (tail + bytes(view[max(0, n - 2):n]))[-2:]
            if tail == b"\n\n":
                break
        took = time.perf_counter() - start
    return took, size, sha.hexdigest() if sha is not None else ""
