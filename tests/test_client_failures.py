"""Timeouts, late replies and faults.

After any failure in the middle of a request the connection must be
discarded and the next call must use a new one, so that a late or
unsolicited reply can never be read as the answer to a later request.
"""

import errno
import os
import socket
import threading
import time
import unittest
from unittest import mock

from client import (
    ClientError,
    ClientSocketError,
    ClientTimeoutError,
)
from tests.support import (
    BOUND,
    TCP_CLOSE_WAIT,
    MetricsStore,
    TestCase,
    refused_address,
    wait_client_socket,
)
from tests.support.scripted import answer_points, point_reply, silent
from tests.support.transports import OverTls

#: Allowed lateness of a timeout: timeout * 1.1 + SLACK.
SLACK = 0.1




class TimeoutTest(TestCase):
    def timed(self, call, *args):
        start = time.monotonic()
        try:
            call(*args)
        except BaseException as error:
            return time.monotonic() - start, error
        self.fail(f"{call.__name__}{args} did not fail")

    def assert_timeout_error(self, error):
        self.assertIs(type(error), ClientTimeoutError, repr(error))
        self.assertIsInstance(error, TimeoutError)
        self.assertIsInstance(error, ClientSocketError)
        self.assertIsInstance(error, ConnectionError)
        self.assertIsInstance(error, ClientError)

    def test_silent_server_times_out_on_time(self):
        timeout = 0.3
        for name, call in [("get", lambda c: c.get("k")),
                           ("put", lambda c: c.put("k", 1, 1)),
                           ("put_many", lambda c: c.put_many([("k", 1, 1), ("k", 2, 2)]))]:
            with self.subTest(name):
                srv = self.server(silent)
                c = self.client(srv, timeout=timeout)
                elapsed, error = self.timed(call, c)
                self.assert_timeout_error(error)
                self.assertElapsedBetween(elapsed, timeout, timeout * 1.1 + SLACK)
                self.assertIn("timed out", str(error))

    def test_timeout_discards_the_connection_and_next_call_reconnects(self):
        srv = self.server([silent, answer_points])
        c = self.client(srv, timeout=0.2)
        with self.assertRaises(ClientTimeoutError):
            c.get("first")
        # The abandoned connection is closed, not kept for later.
        srv.peer(0).wait_client_closed()
        self.assertEqual(c.get("second"), {"second": [(1, 1.0)]})
        self.assertEqual(srv.connection_count, 2)
        self.assertEqual(srv.peer(0).received(), b"get first\n")
        self.assertEqual(srv.peer(1).received(), b"get second\n")

    def test_timeout_bounds_the_whole_call_not_each_read(self):
        # The server trickles a never-ending reply, one byte every 50 ms:
        # each read succeeds, yet the call must end after `timeout`.
        pace = threading.Event()

        def trickle(peer):
            peer.read_line()
            data = b"ok\n" + b"k 1.0 1\n" * 1000
            for i in range(len(data)):
                if not peer.try_send(data[i:i + 1]) or peer.server.stopping:
                    return
                pace.wait(0.05)

        timeout = 0.5
        srv = self.server(trickle)
        c = self.client(srv, timeout=timeout)
        elapsed, error = self.timed(c.get, "k")
        self.assert_timeout_error(error)
        self.assertElapsedBetween(elapsed, timeout, timeout * 1.1 + SLACK)

    def test_connect_timeout_is_a_timeout_error(self):
        cause = socket.timeout("timed out")
        with mock.patch("socket.create_connection", side_effect=cause):
            with self.assertRaises(ClientTimeoutError) as caught:
                self.client(("127.0.0.1", 9), timeout=1)
        self.assertIsInstance(caught.exception, TimeoutError)
        self.assertIs(caught.exception.__cause__, cause)


class LateReplyTest(TestCase):
    """The redis-py CVE-2023-28858/28859 scenario: a request is abandoned
    (here by a timeout) while its reply is delayed; the delayed reply arrives
    later. The next request must get its own reply, never the late one."""

    def test_late_reply_is_never_read_as_the_next_answer(self):
        release = threading.Event()
        late_sent = threading.Event()

        def delaying(peer):
            # Every connection: the first request's reply is held back until
            # the test releases it, then everything is answered in order.
            line = peer.read_line()
            release.wait(BOUND)
            if peer.try_send(point_reply(line)):
                late_sent.set()
            while True:
                line = peer.read_line()
                peer.send(point_reply(line))

        srv = self.server(delaying)
        c = self.client(srv, timeout=0.3)
        with self.assertRaises(ClientTimeoutError):
            c.get("first")
        release.set()
        # Had the connection been kept, `get second` would be answered by
        # the late `first` reply, already queued in front of it.
        result = c.get("second")
        self.assertEqual(result, {"second": [(1, 1.0)]})
        self.assertEqual(srv.peer(0).received(), b"get first\n")
        self.assertEqual(srv.peer(1).received(), b"get second\n")
        self.assertEqual(c.get("third"), {"third": [(1, 1.0)]})
        self.assertEqual(srv.connection_count, 2)

    def test_unsolicited_reply_between_calls_is_not_taken_as_an_answer(self):
        extra_sent = threading.Event()
        answered = threading.Event()

        def chatty(peer):
            line = peer.read_line()
            peer.send(point_reply(line))
            answered.wait(BOUND)
            peer.send(b"ok\nstale 9.0 9\n\n")   # nobody asked for this
            extra_sent.set()
            answer_points(peer)

        srv = self.server([chatty, answer_points])
        c = self.client(srv)
        self.assertEqual(c.get("first"), {"first": [(1, 1.0)]})
        answered.set()
        self.assertTrue(extra_sent.wait(BOUND))
        # Make sure the stray bytes reached the client's socket before the
        # next call, so the outcome does not depend on timing.
        wait_client_socket(self, srv.peer(0), lambda state, rx: rx > 0,
                           "the stray reply to reach the client")
        self.assertEqual(c.get("second"), {"second": [(1, 1.0)]})
        self.assertEqual(srv.connection_count, 2)
        self.assertEqual(srv.peer(0).received(), b"get first\n")
        self.assertEqual(srv.peer(1).received(), b"get second\n")


class FaultTest(TestCase):
    def test_server_restarted_between_calls(self):
        store = MetricsStore()
        first = self.metrics_server(store=store)
        c = self.client(first)
        c.put("k", 1.5, 1)
        old = first.peer(0)
        first.stop()
        wait_client_socket(self, old, lambda state, rx: state == TCP_CLOSE_WAIT,
                           "the client's socket to see the server close")
        second = self.metrics_server(port=first.port, store=store)
        self.assertEqual(c.get("k"), {"k": [(1, 1.5)]})
        self.assertEqual(second.connection_count, 1)
        self.assertEqual(second.peer(0).received(), b"get k\n")

    def test_server_down_fails_fast_then_recovers(self):
        store = MetricsStore()
        first = self.metrics_server(store=store)
        c = self.client(first, timeout=5)
        c.put("k", 1.5, 1)
        old = first.peer(0)
        first.stop()
        wait_client_socket(self, old, lambda state, rx: state == TCP_CLOSE_WAIT,
                           "the client's socket to see the server close")
        start = time.monotonic()
        with self.assertRaises(ClientSocketError) as caught:
            c.get("k")
        self.assertLess(time.monotonic() - start, 1.0)
        self.assertIsInstance(caught.exception, ConnectionError)
        self.assertNotIsInstance(caught.exception, ClientTimeoutError)
        self.assertIsInstance(caught.exception.__cause__, ConnectionRefusedError)
        # Still down: fails again, fast.
        with self.assertRaises(ClientSocketError):
            c.put("k", 2, 2)
        self.metrics_server(port=first.port, store=store)
        self.assertEqual(c.get("k"), {"k": [(1, 1.5)]})

    def test_server_closing_an_idle_connection(self):
        def answer_once_then_close(peer):
            line = peer.read_line()
            peer.send(point_reply(line))
            peer.close()

        srv = self.server([answer_once_then_close, answer_points])
        c = self.client(srv)
        self.assertEqual(c.get("a"), {"a": [(1, 1.0)]})
        wait_client_socket(self, srv.peer(0), lambda state, rx: state == TCP_CLOSE_WAIT,
                           "the client's socket to see the server close")
        self.assertEqual(c.get("b"), {"b": [(1, 1.0)]})
        self.assertEqual(srv.connection_count, 2)

    def test_connection_refused_at_construction(self):
        with refused_address() as address:
            start = time.monotonic()
            with self.assertRaises(ClientSocketError) as caught:
                self.client(address, timeout=5)
            self.assertLess(time.monotonic() - start, 1.0)
        error = caught.exception
        self.assertIsInstance(error, ConnectionError)
        self.assertIsInstance(error, ClientError)
        self.assertIsInstance(error.__cause__, ConnectionRefusedError)
        self.assertIn(str(address[1]), str(error))
        # What the OS said is data, not text to parse.
        self.assertEqual(error.address, f"{address[0]}:{address[1]}")
        self.assertEqual(error.errno, errno.ECONNREFUSED)
        self.assertEqual(error.strerror, os.strerror(errno.ECONNREFUSED))
        self.assertTrue(str(error).startswith(f"cannot connect to {address[0]}:{address[1]}: "), str(error))

    def test_name_resolution_failure(self):
        cause = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        with mock.patch("socket.create_connection", side_effect=cause):
            with self.assertRaises(ClientSocketError) as caught:
                self.client(("no-such-host.invalid", 8888))
        self.assertIs(caught.exception.__cause__, cause)
        self.assertIn("no-such-host.invalid", str(caught.exception))
        self.assertEqual(caught.exception.errno, socket.EAI_NONAME)
        self.assertEqual(caught.exception.address, "no-such-host.invalid:8888")

    def test_non_oserror_from_create_connection_propagates_unchanged(self):
        class Custom(Exception):
            pass

        with mock.patch("socket.create_connection", side_effect=Custom("mine")):
            with self.assertRaises(Custom):
                self.client(("127.0.0.1", 9))

    @unittest.skipUnless(hasattr(os, "fork"), "needs os.fork")
    def test_fork_child_uses_its_own_connection(self):
        srv = self.metrics_server()
        c = self.client(srv)
        c.put("child", 7, 1)

        def child():
            try:
                if c.get("child") != {"child": [(1, 7.0)]}:
                    return 2
                c.put("from.child", 1, 1)
                return 0
            except BaseException:
                return 3

        self.assertEqual(self.run_forked(child), 0, "the child's call failed")
        # The parent's connection still works and is still the first one.
        c.put("parent.after", 2, 2)
        self.assertEqual(srv.connection_count, 2)
        self.assertEqual(srv.peer(0).received(), b"put child 7 1\nput parent.after 2 2\n")
        self.assertEqual(srv.peer(1).received(), b"get child\nput from.child 1 1\n")


# The same tests on TLS (the Rust core's): scripted servers speaking TLS,
# clients connecting with tls_ca.


class TimeoutOverTlsTest(OverTls, TimeoutTest):
    pass


class LateReplyOverTlsTest(OverTls, LateReplyTest):
    pass



class FaultOverTlsTest(OverTls, FaultTest):
    pass


if __name__ == "__main__":
    unittest.main()
