"""Requests of many tasks on one ``AsyncClient`` leave in one write per round.

One read of replies wakes many tasks; each sends its next request in the
next pass of the event loop. Those requests must leave together: had the
first been written at once (the connection being idle then), it would go
alone, and a server that answers it alone splits the tasks into ever
smaller groups, each costing a write, a read and a wake-up of the loop.
"""

from __future__ import annotations

import asyncio
import unittest

import client
from client import _async
from tests.support import BOUND, MetricsStore, Peer, TestCase

TASKS = 20
ROUNDS = 10


def answer_whole_rounds(store: MetricsStore):
    """Answers once every task's request of a round has arrived, all the
    replies in one send (so they arrive in one read)."""
    def script(peer: Peer) -> None:
        lines = []
        while True:
            lines += peer.read_lines()
            while len(lines) >= TASKS:
                round_, lines = lines[:TASKS], lines[TASKS:]
                peer.send(b"".join(store.handle(line) for line in round_))
    return script


class WritesPerRoundTest(TestCase):
    def test_one_write_per_round(self):
        store = MetricsStore()
        server = self.server(answer_whole_rounds(store))
        writes = []
        made = _async._Connection.connection_made

        def counting(connection, transport):
            write = transport.write

            def counted(data):
                writes.append(data.count(b"\n"))
                write(data)
            transport.write = counted
            made(connection, transport)

        async def run():
            async with client.AsyncClient(*server.address, timeout=BOUND) as c:
                async def task(t):
                    for i in range(ROUNDS):
                        await c.put(f"task.{t}", float(i), 1_700_000_000 + i)
                await asyncio.gather(*(task(t) for t in range(TASKS)))

        _async._Connection.connection_made = counting
        try:
            asyncio.run(run())
        finally:
            _async._Connection.connection_made = made
        self.assertEqual(sum(writes), TASKS * ROUNDS)
        self.assertEqual(len(store.snapshot()), TASKS)
        # The first round starts on an idle connection: its first request
        # goes at once, the others follow together. Every later round is
        # one write.
        self.assertEqual(writes[:2], [1, TASKS - 1])
        self.assertEqual(writes[2:], [TASKS] * (ROUNDS - 1))


if __name__ == "__main__":
    unittest.main()
