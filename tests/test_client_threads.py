"""One Client shared by many threads.

16 threads make mixed put/get calls on ONE client: every put must be
readable afterwards, every get must see exactly its own thread's data (a
reply handed to the wrong thread would show another thread's key), frames
must never interleave, and nothing may deadlock (bounded joins; the
TestCase watchdog kills a hung process).

Each test runs against the embedded ``client.Server`` and against the
in-memory scripted server from tests.support, which also checks that requests
were strictly serialized on each connection: the client's pool opens up to
``max_connections`` of them for overlapping calls, and exactly one with
``max_connections=1``.
"""

import os
import threading
import time
import unittest

import client
from tests.support import BOUND, TestCase

THREADS = 16
CALLS = int(os.environ.get("CLIENT_TEST_THREAD_CALLS", "300"))


class SharedClientTest(TestCase):
    SERVERS = ("embedded", "scripted")

    def start_server(self, kind):
        if kind == "embedded":
            srv = client.Server()
            self.addCleanup(srv.close)
            return srv.address, None
        srv = self.metrics_server()
        return srv.address, srv

    def test_many_threads_one_client(self):
        for kind in self.SERVERS:
            with self.subTest(server=kind):
                self.many_threads_one_client(kind)

    def test_many_threads_one_client_one_connection(self):
        self.many_threads_one_client("scripted", max_connections=1)

    def test_threads_with_failures_do_not_poison_the_client(self):
        for kind in self.SERVERS:
            with self.subTest(server=kind):
                self.threads_with_failures_do_not_poison_the_client(kind)

    def many_threads_one_client(self, kind, max_connections=None):
        address, scripted = self.start_server(kind)
        c = self.client(address, max_connections=max_connections)
        start = threading.Barrier(THREADS, timeout=BOUND)
        failures = []
        expected = {}

        def worker(n):
            try:
                start.wait()
                for i in range(CALLS):
                    # A new key every 150 calls keeps each get's reply small.
                    key = f"thread.{n}.{i // 150}"
                    mine = expected.setdefault(key, [])
                    if i % 3 == 2:
                        got = c.get(key)
                        if got != {key: mine}:
                            failures.append((n, i, got, list(mine)))
                            return
                    else:
                        value = n * 100000 + i + 0.5
                        c.put(key, value, i)
                        mine.append((i, value))
            except BaseException as error:  # reported below
                failures.append((n, repr(error)))

        threads = [threading.Thread(target=worker, args=(n,), daemon=True, name=f"worker-{n}")
                   for n in range(THREADS)]
        began = time.monotonic()
        for t in threads:
            t.start()
        deadline = began + 4 * BOUND
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in threads if t.is_alive()]
        self.assertEqual(stuck, [], "threads deadlocked or too slow")
        self.assertEqual(failures, [])
        self.assertEqual(len(expected), THREADS * ((CALLS + 149) // 150))
        self.assertEqual(c.get("*"), expected)
        if scripted is not None:
            scripted.assert_no_script_errors()
            self.assertEqual(scripted.store.bad_lines, [], "interleaved or corrupt frames")
            if max_connections == 1:
                self.assertEqual(scripted.connection_count, 1)
            else:
                self.assertLessEqual(scripted.connection_count, c.max_connections)
            # Requests were serialized on each connection: the server never
            # had two unanswered requests on one connection at once.
            for index in range(scripted.connection_count):
                self.assertEqual(scripted.peer(index).max_batch, 1, f"connection {index}")
        if os.environ.get("CLIENT_TEST_REPORT"):
            import sys
            elapsed = time.monotonic() - began
            print(f"\nthreads: {THREADS} x {CALLS} calls in {elapsed:.2f} s "
                  f"({'client.Server' if scripted is None else 'scripted server'})",
                  file=sys.stderr)

    def threads_with_failures_do_not_poison_the_client(self, kind):
        # Half the threads pass bad arguments or provoke error replies while
        # the others work: the shared connection survives all of it.
        address, scripted = self.start_server(kind)
        c = self.client(address)
        failures = []
        start = threading.Barrier(8, timeout=BOUND)

        def good(n):
            try:
                start.wait()
                for i in range(100):
                    c.put(f"good.{n}", i, i)
                if c.get(f"good.{n}") != {f"good.{n}": [(i, float(i)) for i in range(100)]}:
                    failures.append(("wrong data", n))
            except BaseException as error:
                failures.append((n, repr(error)))

        def bad(n):
            try:
                start.wait()
                for i in range(100):
                    try:
                        c.put("bad key", i, i)
                    except client.ClientValueError:
                        pass
                    else:
                        failures.append(("accepted a bad key", n))
            except BaseException as error:
                failures.append((n, repr(error)))

        threads = [threading.Thread(target=good if n % 2 else bad, args=(n,), daemon=True)
                   for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(BOUND * 2)
        self.assertFalse(any(t.is_alive() for t in threads), "deadlock")
        self.assertEqual(failures, [])
        if scripted is not None:
            self.assertLessEqual(scripted.connection_count, c.max_connections)
            for index in range(scripted.connection_count):
                self.assertEqual(scripted.peer(index).max_batch, 1, f"connection {index}")


if __name__ == "__main__":
    unittest.main()
