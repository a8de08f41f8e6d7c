"""A storm of puts from one client, for the tests that kill or restart
something under a running gateway and then check that no acknowledged put
was lost."""

from __future__ import annotations

import threading
import time
from typing import List, Tuple

from client import Client, ClientError

from . import BOUND, wait_until

__all__ = ["Storm"]


class Storm:
    """Puts from one client in a thread until stopped: records which puts
    were acknowledged and how many failed, so a test can check that every
    acknowledged put is still there."""

    def __init__(self, addresses: List[Tuple[str, int]], key: str) -> None:
        self.client = Client(addresses, timeout=BOUND) if len(addresses) > 1 else \
            Client(*addresses[0], timeout=BOUND)
        self.key = key
        self.acknowledged: List[int] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        n = 0
        deadline = time.monotonic() + 6 * BOUND
        while not self._stop.is_set() and time.monotonic() < deadline:
            n += 1
            try:
                self.client.put(self.key, float(n), timestamp=n)
            except ClientError:
                self.failures += 1
                continue
            self.acknowledged.append(n)

    def wait_for(self, count: int) -> None:
        wait_until(lambda: len(self.acknowledged) >= count, 3 * BOUND)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(BOUND)
        self.client.close()


