"""Durability of the embedded server's data log (``Server(data=...)``).

A server runs in a subprocess (``python -c "from client import Server; ..."``)
and is killed with SIGKILL in the middle of a put storm; a new server on the
same log must hold every put that was acknowledged. Torn tails and restarts
are checked in-process. Run against the installed package::

    pip install . && python -m unittest discover -s tests -t . -p 'test_server_durability.py'
"""

from __future__ import annotations

import os
import socket
import threading
import unittest
import warnings
from typing import Dict, List, Set, Tuple

from client import Client, Server
from tests.support import BOUND, TestCase, wait_until
from tests.support.journal import HEADER, frame_v3, records, starts_with
from tests.support.processes import ServerProcess
from tests.support.raw import read_reply


def everything(path: str) -> Dict[str, List[Tuple[int, float]]]:
    """The data a fresh server on ``path`` holds."""
    with Server(data=path) as srv, Client(*srv.address, timeout=BOUND) as cl:
        return cl.get("*")


def storm(address: Tuple[str, int], acked: List[Set[Tuple[str, int]]],
          enough: threading.Event, stop: threading.Event, index: int, pipelined: bool,
          enough_at: int = 10_000) -> None:
    """Puts unique points until the connection dies, recording each one
    whose ``ok`` arrived."""
    key = f"storm.{index}"
    batch = 50 if pipelined else 1
    try:
        with socket.create_connection(address, timeout=BOUND) as sock:
            buf = bytearray()
            ts = 0
            while not stop.is_set():
                sock.sendall(b"".join(f"put {key} {t}.5 {t}\n".encode()
                                      for t in range(ts, ts + batch)))
                for t in range(ts, ts + batch):
                    if read_reply(sock, buf) != b"ok\n\n":
                        raise AssertionError("not ok")
                    acked[index].add((key, t))
                ts += batch
                if sum(len(a) for a in acked) >= enough_at:
                    enough.set()
    except OSError:
        pass  # the server was killed


class KillNine(TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.path = os.path.join(self.temporary_directory(), "metrics.log")

    def test_acknowledged_puts_survive_kill_9_with_fsync_always(self) -> None:
        server = ServerProcess(self.path, "always")
        self.addCleanup(server.kill)
        writers = 4
        acked: List[Set[Tuple[str, int]]] = [set() for _ in range(writers)]
        enough, stop = threading.Event(), threading.Event()
        threads = [threading.Thread(target=storm,
                                    args=(server.address, acked, enough, stop, i, i % 2 == 1))
                   for i in range(writers)]
        for t in threads:
            t.start()
        try:
            self.assertTrue(enough.wait(BOUND), "the storm did not get going")
            server.kill()  # in the middle of the storm
        finally:
            stop.set()
            for t in threads:
                t.join(BOUND)
        self.assertFalse(any(t.is_alive() for t in threads))
        total = sum(len(a) for a in acked)
        self.assertGreaterEqual(total, 10_000)

        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            data = everything(self.path)
        for index in range(writers):
            key = f"storm.{index}"
            stored = dict(data.get(key, []))
            lost = [t for _, t in acked[index] if stored.get(t) != t + 0.5]
            self.assertEqual(lost, [], f"{len(lost)} acknowledged puts of {key} lost")

    def test_a_killed_server_restarts_on_its_journal_and_keeps_serving(self) -> None:
        server = ServerProcess(self.path, "always")
        self.addCleanup(server.kill)
        with Client(*server.address, timeout=BOUND) as cl:
            cl.put("before", 1.5, timestamp=1)
        server.kill()
        server = ServerProcess(self.path, "always")
        self.addCleanup(server.kill)
        with Client(*server.address, timeout=BOUND) as cl:
            self.assertEqual(cl.get("*"), {"before": [(1, 1.5)]})
            cl.put("after", 2, timestamp=2)
        server.kill()
        self.assertEqual(everything(self.path), {"before": [(1, 1.5)], "after": [(2, 2.0)]})


class Recovery(TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.path = os.path.join(self.temporary_directory(), "metrics.log")

    def start(self, **kwargs) -> Tuple[Server, List[str]]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            srv = Server(data=self.path, **kwargs)
        self.addCleanup(srv.close)
        for w in caught:
            self.assertIs(w.category, RuntimeWarning)
        return srv, [str(w.message) for w in caught]

    def test_a_torn_last_line_is_copied_aside_and_cut_with_a_warning(self) -> None:
        with open(self.path, "wb") as f:
            f.write(b"put a 1.5 1\nput b 2 2\nput torn 3")
        srv, warned = self.start(fsync="always")
        self.assertEqual(len(warned), 1, warned)
        self.assertIn("torn final record", warned[0])
        self.assertIn(self.path, warned[0])
        with Client(*srv.address, timeout=BOUND) as cl:
            self.assertEqual(cl.get("*"), {"a": [(1, 1.5)], "b": [(2, 2.0)]})
            cl.put("c", 4, timestamp=4)
            # The file is migrated to format 3 in the background: the
            # records it held and the new one.
            wait_until(lambda: starts_with(self.path, HEADER), message="the migration")
        srv.close()
        self.assertEqual(records(self.path), [("a", 1.5, 1), ("b", 2.0, 2), ("c", 4.0, 4)])
        with open(self.path + ".quarantine", "rb") as f:
            self.assertTrue(f.read().endswith(b"\nput torn 3\n"))
        srv, warned = self.start()
        self.assertEqual(warned, [])

    def test_a_torn_tail_after_kill_9_is_recovered(self) -> None:
        server = ServerProcess(self.path, "always")
        self.addCleanup(server.kill)
        with Client(*server.address, timeout=BOUND) as cl:
            for ts in range(100):
                cl.put("k", ts, timestamp=ts)
        server.kill()
        with open(self.path, "ab") as f:  # a write the kill cut short
            f.write(frame_v3([("k", 100.0, 100)], base=1 << 40)[:-5])
        srv, warned = self.start()
        self.assertEqual(len(warned), 1, warned)
        self.assertIn("torn final record", warned[0])
        with Client(*srv.address, timeout=BOUND) as cl:
            self.assertEqual(cl.get("k"), {"k": [(ts, float(ts)) for ts in range(100)]})

    def test_garbage_lines_are_quarantined_with_a_warning_never_a_refusal(self) -> None:
        with open(self.path, "wb") as f:
            f.write(b"put a 1 1\nnot a put\n\x00\x00\x00\nput b 2 2\n" + b"\x00" * 512)
        srv, warned = self.start()
        self.assertEqual(len(warned), 1, warned)
        self.assertIn("3 unreadable piece(s)", warned[0])
        self.assertIn(self.path + ".quarantine", warned[0])
        with Client(*srv.address, timeout=BOUND) as cl:
            self.assertEqual(cl.get("*"), {"a": [(1, 1.0)], "b": [(2, 2.0)]})

    def test_a_restart_does_not_copy_quarantined_records_again(self) -> None:
        # Garbage stays in the journal until its next compaction (a
        # journal of an older format is compacted at once, so this one is
        # of the current format).
        with open(self.path, "wb") as f:
            f.write(HEADER + frame_v3([("a", 1.0, 1)]) + b"\nnot a put\n" + frame_v3([("b", 2.0, 2)])
                    + b"\nalso garbage\n")
        for start in range(3):
            srv, warned = self.start()
            srv.close()
            self.assertEqual(len(warned), 1, warned)
            self.assertIn("2 unreadable piece(s)", warned[0])
            if start:
                self.assertIn("2 of them already there from an earlier start", warned[0])
            with open(self.path + ".quarantine", "rb") as f:
                side = f.read()
            self.assertEqual(side.count(b"\nnot a put\n"), 1, side)
            self.assertEqual(side.count(b"\nalso garbage\n"), 1, side)
        # A new piece (the journal changed) is still copied.
        with open(self.path, "ab") as f:
            f.write(frame_v3([("c", 3.0, 3)]) + b"third garbage\n")
        srv, warned = self.start()
        srv.close()
        self.assertIn("3 unreadable piece(s)", warned[0])
        self.assertIn("2 of them already there", warned[0])
        with open(self.path + ".quarantine", "rb") as f:
            self.assertEqual(f.read().count(b"\nthird garbage\n"), 1)

    def test_every_fsync_policy_keeps_everything_after_close(self) -> None:
        for fsync in ("always", "everysec", "no"):
            with self.subTest(fsync=fsync):
                if os.path.exists(self.path):
                    os.remove(self.path)
                with Server(data=self.path, fsync=fsync) as srv:
                    self.assertEqual(srv.fsync, fsync)
                    with Client(*srv.address, timeout=BOUND) as cl:
                        cl.put_many([("m", i / 4, i) for i in range(5000)])
                        cl.put("m", -1, timestamp=0)  # overwrites
                expected = [(0, -1.0)] + [(i, i / 4) for i in range(1, 5000)]
                self.assertEqual(everything(self.path), {"m": expected})

    def test_the_journal_holds_every_acknowledged_put_checksummed(self) -> None:
        with Server(data=self.path, fsync="always") as srv:
            with socket.create_connection(srv.address, timeout=BOUND) as sock:
                buf = bytearray()
                for request in (b"put huginn.cpu 10.6 1642667947\n", b"put  k  1   2 \r\n",
                                b"get *\n", b"bad\n", b"put k 3 2\n"):
                    sock.sendall(request)
                    read_reply(sock, buf)
        with open(self.path, "rb") as f:
            self.assertTrue(f.read().startswith(HEADER))
        self.assertEqual(records(self.path), [("huginn.cpu", 10.6, 1642667947), ("k", 1.0, 2), ("k", 3.0, 2)])


if __name__ == "__main__":
    unittest.main()
