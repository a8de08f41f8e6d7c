"""Conformance of the embedded server (``client.Server``) to the protocol of
the course's week-6 assignment, over real sockets on 127.0.0.1.

Requests are written with plain ``socket`` calls so every byte on the wire
is the test's own; replies are compared byte for byte. Run against the
installed package::

    pip install . && python -m unittest discover -s tests -t . -p 'test_server_conformance.py'
"""

from __future__ import annotations

import errno
import os
import random
import resource
import socket
import tempfile
import threading
import time
import unittest
from typing import List, Optional

import client
from client import Client, ClientTypeError, ClientValueError, Server
from tests.support import BOUND, TestCase, ipv6_loopback_available
from tests.support.raw import RawConnection

#: Longest request line the server accepts, without its ``\n``.
MAX_LINE = 1 << 20

WRONG = b"error\nwrong command\n\n"
OK = b"ok\n\n"


class ServerTestCase(TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.srv = Server()
        self.addCleanup(self.srv.close)

    def conn(self, server: Optional[Server] = None) -> RawConnection:
        c = RawConnection((server or self.srv).address)
        self.addCleanup(c.close)
        return c


class AssignmentRules(ServerTestCase):
    def test_the_assignments_session_byte_for_byte(self) -> None:
        c = self.conn()
        self.assertEqual(c.ask(b"put test_key 12.0 1503319740\n"), OK)
        self.assertEqual(c.ask(b"put test_key 13.0 1503319739\n"), OK)
        self.assertEqual(c.ask(b"get test_key\n"),
                         b"ok\ntest_key 13.0 1503319739\ntest_key 12.0 1503319740\n\n")

    def test_values_come_back_as_python_str_float(self) -> None:
        c = self.conn()
        self.assertEqual(c.ask(b"put another_key 10 1503319739\n"), OK)
        self.assertEqual(c.ask(b"get *\n"), b"ok\nanother_key 10.0 1503319739\n\n")
        rng = random.Random(20240603)
        texts = ["0.5", "2.0", "301", "1e16", "1e+16", "4.2e-05", "0.0001", "-0", "1e-5",
                 "123456789012345678", "0.30000000000000004", "1.7976931348623157e308", "5e-324"]
        texts += [repr(rng.uniform(-1e6, 1e6)) for _ in range(50)]
        texts += [repr(rng.random() * 10 ** rng.randint(-30, 30)) for _ in range(50)]
        texts += [str(rng.randint(-10 ** 12, 10 ** 12)) for _ in range(20)]
        for ts, text in enumerate(texts):
            self.assertEqual(c.ask(f"put v {text} {ts}\n".encode()), OK, text)
            self.assertEqual(c.ask(b"get v\n").split(b"\n")[-3],
                             f"v {float(text)} {ts}".encode(), text)

    def test_put_and_get_of_the_assignment_example(self) -> None:
        c = self.conn()
        self.assertEqual(c.ask(b"put huginn.cpu 10.6 1642667947\n"), OK)
        self.assertEqual(c.ask(b"put muninn.cpu 15.3 1642667959\n"), OK)
        self.assertEqual(c.ask(b"get *\n"),
                         b"ok\nhuginn.cpu 10.6 1642667947\nmuninn.cpu 15.3 1642667959\n\n")
        self.assertEqual(c.ask(b"get muninn.cpu\n"), b"ok\nmuninn.cpu 15.3 1642667959\n\n")

    def test_an_unknown_key_gives_an_empty_ok(self) -> None:
        c = self.conn()
        self.assertEqual(c.ask(b"get nothing\n"), OK)
        self.assertEqual(c.ask(b"get *\n"), OK)
        c.ask(b"put something 1 1\n")
        self.assertEqual(c.ask(b"get nothing\n"), OK)

    def test_trailing_whitespace_after_get_is_tolerated(self) -> None:
        c = self.conn()
        c.ask(b"put k 1.5 3\n")
        for request in (b"get k \n", b"get k  \n", b"get k\t\n", b"get k\r\n", b"get k \r\n"):
            self.assertEqual(c.ask(request), b"ok\nk 1.5 3\n\n", request)
        self.assertEqual(c.ask(b"get * \n"), b"ok\nk 1.5 3\n\n")

    def test_wrong_commands_get_an_error_and_the_connection_stays_usable(self) -> None:
        c = self.conn()
        wrong = [
            b"got test_key\n", b"malformed command test\n", b"\n", b"   \n", b"PUT k 1 1\n",
            b"Get k\n", b"put\n", b"put k\n", b"put k 1\n", b"put k 1 1 1\n", b"get\n",
            b"get a b\n", b"put k one 1\n", b"put k 1 one\n", b"put k 1 1.5\n", b"put k 1 1e3\n",
            b"put k 1,5 1\n", b"put k nan 1\n", b"put k inf 1\n", b"put k 1e999 1\n",
            b"put k 1 99999999999999999999\n", b"put * 1 1\n", b"put k\x00 1 1\n",
            b"get \xff\n", "put ke\u00a0y 1 1\n".encode(),
        ]
        for request in wrong:
            self.assertEqual(c.ask(request), WRONG, request)
            self.assertEqual(c.ask(b"put good 1 1\n"), OK, f"after {request!r}")
        self.assertEqual(c.ask(b"get *\n"), b"ok\ngood 1.0 1\n\n")

    def test_a_second_put_for_the_same_key_and_timestamp_replaces_the_value(self) -> None:
        c = self.conn()
        other = self.conn()
        c.ask(b"put k 1 100\n")
        c.ask(b"put k 2 101\n")
        other.ask(b"put k 3 100\n")
        c.ask(b"put j 9 100\n")
        self.assertEqual(c.ask(b"get k\n"), b"ok\nk 3.0 100\nk 2.0 101\n\n")
        self.assertEqual(other.ask(b"get j\n"), b"ok\nj 9.0 100\n\n")

    def test_points_are_sorted_by_timestamp_within_a_key(self) -> None:
        c = self.conn()
        rng = random.Random(7)
        stamps = rng.sample(range(-1000, 100000), 300)
        for ts in stamps:
            c.send(f"put a {ts} {ts}\nput b {-ts} {ts}\n".encode())
        for _ in range(2 * len(stamps)):
            self.assertEqual(c.reply(), OK)
        reply = c.ask(b"get *\n").decode()
        lines = reply.split("\n")[1:-2]
        a = [(int(t), float(v)) for k, v, t in (line.split() for line in lines) if k == "a"]
        b = [(int(t), float(v)) for k, v, t in (line.split() for line in lines) if k == "b"]
        self.assertEqual(a, [(ts, float(ts)) for ts in sorted(stamps)])
        self.assertEqual(b, [(ts, float(-ts)) for ts in sorted(stamps)])
        # The points of one key come together.
        keys = [line.split()[0] for line in lines]
        self.assertEqual(keys, ["a"] * len(stamps) + ["b"] * len(stamps))


def session() -> bytes:
    """A mixed request stream: puts, gets, bad lines, overwrites."""
    parts = []
    for i in range(60):
        parts.append(f"put key{i % 7} {i}.25 {1000 - i % 13}\n")
        if i % 5 == 0:
            parts.append(f"get key{i % 3}\n")
        if i % 11 == 0:
            parts.append("bogus line\n")
    parts.append("get *\n")
    return "".join(parts).encode()


class SplitAndPipelined(TestCase):
    def replies(self, pieces: List[bytes]) -> bytes:
        with Server() as srv:
            with socket.create_connection(srv.address, timeout=BOUND) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for piece in pieces:
                    sock.sendall(piece)
                sock.shutdown(socket.SHUT_WR)
                data = b""
                while True:
                    chunk = sock.recv(1 << 16)
                    if not chunk:
                        return data
                    data += chunk

    def test_split_and_pipelined_input_gives_the_same_replies(self) -> None:
        stream = session()
        with Server() as srv:
            c = RawConnection(srv.address)
            reference = b"".join(c.ask(line) for line in stream.splitlines(keepends=True))
            c.close()
        self.assertEqual(reference.count(b"\n\n"), stream.count(b"\n"))
        self.assertEqual(self.replies([stream]), reference)                       # pipelined
        self.assertEqual(self.replies([bytes([b]) for b in stream]), reference)   # byte by byte
        rng = random.Random(3)
        cuts = sorted(rng.sample(range(1, len(stream)), 40))
        pieces = [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]
        self.assertEqual(self.replies(pieces), reference)

    def test_a_command_split_across_segments_is_answered_once_complete(self) -> None:
        with Server() as srv:
            c = RawConnection(srv.address)
            c.send(b"pu")
            c.send(b"t k 1")
            c.send(b".5 2")
            self.assertEqual(c.ask(b"0\n"), OK)
            c.send(b"get")
            self.assertEqual(c.ask(b" k\n"), b"ok\nk 1.5 20\n\n")
            c.close()

    def test_many_requests_in_one_segment_are_answered_in_order(self) -> None:
        with Server() as srv:
            c = RawConnection(srv.address)
            n = 20000
            batch = b"".join(f"put p{i % 10} {i} {i}\nget p{i % 10}\n".encode() if i % 1000 == 0
                             else f"put p{i % 10} {i} {i}\n".encode() for i in range(n))
            batch += b"bad\nget p3\n"
            sender = threading.Thread(target=c.send, args=(batch,))
            sender.start()
            for i in range(n):
                self.assertEqual(c.reply(), OK, i)
                if i % 1000 == 0:
                    reply = c.reply()
                    self.assertTrue(reply.endswith(f"p{i % 10} {float(i)} {i}\n\n".encode()), reply[-60:])
            self.assertEqual(c.reply(), WRONG)
            reply = c.reply().split(b"\n")
            sender.join(BOUND)
            self.assertEqual(len(reply), 3 + n // 10)
            self.assertEqual(reply[1], b"p3 3.0 3")
            c.close()


class Limits(ServerTestCase):
    def test_a_line_of_exactly_the_limit_is_served(self) -> None:
        c = self.conn()
        key = "k" * (MAX_LINE - len("get "))
        self.assertEqual(c.ask(f"get {key}\n".encode()), OK)
        self.assertEqual(c.ask(b"put k 1 1\n"), OK)

    def test_an_oversized_line_gets_an_error_and_the_connection_is_closed(self) -> None:
        c = self.conn()
        self.assertEqual(c.ask(b"put k 1 1\n"), OK)
        c.send(b"put k 2 2\nget " + b"k" * MAX_LINE + b"\n")
        c.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(c.read_to_close(), OK + b"error\nline too long\n\n")
        # Other connections, and the data, are unaffected.
        self.assertEqual(self.conn().ask(b"get k\n"), b"ok\nk 1.0 1\nk 2.0 2\n\n")

    def test_a_line_that_never_ends_is_cut_off_at_the_limit(self) -> None:
        c = self.conn()
        chunk = b"x" * 65536
        sent = 0
        try:
            while sent < 4 * MAX_LINE:
                c.send(chunk)
                sent += len(chunk)
        except OSError:  # the server may close before everything is sent
            pass
        self.assertGreater(sent, MAX_LINE)
        try:
            c.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.assertEqual(c.read_to_close(), b"error\nline too long\n\n")

    def test_a_thousand_concurrent_connections(self) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 2200:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
        conns = [self.conn() for _ in range(1000)]
        # A request in flight on every connection before any reply is read.
        for i, c in enumerate(conns):
            c.send(f"put conn.{i % 50} {i} {i}\n".encode())
        for c in conns:
            self.assertEqual(c.reply(), OK)
        for i, c in enumerate(conns):
            c.send(f"get conn.{i % 50}\n".encode())
        for i, c in enumerate(conns):
            lines = c.reply().split(b"\n")
            self.assertEqual(len(lines), 3 + 20, i)
        total = conns[0].ask(b"get *\n").count(b"\n")
        self.assertEqual(total, 1000 + 2)

    def test_a_slow_or_idle_client_never_stalls_the_others(self) -> None:
        loader = self.conn()
        n = 200_000
        batch = b"".join(f"put slow.{i % 4} {i} {i}\n".encode() for i in range(n))
        sender = threading.Thread(target=loader.send, args=(batch,))
        sender.start()
        for _ in range(n):
            loader.reply()
        sender.join(BOUND)
        # Half a line, never finished; and clients asking for megabytes
        # they never read.
        idle = self.conn()
        idle.send(b"put half")
        stuck = [self.conn() for _ in range(3)]
        for c in stuck:
            c.send(b"get *\n" * 5)
        started = time.monotonic()
        c = self.conn()
        for i in range(300):
            self.assertEqual(c.ask(f"put fast {i} {i}\n".encode()), OK)
        self.assertEqual(c.ask(b"get fast\n").count(b"\n"), 300 + 2)
        self.assertLess(time.monotonic() - started, BOUND / 2)
        self.assertEqual(idle.ask(b" 1 1\n"), OK)


class PythonApi(TestCase):
    def test_with_server_client_just_works(self) -> None:
        with Server() as srv:
            with Client(*srv.address, timeout=BOUND) as cl:
                cl.put("huginn.cpu", 0.5, timestamp=1642667947)
                cl.put("muninn.memory", 42000000, timestamp=1642667950)
                self.assertEqual(cl.get("*"), {"huginn.cpu": [(1642667947, 0.5)],
                                               "muninn.memory": [(1642667950, 42000000.0)]})
                self.assertEqual(cl.get("nothing"), {})
                with self.assertRaises(client.ClientProtocolError):
                    cl.connection.sendall(b"got k\n")
                    cl._read()

    def test_address_defaults_and_lifecycle(self) -> None:
        srv = Server()
        host, port = srv.address
        self.assertEqual(host, "127.0.0.1")
        self.assertIsInstance(port, int)
        self.assertGreater(port, 0)
        self.assertFalse(srv.closed)
        self.assertIsNone(srv.data)
        self.assertEqual(srv.fsync, "everysec")
        self.assertIn(f"127.0.0.1:{port}", repr(srv))
        c = RawConnection(srv.address)
        c.ask(b"put k 1 1\n")
        c.close()
        srv.close()
        srv.close()  # idempotent
        self.assertTrue(srv.closed)
        self.assertIn("closed", repr(srv))
        self.assertEqual(srv.address, (host, port))
        with self.assertRaises(OSError):
            socket.create_connection((host, port), timeout=BOUND).close()

    def test_close_drops_open_connections(self) -> None:
        srv = Server()
        c = RawConnection(srv.address)
        self.assertEqual(c.ask(b"put k 1 1\n"), OK)
        srv.close()
        try:
            c.send(b"get k\n")
            self.assertEqual(c.sock.recv(100), b"")
        except OSError:
            pass
        c.close()

    def test_an_explicit_port(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with Server("127.0.0.1", port) as srv:
            self.assertEqual(srv.address, ("127.0.0.1", port))
            c = RawConnection(srv.address)
            self.addCleanup(c.close)
            self.assertEqual(c.ask(b"get *\n"), OK)

    def test_exceptions_in_the_with_block_propagate_and_close(self) -> None:
        with self.assertRaises(KeyError):
            with Server() as srv:
                raise KeyError("x")
        self.assertTrue(srv.closed)

    def test_bad_arguments_are_clear_python_errors(self) -> None:
        with self.assertRaisesRegex(ClientValueError, "invalid fsync: must be 'always', 'everysec' or 'no'"):
            Server(fsync="sometimes")
        with self.assertRaisesRegex(ClientTypeError, "invalid max_memory: .* not bool"):
            Server(max_memory=True)
        with self.assertRaisesRegex(ClientValueError, "invalid idle_timeout"):
            Server(idle_timeout=-1)
        with self.assertRaisesRegex(ClientValueError, "invalid timeout"):
            Server().wait(-1)
        with self.assertRaises(ValueError):
            Server(port=70000)
        with self.assertRaises(ValueError):
            Server(port=-1)
        with self.assertRaises(TypeError):
            Server(port="8888")
        with self.assertRaises(TypeError):
            Server(port=True)
        with self.assertRaises(TypeError):
            Server(host=None)
        with self.assertRaises(TypeError):
            Server(log="yes")

    def test_bind_failure_is_an_oserror(self) -> None:
        with Server() as srv:
            with self.assertRaises(OSError) as caught:
                Server(port=srv.address[1])
            self.assertIn(str(srv.address[1]), str(caught.exception))
            # What failed is in attributes, for callers that must not parse the message.
            self.assertEqual(caught.exception.errno, errno.EADDRINUSE)
            self.assertEqual(caught.exception.address, f"127.0.0.1:{srv.address[1]}")
            self.assertIsNone(caught.exception.data)
        with self.assertRaises(OSError):
            Server(host="no-such-host.invalid")

    def test_bad_data_paths_are_oserrors(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            missing = os.path.join(tmp, "missing", "log")
            with self.assertRaises(FileNotFoundError) as caught:
                Server(data=missing)
            self.assertEqual(str(caught.exception.data), missing)
            self.assertIsNone(caught.exception.address)
            with self.assertRaises(IsADirectoryError):
                Server(data=tmp)
            path = os.path.join(tmp, "metrics.log")
            with Server(data=path) as first:
                self.assertEqual(str(first.data), path)
                with self.assertRaisesRegex(OSError, "in use by another server") as in_use:
                    Server(data=path)
                self.assertEqual(str(in_use.exception.data), path)
            with Server(data=path):  # freed by close()
                pass

    @unittest.skipUnless(ipv6_loopback_available(), "no IPv6 loopback")
    def test_ipv6_loopback(self) -> None:
        with Server("::1") as srv:
            self.assertEqual(srv.address[0], "::1")
            self.assertIn("[::1]:", repr(srv))
            c = RawConnection(srv.address)
            self.addCleanup(c.close)
            self.assertEqual(c.ask(b"put k 1 1\n"), OK)


if __name__ == "__main__":
    unittest.main()
