"""Conformance of the embedded server (``client.Server``) to the protocol of
the course's week-6 assignment, over real sockets on 127.0.0.1.

Requests are written with plain ``socket`` calls so every byte on the wire
is the test's own; replies are compared byte for byte. What a Python user
sees is tested here (values as Python's ``str(float)``, the assignment's
examples, the ``Server`` class); the protocol's and the store's behaviour
(wrong commands, pipelining and split input, line limits, many and slow
connections, overwrites and ordering) is tested once, in
``tests/server_integration.rs``. Run against the installed package::

    pip install . && python -m unittest discover -s tests -t . -p 'test_server_conformance.py'
"""

from __future__ import annotations

import errno
import os
import random
import socket
import tempfile
import unittest
from typing import Dict, Optional

import client
from client import Client, ClientTypeError, ClientValueError, Server
from tests.support import BOUND, TestCase, ipv6_loopback_available
from tests.support.raw import RawConnection
from tests.support.redis_cluster import OnRedisCluster

OK = b"ok\n\n"


def by_key(reply: bytes) -> bytes:
    """A ``get *`` reply with its point lines grouped by key in key order
    (each key's own lines keep their order): the protocol orders points
    within a key, not the keys, and a Redis gateway lists keys by slot."""
    head, *lines, end, last = reply.split(b"\n")
    lines.sort(key=lambda line: line.split(b" ")[0])
    return b"\n".join([head, *lines, end, last])


class ServerTestCase(TestCase):
    def server_arguments(self) -> Dict[str, object]:
        """What every server of the test is started with: the backend."""
        return {}

    def setUp(self) -> None:
        super().setUp()
        self.srv = Server(**self.server_arguments())
        self.addCleanup(self.srv.close)

    def conn(self, server: Optional[Server] = None) -> RawConnection:
        c = RawConnection((server or self.srv).address)
        self.addCleanup(c.close)
        return c


class AssignmentRules(ServerTestCase):
    def test_values_come_back_as_python_str_float(self) -> None:
        c = self.conn()
        self.assertEqual(c.ask(b"put another_key 10 1503319739\n"), OK)
        self.assertEqual(c.ask(b"get *\n"), b"ok\nanother_key 10.0 1503319739\n\n")
        rng = random.Random(20240603)
        texts = ["0.5", "2.0", "301", "1e16", "1e+16", "4.2e-05", "0.0001", "-0", "1e-5", "0.1000", "42000000",
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
        self.assertEqual(by_key(c.ask(b"get *\n")),
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

class AssignmentRulesOnRedisCluster(OnRedisCluster, AssignmentRules):
    """The same rules with the server as a gateway to a Redis Cluster."""


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
