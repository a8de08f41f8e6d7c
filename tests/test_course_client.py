"""Our reproduction of the course's week-5 ``test_client.py``, in both known
shapes, run against the installed wheel.

Shape A: the fake socket has ``sendall``, ``send``, ``recv``, ``close`` and
``settimeout``; only ``socket.create_connection`` is patched, only while the
client is constructed.

Shape B: the fake has ``sendall``, ``send``, ``recv`` (and context-manager
methods) and EVERY other attribute reads as None; ``socket.create_connection``
and ``socket.socket`` are patched while the client is constructed (and, in
the variant that mirrors the course file most closely, during every test).

In both, ``sendall`` must receive exactly one whole known request, otherwise
the fake raises its own (non-OSError) exception, and ``recv`` returns one
whole reply per call and raises when no reply is pending.
"""

import gc
import sys
import unittest
from collections import deque
from unittest import mock

from client import Client, ClientError, ClientProtocolError
from tests.support import TestCase

EXCHANGES = {
    b"put test 0.5 1\n": b"ok\n\n",
    b"put test 2.0 2\n": b"ok\n\n",
    b"put test 0.4 2\n": b"ok\n\n",
    b"put load 301 3\n": b"ok\n\n",
    b"get key_not_exists\n": b"ok\n\n",
    b"get test\n": b"ok\ntest 0.5 1\ntest 0.4 2\n\n",
    b"get get_client_error\n": b"error\nwrong command\n\n",
    b"get *\n": b"ok\ntest 0.5 1\ntest 0.4 2\nload 301 3\n\n",
}


class FakeServerError(Exception):
    """The fake's own failure; deliberately not an OSError."""


class _FakeBase:
    def __init__(self, *args, **kwargs):
        self.replies = deque()
        #: Every method call: (name, argument).
        self.calls = []

    def _request(self, method, data):
        self.calls.append((method, data))
        if not isinstance(data, bytes) or data not in EXCHANGES:
            raise FakeServerError(f"request does not fit the protocol: {data!r}")
        self.replies.append(EXCHANGES[data])

    def sendall(self, data):
        self._request("sendall", data)

    def send(self, data):
        self._request("send", data)
        return len(data)

    def recv(self, bufsize):
        self.calls.append(("recv", bufsize))
        if not isinstance(bufsize, int) or bufsize <= 0:
            raise FakeServerError(f"recv({bufsize!r})")
        try:
            return self.replies.popleft()
        except IndexError:
            raise FakeServerError("no data in the socket to read a reply from") from None


class FakeSocketA(_FakeBase):
    """Shape A: a small fixed set of methods."""

    def close(self):
        self.calls.append(("close", None))

    def settimeout(self, timeout):
        self.calls.append(("settimeout", timeout))


class FakeSocketB(_FakeBase):
    """Shape B: every unknown attribute is None (so calling it raises TypeError)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass

    def __getattr__(self, name):
        return None


class Factory:
    """Stands in for ``socket.create_connection`` and records its calls."""

    def __init__(self, fake_class):
        self.fake_class = fake_class
        self.made = []
        self.calls = []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        fake = self.fake_class()
        self.made.append(fake)
        return fake


class _CourseShape:
    """The course's five tests plus stricter checks of each exchange."""

    fake_class = None
    patch_socket_class = False

    @classmethod
    def construct(cls, factory):
        patches = [mock.patch("socket.create_connection", factory)]
        if cls.patch_socket_class:
            patches.append(mock.patch("socket.socket", factory))
        for p in patches:
            p.start()
        try:
            return Client("127.0.0.1", 10000, timeout=2)
        finally:
            for p in reversed(patches):
                p.stop()

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.factory = Factory(cls.fake_class)
        cls.client = cls.construct(cls.factory)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        super().tearDownClass()

    @property
    def fake(self):
        self.assertEqual(len(self.factory.made), 1,
                         "every call must keep using the fake made at construction")
        return self.factory.made[0]

    def exchange(self, request, call, *args):
        """Runs ``call(*args)``: it must make exactly one sendall of
        ``request`` and one recv, nothing else, and leave no reply unread."""
        fake = self.fake
        before = len(fake.calls)
        result = call(*args)
        made = fake.calls[before:]
        self.assertEqual([name for name, _ in made], ["sendall", "recv"], made)
        self.assertEqual(made[0][1], request)
        self.assertFalse(fake.replies, "a reply was left unread")
        self.assertEqual(len(self.factory.made), 1)
        return result

    def test_connects_once_through_create_connection(self):
        self.assertEqual(len(self.factory.calls), 1)
        args, kwargs = self.factory.calls[0]
        self.assertEqual(args[0], ("127.0.0.1", 10000))
        timeout = args[1] if len(args) > 1 else kwargs.get("timeout")
        self.assertEqual(timeout, 2)

    def test_client_put(self):
        for metric, value, timestamp, request in [
            ("test", 0.5, 1, b"put test 0.5 1\n"),
            ("test", 2.0, 2, b"put test 2.0 2\n"),
            ("test", 0.4, 2, b"put test 0.4 2\n"),
            ("load", 301, 3, b"put load 301 3\n"),
        ]:
            with self.subTest(metric=metric, value=value):
                result = self.exchange(request, self.client.put, metric, value, timestamp)
                self.assertIsNone(result)

    def test_client_get_key(self):
        result = self.exchange(b"get test\n", self.client.get, "test")
        self.assertEqual(result, {"test": [(1, 0.5), (2, 0.4)]})

    def test_client_get_all(self):
        result = self.exchange(b"get *\n", self.client.get, "*")
        self.assertEqual(result, {"test": [(1, 0.5), (2, 0.4)], "load": [(3, 301.0)]})
        self.assertIs(type(result["load"][0][0]), int)
        self.assertIs(type(result["load"][0][1]), float)

    def test_client_get_not_exists(self):
        result = self.exchange(b"get key_not_exists\n", self.client.get, "key_not_exists")
        self.assertEqual(result, {})

    def test_client_get_client_error(self):
        with self.assertRaises(ClientError) as caught:
            self.exchange(b"get get_client_error\n", self.client.get, "get_client_error")
        self.assertIsInstance(caught.exception, ClientProtocolError)
        self.assertEqual(caught.exception.message, "wrong command")
        # The error reply was complete: the same fake serves the next call.
        self.exchange(b"get test\n", self.client.get, "test")


class _CourseShapeExtras:
    """Checks that need a client of their own (they break or close it)."""

    fake_class = None
    patch_socket_class = False
    construct = classmethod(_CourseShape.construct.__func__)

    def new_client(self):
        factory = Factory(self.fake_class)
        c = self.construct(factory)
        return c, factory

    def test_fake_exception_propagates_unchanged(self):
        c, factory = self.new_client()
        self.addCleanup(c.close)
        with self.assertRaises(FakeServerError) as caught:
            c.get("unexpected")
        self.assertIs(type(caught.exception), FakeServerError)
        self.assertNotIsInstance(caught.exception, ClientError)
        self.assertIn("get unexpected", str(caught.exception))
        # A call that failed half-way leaves the stream in an unknown state:
        # the fake is dropped and the next call connects again, through
        # socket.create_connection looked up at call time.
        again = Factory(self.fake_class)
        with mock.patch("socket.create_connection", again):
            self.assertEqual(c.get("test"), {"test": [(1, 0.5), (2, 0.4)]})
        self.assertEqual(len(again.made), 1)
        self.assertEqual(again.calls[0][0][0], ("127.0.0.1", 10000))

    def test_exception_from_recv_propagates_unchanged(self):
        c, factory = self.new_client()
        self.addCleanup(c.close)
        fake = factory.made[0]
        fake.replies.clear()
        with mock.patch.object(fake, "recv", side_effect=FakeServerError("boom")):
            with self.assertRaises(FakeServerError) as caught:
                c.get("test")
        self.assertEqual(str(caught.exception), "boom")

    def test_close_does_not_raise(self):
        c, factory = self.new_client()
        c.put("test", 0.5, 1)
        c.close()
        c.close()  # idempotent
        made = [name for name, _ in factory.made[0].calls]
        self.assertNotIn("settimeout", made)
        self.assertNotIn("send", made)

    def test_garbage_collection_does_not_raise(self):
        unraisable = []
        old_hook = sys.unraisablehook
        sys.unraisablehook = unraisable.append
        try:
            c, factory = self.new_client()
            c.get("test")
            del c, factory
            gc.collect()
        finally:
            sys.unraisablehook = old_hook
        self.assertEqual(unraisable, [])


class CourseShapeA(_CourseShape, TestCase):
    fake_class = FakeSocketA

    def test_close_closes_the_fake_once(self):
        c, factory = _CourseShapeExtras.new_client(self)
        c.close()
        c.close()
        self.assertEqual(factory.made[0].calls.count(("close", None)), 1)


class CourseShapeAExtras(_CourseShapeExtras, TestCase):
    fake_class = FakeSocketA


class CourseShapeB(_CourseShape, TestCase):
    fake_class = FakeSocketB
    patch_socket_class = True


class CourseShapeBExtras(_CourseShapeExtras, TestCase):
    fake_class = FakeSocketB
    patch_socket_class = True


class CourseShapeBPatchedDuringTests(CourseShapeB):
    """As the course file does it: the patches are also active during each
    test method (each gets a fresh factory, which must stay unused)."""

    def setUp(self):
        super().setUp()
        self.unused = Factory(FakeSocketB)
        for target in ("socket.create_connection", "socket.socket"):
            patcher = mock.patch(target, self.unused)
            patcher.start()
            self.addCleanup(patcher.stop)
        self.addCleanup(lambda: self.assertEqual(self.unused.made, [],
                                                 "the client reconnected during a test"))


if __name__ == "__main__":
    unittest.main()
