"""Bad input never reaches the wire.

Each rejected call must raise the exact exception class, name the argument in
its message, and send nothing: a valid request made afterwards must be the
very next bytes the server receives, on the same connection.
"""

import unittest

import client
from client import ClientError, ClientTypeError, ClientValueError
from tests.support import TestCase, ok_to_everything

NAN = float("nan")
INF = float("inf")

# (description, call(c), exception class, argument name in the message)
PUT_CASES = [
    ("empty key", lambda c: c.put("", 1, 1), ClientValueError, "key"),
    ("key with space", lambda c: c.put("a b", 1, 1), ClientValueError, "key"),
    ("key with newline (injection)", lambda c: c.put("a\nput x 1 1", 1, 1), ClientValueError, "key"),
    ("key ending in newline", lambda c: c.put("a\n", 1, 1), ClientValueError, "key"),
    ("key with tab", lambda c: c.put("a\tb", 1, 1), ClientValueError, "key"),
    ("key with carriage return", lambda c: c.put("a\rb", 1, 1), ClientValueError, "key"),
    ("key with NUL", lambda c: c.put("a\x00b", 1, 1), ClientValueError, "key"),
    ("key with DEL", lambda c: c.put("a\x7fb", 1, 1), ClientValueError, "key"),
    ("key with escape", lambda c: c.put("a\x1bb", 1, 1), ClientValueError, "key"),
    ("key with no-break space", lambda c: c.put("a\xa0b", 1, 1), ClientValueError, "key"),
    ("key with line separator", lambda c: c.put("a\u2028b", 1, 1), ClientValueError, "key"),
    ("key with lone surrogate", lambda c: c.put("a\ud800b", 1, 1), ClientValueError, "key"),
    ("wildcard key in put", lambda c: c.put("*", 1, 1), ClientValueError, "key"),
    ("int key", lambda c: c.put(1, 1, 1), ClientTypeError, "key"),
    ("bytes key", lambda c: c.put(b"k", 1, 1), ClientTypeError, "key"),
    ("None key", lambda c: c.put(None, 1, 1), ClientTypeError, "key"),
    ("True value", lambda c: c.put("k", True, 1), ClientTypeError, "value"),
    ("False value", lambda c: c.put("k", False, 1), ClientTypeError, "value"),
    ("str value", lambda c: c.put("k", "1.5", 1), ClientTypeError, "value"),
    ("None value", lambda c: c.put("k", None, 1), ClientTypeError, "value"),
    ("bytes value", lambda c: c.put("k", b"1", 1), ClientTypeError, "value"),
    ("complex value", lambda c: c.put("k", 1j, 1), ClientTypeError, "value"),
    ("list value", lambda c: c.put("k", [1], 1), ClientTypeError, "value"),
    ("NaN value", lambda c: c.put("k", NAN, 1), ClientValueError, "value"),
    ("inf value", lambda c: c.put("k", INF, 1), ClientValueError, "value"),
    ("-inf value", lambda c: c.put("k", -INF, 1), ClientValueError, "value"),
    ("huge int value", lambda c: c.put("k", 2 ** 200, 1), ClientValueError, "value"),
    ("huge negative int value", lambda c: c.put("k", -(2 ** 200), 1), ClientValueError, "value"),
    ("float timestamp", lambda c: c.put("k", 1, 1.0), ClientTypeError, "timestamp"),
    ("fractional timestamp", lambda c: c.put("k", 1, 1.5), ClientTypeError, "timestamp"),
    ("True timestamp", lambda c: c.put("k", 1, True), ClientTypeError, "timestamp"),
    ("str timestamp", lambda c: c.put("k", 1, "1"), ClientTypeError, "timestamp"),
    ("bytes timestamp", lambda c: c.put("k", 1, b"1"), ClientTypeError, "timestamp"),
    ("timestamp 2**63", lambda c: c.put("k", 1, 2 ** 63), ClientValueError, "timestamp"),
    ("timestamp -2**63-1", lambda c: c.put("k", 1, -(2 ** 63) - 1), ClientValueError, "timestamp"),
    ("timestamp 10**30", lambda c: c.put("k", 1, 10 ** 30), ClientValueError, "timestamp"),
]

GET_CASES = [
    ("empty key", lambda c: c.get(""), ClientValueError, "key"),
    ("key with space", lambda c: c.get("a b"), ClientValueError, "key"),
    ("key with newline (injection)", lambda c: c.get("a\nput x 1 1"), ClientValueError, "key"),
    ("key with tab", lambda c: c.get("\t"), ClientValueError, "key"),
    ("key with NUL", lambda c: c.get("\x00"), ClientValueError, "key"),
    ("int key", lambda c: c.get(5), ClientTypeError, "key"),
    ("None key", lambda c: c.get(None), ClientTypeError, "key"),
    ("bytes key", lambda c: c.get(b"*"), ClientTypeError, "key"),
]

PORT_CASES = [
    (0, ClientValueError), (65536, ClientValueError), (-1, ClientValueError),
    (2 ** 70, ClientValueError),
    ("8888", ClientTypeError), (8888.0, ClientTypeError), (True, ClientTypeError),
    (None, ClientTypeError), (b"80", ClientTypeError),
]

TIMEOUT_CASES = [
    (0, ClientValueError), (0.0, ClientValueError), (-1, ClientValueError),
    (-0.5, ClientValueError), (NAN, ClientValueError), (INF, ClientValueError),
    ("1", ClientTypeError), (True, ClientTypeError), ([], ClientTypeError),
]


class BadInputTest(TestCase):
    def setUp(self):
        super().setUp()
        self.srv = self.server(ok_to_everything)
        self.c = self.client(self.srv)
        self.peer = self.srv.peer(0)
        self.sent = b""

    def check_rejected(self, call, exception, argument):
        with self.assertRaises(exception) as caught:
            call(self.c)
        error = caught.exception
        self.assertIs(type(error), exception)
        self.assertIsInstance(error, ClientError)
        builtin = ValueError if exception is ClientValueError else TypeError
        self.assertIsInstance(error, builtin)
        self.assertIn(argument, str(error))
        # Nothing was sent: a valid request is the next thing on the wire.
        self.c.put("valid", 1, 1)
        self.sent += b"put valid 1 1\n"
        self.assertEqual(self.peer.wait_received(self.sent), self.sent)

    def test_put_arguments(self):
        for description, call, exception, argument in PUT_CASES:
            with self.subTest(description):
                self.check_rejected(call, exception, argument)
        self.assertEqual(self.srv.connection_count, 1)

    def test_get_arguments(self):
        for description, call, exception, argument in GET_CASES:
            with self.subTest(description):
                self.check_rejected(call, exception, argument)
        self.assertEqual(self.srv.connection_count, 1)

    def test_keyword_arguments_are_validated_too(self):
        self.check_rejected(lambda c: c.put(key="k", value="x", timestamp=1), ClientTypeError, "value")
        self.check_rejected(lambda c: c.put(key="k", value=1, timestamp=1.0), ClientTypeError, "timestamp")
        self.check_rejected(lambda c: c.get(key=""), ClientValueError, "key")

    def test_put_many_validates_every_point_before_sending(self):
        cases = [
            ([("a", 1, 1), ("b", "x", 2)], ClientTypeError, "item 1"),
            ([("a", 1, 1), ("b b", 1, 2)], ClientValueError, "item 1"),
            ([("a", 1, 1), ("b", 1, 2), ("*", 1, 3)], ClientValueError, "item 2"),
            ([("a", 1, 1), ("b", NAN, 2)], ClientValueError, "item 1"),
            ([("a", 1, 1), ("b", 1, 2.5)], ClientTypeError, "item 1"),
            ([("a", 1, 1), 5], ClientTypeError, "item 1"),
            ([("a", 1, 1), ("a",)], ClientValueError, "item 1"),
            ([("a", 1, 1), ("a", 1, 1, 1)], ClientValueError, "item 1"),
        ]
        for points, exception, where in cases:
            with self.subTest(points=points):
                self.check_rejected(lambda c: c.put_many(points), exception, "points")
                # and the message says which point
                with self.assertRaises(exception) as caught:
                    self.c.put_many(points)
                self.assertIn(where, str(caught.exception))
        self.assertEqual(self.srv.connection_count, 1)

    def test_put_many_of_a_non_iterable(self):
        self.check_rejected(lambda c: c.put_many(5), ClientTypeError, "points")

    def test_put_many_exception_from_the_iterable_propagates_and_nothing_is_sent(self):
        class Boom(Exception):
            pass

        def points():
            yield ("a", 1, 1)
            raise Boom("from the generator")

        with self.assertRaises(Boom):
            self.c.put_many(points())
        self.c.put("valid", 1, 1)
        self.assertEqual(self.peer.wait_received(b"put valid 1 1\n"), b"put valid 1 1\n")


class ConstructorArgumentsTest(TestCase):
    def setUp(self):
        super().setUp()
        self.srv = self.server(ok_to_everything)

    def construct_rejected(self, exception, argument, *args, **kwargs):
        with self.assertRaises(exception) as caught:
            client.Client(*args, **kwargs)
        error = caught.exception
        self.assertIs(type(error), exception)
        self.assertIsInstance(error, ClientError)
        self.assertIsInstance(error, ValueError if exception is ClientValueError else TypeError)
        self.assertIn(argument, str(error))

    def assert_nothing_connected(self):
        # A valid client made now must be the server's first connection.
        c = self.client(self.srv)
        c.put("valid", 1, 1)
        self.assertEqual(self.srv.peer(0).wait_received(b"put valid 1 1\n"), b"put valid 1 1\n")
        self.assertEqual(self.srv.connection_count, 1)

    def test_port(self):
        for port, exception in PORT_CASES:
            with self.subTest(port=port):
                self.construct_rejected(exception, "port", "127.0.0.1", port)
        self.assert_nothing_connected()

    def test_timeout(self):
        for timeout, exception in TIMEOUT_CASES:
            with self.subTest(timeout=timeout):
                self.construct_rejected(exception, "timeout", self.srv.host, self.srv.port,
                                        timeout=timeout)
                self.construct_rejected(exception, "timeout", host=self.srv.host,
                                        port=self.srv.port, timeout=timeout)
        self.assert_nothing_connected()

    def test_host(self):
        for host in (None, 127001, b"127.0.0.1"):
            with self.subTest(host=host):
                self.construct_rejected(ClientTypeError, "host", host, self.srv.port)
        self.assert_nothing_connected()

    def test_max_reply_bytes(self):
        for value, exception in [(0, ClientValueError), (-1, ClientValueError),
                                 ("x", ClientTypeError), (1.5, ClientTypeError)]:
            with self.subTest(max_reply_bytes=value):
                self.construct_rejected(exception, "max_reply_bytes", self.srv.host,
                                        self.srv.port, max_reply_bytes=value)
        self.assert_nothing_connected()

    def test_valid_timeouts_are_accepted(self):
        for timeout in (None, 1, 2.5, 10 ** 6):
            with self.subTest(timeout=timeout):
                c = self.client(self.srv, timeout=timeout)
                self.assertEqual(c.timeout, timeout if timeout is None else float(timeout))


if __name__ == "__main__":
    unittest.main()
