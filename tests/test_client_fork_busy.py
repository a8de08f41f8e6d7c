"""fork() while another thread is inside a call on the same Client.

The child inherits the client's call lock marked as held by a thread that
does not exist in the child. The child's own calls must not wait for it:
they open their own connection at once.
"""

import os
import threading
import unittest

from client import ClientTimeoutError
from tests.support import BOUND, TestCase, respond
from tests.support.transports import OverTls

TIMEOUT = 2.0


def silent_to_hold(line):
    return None if line.startswith(b"get hold") else b"ok\n\n"


class ForkDuringACallTest(TestCase):
    @unittest.skipUnless(hasattr(os, "fork"), "needs os.fork")
    def test_child_is_not_blocked_by_the_parents_call_in_progress(self):
        srv = self.server(respond(silent_to_hold))
        c = self.client(srv, timeout=TIMEOUT)
        outcomes = []

        def holder():
            try:
                c.get("hold")
            except BaseException as error:
                outcomes.append(error)

        thread = threading.Thread(target=holder, daemon=True)
        thread.start()
        self.addCleanup(thread.join, BOUND)
        srv.peer(0).wait_received(b"get hold\n")  # the thread now holds the client

        def child():
            try:
                c.put("from.child", 1, 1)
                return 0
            except ClientTimeoutError:
                return 3  # waited for the parent's thread until the timeout

        self.assertEqual(self.run_forked(child), 0, "the child's call did not go through")
        self.assertEqual(srv.peer(1).wait_received(b"put from.child 1 1\n"), b"put from.child 1 1\n")
        # The parent's own call is unaffected: it still times out on its silent server.
        thread.join(BOUND)
        self.assertEqual([type(e) for e in outcomes], [ClientTimeoutError])


# The same tests on TLS (the Rust core's): a scripted server speaking TLS,
# clients connecting with tls_ca.


class ForkDuringACallOverTlsTest(OverTls, ForkDuringACallTest):
    pass


if __name__ == "__main__":
    unittest.main()
