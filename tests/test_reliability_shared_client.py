"""A call waiting for a shared Client that another thread is using:
timeouts honoured, no hang; README: "``timeout`` bounds ... each call as a
whole; ``None`` waits as long as it takes, and Ctrl-C still interrupts").

Calls on one Client are serialized. While one thread's call is stuck on a
server that does not answer, another thread's call waits for its turn. That
wait is part of the call, so:

- with a timeout, the waiting call must end with ClientTimeoutError once its
  own timeout has passed (within 10 %), not after the other call's remaining
  time plus its own;
- with ``timeout=None``, Ctrl-C must still interrupt the waiting call on the
  main thread.
"""

import os
import signal
import textwrap
import threading
import time
import unittest

from client import ClientTimeoutError
from tests.support import BOUND, TestCase, wait_until
from tests.support.processes import ChildProcess

SLACK = 0.1
#: KeyboardInterrupt must be delivered within this long.
LATENCY_BOUND = 2.0


def never_answer(peer):
    while True:
        peer.read_line()


class WaitingForABusyClientTest(TestCase):
    def test_timeout_bounds_a_call_waiting_behind_another(self):
        timeout = 0.5
        srv = self.server(never_answer)
        c = self.client(srv, timeout=timeout)
        outcomes = []

        def holder():
            try:
                c.get("holder")
            except BaseException as error:
                outcomes.append(error)

        thread = threading.Thread(target=holder, daemon=True)
        thread.start()
        self.addCleanup(thread.join, BOUND)
        # The holder's request is on the wire: it owns the client now.
        srv.peer(0).wait_received(b"get holder\n")
        start = time.monotonic()
        with self.assertRaises(ClientTimeoutError):
            c.get("waiter")
        elapsed = time.monotonic() - start
        thread.join(BOUND)
        self.assertEqual([type(e) for e in outcomes], [ClientTimeoutError])
        self.assertLessEqual(
            elapsed, timeout * 1.1 + SLACK,
            f"a call with timeout={timeout} took {elapsed:.3f} s: the time spent waiting for "
            f"the other thread's call is not counted against its timeout")

    @unittest.skipUnless(hasattr(signal, "pthread_kill"), "needs POSIX signals")
    def test_ctrl_c_interrupts_a_call_waiting_behind_another(self):
        if not os.path.exists("/proc/self/task"):
            self.skipTest("needs /proc to see that the main thread is waiting")
        srv = self.server(never_answer)
        child = ChildProcess(["-c", CHILD, str(srv.port)])
        self.addCleanup(child.kill)
        # The background thread's request reached the server: it holds the client.
        srv.peer(0).wait_received(b"get background\n")
        self.assertEqual(child.readline(), "calling")
        # The main thread is inside get("main"), blocked (not running Python).
        wait_until(lambda: main_thread_sleeping(child.pid),
                   message="the child's main thread to block in get")
        sent = time.monotonic()
        child.signal(signal.SIGINT)
        try:
            line = child.readline(timeout=LATENCY_BOUND)
        except AssertionError:
            self.fail(f"Ctrl-C did not interrupt a call waiting for a busy client "
                      f"within {LATENCY_BOUND} s (timeout=None): the process hangs")
        self.assertEqual(line, "interrupted")
        self.assertLess(time.monotonic() - sent, LATENCY_BOUND)
        # The waiting call never had the connection: nothing else was sent.
        self.assertEqual(srv.peer(0).received(), b"get background\n")


CHILD = textwrap.dedent("""
    import os, signal, sys, threading
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import client
    c = client.Client("127.0.0.1", int(sys.argv[1]), timeout=None)
    threading.Thread(target=c.get, args=("background",), daemon=True).start()
    # Wait (bounded) until the background call owns the client.
    for _ in range(10000):
        if "busy" in repr(c):
            break
        threading.Event().wait(0.001)
    print("calling", flush=True)
    try:
        c.get("main")
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    os._exit(0)   # the background call never ends
""")


def main_thread_sleeping(pid):
    """True when the main thread of ``pid`` is blocked in the kernel."""
    try:
        with open(f"/proc/{pid}/task/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state == "S"


if __name__ == "__main__":
    unittest.main()
