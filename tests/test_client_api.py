"""The public API surface: construction, context manager, close, repr,
keyword names, error classes, pipelined ``put_many``, and the raw
``connection.sendall`` / ``_read()`` pair used by the course's week-6 checker."""

import inspect
import os
import time
import unittest

import client
from client import (
    Client,
    ClientError,
    ClientProtocolError,
    ClientRejectedError,
    ClientReplyError,
    ClientSocketError,
    ClientTimeoutError,
    ClientTypeError,
    ClientValueError,
)
from tests.support import BOUND, TestCase, ok_to_everything, respond, wait_client_socket, wait_until


class ExceptionHierarchyTest(unittest.TestCase):
    def test_hierarchy(self):
        self.assertTrue(issubclass(ClientError, Exception))
        for cls, builtin in [(ClientSocketError, ConnectionError),
                             (ClientTimeoutError, TimeoutError),
                             (ClientValueError, ValueError),
                             (ClientTypeError, TypeError)]:
            self.assertTrue(issubclass(cls, ClientError), cls)
            self.assertTrue(issubclass(cls, builtin), cls)
        self.assertTrue(issubclass(ClientTimeoutError, ClientSocketError))
        self.assertTrue(issubclass(ClientProtocolError, ClientError))
        self.assertTrue(issubclass(ClientRejectedError, ClientProtocolError))
        self.assertTrue(issubclass(ClientReplyError, ClientError))
        for cls in (ClientProtocolError, ClientReplyError):
            self.assertFalse(issubclass(cls, (ConnectionError, ValueError, TypeError)), cls)

    def test_everything_exported(self):
        for name in client.__all__:
            self.assertTrue(hasattr(client, name), name)
        for name in ("Client", "ClientError", "ClientSocketError", "ClientProtocolError",
                     "ClientTimeoutError", "ClientReplyError", "ClientValueError",
                     "ClientTypeError", "ClientRejectedError"):
            self.assertIn(name, client.__all__)

    def test_protocol_error_message(self):
        error = ClientProtocolError("wrong command")
        self.assertEqual(error.message, "wrong command")
        self.assertIn("wrong command", str(error))

    def test_docstrings(self):
        for obj in (client, Client, Client.put, Client.get, Client.put_many, Client.close,
                    ClientError, ClientSocketError, ClientTimeoutError, ClientProtocolError,
                    ClientRejectedError, ClientReplyError, ClientValueError, ClientTypeError):
            with self.subTest(obj=getattr(obj, "__qualname__", obj)):
                self.assertTrue((obj.__doc__ or "").strip())

    def test_typing_files_ship(self):
        package = os.path.dirname(client.__file__)
        files = os.listdir(package)
        self.assertIn("py.typed", files)
        self.assertTrue(any(f.endswith(".pyi") for f in files), files)


class SurfaceTest(TestCase):
    def setUp(self):
        super().setUp()
        self.srv = self.server(respond(lambda line: b"ok\nk 1.5 1\n\n" if line == b"get k\n"
                                       else b"ok\n\n"))

    def test_keyword_names(self):
        c = Client(host=self.srv.host, port=self.srv.port, timeout=5)
        self.addCleanup(c.close)
        self.assertIsNone(c.put(key="k", value=1.5, timestamp=1))
        self.assertEqual(c.get(key="k"), {"k": [(1, 1.5)]})
        self.assertEqual(list(inspect.signature(Client).parameters)[:3], ["host", "port", "timeout"])
        self.assertEqual([p for p in inspect.signature(Client.put).parameters if p != "self"],
                         ["key", "value", "timestamp"])
        # The course's get(key) is the only positional form; the query
        # keywords are keyword-only, so no course call can hit one by accident.
        get = inspect.signature(Client.get).parameters
        self.assertEqual([n for n, p in get.items() if n != "self" and p.kind != p.KEYWORD_ONLY], ["key"])
        self.assertEqual([n for n, p in get.items() if p.kind == p.KEYWORD_ONLY],
                         ["since", "until", "step", "agg", "max_points"])
        self.assertIsNone(inspect.signature(Client).parameters["timeout"].default)
        self.assertIsNone(inspect.signature(Client.put).parameters["timestamp"].default)

    def test_positional_timeout_and_defaults(self):
        c = Client(self.srv.host, self.srv.port, 3.5)
        self.addCleanup(c.close)
        self.assertEqual(c.timeout, 3.5)
        self.assertEqual(c.host, self.srv.host)
        self.assertEqual(c.port, self.srv.port)
        self.assertEqual(c.max_reply_bytes, client.DEFAULT_MAX_REPLY_BYTES)
        d = Client(self.srv.host, self.srv.port)
        self.addCleanup(d.close)
        self.assertIsNone(d.timeout)

    def test_put_returns_none(self):
        c = self.client(self.srv)
        self.assertIsNone(c.put("k", 1, 1))
        self.assertIsNone(c.put("k", 1.5))

    def test_repr(self):
        c = self.client(self.srv)
        text = repr(c)
        self.assertIn(f"127.0.0.1:{self.srv.port}", text)
        self.assertIn("Client", text)
        c.close()
        self.assertIn(f"127.0.0.1:{self.srv.port}", repr(c))
        self.assertIn(f"127.0.0.1:{self.srv.port}", repr(c.connection))

    def test_connects_at_construction(self):
        self.client(self.srv)
        self.srv.wait_connections(1)

    def test_context_manager_closes(self):
        with Client(self.srv.host, self.srv.port, timeout=5) as c:
            self.assertIsInstance(c, Client)
            c.put("k", 1, 1)
        self.srv.peer(0).wait_client_closed()
        with self.assertRaises(ClientSocketError):
            c.get("k")

    def test_context_manager_propagates_exceptions_and_closes(self):
        class Mine(Exception):
            pass

        with self.assertRaises(Mine):
            with Client(self.srv.host, self.srv.port, timeout=5) as c:
                raise Mine()
        self.srv.peer(0).wait_client_closed()
        with self.assertRaises(ClientSocketError):
            c.put("k", 1, 1)

    def test_calls_after_close_raise_and_do_not_reconnect(self):
        c = self.client(self.srv)
        c.close()
        c.close()  # idempotent
        for name, call in [("get", lambda: c.get("k")),
                           ("put", lambda: c.put("k", 1, 1)),
                           ("put_many", lambda: c.put_many([("k", 1, 1)])),
                           ("sendall", lambda: c.connection.sendall(b"get k\n")),
                           ("_read", lambda: c._read())]:
            with self.subTest(name):
                with self.assertRaises(ClientSocketError) as caught:
                    call()
                self.assertIn("closed", str(caught.exception))
        self.srv.peer(0).wait_client_closed()
        self.assertEqual(self.srv.connection_count, 1)
        self.assertEqual(self.srv.peer(0).received(), b"")

    def test_garbage_collected_client_closes_its_connection(self):
        c = Client(self.srv.host, self.srv.port, timeout=5)
        c.put("k", 1, 1)
        del c
        self.srv.peer(0).wait_client_closed()


class PutManyTest(TestCase):
    def test_exact_bytes_pipelined(self):
        points = [("a", 1, 1), ("b", 2.5, 2), ("c", 1e16, 3), ("d", -0.0, 4)]

        def all_then_answer(peer):
            # Answers only once every request is in: a client waiting for
            # each reply before sending the next request would time out.
            for _ in points:
                peer.read_line()
            peer.send(b"ok\n\n" * len(points))
            ok_to_everything(peer)

        srv = self.server(all_then_answer)
        c = self.client(srv, timeout=2)
        self.assertIsNone(c.put_many(points))
        expected = b"put a 1 1\nput b 2.5 2\nput c 1e+16 3\nput d -0.0 4\n"
        self.assertEqual(srv.peer(0).received(), expected)
        self.assertEqual(srv.connection_count, 1)

    def test_accepts_any_iterable_and_default_timestamps(self):
        srv = self.server(ok_to_everything)
        c = self.client(srv)
        before = int(time.time())
        c.put_many(p for p in [("a", 1), ("b", 2, None)])
        after = int(time.time())
        data = srv.peer(0).wait_data(lambda d: d.count(b"\n") == 2)
        lines = data.splitlines()
        self.assertEqual([line.rsplit(b" ", 1)[0] for line in lines], [b"put a 1", b"put b 2"])
        for line in lines:
            self.assertTrue(before <= int(line.rsplit(b" ", 1)[1]) <= after)
        self.assertIsNone(c.put_many([]))
        self.assertIsNone(c.put_many(iter(())))

    def test_rejected_points(self):
        def selective(line):
            return b"error\nrefused " + line.split(b" ")[1] + b"\n\n" if b"reject" in line \
                else b"ok\n\n"

        srv = self.server(respond(selective))
        c = self.client(srv)
        points = [("a", 1, 1), ("reject.me", 2, 2), ("b", 3, 3), ("reject.too", 4, 4), ("c", 5, 5)]
        with self.assertRaises(ClientRejectedError) as caught:
            c.put_many(points)
        error = caught.exception
        self.assertEqual(error.rejected, [(1, "refused reject.me"), (3, "refused reject.too")])
        self.assertEqual(error.total, 5)
        self.assertIsInstance(error, ClientProtocolError)
        self.assertIsInstance(error, ClientError)
        self.assertIn("2 of 5", str(error))
        # Every point was sent; the connection stays usable.
        c.put("after", 1, 1)
        expected = b"".join(b"put %s %d %d\n" % (k.encode(), v, t) for k, v, t in points) \
            + b"put after 1 1\n"
        self.assertEqual(srv.peer(0).wait_received(expected), expected)
        self.assertEqual(srv.connection_count, 1)

    def test_large_batch(self):
        srv = self.metrics_server()
        c = self.client(srv)
        count = 100_000
        start = time.monotonic()
        c.put_many((f"bulk.{i % 7}", i * 0.5, i) for i in range(count))
        elapsed = time.monotonic() - start
        self.assertLess(elapsed, BOUND)
        snapshot = srv.store.snapshot()
        self.assertEqual(sum(len(v) for v in snapshot.values()), count)
        self.assertEqual(snapshot["bulk.3"][:2], [(3, 1.5), (10, 5.0)])
        self.assertEqual(c.get("bulk.0")["bulk.0"][-1], (99995, 49997.5))
        self.assertEqual(srv.connection_count, 1)
        self.assertEqual(srv.store.bad_lines, [])

    def test_successive_batches_send_exactly_their_own_points(self):
        # A client reuses its buffers from one put_many to the next: a
        # smaller batch after a larger one, a failed one between them.
        srv = self.metrics_server()
        c = self.client(srv)
        c.put_many([(f"first.{i % 5}", i, i) for i in range(3000)])
        with self.assertRaises(ClientError):
            c.put_many([("ok", 1, 1), ("bad key", 1, 1)])
        c.put_many([("second", 2.5, 7), ("second", 3.5, 8)])
        c.put_many([])
        c.put_many([("third", 1, 9)])
        snapshot = srv.store.snapshot()
        self.assertEqual(sum(len(v) for k, v in snapshot.items() if k.startswith("first.")), 3000)
        self.assertEqual(snapshot["second"], [(7, 2.5), (8, 3.5)])
        self.assertEqual(snapshot["third"], [(9, 1.0)])
        self.assertNotIn("ok", snapshot)
        self.assertEqual(sum(map(len, snapshot.values())), 3003)
        self.assertEqual(srv.store.bad_lines, [])

    def test_large_batch_against_a_line_by_line_server(self):
        # A naive server answering every line with its own send while the
        # client is still sending: neither side may block the other for good.
        count = 50_000

        def line_by_line(peer):
            while True:
                peer.read_line()
                peer.send(b"ok\n\n")

        srv = self.server(line_by_line)
        c = self.client(srv)
        c.put_many(("k", i, i) for i in range(count))
        self.assertEqual(srv.peer(0).received().count(b"\n"), count)
        wait_until(lambda: srv.peer(0).sent == 4 * count, message="the server's last send")


class RawConnectionTest(TestCase):
    """``client.connection.sendall(data)`` and ``client._read()``, as used by
    the course's week-6 checker."""

    def wait_reply_arrived(self, srv, index=0):
        """Waits until the server's reply sits in the client's socket, as it
        does when a fast server answers before ``_read()`` is called."""
        wait_client_socket(self, srv.peer(index), lambda state, rx: rx > 0,
                           "the reply to reach the client")

    def test_malformed_command_then_read(self):
        srv = self.metrics_server()
        c = self.client(srv, timeout=2)
        self.assertIsNone(c.connection.sendall(b"malformed command test\n"))
        self.wait_reply_arrived(srv)
        with self.assertRaises(ClientProtocolError) as caught:
            c._read()
        self.assertEqual(caught.exception.message, "wrong command")
        self.assertEqual(srv.peer(0).received(), b"malformed command test\n")
        # The connection is still in step.
        c.put("k1", 0.25, 1)
        self.assertEqual(c.get("k1"), {"k1": [(1, 0.25)]})
        self.assertEqual(srv.connection_count, 1)

    def test_raw_bytes_are_sent_as_is(self):
        srv = self.server(None)
        c = self.client(srv)
        payloads = [b"get k\n", b"\x00\xff raw bytes\r\n", b"no newline", b"", b"x" * 300_000]
        for payload in payloads:
            c.connection.sendall(payload)
        expected = b"".join(bytes(p) for p in payloads)
        self.assertEqual(srv.peer(0).wait_received(expected), expected)

    def test_bytes_like_payloads_are_accepted_and_other_types_refused(self):
        srv = self.server(None)
        c = self.client(srv)
        c.connection.sendall(bytearray(b"put a 1 1\n"))
        c.connection.sendall(memoryview(b"xxput b 2 2\n")[2:])
        expected = b"put a 1 1\nput b 2 2\n"
        self.assertEqual(srv.peer(0).wait_received(expected), expected)
        for bad in ["get k\n", 5, None, [1, 2]]:
            with self.subTest(data=bad):
                with self.assertRaises(ClientTypeError) as caught:
                    c.connection.sendall(bad)
                self.assertIn("data", str(caught.exception))
        # Nothing else was sent (bytes(5) would have sent five zero bytes).
        c.connection.sendall(b"end\n")
        self.assertEqual(srv.peer(0).wait_received(expected + b"end\n"), expected + b"end\n")

    def test_read_returns_a_get_reply(self):
        srv = self.server(respond(lambda line: b"ok\nk 2 2\nk 1 1\n\n"))
        c = self.client(srv, timeout=2)
        c.connection.sendall(b"get k\n")
        self.wait_reply_arrived(srv)
        self.assertEqual(c._read(), {"k": [(1, 1.0), (2, 2.0)]})
        c.connection.sendall(b"put k 1 1\n")
        self.wait_reply_arrived(srv)
        self.assertEqual(c._read(), {"k": [(1, 1.0), (2, 2.0)]})
        self.assertEqual(srv.connection_count, 1)

    def test_read_times_out_on_silence(self):
        srv = self.server(None)
        c = self.client(srv, timeout=0.2)
        with self.assertRaises(ClientTimeoutError):
            c._read()


if __name__ == "__main__":
    unittest.main()
