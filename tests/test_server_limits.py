"""The server's resource bounds against the real server: the memory limit,
the budget for unfinished request lines, the connection limit and the idle
timeout, through ``client.Server(...)`` and ``python -m client serve``."""

from __future__ import annotations

import socket
import unittest
from typing import List

import client
from tests.support import BOUND, TestCase, wait_until
from tests.support.processes import ChildProcess, ServerProcess
from tests.support.raw import read_reply_or_eof

OUT_OF_MEMORY = b"error\nout of memory\n\n"
TOO_MANY = b"error\ntoo many connections\n\n"
BUFFERS_FULL = b"error\nrequest buffers full\n\n"


def peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


class MemoryLimit(TestCase):
    def fill(self, c: client.Client, limit: int) -> int:
        """Puts new keys until the server refuses one; returns how many
        were stored."""
        stored = 0
        for _batch in range(limit // 1000):  # far more than ever fit
            points = [(f"key{stored + i}", 1.0, 7) for i in range(1000)]
            try:
                c.put_many(points)
            except client.ClientRejectedError as exc:
                first = exc.rejected[0][0]
                self.assertTrue(all(m == "out of memory" for _, m in exc.rejected), exc.rejected[:3])
                # Once past the limit, everything after is refused too.
                self.assertEqual([i for i, _ in exc.rejected], list(range(first, 1000)))
                return stored + first
            stored += 1000
        self.fail("the server never ran out of memory")

    def test_puts_past_the_limit_are_refused_and_data_kept(self) -> None:
        limit = 4 << 20
        with client.Server(max_memory="4MiB") as srv:
            c = self.client(srv.address)
            stored = self.fill(c, limit)
            # Keys and points both count: some tens of bytes each, not less.
            self.assertGreater(stored, limit // 400)
            self.assertLess(stored, limit // 40)
            with self.assertRaises(client.ClientProtocolError) as caught:
                c.put("another", 1.0, timestamp=1)
            self.assertEqual(caught.exception.message, "out of memory")
            # A new point for an existing key needs memory too.
            with self.assertRaises(client.ClientProtocolError):
                c.put("key0", 2.0, timestamp=8)
            # Replacing a value needs none; gets and stored data unaffected,
            # and the connection stays usable.
            c.put("key0", 5.0, timestamp=7)
            self.assertEqual(c.get("key0"), {"key0": [(7, 5.0)]})
            everything = c.get("*")
            self.assertEqual(len(everything), stored)
            self.assertEqual(everything[f"key{stored - 1}"], [(7, 1.0)])

    def test_points_of_one_key_are_counted(self) -> None:
        with client.Server(max_memory=1 << 20) as srv:
            c = self.client(srv.address)
            stored = 0
            with self.assertRaises(client.ClientRejectedError):
                for _batch in range(1000):
                    c.put_many([("series", 0.5, stored + i) for i in range(1000)])
                    stored += 1000
            points = c.get("series")["series"]
            # About 16 bytes a point in a long series, at most 32.
            self.assertGreater(len(points), (1 << 20) // 32 - 8000)
            self.assertLess(len(points), (1 << 20) // 16)

    def test_bad_limits_are_refused_clearly(self) -> None:
        for bad, error, text in [
            ("2GB", ValueError, "is not a size"),
            ("1.5GiB", ValueError, "is not a size"),
            (0, ValueError, "more than 0"),
            (-5, ValueError, "more than 0"),
            (True, TypeError, "not bool"),
            (2.5, TypeError, "not float"),
        ]:
            with self.subTest(max_memory=bad):
                with self.assertRaises(error) as caught:
                    client.Server(max_memory=bad)
                self.assertIn("max_memory", str(caught.exception))
                self.assertIn(text, str(caught.exception))
        with self.assertRaises(ValueError):
            client.Server(idle_timeout=0)
        with self.assertRaises(ValueError):
            client.Server(max_connections=0)
        with self.assertRaises(TypeError):
            client.Server(max_request_buffers=[1])

    def test_serve_flags(self) -> None:
        bad = ChildProcess(["-m", "client", "serve", "--port", "0", "--max-memory", "2GB"])
        code, _, err = bad.finish()
        self.assertEqual(code, 2)
        self.assertIn("--max-memory", err)
        self.assertIn("'2GB'", err)
        server = ServerProcess(kind="cli", options=["--max-memory", "1MiB", "--max-connections", "5",
                                                    "--idle-timeout", "30", "--max-request-buffers", "64MiB"])
        try:
            c = self.client(server.address)
            with self.assertRaises(client.ClientRejectedError) as caught:
                c.put_many([(f"k{i}", 1, 1) for i in range(100_000)])
            self.assertEqual(caught.exception.rejected[0][1], "out of memory")
        finally:
            server.kill()


class RequestBuffers(TestCase):
    def test_unfinished_lines_are_bounded_in_total(self) -> None:
        budget = 8 << 20
        server = ServerProcess(kind="cli", options=["--max-request-buffers", "8MiB"])
        self.addCleanup(server.kill)
        c = self.client(server.address)
        c.put("before", 1.0, timestamp=1)
        baseline = peak_rss(server.pid)
        # 40 connections, each with 900 KB of a line and no newline yet:
        # 36 MB of unfinished lines against an 8 MiB budget.
        line = b"put " + b"x" * 900_000
        socks: List[socket.socket] = []
        for _ in range(40):
            sock = socket.create_connection(server.address, timeout=BOUND)
            self.addCleanup(sock.close)
            try:
                sock.sendall(line)
            except OSError:
                pass  # already shed while sending
            socks.append(sock)
            # Other clients are served all along.
            c.put("during", 2.0, timestamp=len(socks))
        # Finish every line: a connection still open answers it (a put
        # without value and timestamp is a wrong command); a shed one has
        # answered the budget's error already.
        outcomes = []
        for sock in socks:
            try:
                sock.sendall(b"\n")
            except OSError:
                pass
            outcomes.append(read_reply_or_eof(sock))
        shed = outcomes.count(BUFFERS_FULL)
        served = outcomes.count(b"error\nwrong command\n\n")
        self.assertEqual(shed + served, len(socks), set(outcomes))
        self.assertGreaterEqual(shed, 25)  # 36 MB - 8 MiB needs ~30 shed
        self.assertGreaterEqual(served, 5)
        growth = peak_rss(server.pid) - baseline
        self.assertLess(growth, budget + (16 << 20), f"peak RSS grew {growth >> 20} MiB")
        self.assertEqual(c.get("during")["during"][-1], (40, 2.0))


class Connections(TestCase):
    def test_a_client_over_the_limit_is_told_why(self) -> None:
        with client.Server(max_connections=3) as srv:
            held = [socket.create_connection(srv.address, timeout=BOUND) for _ in range(3)]
            for sock in held:
                self.addCleanup(sock.close)
            # Each held connection is being served (a reply proves it).
            for sock in held:
                sock.sendall(b"get nothing\n")
                self.assertEqual(read_reply_or_eof(sock), b"ok\n\n")
            extra = self.client(srv.address)
            with self.assertRaises(client.ClientProtocolError) as caught:
                extra.put("k", 1.0, timestamp=1)
            self.assertEqual(caught.exception.message, "too many connections")
            raw = socket.create_connection(srv.address, timeout=BOUND)
            self.addCleanup(raw.close)
            self.assertEqual(read_reply_or_eof(raw), TOO_MANY)
            self.assertEqual(raw.recv(1), b"")  # then closed
            held.pop().close()
            ok = self.client(srv.address)
            wait_until(lambda: self._try_put(ok), message="a free connection slot")
            self.assertEqual(ok.get("k"), {"k": [(1, 1.0)]})

    @staticmethod
    def _try_put(c: client.Client) -> bool:
        try:
            c.put("k", 1.0, timestamp=1)
            return True
        except client.ClientProtocolError:
            return False

    def test_idle_connections_are_closed(self) -> None:
        with client.Server(idle_timeout=0.3, max_connections=20) as srv:
            idle = [socket.create_connection(srv.address, timeout=BOUND) for _ in range(20)]
            for sock in idle:
                self.addCleanup(sock.close)
            half_line = idle[0]
            half_line.sendall(b"put k 1")  # a line never finished
            # All closed by the server (EOF), the half line included.
            for sock in idle:
                self.assertEqual(read_reply_or_eof(sock), b"")
            c = self.client(srv.address)
            wait_until(lambda: self._try_put(c), message="room after the idle timeout")
            # A socket opened after the client's last call times out after
            # the client's connection: once it is closed, so is the client's,
            # and the client's next call reconnects transparently.
            later = socket.create_connection(srv.address, timeout=BOUND)
            self.addCleanup(later.close)
            self.assertEqual(read_reply_or_eof(later), b"")
            self.assertEqual(c.get("k"), {"k": [(1, 1.0)]})

    def test_busy_connections_are_not_idle(self) -> None:
        with client.Server(idle_timeout=0.2) as srv:
            c = self.client(srv.address)
            for i in range(50):
                c.put("k", float(i), timestamp=i)
            self.assertEqual(len(c.get("k")["k"]), 50)


if __name__ == "__main__":
    unittest.main()
