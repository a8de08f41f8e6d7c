"""Ctrl-C during a blocking call.

A child interpreter calls ``get`` with ``timeout=None`` on a server (run by
this test) that accepts but never answers. Once the server has received the
request, SIGINT is sent to the child: it must get KeyboardInterrupt inside
``get`` promptly, and its next call must use a new connection.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
import unittest

from tests.support import BOUND, TestCase
from tests.support.transports import OverTls

#: KeyboardInterrupt must be delivered, and the child gone, within this long.
LATENCY_BOUND = 2.0

CHILD = textwrap.dedent("""
    import signal, sys, time, traceback
    # A child started from a shell's background job may inherit SIGINT as
    # ignored; install Python's default handler explicitly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if sys.argv[2] == "other-thread":
        # The signal lands on a helper thread, so the main thread's blocking
        # recv is not interrupted (no EINTR): only the client's periodic
        # check for pending signals can raise KeyboardInterrupt.
        import threading
        threading.Thread(target=threading.Event().wait, daemon=True).start()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    import client
    # sys.argv[3]: the CA to trust, for TLS; "" for plain TCP.
    tls = {"tls_ca": sys.argv[3]} if sys.argv[3] else {}
    c = client.Client("127.0.0.1", int(sys.argv[1]), timeout=None, **tls)
    try:
        c.get("waiting")
    except KeyboardInterrupt:
        caught_at = time.monotonic()
        frame = traceback.extract_tb(sys.exc_info()[2])[-1]
        print("KeyboardInterrupt", repr(caught_at), frame.line, flush=True)
    else:
        print("get returned", flush=True)
        sys.exit(3)
    # The interrupted request's connection must not be reused.
    c.put("after", 1, 1)
    print("put ok", flush=True)
""")


class CtrlCTest(TestCase):
    def test_ctrl_c_interrupts_a_blocked_get(self):
        self.check_ctrl_c("interrupt")

    @unittest.skipUnless(hasattr(signal, "pthread_sigmask"), "needs pthread_sigmask")
    def test_ctrl_c_received_by_another_thread(self):
        self.check_ctrl_c("other-thread")

    def check_ctrl_c(self, mode):
        def hold_first_answer_second(peer):
            if peer.index == 0:
                peer.read_line()      # never answered
                return
            while True:
                peer.read_line()
                peer.send(b"ok\n\n")

        srv = self.server(hold_first_answer_second)
        workdir = self.temporary_directory()
        script = os.path.join(workdir, "ctrl_c_child.py")
        with open(script, "w") as f:
            f.write(CHILD)
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        # Run from an empty directory so `import client` finds the installed wheel.
        child = subprocess.Popen(
            [sys.executable, script, str(srv.port), mode, self.tls_options().get("tls_ca", "")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=workdir)
        self.addCleanup(self.reap, child)

        srv.peer(0).wait_received(b"get waiting\n")
        self.assertEqual(srv.peer(0).received(), b"get waiting\n")
        sent_at = time.monotonic()
        child.send_signal(signal.SIGINT)
        try:
            out, err = child.communicate(timeout=BOUND)
        except subprocess.TimeoutExpired:
            self.fail("the child did not react to SIGINT")
        exited_at = time.monotonic()
        self.assertEqual(child.returncode, 0, f"stdout={out!r} stderr={err!r}")
        lines = out.decode().splitlines()
        self.assertEqual(len(lines), 2, lines)
        word, caught_at, where = lines[0].split(" ", 2)
        self.assertEqual(word, "KeyboardInterrupt")
        self.assertIn('c.get("waiting")', where)
        self.assertEqual(lines[1], "put ok")
        delivery = float(caught_at) - sent_at     # CLOCK_MONOTONIC is system-wide
        total = exited_at - sent_at
        self.assertLess(delivery, LATENCY_BOUND)
        self.assertLess(total, LATENCY_BOUND)
        # The interrupted connection was dropped; `put` used a new one.
        self.assertEqual(srv.connection_count, 2)
        self.assertEqual(srv.peer(1).received(), b"put after 1 1\n")
        if os.environ.get("CLIENT_TEST_REPORT"):
            print(f"\nCtrl-C ({mode}): KeyboardInterrupt after {delivery * 1000:.1f} ms, "
                  f"child gone after {total * 1000:.1f} ms", file=sys.stderr)

    @staticmethod
    def reap(child):
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=BOUND)



class CtrlCOverTlsTest(OverTls, CtrlCTest):
    """The same on TLS (the Rust core's): the child connects with tls_ca."""


if __name__ == "__main__":
    unittest.main()
