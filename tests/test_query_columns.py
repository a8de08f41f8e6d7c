"""``get_columns`` and the columns reply (``format=columns``): the embedded
server answers it with the binary frame, read here by a reader of the
format written from the README alone; ``get_columns`` asks for it and
gives what ``get`` gives, in columns, on random data; against a server
from before the option (``bad query: unknown option 'format'``) and
course-style servers (``wrong command``) it falls back to text, asking
once per client; a truncated or hostile frame is a clear error."""

from __future__ import annotations

import asyncio
import importlib.util
import random
import socket
import struct
import unittest
from typing import Any, Dict, List, Tuple

from client import AsyncClient, Client, ClientReplyError, ClientSocketError
from tests.support import BOUND, TestCase, respond
from tests.support.course_servers import COURSE_SERVERS
from tests.support.pre_format import PreFormatProxy
from tests.support.proxy import DelayingProxy
from tests.support.raw import connect
from tests.test_query import random_case

Result = Dict[str, List[Tuple[int, float]]]
Flat = Dict[str, Tuple[List[int], List[float]]]

HAS_NUMPY = importlib.util.find_spec("numpy") is not None


def flat(result: Result) -> Flat:
    """``get``'s result as columns of Python numbers."""
    return {key: ([t for t, _ in points], [v for _, v in points]) for key, points in result.items()}


def listed(columns: Any) -> Flat:
    """``get_columns``' result as columns of Python numbers (dtypes checked)."""
    out: Flat = {}
    for key, (timestamps, values) in columns.items():
        assert str(timestamps.dtype) == "int64" and str(values.dtype) == "float64", key
        out[key] = (timestamps.tolist(), values.tolist())
    return out


def read_frame(sock: socket.socket) -> Flat:
    """One columns reply from ``sock``, as the README describes it."""
    buf = bytearray()

    def take(n: int) -> bytes:
        while len(buf) < n:
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError(f"closed with {bytes(buf[:100])!r} unread")
            buf.extend(chunk)
        out = bytes(buf[:n])
        del buf[:n]
        return out

    status = take(3)
    if status != b"ok\n":
        raise AssertionError(f"not an ok reply: {status + bytes(buf)!r}")
    assert take(4) == b"\0CF1"
    series: Flat = {}
    while True:
        (length,) = struct.unpack("<I", take(4))
        if length == 0:
            assert not buf, f"bytes after the frame: {bytes(buf)!r}"
            return series
        key = take(length).decode()
        (count,) = struct.unpack("<I", take(4))
        timestamps = list(struct.unpack(f"<{count}q", take(8 * count)))
        values = list(struct.unpack(f"<{count}d", take(8 * count)))
        old = series.setdefault(key, ([], []))
        old[0].extend(timestamps)
        old[1].extend(values)


QUERIES = [
    ({}, "k"),
    ({}, "*"),
    ({"since": 3, "until": 9}, "k"),
    ({"step": 4, "agg": "max"}, "*"),
    ({"max_points": 2}, "{k,j}"),
]


def query_line(pattern: str, options: Dict[str, Any]) -> bytes:
    names = {"since": "from", "until": "until", "step": "step", "agg": "agg", "max_points": "points"}
    words = [f"{names[k]}={v}" for k, v in options.items()]
    return " ".join(["get", pattern, *words, "format=columns"]).encode() + b"\n"


class TheServerAnswersInColumns(TestCase):
    def test_the_frame_holds_what_get_returns(self) -> None:
        server = self.embedded_server()
        c = self.client(server.address)
        c.put_many([("k", i * 0.5, i) for i in range(10)] + [("j", -1.0, 4), ("k.x", 2.0, 1)])
        sock = connect(server.address)
        self.addCleanup(sock.close)
        for options, pattern in QUERIES:
            with self.subTest(pattern=pattern, **options):
                sock.sendall(query_line(pattern, options))
                self.assertEqual(read_frame(sock), flat(c.get(pattern, **options)))
        # A long series comes in blocks of at most 65,536 points.
        c.put_many(("long", float(i), i) for i in range(70_000))
        sock.sendall(b"get long format=columns\n")
        self.assertEqual(read_frame(sock), flat(c.get("long")))


@unittest.skipUnless(HAS_NUMPY, "numpy is not installed (the numpy extra): get_columns needs it")
class GetColumnsEqualsGet(TestCase):
    """Random data (duplicates, out-of-order puts), random queries: the
    columns are ``get``'s points, bit for bit, however the server answers."""

    def check(self, address: Tuple[str, int], seed: int, cases: int = 6) -> None:
        rng = random.Random(seed)
        with Client(*address, timeout=BOUND) as c:
            for case in range(cases):
                puts, queries = random_case(rng)
                prefix = f"s{seed}c{case}"
                for key, value, ts in puts:
                    c.put(prefix + key, value, timestamp=ts)
                queries.append(("a.cpu", None, None, None, "avg", None))  # a plain get
                for pattern, since, until, step, agg, points in queries:
                    kwargs = dict(since=since, until=until, step=step, agg=agg, max_points=points)
                    want = flat(c.get(prefix + pattern, **kwargs))  # type: ignore[arg-type]
                    got = listed(c.get_columns(prefix + pattern, **kwargs))  # type: ignore[arg-type]
                    self.assertEqual(got, want, (pattern, kwargs))
                    self.assertEqual(list(got), list(want), "key order")

    def test_the_embedded_server_is_asked_for_columns(self) -> None:
        server = self.embedded_server()
        proxy = DelayingProxy(server.address)
        self.addCleanup(proxy.stop)
        self.check(proxy.address, 1)
        self.assertTrue(b" format=columns\n" in proxy.sent_by_client(0), "columns were never asked for")

    def test_a_server_from_before_the_option_is_asked_once(self) -> None:
        server = self.embedded_server()
        proxy = PreFormatProxy(server.address)
        self.addCleanup(proxy.stop)
        self.check(proxy.address, 2)
        self.assertEqual(len(proxy.refused), 1, proxy.refused)
        # Its queries were still answered by the server (not computed here).
        self.assertTrue(b" from=" in proxy.sent_by_client(0), "no query reached the server")

    def test_course_servers_fall_back_to_a_plain_get(self) -> None:
        for server_class in COURSE_SERVERS:
            with self.subTest(server_class.__name__), server_class() as server:
                self.check(server.address, 3, cases=3)


@unittest.skipUnless(HAS_NUMPY, "numpy is not installed (the numpy extra): get_columns needs it")
class AsyncGetColumns(TestCase):
    async def answers(self, address: Tuple[str, int]) -> List[Flat]:
        async with AsyncClient(*address, timeout=BOUND) as c:
            return [listed(await c.get_columns(pattern, **options)) for options, pattern in QUERIES]

    def check(self, address: Tuple[str, int]) -> None:
        with Client(*address, timeout=BOUND) as c:
            c.put_many([("k", i * 0.5, i) for i in range(10)] + [("j", -1.0, 4)], window=1)
            want = [flat(c.get(pattern, **options)) for options, pattern in QUERIES]  # type: ignore[arg-type]
        self.assertEqual(asyncio.run(self.answers(address)), want)

    def test_the_same_answers_from_every_kind_of_server(self) -> None:
        server = self.embedded_server()
        proxy = DelayingProxy(server.address)
        self.addCleanup(proxy.stop)
        self.check(proxy.address)
        self.assertIn(b"get k format=columns\n", proxy.sent_by_client(1))
        before = PreFormatProxy(self.embedded_server().address)
        self.addCleanup(before.stop)
        self.check(before.address)
        self.assertEqual(len(before.refused), 1, before.refused)
        for server_class in COURSE_SERVERS[:1]:
            with server_class() as course:
                self.check(course.address)


@unittest.skipUnless(HAS_NUMPY, "numpy is not installed (the numpy extra): get_columns needs it")
class BrokenFrames(TestCase):
    """A frame cut short or with hostile lengths: a ClientError at once,
    never a hang or a crash; the connection is dropped, the client goes on."""

    BLOCK = struct.pack("<I", 1) + b"k" + struct.pack("<I", 2) + struct.pack("<2q2d", 1, 2, 0.5, 1.5)

    def answer(self, frame: bytes) -> Any:
        return respond(lambda line: frame if b"format=columns" in line else b"ok\n\n")

    def test_hostile_lengths_are_reply_errors(self) -> None:
        for body, reason in [
            (struct.pack("<I", 2**32 - 1), "a key of 4294967295 bytes"),
            (struct.pack("<I", 1) + b"k" + struct.pack("<I", 2**32 - 1), "a block of 4294967295 points"),
            (struct.pack("<I", 1) + b"k" + struct.pack("<I", 0), "a block of 0 points"),
            (struct.pack("<I", 1) + b"\xff" + struct.pack("<I", 1), "a key is not UTF-8"),
        ]:
            with self.subTest(reason):
                server = self.server(self.answer(b"ok\n\0CF1" + self.BLOCK + body))
                c = self.client(server)
                with self.assertRaisesRegex(ClientReplyError, "malformed columns frame at byte .*" + reason):
                    c.get_columns("k")
        # A text reply where the frame should be is refused at once too.
        c = self.client(self.server(self.answer(b"ok\n\n")))
        with self.assertRaisesRegex(ClientReplyError, "not a columns frame"):
            c.get_columns("k")

    def test_a_frame_cut_short_is_a_socket_error_at_every_byte(self) -> None:
        frame = b"ok\n\0CF1" + self.BLOCK + b"\0\0\0\0"
        for cut in range(len(frame)):
            def script(peer: Any, cut: int = cut) -> None:
                peer.read_line()
                peer.send(frame[:cut])
                peer.sock.shutdown(socket.SHUT_RDWR)
            with self.subTest(cut=cut):
                c = self.client(self.server(script))
                with self.assertRaises(ClientSocketError):
                    c.get_columns("k")
        c = self.client(self.server(self.answer(frame)))
        self.assertEqual(listed(c.get_columns("k")), {"k": ([1, 2], [0.5, 1.5])})

    def test_the_reply_limit_holds(self) -> None:
        frame = b"ok\n\0CF1" + self.BLOCK + b"\0\0\0\0"
        c = self.client(self.server(self.answer(frame)), max_reply_bytes=len(frame) - 1)
        with self.assertRaisesRegex(ClientReplyError, "limit"):
            c.get_columns("k")


if __name__ == "__main__":
    unittest.main()
