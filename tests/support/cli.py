"""What the command-line tests share: a real embedded server on loopback,
the command run in a subprocess (to its end, or started and read line by
line with a deadline), and the one-error-line assertion."""


import importlib.metadata
import importlib.util
import os
import queue
import socket
import subprocess
import sys
import threading
from typing import Dict, Optional

import client
from tests.support import TestCase

HAVE_PSUTIL = importlib.util.find_spec("psutil") is not None

NEEDS_PSUTIL = "psutil is not installed (pip install 'metrics-client[agent]' to run the agent's real-metrics tests)"

#: Bound on any wait in these tests (seconds); never reached when all is well.
DEADLINE = 30.0

LOOPBACK = "127.0.0.1"


def Server(**kwargs):  # noqa: N802 - stands for client.Server
    """A real embedded server on a free loopback port."""
    kwargs.setdefault("host", LOOPBACK)
    kwargs.setdefault("port", 0)
    return client.Server(**kwargs)


def free_port() -> int:
    """A loopback port nobody listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def child_env(**extra: str) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(*args: str, env: Optional[Dict[str, str]] = None, timeout: float = DEADLINE) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "client", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env or child_env(),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def start_cli(*args: str, env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "client", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        env=env or child_env(),
    )


class LineReader:
    """Reads a subprocess's stdout lines in a thread, so a test can wait for
    one line with a deadline."""

    def __init__(self, stream) -> None:
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put("")  # end of stream

    def next(self, timeout: float = DEADLINE) -> str:
        return self.lines.get(timeout=timeout)

    def rest(self) -> str:
        self.thread.join(DEADLINE)
        out = []
        while not self.lines.empty():
            out.append(self.lines.get_nowait())
        return "".join(out)


class CliAssertions(TestCase):
    def assertOneErrorLine(self, result, code: int, *fragments: str) -> str:
        """Exit status ``code``, nothing on stdout, exactly one ``error:`` line on stderr."""
        self.assertEqual(result.returncode, code, result)
        self.assertNotIn("Traceback", result.stderr)
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertTrue(lines[0].startswith("error: "), lines[0])
        for fragment in fragments:
            self.assertIn(fragment, lines[0])
        self.assertEqual(result.stdout, "")
        return lines[0]
