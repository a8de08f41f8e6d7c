"""Hostile networks against the client, beyond test_client_failures:

- a server that trickles ONE BYTE PER SECOND: every read succeeds, yet the
  call ends at its timeout, within 10 %; a slow reply that does complete in
  time is not cut off;
- the redis-py CVE-2023-28858/28859 scenario with a delaying proxy between
  the client and the real embedded server (``client.Server``): a request is
  interrupted while its reply is in flight (held entirely, or cut after some
  of its bytes), by a timeout or by SIGINT (Ctrl-C) in a child process; the
  late reply is then delivered, and the next request must get its own
  answer, on a new connection.

Time is measured, never used to synchronise: the proxy reports what it holds
and what the client closed; the trickling server's pause between bytes is
the scenario itself.
"""

import json
import os
import random
import signal
import socket
import sys
import textwrap
import time
import unittest

from client import ClientTimeoutError
from tests.support import BOUND, TestCase, respond
from tests.support.processes import ChildProcess
from tests.support.proxy import DelayingProxy, ProxyTestCase

#: The trickling server's pace: one byte per PACE seconds.
PACE = 1.0


def trickle(data, then=None):
    """A script sending ``data`` one byte every PACE seconds after the first
    request line, then serving ``then`` (a script) if the client is still
    there. The pause ends early if the client closes the connection."""
    def script(peer):
        peer.read_line()
        for i in range(len(data)):
            if not peer.try_send(data[i:i + 1]):
                return
            if i + 1 < len(data):
                try:
                    peer.wait_client_closed(timeout=PACE)
                    return          # the client gave up: stop trickling
                except TimeoutError:
                    pass            # PACE elapsed, client still there: next byte
        if then is not None:
            then(peer)
    return script


class TrickleTest(TestCase):
    def test_one_byte_per_second_is_cut_at_the_timeout_within_10_percent(self):
        timeout = 2.5       # between the 3rd byte (t=2 s) and the 4th (t=3 s)
        endless = b"ok\n" + b"k 1.0 1\n" * 100
        for name, call in [("get", lambda c: c.get("k")), ("put", lambda c: c.put("k", 1, 1))]:
            with self.subTest(name):
                data = endless if name == "get" else b"ok\n" + b"x" * 100   # a line that never ends
                srv = self.server(trickle(data))
                c = self.client(srv, timeout=timeout)
                start = time.monotonic()
                with self.assertRaises(ClientTimeoutError):
                    call(c)
                elapsed = time.monotonic() - start
                self.assertGreaterEqual(elapsed, timeout)
                self.assertLessEqual(elapsed, timeout * 1.1, f"timeout {timeout} s, took {elapsed:.3f} s")
                peer = srv.peer(0)
                peer.wait_client_closed()
                # Bytes kept arriving (at t=0, 1, 2 s): single reads
                # succeeded, only the call as a whole ran out of time.
                self.assertGreaterEqual(peer.sent, 2)
                self.assertLessEqual(peer.sent, 4)
                srv.stop()
                if os.environ.get("CLIENT_TEST_REPORT"):
                    print(f"\ntrickle 1 B/s, {name}: timeout {timeout} s honoured after "
                          f"{elapsed:.3f} s (+{(elapsed / timeout - 1) * 100:.1f} %)", file=sys.stderr)

    def test_a_slow_reply_that_completes_in_time_is_not_cut(self):
        # "ok\n\n" at one byte per second: complete after ~3 s, within 5 s.
        srv = self.server(trickle(b"ok\n\n", then=respond(b"ok\n\n")))
        c = self.client(srv, timeout=5.0)
        start = time.monotonic()
        c.put("k", 1, 1)
        elapsed = time.monotonic() - start
        self.assertGreaterEqual(elapsed, 3 * PACE * 0.9)
        self.assertLess(elapsed, 5.0)
        # The connection was kept: the reply was complete and in step.
        c.put("k", 2, 2)
        self.assertEqual(srv.connection_count, 1)
        self.assertEqual(srv.peer(0).received(), b"put k 1 1\nput k 2 2\n")


def reply_bytes(points):
    """The server's reply to a get of ``points`` ({key: [(ts, value)]})."""
    lines = [f"{k} {float(v)!r} {t}\n" for k, pts in points.items() for t, v in pts]
    return ("ok\n" + "".join(lines) + "\n").encode()


class LateReplyThroughProxyTest(ProxyTestCase):
    """CVE-2023-28858/28859 with the real server: the reply of an abandoned
    request is held by the proxy and delivered late."""

    def test_reply_held_until_after_the_timeout(self):
        self.direct().put_many([("a", 1, 1), ("b", 2, 2)])
        c = self.client(self.proxy.address, timeout=0.3)
        self.proxy.hold()
        with self.assertRaises(ClientTimeoutError):
            c.get("a")
        late = reply_bytes({"a": [(1, 1)]})
        self.proxy.wait_held(len(late), exact=True)
        self.proxy.wait_client_eof(0)           # discarded at once, not kept
        self.assertEqual(self.proxy.release(), len(late))
        self.assertEqual(c.get("b"), {"b": [(2, 2.0)]})
        self.assertEqual(c.get("a"), {"a": [(1, 1.0)]})
        self.assertEqual(self.proxy.connection_count, 2)
        self.assertEqual(self.proxy.sent_by_client(0), b"get a\n")
        self.assertEqual(self.proxy.sent_by_client(1), b"get b\nget a\n")

    def test_the_harness_reproduces_the_bug_with_a_naive_client(self):
        # Control: a client that keeps its connection after a timeout (what
        # redis-py did) reads the late reply as the answer to its next
        # request. This is what the tests above prove the client never does.
        self.direct().put_many([("a", 1, 1), ("b", 2, 2)])
        naive = socket.create_connection(self.proxy.address, timeout=0.3)
        self.addCleanup(naive.close)
        self.proxy.hold()
        naive.sendall(b"get a\n")
        with self.assertRaises(socket.timeout):
            naive.recv(1 << 16)
        self.proxy.wait_held(len(reply_bytes({"a": [(1, 1)]})))
        self.proxy.release()
        naive.settimeout(BOUND)
        naive.sendall(b"get b\n")
        data = b""
        while b"\n\n" not in data:
            data += naive.recv(1 << 16)
        # What it reads first as the answer to "get b" is the late reply to
        # "get a" (b's own reply may already be in the same recv).
        first = data[:data.index(b"\n\n") + 2]
        self.assertEqual(first, reply_bytes({"a": [(1, 1)]}))   # the wrong answer

    def test_reply_cut_mid_flight_then_delivered_late(self):
        big = [(t, t + 0.25) for t in range(2000)]
        self.direct().put_many([("big", v, t) for t, v in big] + [("small", 7, 7)])
        late = reply_bytes({"big": big})
        for after in (1, 3, 1000, len(late) // 2, len(late) - 2, len(late) - 1):
            with self.subTest(after=after):
                proxy = DelayingProxy(self.srv.address)
                self.addCleanup(proxy.stop)
                c = self.client(proxy.address, timeout=0.3)
                proxy.hold(after=after)
                with self.assertRaises(ClientTimeoutError):
                    c.get("big")
                proxy.wait_held(len(late) - after, exact=True)
                proxy.wait_delivered(0, after)
                self.assertEqual(proxy.connections[0].delivered, after)
                proxy.wait_client_eof(0)
                proxy.release()
                self.assertEqual(c.get("small"), {"small": [(7, 7.0)]})
                self.assertEqual(c.get("big"), {"big": big})
                self.assertEqual(proxy.connection_count, 2)
                proxy.stop()

    def test_seeded_interruptions_never_shift_a_reply(self):
        """200 mixed calls on one client; a seeded ~10 % have their reply
        held (entirely or after a random number of its bytes) until the call
        times out, then delivered late. Every other call must return exactly
        what the model says, and only the interrupted calls may cost a
        connection."""
        rng = random.Random(int(os.environ.get("CLIENT_TEST_SEED", "28858")))
        c = self.client(self.proxy.address, timeout=0.25)
        model = {}
        interrupted = []
        ops = 200
        for i in range(ops):
            kind = rng.choice(["put", "put", "get", "get", "missing"])
            held = rng.random() < 0.1
            if kind == "put":
                key = f"key.{rng.randrange(8)}"
                point = (i, i + 0.5)
                reply = b"ok\n\n"
            else:
                key = f"key.{rng.randrange(8)}" if kind == "get" else f"missing.{i}"
                reply = reply_bytes({key: model[key]} if key in model else {})
            if held:
                after = rng.randrange(len(reply))
                self.proxy.hold(after=after)
                with self.assertRaises(ClientTimeoutError, msg=f"op {i}"):
                    if kind == "put":
                        c.put(key, point[1], point[0])
                    else:
                        c.get(key)
                # The server did answer: the proxy holds the rest.
                self.proxy.wait_held(len(reply) - after, exact=True)
                self.proxy.wait_client_eof(self.proxy.connection_count - 1)
                self.proxy.release()
                interrupted.append(i)
                if kind == "put":        # the server stored it before answering
                    model.setdefault(key, []).append(point)
                continue
            if kind == "put":
                c.put(key, point[1], point[0])
                model.setdefault(key, []).append(point)
            else:
                expected = {key: model[key]} if key in model else {}
                self.assertEqual(c.get(key), expected, f"op {i}: {key}")
        self.assertEqual(c.get("*"), model)
        self.assertGreater(len(interrupted), 5)
        # One connection, plus one more after each interrupted call: no
        # connection was dropped without cause, none was kept after one.
        self.assertEqual(self.proxy.connection_count, 1 + len(interrupted))
        if os.environ.get("CLIENT_TEST_REPORT"):
            print(f"\nproxy: {ops} calls, {len(interrupted)} interrupted mid-flight, "
                  f"every reply its own", file=sys.stderr)


CTRL_C_CHILD = textwrap.dedent("""
    import json, signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import client
    c = client.Client("127.0.0.1", int(sys.argv[1]), timeout=None)
    print("ready", flush=True)
    sys.stdin.readline()                 # the parent put the proxy on hold
    try:
        c.get(sys.argv[2])
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    else:
        print("returned", flush=True)
        sys.exit(3)
    sys.stdin.readline()                 # the parent delivered the late reply
    print(json.dumps(c.get("small")), flush=True)
    print(json.dumps(c.get(sys.argv[2])["big"][-1]), flush=True)
""")


class CtrlCThroughProxyTest(ProxyTestCase):
    """The same scenario with a real SIGINT (Ctrl-C) in a child process whose
    client waits with ``timeout=None``."""

    def test_ctrl_c_mid_flight_then_late_reply(self):
        big = [(t, t + 0.25) for t in range(500)]
        self.direct().put_many([("big", v, t) for t, v in big] + [("small", 7, 7)])
        late = reply_bytes({"big": big})
        for after in (0, len(late) // 3):
            with self.subTest(after=after):
                proxy = DelayingProxy(self.srv.address)
                self.addCleanup(proxy.stop)
                child = ChildProcess(["-c", CTRL_C_CHILD, str(proxy.address[1]), "big"], stdin=True)
                self.addCleanup(child.kill)
                self.assertEqual(child.readline(), "ready")
                proxy.hold(after=after)
                child.write("\n")
                # The server answered; the child has `after` bytes and waits.
                proxy.wait_held(len(late) - after, exact=True)
                proxy.wait_delivered(0, after)
                child.signal(signal.SIGINT)
                self.assertEqual(child.readline(), "interrupted")
                proxy.wait_client_eof(0)        # the interrupted connection is closed
                self.assertEqual(proxy.release(), len(late) - after)
                child.write("\n")
                self.assertEqual(json.loads(child.readline()), {"small": [[7, 7.0]]})
                self.assertEqual(json.loads(child.readline()), [499, 499.25])
                code, out, err = child.finish()
                self.assertEqual(code, 0, err)
                self.assertEqual(proxy.connection_count, 2)
                self.assertEqual(proxy.sent_by_client(0), b"get big\n")
                self.assertEqual(proxy.sent_by_client(1), b"get small\nget big\n")
                proxy.stop()


if __name__ == "__main__":
    unittest.main()
