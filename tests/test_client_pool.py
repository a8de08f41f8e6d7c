"""The client's connection pool: calls that overlap in threads open more
connections, up to ``max_connections``; one caller at a time keeps one."""

import threading
import unittest

from tests.support import BOUND, TestCase


class PoolTest(TestCase):
    def test_overlapping_calls_open_more_connections(self):
        release = threading.Event()

        def slow(peer):
            # Answers each request only once every call has been sent.
            while True:
                peer.read_line()
                release.wait(BOUND)
                peer.send(b"ok\n\n")

        srv = self.server(slow)
        c = self.client(srv.address, max_connections=3)
        self.assertEqual(c.connection_count, 1)
        threads = [threading.Thread(target=c.put, args=("k", i, i), daemon=True) for i in range(5)]
        for t in threads:
            t.start()
        srv.wait_connections(3)
        self.assertEqual(c.connection_count, 3)
        release.set()
        for t in threads:
            t.join(BOUND)
        self.assertFalse(any(t.is_alive() for t in threads))
        self.assertEqual(srv.connection_count, 3)
        self.assertEqual(sum(srv.peer(i).received().count(b"\n") for i in range(3)), 5)

    def test_one_caller_at_a_time_uses_one_connection(self):
        srv = self.metrics_server()
        c = self.client(srv.address)
        for i in range(50):
            c.put("k", i, i)
            c.get("k")
        self.assertEqual(srv.connection_count, 1)
        self.assertEqual(c.max_connections, 16)


if __name__ == "__main__":
    unittest.main()
