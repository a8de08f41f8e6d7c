"""The servers the benchmarks run as child processes, on loopback:
``python -m client serve`` (under any interpreter, so an older wheel's
server can run beside the new one) and VictoriaMetrics (Debian's
``victoria-metrics``) with its Graphite listener. Both can be stopped and
started again on the same data; ``close()`` also removes a data directory
they made. Every wait is bounded in time.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Callable, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from tests.support.graphite import free_port, wait_port  # noqa: E402

VICTORIA = shutil.which("victoria-metrics")
#: How long a child may take to start or to stop.
START_BOUND = 300.0


def wait(predicate: Callable[[], bool], timeout: float, what: str, pause: float = 0.002) -> None:
    """Polls ``predicate`` until it holds; SystemExit after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(pause)


def send_all(port: int, chunks: List[bytes]) -> None:
    """Sends each chunk over a connection of its own, all at once."""
    def one(data: bytes) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
            sock.sendall(data)
    threads = [threading.Thread(target=one, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def dir_bytes(path: str) -> int:
    """Bytes of every file under ``path`` (or of ``path``, a file)."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except FileNotFoundError:  # a temporary file renamed meanwhile
                pass
    return total


def _stop(proc: Optional[subprocess.Popen], timeout: float = START_BOUND) -> None:
    """SIGTERM (a clean shutdown), then SIGKILL if it does not end in time."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(60)


class _Child:
    """A child server process with its data directory (``owned``: made for
    it, removed by ``close()``)."""

    proc: Optional[subprocess.Popen]
    dir: str
    owned: bool

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None

    def close(self) -> None:
        self.stop()
        if self.owned:
            shutil.rmtree(self.dir, ignore_errors=True)


class Serve(_Child):
    """``<python> -m client serve --port 0 [args]`` in a child; ``.port``
    (and ``.graphite_port``, ``.url`` when asked for) from what it prints.
    ``data``: the journal's path; without it, one in a new directory;
    ``memory``: no ``--data`` at all (everything in memory, no journal)."""

    def __init__(self, args: Sequence[str] = (), python: str = sys.executable,
                 data: Optional[str] = None, graphite: bool = False, start: bool = True,
                 memory: bool = False) -> None:
        self.memory = memory
        self.owned = data is None
        self.dir = tempfile.mkdtemp(prefix="bench-serve-") if data is None else os.path.dirname(data)
        self.data = data or os.path.join(self.dir, "metrics.log")
        self.python, self.graphite = python, graphite
        self.args = list(args)
        self.proc: Optional[subprocess.Popen] = None
        if start:
            self.start()

    def start(self) -> None:
        """Starts the child and returns once it printed where it listens."""
        extra = ["--graphite-port", "0", "--http-port", "0"] if self.graphite else []
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen(
            [self.python, "-m", "client", "serve", "--port", "0",
             *([] if self.memory else ["--data", self.data]), *extra, *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=self.dir, env=env)
        assert self.proc.stdout is not None
        lines = [self.proc.stdout.readline().decode().strip() for _ in range(3 if self.graphite else 1)]
        if not lines[0].startswith("listening on"):
            _stop(self.proc)
            raise SystemExit(f"{self.python} -m client serve did not start: {lines!r}")
        self.port = int(lines[0].rsplit(":", 1)[1])
        if self.graphite:
            self.graphite_port = int(lines[1].rsplit(":", 1)[1])
            self.url = lines[2].split(" on ", 1)[1].rstrip("/")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def has(self, key: str) -> bool:
        from client import Client
        with Client("127.0.0.1", self.port, timeout=30) as client:
            return bool(client.get(key))



class Victoria(_Child):
    """VictoriaMetrics with its Graphite listener; ``data``: its storage
    directory (default: a new one, removed by ``close()``)."""

    def __init__(self, args: Sequence[str] = (), data: Optional[str] = None, start: bool = True) -> None:
        self.owned = data is None
        self.dir = data or tempfile.mkdtemp(prefix="bench-vm-")
        self.args = list(args)
        self.proc: Optional[subprocess.Popen] = None
        if start:
            self.start()

    def spawn(self) -> None:
        """Starts the child without waiting for it."""
        self.graphite_port, self.http_port = free_port(), free_port()
        self.proc = subprocess.Popen(
            [VICTORIA or "victoria-metrics", f"-graphiteListenAddr=127.0.0.1:{self.graphite_port}",
             f"-httpListenAddr=127.0.0.1:{self.http_port}", f"-storageDataPath={self.dir}", "-loggerLevel=ERROR",
             *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> None:
        self.spawn()
        wait_port(self.http_port, START_BOUND, self.proc)
        wait_port(self.graphite_port, START_BOUND, self.proc)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def get(self, path: str, timeout: float = 120) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=timeout) as r:
            return r.read()

    def metric(self, name: str) -> float:
        """The sum of a metric's samples on ``/metrics`` (0 when absent)."""
        total = 0.0
        for line in self.get("/metrics").decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def rows(self) -> int:
        return int(self.metric("vm_rows_added_to_storage_total"))

