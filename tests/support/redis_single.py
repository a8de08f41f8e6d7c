"""One standalone ``redis-server`` on loopback for the gateway tests of
``redis://`` (a single node): started in a temporary directory on a free
port, restartable on the same directory and port, stopped and its directory
removed on close. Every wait is bounded."""

from __future__ import annotations

import shutil
import tempfile
import time
import unittest
from typing import Dict, Optional

from . import BOUND
from .redis_cluster import RedisCluster, RedisNode, free_port, redis_missing

__all__ = ["RedisServer"]


class RedisServer:
    """``settings`` are extra ``redis-server`` options (for example
    ``{"appendonly": "yes", "appendfsync": "always"}``). Skipped, with the
    reason, where redis-server is missing."""

    def __init__(self, settings: Optional[Dict[str, str]] = None) -> None:
        reason = redis_missing()
        if reason:
            raise unittest.SkipTest(reason)
        self.root = tempfile.mkdtemp(prefix="redis-single-")
        try:
            self.node = RedisNode(self.root, free_port(), dict(settings or {}), cluster=False)
            self.wait_ready()
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        return f"redis://{self.node.address}"

    def wait_ready(self, timeout: float = 3 * BOUND) -> None:
        """Waits until the node answers PING (not LOADING)."""
        RedisCluster._wait(lambda: RedisCluster._answers(self.node), time.monotonic() + timeout,
                           f"redis-server on {self.node.port} to answer PING")

    def restart(self) -> None:
        """``kill -9``, then starts again on the same directory and port
        (with ``appendonly yes`` it reloads its append-only file)."""
        self.node.kill()
        self.node.start()
        self.wait_ready()

    def close(self) -> None:
        if getattr(self, "node", None) is not None:
            self.node.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "RedisServer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
