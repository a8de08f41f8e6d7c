"""How long the tests may wait: one bound for every wait on a condition,
a watchdog for a whole test, and the bounded poll for conditions nothing
announces."""

from __future__ import annotations

import os
import threading
import time
from typing import Callable

#: Upper bound of every wait in the tests, in seconds. Generous: a test that
#: works waits far less; a broken one fails after at most this long.
BOUND = float(os.environ.get("CLIENT_TEST_BOUND", "10"))

#: A whole test (setUp to tearDown) taking longer than this dumps every
#: thread's traceback and kills the process: a deadlock cannot hang the suite.
WATCHDOG = float(os.environ.get("CLIENT_TEST_WATCHDOG", "120"))


def wait_until(predicate: Callable[[], object], timeout: float = BOUND,
               interval: float = 0.002, message: str = "condition") -> object:
    """Polls ``predicate`` until it returns a true value, at most ``timeout``
    seconds; raises AssertionError otherwise. Only for conditions that have
    no notification (kernel socket state, child processes); everything the
    test server does is waited for through its Condition instead."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        pause.wait(interval)
