"""``close()`` from another thread aborts the calls under way and never waits
for them: a call blocked on a silent server (with and without a timeout),
calls queued behind it, a ``get`` whose reply is streaming in, many threads
racing with ``close()``, and a call inside a socket-like object. And
``Server.close()`` returns promptly with clients connected, blocked and
calling.

The issue asks for an abort within 100 ms; on a shared 2-core machine the
tests assert a generous bound and print the delays measured.
"""

from __future__ import annotations

import os
import random
import socket
import sys
import threading
import time
import unittest
from typing import Callable, List, Optional, Tuple
from unittest import mock

from client import Client, ClientSocketError, ClientTimeoutError
from tests.support import BOUND, MetricsStore, TestCase, wait_until
from tests.support.transports import OverTls

#: What a test accepts as "prompt"; the goal is 0.1 s, the figures printed.
PROMPT = 1.0


def report(what: str, seconds: float) -> None:
    print(f"\n    {what}: {seconds * 1000:.1f} ms", end="", file=sys.stderr, flush=True)


class Call(threading.Thread):
    """Runs ``function`` in a thread; records its result or exception and
    when it ended."""

    def __init__(self, function: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self.function = function
        self.result: object = None
        self.error: Optional[BaseException] = None
        self.ended: Optional[float] = None

    def run(self) -> None:
        try:
            self.result = self.function()
        except BaseException as error:  # noqa: B902 - recorded for the test
            self.error = error
        finally:
            self.ended = time.monotonic()


class CloseTestCase(TestCase):
    def client(self, server_or_address, **kwargs) -> Client:
        c = super().client(server_or_address, **kwargs)
        if hasattr(server_or_address, "stop"):
            # Cleanups run last-in first-out: stopping the server first ends
            # any call still blocked on it, so cleaning up cannot hang even
            # when close() fails to abort it.
            self.addCleanup(server_or_address.stop)
        return c

    def close_from_another_thread(self, c: Client) -> tuple:
        """Closes ``c`` in a thread and returns (when close() was called,
        how long it took). Fails if it does not return within BOUND, so
        a close() that waits for the call cannot hang the test."""
        closer = Call(c.close)
        started = time.monotonic()
        closer.start()
        closer.join(BOUND)
        self.assertFalse(closer.is_alive(), f"close() did not return within {BOUND} s")
        self.assertIsNone(closer.error)
        return started, closer.ended - started

    def assertAbortedByClose(self, call: Call, closed_at: float, what: str) -> float:
        call.join(BOUND)
        self.assertFalse(call.is_alive(), f"{what}: the call was not aborted within {BOUND} s")
        self.assertIsInstance(call.error, ClientSocketError, f"{what}: {call.error!r}")
        self.assertNotIsInstance(call.error, ClientTimeoutError, f"{what}: {call.error!r}")
        self.assertIn("closed", str(call.error), what)
        delay = call.ended - closed_at
        report(f"{what}: the call raised after", delay)
        self.assertLess(delay, PROMPT, f"{what}: aborted after {delay:.3f} s")
        return delay


class CloseAbortsABlockedCallTest(CloseTestCase):
    def check_silent_server(self, timeout: Optional[float]) -> None:
        server = self.server(None)  # accepts, never answers
        c = self.client(server, timeout=timeout)
        call = Call(lambda: c.get("k"))
        call.start()
        peer = server.peer(0)
        # The request has arrived: the call is waiting for its reply.
        self.assertEqual(peer.wait_received(b"get k\n"), b"get k\n")
        closed_at, took = self.close_from_another_thread(c)
        report(f"timeout={timeout}: close() returned after", took)
        self.assertLess(took, PROMPT)
        self.assertAbortedByClose(call, closed_at, f"timeout={timeout}")
        self.assertIn("during the call", str(call.error))
        peer.wait_client_closed()
        with self.assertRaisesRegex(ClientSocketError, "closed"):
            c.put("k", 1.0, timestamp=1)
        with self.assertRaisesRegex(ClientSocketError, "closed"):
            c.get("k")
        self.assertEqual(server.connection_count, 1, "a closed client must not reconnect")

    def test_no_timeout(self) -> None:
        self.check_silent_server(None)

    def test_with_a_timeout(self) -> None:
        # A timeout far beyond the test's bound: only close() can end the call.
        self.check_silent_server(10 * BOUND)

    def test_calls_queued_behind_the_blocked_call_end_too(self) -> None:
        # Two connections, each with a call blocked on the silent server;
        # more calls wait for a free connection. close() aborts them all.
        server = self.server(None)
        c = self.client(server, timeout=None, max_connections=2)
        blocked = [Call(lambda: c.get("first"))]
        blocked[0].start()
        server.peer(0).wait_received(b"get first\n")
        blocked.append(Call(lambda: c.get("second")))
        blocked[1].start()
        server.peer(1).wait_received(b"get second\n")
        queued = [Call(lambda i=i: c.put(f"queued{i}", 1.0, timestamp=1)) for i in range(4)]
        for call in queued:
            call.start()
        wait_until(lambda: "busy" in repr(c), message="the client to be busy")
        closed_at, took = self.close_from_another_thread(c)
        self.assertLess(took, PROMPT)
        for call in blocked:
            self.assertAbortedByClose(call, closed_at, "a blocked call")
        for call in queued:
            self.assertAbortedByClose(call, closed_at, "a queued call")
        # The queued requests were never sent.
        self.assertEqual(server.received(), [b"get first\n", b"get second\n"])

    def test_close_during_a_get_streaming_a_large_reply(self) -> None:
        line = b"k" * 4000 + b" 1.5 1\n"
        chunk = line * 16
        state = {"sent_at_close": None}

        def stream(peer) -> None:
            peer.read_line()
            peer.send(b"ok\n")
            deadline = time.monotonic() + 3 * BOUND
            while time.monotonic() < deadline:  # an endless reply, bounded in time
                peer.send(chunk)

        server = self.server(stream)
        # No reply limit to stop it: only close() can end this call.
        c = self.client(server, timeout=None, max_reply_bytes=1 << 50)
        call = Call(lambda: c.get("k"))
        call.start()
        peer = server.peer(0)
        wait_until(lambda: peer.sent >= 8 << 20, message="8 MiB of the reply to be sent")
        state["sent_at_close"] = peer.sent
        closed_at, took = self.close_from_another_thread(c)
        report("streaming get: close() returned after", took)
        self.assertLess(took, PROMPT)
        self.assertAbortedByClose(call, closed_at, "streaming get")
        peer.wait_client_closed()
        print(f"\n    streaming get: closed after {state['sent_at_close'] / 2**20:.0f} MiB of the reply",
              end="", file=sys.stderr, flush=True)

    def test_close_twice_and_from_many_threads_at_once(self) -> None:
        server = self.server(None)
        c = self.client(server, timeout=None)
        call = Call(lambda: c.get("k"))
        call.start()
        server.peer(0).wait_received(b"get k\n")
        closers = [Call(c.close) for _ in range(8)]
        closed_at = time.monotonic()
        for closer in closers:
            closer.start()
        for closer in closers:
            closer.join(BOUND)
            self.assertFalse(closer.is_alive())
            self.assertIsNone(closer.error)
        self.assertAbortedByClose(call, closed_at, "eight closers")
        c.close()
        self.assertIn("closed", repr(c))


class CloseRacingWithCallsTest(CloseTestCase):
    THREADS = 8
    CALLS = 400

    def run_round(self, c: Client, ready_to_close: Optional[Callable[[dict], bool]]) -> dict:
        """THREADS threads make calls on ``c`` until close(), issued once
        ``ready_to_close(outcome)`` is true, stops them. Returns what
        happened; fails on anything but success or ClientSocketError."""
        unexpected: List[str] = []
        outcome = {"completed": 0, "aborted": 0, "refused": 0}
        lock = threading.Lock()

        def worker(n: int) -> None:
            rng = random.Random(n)
            for i in range(self.CALLS):
                try:
                    kind = rng.randrange(3)
                    if kind == 0:
                        c.put(f"k{n}", float(i), timestamp=i)
                    elif kind == 1:
                        c.get(f"k{n}")
                    else:
                        c.put_many([(f"m{n}", float(j), j) for j in range(20)])
                    with lock:
                        outcome["completed"] += 1
                except ClientSocketError as error:
                    with lock:
                        outcome["aborted" if "during" in str(error) else "refused"] += 1
                    if "closed" not in str(error) or isinstance(error, ClientTimeoutError):
                        unexpected.append(repr(error))
                    # Closed: every later call fails the same way, at once.
                    try:
                        c.get("k")
                        unexpected.append("a call succeeded after close()")
                    except ClientSocketError as later:
                        if "is closed" not in str(later):
                            unexpected.append(f"after close: {later!r}")
                    return
                except BaseException as error:  # noqa: B902
                    unexpected.append(repr(error))
                    return

        threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(self.THREADS)]
        for thread in threads:
            thread.start()
        wait_until(lambda: ready_to_close(outcome) or not any(t.is_alive() for t in threads),
                   message="the moment to close")
        closed_at, took = self.close_from_another_thread(c)
        for thread in threads:
            thread.join(BOUND)
            self.assertFalse(thread.is_alive(), "a thread is still calling after close()")
        self.assertEqual(unexpected, [])
        outcome["close"] = took
        outcome["ended"] = time.monotonic() - closed_at
        return outcome

    def test_close_racing_with_calls_on_a_real_server(self) -> None:
        srv = self.embedded_server()
        worst_close = worst_end = 0.0
        totals = {"completed": 0, "aborted": 0, "refused": 0}
        for round_ in range(12):
            c = self.client(srv.address, timeout=BOUND)
            # From "at once" to "well under way".
            outcome = self.run_round(c, lambda o, after=round_ * 40: o["completed"] >= after)
            worst_close = max(worst_close, outcome["close"])
            worst_end = max(worst_end, outcome["ended"])
            for key in totals:
                totals[key] += outcome[key]
        report("racing: slowest close()", worst_close)
        report(f"racing {totals}: slowest end of all threads after close()", worst_end)
        self.assertLess(worst_close, PROMPT)

    def test_close_while_threads_call_a_server_that_stops_answering(self) -> None:
        for round_ in range(4):
            store = MetricsStore()
            unanswered = {"lines": 0}

            def serve(peer, answered=50 * (round_ + 1)) -> None:
                while True:
                    lines = peer.read_lines()
                    if store.requests >= answered:
                        unanswered["lines"] += len(lines)  # reads on, never answers again
                        continue
                    peer.send(b"".join(store.handle(line) for line in lines))

            server = self.server(serve)
            c = self.client(server, timeout=None)
            # Close once a request went unanswered: every thread is then
            # blocked in that call or waiting for the client.
            outcome = self.run_round(c, lambda o: unanswered["lines"] > 0)
            self.assertGreater(outcome["aborted"], 0, outcome)
            self.assertLess(outcome["close"], PROMPT)
            self.assertLess(outcome["ended"], PROMPT)
            report(f"hung server, round {round_}: close()", outcome["close"])
            report(f"hung server, round {round_}: all {self.THREADS} threads ended after",
                   outcome["ended"])
            server.stop()


class SocketLikeObject:
    """Not a ``socket.socket``, so the client drives it through its methods
    (like an ``ssl.SSLSocket``): sendall/recv/shutdown/close of a real socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.calls: List[str] = []

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, size: int) -> bytes:
        return self.sock.recv(size)

    def shutdown(self, how: int) -> None:
        self.calls.append(f"shutdown({how})")
        self.sock.shutdown(how)

    def close(self) -> None:
        self.calls.append("close")
        self.sock.close()


class BlockingFake:
    """A fake socket in the course's shape (sendall, recv, close only) whose
    recv blocks until released: nothing outside it can interrupt it."""

    def __init__(self) -> None:
        self.sent = threading.Event()
        self.release = threading.Event()
        self.closed = threading.Event()

    def sendall(self, data: bytes) -> None:
        self.sent.set()

    def recv(self, size: int) -> bytes:
        self.release.wait(BOUND)
        return b"ok\n\n"

    def close(self) -> None:
        self.closed.set()


class SocketLikeCloseTest(CloseTestCase):
    def socket_like_client(self, server) -> Tuple[Client, List[SocketLikeObject]]:
        """A client whose connections are SocketLikeObjects (listed as made)."""
        made: List[SocketLikeObject] = []
        real = socket.create_connection

        def create_connection(*args, **kwargs):
            made.append(SocketLikeObject(real(*args, **kwargs)))
            return made[-1]

        with mock.patch("socket.create_connection", create_connection):
            c = self.client(server, timeout=None)
        return c, made

    def test_a_call_inside_a_socket_like_object_is_woken_by_its_shutdown(self) -> None:
        server = self.server(None)
        c, made = self.socket_like_client(server)
        call = Call(lambda: c.get("k"))
        call.start()
        server.peer(0).wait_received(b"get k\n")
        closed_at, took = self.close_from_another_thread(c)
        report("socket-like object: close() returned after", took)
        self.assertLess(took, PROMPT)
        self.assertAbortedByClose(call, closed_at, "socket-like object")
        wait_until(lambda: "close" in made[0].calls, message="the object to be closed")
        self.assertEqual(made[0].calls, [f"shutdown({socket.SHUT_RDWR})", "close"])

    def test_an_idle_socket_like_object_is_only_closed(self) -> None:
        server = self.server(None)
        c, made = self.socket_like_client(server)
        c.close()
        self.assertEqual(made[0].calls, ["close"])

    def test_close_does_not_wait_for_a_fake_socket_that_cannot_be_interrupted(self) -> None:
        fake = BlockingFake()
        with mock.patch("socket.create_connection", lambda *a, **k: fake):
            c = Client("127.0.0.1", 9, timeout=None)
        self.addCleanup(fake.release.set)
        call = Call(lambda: c.get("k"))
        call.start()
        self.assertTrue(fake.sent.wait(BOUND))
        closed_at, took = self.close_from_another_thread(c)
        report("uninterruptible fake socket: close() returned after", took)
        self.assertLess(took, PROMPT)
        # Later calls fail at once, not behind the call still inside recv.
        started = time.monotonic()
        with self.assertRaisesRegex(ClientSocketError, "is closed"):
            c.put("k", 1.0, timestamp=1)
        self.assertLess(time.monotonic() - started, PROMPT)
        self.assertTrue(call.is_alive())
        # When recv returns, the call ends and closes the object.
        fake.release.set()
        call.join(BOUND)
        self.assertFalse(call.is_alive())
        self.assertTrue(fake.closed.wait(BOUND))


class ForkedChildCloseTest(CloseTestCase):
    @unittest.skipUnless(hasattr(os, "fork"), "needs os.fork")
    def test_a_forked_child_closing_the_client_leaves_the_parents_call_alone(self) -> None:
        # The child shares the parent's socket: shutting it down there would
        # break the parent's connection and its call under way.
        release = threading.Event()

        def script(peer) -> None:
            while True:
                if peer.read_line() == b"get hold\n":
                    release.wait(BOUND)
                peer.send(b"ok\n\n")

        server = self.server(script)
        c = self.client(server, timeout=None)
        call = Call(lambda: c.get("hold"))
        call.start()
        server.peer(0).wait_received(b"get hold\n")

        def child() -> int:
            c.close()
            return 0

        self.assertEqual(self.run_forked(child), 0)
        release.set()
        call.join(BOUND)
        self.assertFalse(call.is_alive())
        self.assertIsNone(call.error)
        self.assertEqual(call.result, {})
        c.put("after", 1.0, timestamp=1)
        self.assertEqual(server.connection_count, 1, "the parent's connection was broken")


class CloseAbortsABlockedCallOverTlsTest(OverTls, CloseAbortsABlockedCallTest):
    pass


class CloseRacingWithCallsOverTlsTest(OverTls, CloseRacingWithCallsTest):
    pass


class ForkedChildCloseOverTlsTest(OverTls, ForkedChildCloseTest):
    pass


if __name__ == "__main__":
    unittest.main()
