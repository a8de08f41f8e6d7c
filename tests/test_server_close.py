"""``Server.close()`` with many clients connected and a journal to flush:
it returns promptly under every fsync policy, and the connections see the
server go."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from typing import List, Set

import client
from client import Client, ClientSocketError
from tests.support import BOUND, TestCase, wait_until
from tests.test_client_close import PROMPT, Call, report


class ServerCloseTest(TestCase):
    def check_server_close(self, fsync: str) -> None:
        # close() always ends with an fsync of the log; on tmpfs (where
        # there is one) that is instant, so the time measured is that of
        # closing the connections, not the disk's latency.
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        with tempfile.TemporaryDirectory(dir=shm) as directory:
            srv = client.Server(data=os.path.join(directory, "metrics.log"), fsync=fsync)
            self.addCleanup(srv.close)
            host, port = srv.address
            with Client(host, port, timeout=BOUND) as loader:
                loader.put_many((f"key{i % 1000}", float(i), i) for i in range(200_000))
            sockets: List[socket.socket] = []
            self.addCleanup(lambda: [s.close() for s in sockets])

            def connect() -> socket.socket:
                sock = socket.create_connection((host, port), timeout=BOUND)
                sockets.append(sock)
                return sock

            idle = [connect() for _ in range(50)]
            half_lines = [connect() for _ in range(5)]
            for sock in half_lines:
                sock.sendall(b"put half 1.0")
            # Readers that ask for everything and never read: the server is
            # blocked writing to them.
            stalled = [connect() for _ in range(5)]
            for sock in stalled:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.sendall(b"get *\n")
            for sock in stalled:
                self.assertTrue(sock.recv(1, socket.MSG_PEEK), "no reply started")
            # Clients calling in threads with no timeout, puts waiting for
            # their fsync, and a client waiting behind another's call.
            shared = Client(host, port, timeout=None)
            self.addCleanup(shared.close)
            progress = {"calls": 0}

            def keep_calling(c: Client, n: int) -> None:
                for i in range(1_000_000):
                    if i % 50 == 0:
                        # Small: building a large result holds the GIL, which
                        # the thread timing close() would wait for.
                        c.get("key1")
                    else:
                        c.put(f"busy{n}", float(i), timestamp=i)
                    progress["calls"] += 1

            callers = [Call(lambda n=n: keep_calling(Client(host, port, timeout=None), n))
                       for n in range(3)]
            callers += [Call(lambda n=n: keep_calling(shared, 10 + n)) for n in range(3)]
            for call in callers:
                call.start()
            wait_until(lambda: progress["calls"] >= 100, message="the callers to be under way")
            closer = Call(srv.close)
            started = time.monotonic()
            closer.start()
            closer.join(BOUND)
            self.assertFalse(closer.is_alive(), f"Server.close() did not return within {BOUND} s")
            self.assertIsNone(closer.error)
            took = closer.ended - started
            report(f"fsync={fsync}: Server.close() with clients connected returned after", took)
            self.assertLess(took, PROMPT)
            self.assertTrue(srv.closed)
            for call in callers:
                call.join(BOUND)
                self.assertFalse(call.is_alive(), "a client call outlived the server")
                self.assertIsInstance(call.error, ClientSocketError, repr(call.error))
            for sock in idle + half_lines:
                sock.settimeout(BOUND)
                try:
                    self.assertEqual(sock.recv(1), b"")
                except ConnectionResetError:
                    pass

    def test_fsync_always(self) -> None:
        self.check_server_close("always")

    def test_fsync_everysec(self) -> None:
        self.check_server_close("everysec")

    def test_close_stops_the_helper_that_makes_chunks_ahead(self) -> None:
        if not os.path.isdir("/proc/self/task"):
            self.skipTest("thread names are read from /proc")

        def helpers() -> Set[str]:
            """The ids of this process's threads named like the helper
            (other tests' servers may have theirs, until collected)."""
            found = set()
            for task in os.listdir("/proc/self/task"):
                try:
                    with open(f"/proc/self/task/{task}/comm") as f:
                        if f.read().strip() == "metrics-chunks":
                            found.add(task)
                except FileNotFoundError:  # a thread that just ended
                    pass
            return found

        before = helpers()
        with tempfile.TemporaryDirectory() as directory:
            srv = client.Server(data=os.path.join(directory, "metrics.log"))
            self.addCleanup(srv.close)
            with Client(*srv.address, timeout=BOUND) as c:
                # Series longer than one chunk (128 points): the head asks
                # for full-size chunks, so the helper has been at work.
                c.put_many((f"k{i % 3}", float(i), i) for i in range(3000))
            ours = helpers() - before
            self.assertEqual(len(ours), 1, ours)
            srv.close()
            self.assertFalse(ours & helpers(), "the helper outlived close()")

# The same tests on TLS (the Rust core's): servers speaking TLS, clients
# connecting with tls_ca.
