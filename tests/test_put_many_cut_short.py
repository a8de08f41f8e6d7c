"""``put_many`` whose connection is lost part-way: the exception says how
many points the server acknowledged (``acknowledged``, and the message), so
the caller can resend the rest; the count is exact however the replies
arrive (in one read, reply by reply in pieces, or left unread when a write
meets the reset). Servers: tests/support/cut_short.py."""

from __future__ import annotations

import asyncio
import unittest

import client
from tests.support import BOUND, MetricsStore, TestCase, refused_address
from tests.support.course_servers import OneLinePerReadServer
from tests.support.cut_short import StopsReadingServer, acks_then_closes, proc_available, small_send_buffer

POINTS = [(f"cut.{i}", float(i), 1_700_000_000 + i) for i in range(10)]

#: (acknowledged, pieces per reply, reset instead of close)
CASES = [(0, 1, False), (3, 1, False), (3, 2, False), (5, 4, True), (9, 1, True)]

#: A batch whose first chunks fill the kernel's buffers: 32-byte requests.
BIG = [(f"cut.{i % 1000:04d}", 1.5, 1_700_000_000 + i // 1000) for i in range(20_000)]
BIG_ACKNOWLEDGED = 3000


def expected_message(count: int, total: int) -> str:
    return f"the server acknowledged {count} of the {total} points of the batch (resend from point #{count})"


class ClientCutShortTest(TestCase):
    def put_many(self, address, points, window=None, timeout=BOUND):
        """``put_many`` on a new client (a new connection)."""
        with client.Client(*address, timeout=timeout) as c:
            c.put_many(points, window=window)

    def assert_cut_short(self, error: client.ClientSocketError, count: int, total: int) -> None:
        self.assertEqual(error.acknowledged, count)
        self.assertIn(expected_message(count, total), str(error))

    def test_acknowledged_count_is_exact(self):
        for count, pieces, reset in CASES:
            for window in (None, 1):
                with self.subTest(acknowledged=count, pieces=pieces, reset=reset, window=window):
                    if pieces > 1 and not proc_available():
                        self.skipTest("needs /proc/net/tcp to see the client read")
                    server = self.server(acks_then_closes(count, pieces=pieces, reset=reset))
                    with self.assertRaises(client.ClientSocketError) as caught:
                        self.put_many(server.address, POINTS, window)
                    self.assertNotIsInstance(caught.exception, client.ClientTimeoutError)
                    self.assert_cut_short(caught.exception, count, len(POINTS))

    def test_the_caller_resends_the_rest(self):
        store = MetricsStore()
        server = self.server([acks_then_closes(4, store=store), store.script])
        with self.assertRaises(client.ClientSocketError) as caught:
            self.put_many(server.address, POINTS)
        self.put_many(server.address, POINTS[caught.exception.acknowledged:])
        self.assertEqual(store.snapshot(), {key: [(ts, value)] for key, value, ts in POINTS})
        self.assertEqual(store.requests, len(POINTS))  # each point once

    def test_replies_left_unread_when_a_write_meets_the_reset(self):
        if not proc_available():
            self.skipTest("needs /proc/net/tcp to see the client stuck sending")
        # A small send buffer for Client (AsyncClient's writes never block:
        # asyncio buffers them).
        with StopsReadingServer(BIG_ACKNOWLEDGED) as server, small_send_buffer():
            with self.assertRaises(client.ClientSocketError) as caught:
                self.put_many(server.address, BIG)
        self.assertEqual(server.errors, [])
        self.assert_cut_short(caught.exception, BIG_ACKNOWLEDGED, len(BIG))

    def test_a_stalled_batch_says_how_many_were_acknowledged(self):
        with OneLinePerReadServer() as server:
            with self.assertRaises(client.ClientTimeoutError) as caught:
                self.put_many(server.address, POINTS, timeout=0.5)
        self.assertEqual(caught.exception.acknowledged, 1)

    def test_nothing_sent_or_another_call(self):
        with refused_address() as address:
            with self.assertRaises(client.ClientSocketError) as caught:
                client.Client(*address, timeout=BOUND)
            self.assertIsNone(caught.exception.acknowledged)
        server = self.server(acks_then_closes(0))
        c = self.client(server)
        with self.assertRaises(client.ClientSocketError) as caught:
            c.put("k", 1.0, 1)
        self.assertIsNone(caught.exception.acknowledged)
        c.close()
        with self.assertRaises(client.ClientSocketError) as caught:
            c.put_many(POINTS)
        self.assertIsNone(caught.exception.acknowledged)  # closed: nothing was sent


class AsyncClientCutShortTest(ClientCutShortTest):
    """The same through ``AsyncClient``."""

    def put_many(self, address, points, window=None, timeout=BOUND):
        async def run():
            async with client.AsyncClient(*address, timeout=timeout) as c:
                await c.put_many(points, window=window)
        asyncio.run(run())

    def test_nothing_sent_or_another_call(self):
        async def run(address):
            c = client.AsyncClient(*address, timeout=BOUND)
            with self.assertRaises(client.ClientSocketError) as caught:
                await c.put_many(POINTS)
            self.assertIsNone(caught.exception.acknowledged)  # could not connect
        with refused_address() as address:
            asyncio.run(run(address))


if __name__ == "__main__":
    unittest.main()
