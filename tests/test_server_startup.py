"""Start-up of the embedded server on a large data file: stopping it while it
replays or compacts (SIGTERM, SIGINT, Ctrl-C in the constructor,
``close()`` during ``wait=False`` loading), what it says while it replays,
and other Python threads running meanwhile. The speed of the replay is a
benchmark (``benches/replay.py``), not a test. Run against the installed
package::

    python -m unittest tests.test_server_startup
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from typing import List, Optional, Tuple

from client import Client, Server
from tests.support import BOUND, TestCase, wait_until
from tests.support.processes import child_env

#: Points in the big log: one key each, so the replay takes seconds.
BIG_POINTS = 4_000_000
#: How fast a stop must take effect, as the server promises.
STOP_WITHIN = 1.0


def write_log(path: str, points: int, copies: int = 1) -> None:
    """A plain (format 1) log of `points` points, each written `copies` times."""
    with open(path, "w") as f:
        for copy in range(copies):
            for start in range(0, points, 200_000):
                f.write("".join(f"put key.{i} {i % 1000 + copy}.5 {i}\n"
                                for i in range(start, min(points, start + 200_000))))


def snapshot(path: str) -> Tuple[int, int, bytes]:
    """Size, mtime and a digest of the file's bytes."""
    import hashlib
    st = os.stat(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return st.st_size, st.st_mtime_ns, digest.digest()


class Child:
    """A Python child whose stderr is read line by line as it comes."""

    def __init__(self, argv: List[str]) -> None:
        self.proc = subprocess.Popen([sys.executable, *argv], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=child_env())
        self.err = b""
        self.out = b""

    def wait_stderr(self, text: str, timeout: float = BOUND) -> None:
        deadline = time.monotonic() + timeout
        fd = self.proc.stderr.fileno()
        while text.encode() not in self.err:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {text!r} on stderr within {timeout} s: {self.err[-2000:]!r}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise AssertionError(f"child exited before {text!r}: {self.err[-2000:]!r}")
                self.err += chunk

    def finish(self, timeout: float) -> Optional[int]:
        """The exit status, or None if it did not exit within `timeout`."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self.out += out
        self.err += err
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.communicate(timeout=BOUND)
        except ValueError:
            self.proc.wait(BOUND)


class BigLog(TestCase):
    """Tests sharing one big log, written once."""

    big: str
    tmp: tempfile.TemporaryDirectory

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.TemporaryDirectory()
        cls.big = os.path.join(cls.tmp.name, "big.log")
        write_log(cls.big, BIG_POINTS)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def child(self, argv: List[str]) -> Child:
        child = Child(argv)
        self.addCleanup(child.kill)
        return child

    def test_sigterm_or_sigint_during_replay_stops_serve_at_once_leaving_the_journal(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(signal=signum.name):
                before = snapshot(self.big)
                child = self.child(["-m", "client", "serve", "--port", "0", "--data", self.big])
                child.wait_stderr("replaying ")
                sent = time.monotonic()
                child.proc.send_signal(signum)
                status = child.finish(BOUND)
                took = time.monotonic() - sent
                self.assertEqual(status, 0, child.err[-2000:])
                self.assertLess(took, STOP_WITHIN, child.err[-2000:])
                err = child.err.decode()
                self.assertIn(f"received {signum.name} while loading", err)
                self.assertNotIn("listening on", child.out.decode() + err)
                self.assertEqual(snapshot(self.big), before)

    def test_ctrl_c_interrupts_the_embedded_constructor_leaving_the_journal(self) -> None:
        before = snapshot(self.big)
        code = (
            "import sys, time\n"
            "from client import Server\n"
            "try:\n"
            "    Server(data=sys.argv[1], log=True)\n"
            "except KeyboardInterrupt:\n"
            "    print('interrupted', time.monotonic(), flush=True)\n"
            "else:\n"
            "    print('finished', flush=True)\n"
        )
        child = self.child(["-c", code, self.big])
        child.wait_stderr("replaying ")
        sent = time.monotonic()
        child.proc.send_signal(signal.SIGINT)
        status = child.finish(BOUND)
        self.assertEqual(status, 0, child.err[-2000:])
        words = child.out.decode().split()
        self.assertEqual(words[:1], ["interrupted"], child.err[-2000:])
        self.assertLess(float(words[1]) - sent, STOP_WITHIN)
        self.assertEqual(snapshot(self.big), before)

    def test_close_stops_a_server_that_is_still_loading(self) -> None:
        before = snapshot(self.big)
        srv = Server(data=self.big, wait=False)
        self.addCleanup(srv.close)
        self.assertFalse(srv.ready)
        self.assertIn("loading", repr(srv))
        self.assertFalse(srv.wait(0.01))
        started = time.monotonic()
        srv.close()
        self.assertLess(time.monotonic() - started, STOP_WITHIN)
        self.assertTrue(srv.closed)
        self.assertFalse(srv.ready)
        self.assertFalse(srv.wait(0))
        self.assertEqual(snapshot(self.big), before)

    def test_other_threads_run_while_the_constructor_replays(self) -> None:
        ticks: List[float] = []
        stop = threading.Event()

        def tick() -> None:
            while not stop.is_set():
                ticks.append(time.monotonic())
                stop.wait(0.001)

        thread = threading.Thread(target=tick)
        thread.start()
        try:
            wait_until(lambda: ticks, message="the ticking thread")
            started = time.monotonic()
            srv = Server(data=self.big)
            ended = time.monotonic()
        finally:
            stop.set()
            thread.join(BOUND)
        self.addCleanup(srv.close)
        during = [t for t in ticks if started <= t <= ended]
        gaps = [b - a for a, b in zip([started] + during, during + [ended])]
        # Holding the GIL would leave one gap as long as the replay.
        self.assertGreater(len(during), 50)
        self.assertLess(max(gaps), (ended - started) / 2)
        with Client(*srv.address, timeout=BOUND) as cl:
            self.assertEqual(cl.get(f"key.{BIG_POINTS - 1}"),
                             {f"key.{BIG_POINTS - 1}": [(BIG_POINTS - 1, (BIG_POINTS - 1) % 1000 + 0.5)]})


class Loading(TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.dir = self.temporary_directory()
        self.path = os.path.join(self.dir, "metrics.log")

    def test_wait_false_returns_at_once_and_serves_once_loaded(self) -> None:
        write_log(self.path, 100_000)
        srv = Server(data=self.path, wait=False)
        self.addCleanup(srv.close)
        host, port = srv.address
        self.assertGreater(port, 0)
        self.assertTrue(srv.wait(BOUND))
        self.assertTrue(srv.ready)
        with Client(host, port, timeout=BOUND) as cl:
            self.assertEqual(cl.get("key.99999"), {"key.99999": [(99999, 999.5)]})

    def test_a_refused_data_file_is_an_error_of_the_constructor_even_without_waiting(self) -> None:
        with open(self.path, "wb") as f:
            f.write(b"not a journal\n")
        with self.assertRaises(OSError):
            Server(data=self.path, wait=False)
        with self.assertRaises(ValueError):
            Server().wait(-1)

    def test_sigterm_during_compaction_stops_at_once_with_a_whole_journal(self) -> None:
        points = 900_000
        write_log(self.path, points, copies=3)  # 2.7M lines, 80 MB: past the 64 MiB threshold
        compacting = self.path + ".compact"
        child = Child(["-m", "client", "serve", "--port", "0", "--data", self.path])
        self.addCleanup(child.kill)
        child.wait_stderr("listening on", timeout=4 * BOUND)
        address = child.err.decode().split("listening on ")[-1].split()[0]
        host, _, port = address.rpartition(":")
        with Client(host, int(port), timeout=BOUND) as cl:
            cl.put("trigger", 1, timestamp=1)  # the writer wakes and starts compacting
        wait_until(lambda: os.path.exists(compacting), interval=0.0005, message="a compaction")
        sent = time.monotonic()
        child.proc.send_signal(signal.SIGTERM)
        status = child.finish(BOUND)
        self.assertLess(time.monotonic() - sent, STOP_WITHIN)
        self.assertEqual(status, 0, child.err[-2000:])
        self.assertFalse(os.path.exists(compacting))
        with Server(data=self.path) as srv, Client(*srv.address, timeout=BOUND) as cl:
            self.assertEqual(cl.get("trigger"), {"trigger": [(1, 1.0)]})
            last = f"key.{points - 1}"
            self.assertEqual(cl.get(last), {last: [(points - 1, (points - 1) % 1000 + 2.5)]})
        with open(self.path + ".quarantine", "rb") if os.path.exists(self.path + ".quarantine") \
                else open(os.devnull, "rb") as f:
            self.assertEqual(f.read(), b"")

    def test_sigterm_during_a_seal_stops_at_once_leaving_journal_and_blocks_whole(self) -> None:
        points = 900_000
        write_log(self.path, points)  # old timestamps: everything is to be sealed
        blocks = self.path + ".blocks"
        child = Child(["-m", "client", "serve", "--port", "0", "--data", self.path,
                       "--head-window", "0"])
        self.addCleanup(child.kill)
        child.wait_stderr("listening on", timeout=4 * BOUND)

        def sealing() -> bool:
            return os.path.isdir(blocks) and any(n.endswith(".tmp") for n in os.listdir(blocks))

        wait_until(sealing, interval=0.0005, message="a seal")
        sent = time.monotonic()
        child.proc.send_signal(signal.SIGTERM)
        status = child.finish(BOUND)
        self.assertLess(time.monotonic() - sent, STOP_WITHIN)
        self.assertEqual(status, 0, child.err[-2000:])
        self.assertFalse(sealing(), "an unfinished block was left behind")
        with Server(data=self.path) as srv, Client(*srv.address, timeout=BOUND) as cl:
            last = f"key.{points - 1}"
            self.assertEqual(cl.get(last), {last: [(points - 1, (points - 1) % 1000 + 0.5)]})
            self.assertEqual(len(cl.get("*")), points)


if __name__ == "__main__":
    unittest.main()
