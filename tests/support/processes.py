"""Child processes for the reliability tests: a server in its own process
(killable with SIGKILL, its memory measurable), Python children that import
the installed ``client`` package, and the resident set size of a process.

Every wait is bounded (``BOUND``); a child is always reaped.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

from . import BOUND

__all__ = ["rss_bytes", "child_env", "ChildProcess", "ServerProcess", "PYTHON_SERVER"]


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` in bytes (Linux /proc)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def child_env(**extra: str) -> Dict[str, str]:
    """The environment of a child that must import the installed wheel."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


class ChildProcess:
    """A Python child (``python -c code args...`` or ``python -m ...``) run
    from an empty directory, with line-based stdout and stdin."""

    def __init__(self, argv: Sequence[str], *, stdin: bool = False,
                 env: Optional[Dict[str, str]] = None) -> None:
        self._dir = tempfile.TemporaryDirectory()
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env or child_env(), cwd=self._dir.name)
        self.pid = self.proc.pid
        self._buf = b""

    def readline(self, timeout: float = BOUND) -> str:
        """The next line of stdout (without ``\\n``); AssertionError if none
        comes within ``timeout`` or the child exits first."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"child {self.pid}: no line within {timeout} s; "
                                     f"have {self._buf[-300:]!r}")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                self.proc.wait(BOUND)
                err = self.proc.stderr.read().decode(errors="replace")
                raise AssertionError(f"child {self.pid} exited ({self.proc.returncode}) "
                                     f"before a line; stderr:\n{err[-3000:]}")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    def write(self, text: str) -> None:
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)

    def finish(self, timeout: float = BOUND) -> Tuple[int, str, str]:
        """Waits for the exit; returns (returncode, rest of stdout, stderr)."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"child {self.pid} did not finish within {timeout} s") from None
        out = self._buf + out
        self._buf = b""
        self._dir.cleanup()
        return self.proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def kill(self) -> None:
        """SIGKILL (if still running) and reap. Idempotent."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        try:
            self.proc.communicate(timeout=BOUND)
        except (ValueError, OSError):
            self.proc.wait(BOUND)
        self._dir.cleanup()


#: A client.Server in a child process: argv[1] is the data path ('' for
#: memory), argv[2] the fsync policy ('' for the default). Prints "HOST PORT"
#: when listening.
PYTHON_SERVER = r"""
import sys, threading
from client import Server
srv = Server(port=0, data=sys.argv[1] or None, fsync=sys.argv[2] or None)
host, port = srv.address
print(host, port, flush=True)
threading.Event().wait()
"""


class ServerProcess(ChildProcess):
    """A server in a child process: ``kind="python"`` runs ``client.Server``
    through ``python -c``; ``kind="cli"`` runs ``python -m client serve``
    (with ``options``, more of its flags). ``fsync`` is passed only when
    given: a gateway (``--store``) refuses it."""

    def __init__(self, data: str = "", fsync: str = "", kind: str = "python",
                 options: Sequence[str] = ()) -> None:
        if kind == "python":
            argv: List[str] = ["-c", PYTHON_SERVER, data, fsync]
        elif kind == "cli":
            argv = ["-m", "client", "serve", "--host", "127.0.0.1", "--port", "0", *options]
            if fsync:
                argv += ["--fsync", fsync]
            if data:
                argv += ["--data", data]
        else:
            raise ValueError(kind)
        super().__init__(argv)
        try:
            line = self.readline()
            if kind == "cli":
                if not line.startswith("listening on "):
                    raise AssertionError(f"unexpected first line {line!r}")
                host, _, port = line[len("listening on "):].strip().rpartition(":")
            else:
                host, port = line.split()
        except BaseException:
            self.kill()
            raise
        self.address: Tuple[str, int] = (host, int(port))
