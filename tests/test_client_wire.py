"""Real sockets against a scripted server: the exact bytes on the wire, reply
parsing, error replies, and the connection being kept when it may be."""

import random
import socket
import struct
import threading
import time
import unittest
from fractions import Fraction
from unittest import mock

from client import ClientError, ClientProtocolError, ClientSocketError, _native
from tests.support import (
    BOUND,
    TestCase,
    ipv6_loopback_available,
    ok_to_everything,
    respond,
)


def replies(mapping):
    """A script answering known request lines from ``mapping``."""
    return respond(lambda line: mapping[line])


class PutWireTest(TestCase):
    def setUp(self):
        super().setUp()
        self.srv = self.server(ok_to_everything)
        self.c = self.client(self.srv)
        self.peer = self.srv.peer(0)
        self.expected = b""

    def put_and_check(self, request, *args, **kwargs):
        self.assertIsNone(self.c.put(*args, **kwargs))
        self.expected += request
        self.assertEqual(self.peer.wait_received(self.expected), self.expected)

    def test_course_example_bytes(self):
        self.put_and_check(b"put huginn.cpu 10.6 1642667947\n",
                           "huginn.cpu", 10.6, timestamp=1642667947)
        self.put_and_check(b"put muninn.cpu 15.3 1642667959\n",
                           "muninn.cpu", 15.3, 1642667959)
        self.assertEqual(self.srv.connection_count, 1)

    def test_value_text_is_python_str(self):
        values = [0.5, 2.0, 301, 10.6, 1e16, 4.2e-05, 1e22, 1e-07, 0.1 + 0.2, -0.0,
                  -3, 0, 0.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
                  123456789.0, 1e15, 9007199254740993, 2 ** 63, -(2 ** 63),
                  2 ** 127 - 1, -(2 ** 127), 10 ** 20, 12345678901234567.0, 1 / 3, -1.5e300]
        for ts, value in enumerate(values):
            with self.subTest(value=value):
                self.put_and_check(f"put v {value} {ts}\n".encode(), "v", value, timestamp=ts)

    def test_value_text_random_floats(self):
        rng = random.Random(20260125)
        for ts in range(300):
            value = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
            if value != value or value in (float("inf"), float("-inf")):
                continue
            with self.subTest(value=value):
                self.put_and_check(f"put r {value!r} {ts}\n".encode(), "r", value, timestamp=ts)

    def test_number_subclasses_and_other_reals(self):
        class MyFloat(float):
            pass

        class MyInt(int):
            pass

        self.put_and_check(b"put k 0.5 1\n", "k", MyFloat(0.5), 1)
        self.put_and_check(b"put k 7 2\n", "k", MyInt(7), MyInt(2))
        # Other real numbers travel as str(float(value)).
        self.put_and_check(b"put k 0.3333333333333333 3\n", "k", Fraction(1, 3), 3)

    def test_default_timestamp_is_now(self):
        for kwargs in ({}, {"timestamp": None}):
            with self.subTest(**kwargs):
                before = int(time.time())
                self.c.put("k", 1.5, **kwargs)
                after = int(time.time())
                start = len(self.expected)
                data = self.peer.wait_data(lambda d: d.endswith(b"\n") and len(d) > start)
                line = data[start:]
                self.assertTrue(line.startswith(b"put k 1.5 "), line)
                stamp = int(line[len(b"put k 1.5 "):-1])
                self.assertLessEqual(before, stamp)
                self.assertLessEqual(stamp, after)
                self.expected += line

    def test_timestamp_boundaries(self):
        self.put_and_check(b"put k 1 9223372036854775807\n", "k", 1, 2 ** 63 - 1)
        self.put_and_check(b"put k 1 -9223372036854775808\n", "k", 1, -(2 ** 63))
        self.put_and_check(b"put k 1 0\n", "k", 1, 0)

    def test_unicode_key_is_utf8(self):
        self.put_and_check("put ключ.метрика 1.5 1\n".encode(), "ключ.метрика", 1.5, 1)

    def test_many_requests_share_one_connection(self):
        for ts in range(50):
            self.put_and_check(f"put k {ts} {ts}\n".encode(), "k", ts, ts)
        self.assertEqual(self.srv.connection_count, 1)


class PutManyTextTest(TestCase):
    """put_many takes a short path for plain str/float/int points and the
    general conversions for everything else: both must write exactly what
    put writes for the same point, and refuse what put refuses."""

    def test_every_kind_of_point_is_written_as_put_writes_it(self):
        class MyStr(str):
            pass

        class MyFloat(float):
            pass

        class MyInt(int):
            pass

        values = [0.5, 2.0, 301, 10.6, 1e16, 4.2e-05, 0.1 + 0.2, -0.0, -3, 0, 5e-324,
                  1.7976931348623157e308, 2 ** 63, -(2 ** 63) - 1, 2 ** 127 - 1, 1 / 3,
                  MyFloat(0.25), MyInt(7), Fraction(1, 3), 4503599627370495.5, 1e15 + 0.125]
        keys = ["k", MyStr("sub.key"), "ключ.метрика"]
        timestamps = [0, 1642667947, -(2 ** 63), 2 ** 63 - 1, MyInt(5)]
        rng = random.Random(20261126)
        points = []
        for i in range(3000):
            value = values[i % len(values)] if i % 3 else \
                struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
            if value != value or value in (float("inf"), float("-inf")):
                value = i
            point = (keys[i % len(keys)], value, timestamps[i % len(timestamps)])
            points.append(point)
        requests, ends = _native.Codec.put_many(points)
        self.assertEqual(requests, b"".join(_native.Codec.put(*p) for p in points))
        self.assertEqual(len(ends), len(points))

    def test_a_bad_point_is_refused_as_put_refuses_it(self):
        bad = [("a b", 1.0, 1), ("*", 1.0, 1), ("", 1.0, 1), ("k", float("nan"), 1),
               ("k", float("inf"), 1), ("k", True, 1), ("k", "1", 1), ("k", None, 1),
               ("k", 1.0, 1.5), ("k", 1.0, True), ("k", 1.0, 2 ** 63), ("k", 2 ** 200, 1),
               (b"k", 1.0, 1), ("k\n", 1.0, 1)]
        good = [("k", 0.5, 1)] * 3
        for point in bad:
            with self.subTest(point=point):
                with self.assertRaises(ClientError) as put:
                    _native.Codec.put(*point)
                with self.assertRaises(ClientError) as many:
                    _native.Codec.put_many(good + [point] + good)
                self.assertIs(type(many.exception), type(put.exception))
                self.assertIn("item 3:", str(many.exception))


class GetWireTest(TestCase):
    def serve(self, mapping, **kwargs):
        srv = self.server(replies(mapping))
        return srv, self.client(srv, **kwargs)

    def test_get_one_key(self):
        srv, c = self.serve({b"get huginn.cpu\n": b"ok\nhuginn.cpu 10.5 1642667947\n\n"})
        self.assertEqual(c.get("huginn.cpu"), {"huginn.cpu": [(1642667947, 10.5)]})
        self.assertEqual(srv.peer(0).received(), b"get huginn.cpu\n")

    def test_get_all_sorted_and_stable(self):
        reply = (b"ok\n"
                 b"b 1 3\n"
                 b"a 2 1\n"
                 b"b 5 1\n"
                 b"b 7 3\n"
                 b"b 6 1\n"
                 b"a 0.5 -1\n"
                 b"c 1e+16 9\n\n")
        srv, c = self.serve({b"get *\n": reply})
        result = c.get("*")
        self.assertEqual(result, {
            "b": [(1, 5.0), (1, 6.0), (3, 1.0), (3, 7.0)],
            "a": [(-1, 0.5), (1, 2.0)],
            "c": [(9, 1e16)],
        })
        for points in result.values():
            self.assertIsInstance(points, list)
            for point in points:
                self.assertIs(type(point), tuple)
                self.assertIs(type(point[0]), int)
                self.assertIs(type(point[1]), float)

    def test_get_course_example(self):
        srv, c = self.serve({b"get *\n": b"ok\nhuginn.cpu 0.5 1642667947\nhuginn.cpu 2.0 1642667948\n"
                                         b"huginn.cpu 0.5 1642667948\nmuninn.cpu 3 1642667950\n"
                                         b"muninn.cpu 4 1642667951\nmuninn.memory 42000000 1642748845\n\n"})
        self.assertEqual(c.get("*"), {
            "huginn.cpu": [(1642667947, 0.5), (1642667948, 2.0), (1642667948, 0.5)],
            "muninn.cpu": [(1642667950, 3.0), (1642667951, 4.0)],
            "muninn.memory": [(1642748845, 42000000.0)],
        })

    def test_empty_reply_is_empty_dict(self):
        srv, c = self.serve({b"get nothing\n": b"ok\n\n"})
        result = c.get("nothing")
        self.assertEqual(result, {})
        self.assertIs(type(result), dict)

    def test_error_reply_raises_protocol_error_and_keeps_connection(self):
        srv, c = self.serve({
            b"get bad\n": b"error\nwrong command\n\n",
            b"put bad 1 1\n": b"error\nwrong command\n\n",
            b"get good\n": b"ok\ngood 1.0 1\n\n",
            b"put good 1 1\n": b"ok\n\n",
        })
        with self.assertRaises(ClientProtocolError) as caught:
            c.get("bad")
        error = caught.exception
        self.assertEqual(error.message, "wrong command")
        self.assertIn("wrong command", str(error))
        self.assertIsInstance(error, ClientError)
        self.assertNotIsInstance(error, ClientSocketError)
        with self.assertRaises(ClientProtocolError) as caught:
            c.put("bad", 1, 1)
        self.assertEqual(caught.exception.message, "wrong command")
        self.assertEqual(c.get("good"), {"good": [(1, 1.0)]})
        self.assertIsNone(c.put("good", 1, 1))
        self.assertEqual(srv.connection_count, 1)
        self.assertEqual(srv.peer(0).received(),
                         b"get bad\nput bad 1 1\nget good\nput good 1 1\n")

    def test_error_message_variants(self):
        srv, c = self.serve({
            b"get empty\n": b"error\n\n",
            b"get two\n": b"error\nline one\nline two\n\n",
        })
        with self.assertRaises(ClientProtocolError) as caught:
            c.get("empty")
        self.assertEqual(caught.exception.message, "")
        with self.assertRaises(ClientProtocolError) as caught:
            c.get("two")
        self.assertEqual(caught.exception.message, "line one\nline two")
        self.assertEqual(srv.connection_count, 1)

    def test_put_then_get_round_trip_against_metrics_server(self):
        srv = self.metrics_server()
        c = self.client(srv)
        c.put("huginn.cpu", 0.5, timestamp=1642667947)
        c.put("huginn.cpu", 2.0, timestamp=1642667948)
        c.put("huginn.cpu", 0.5, timestamp=1642667948)
        c.put("muninn.cpu", 3, timestamp=1642667950)
        self.assertEqual(c.get("*"), {
            "huginn.cpu": [(1642667947, 0.5), (1642667948, 0.5)],
            "muninn.cpu": [(1642667950, 3.0)],
        })
        self.assertEqual(c.get("nothing"), {})
        self.assertEqual(srv.store.bad_lines, [])


class NativeTransportTest(TestCase):
    """A plain socket.socket from create_connection is taken over by Rust;
    anything else (a subclass, as ssl.SSLSocket is) is driven through its
    own sendall/recv."""

    def capture(self):
        made = []
        real = socket.create_connection

        def create_connection(*args, **kwargs):
            sock = real(*args, **kwargs)
            made.append(sock)
            return sock
        return made, create_connection

    def test_plain_socket_is_taken_over(self):
        srv = self.server(replies({b"get k\n": b"ok\nk 1 2\n\n"}))
        made, create_connection = self.capture()
        with mock.patch("socket.create_connection", create_connection):
            c = self.client(srv)
        self.assertEqual(len(made), 1)
        self.assertEqual(made[0].fileno(), -1, "the descriptor should belong to the client now")
        self.assertEqual(c.get("k"), {"k": [(2, 1.0)]})

    def test_waiting_releases_the_gil(self):
        # The server answers only after another Python thread has run while
        # the client waits; a client holding the GIL while blocked would
        # never let it run and would time out instead.
        request_seen = threading.Event()
        other_thread_ran = threading.Event()

        def answer_after_other_thread(peer):
            peer.read_line()
            request_seen.set()
            if other_thread_ran.wait(BOUND):
                peer.send(b"ok\nk 1 1\n\n")

        def other():
            if request_seen.wait(BOUND):
                other_thread_ran.set()

        helper = threading.Thread(target=other, daemon=True)
        helper.start()
        srv = self.server(answer_after_other_thread)
        c = self.client(srv, timeout=BOUND / 2)
        self.assertEqual(c.get("k"), {"k": [(1, 1.0)]})
        helper.join(BOUND)

    def test_socket_subclass_is_used_through_its_methods(self):
        class Wrapped(socket.socket):
            pass

        srv = self.server(replies({b"get k\n": b"ok\nk 1 2\n\n", b"put k 1 2\n": b"ok\n\n"}))
        made = []

        def create_connection(address, timeout=None, *args, **kwargs):
            sock = Wrapped(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(address)
            made.append(sock)
            return sock

        with mock.patch("socket.create_connection", create_connection):
            c = self.client(srv)
        self.assertNotEqual(made[0].fileno(), -1)
        self.assertEqual(c.get("k"), {"k": [(2, 1.0)]})
        c.put("k", 1, 2)
        c.close()
        self.assertEqual(made[0].fileno(), -1, "close() should close the socket object")
        srv.peer(0).wait_client_closed()


@unittest.skipUnless(ipv6_loopback_available(), "IPv6 loopback (::1) is not available")
class IPv6Test(TestCase):
    def test_round_trip_over_ipv6(self):
        srv = self.metrics_server(host="::1")
        c = self.client(srv)
        c.put("six", 6.5, 6)
        self.assertEqual(c.get("six"), {"six": [(6, 6.5)]})
        self.assertEqual(srv.peer(0).received(), b"put six 6.5 6\nget six\n")
        self.assertIn(f"[::1]:{srv.port}", repr(c))


if __name__ == "__main__":
    unittest.main()
