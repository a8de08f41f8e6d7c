"""A real Redis Cluster on loopback for the gateway tests: 3 masters and 3
replicas started with Debian's ``redis-server``, joined with ``redis-cli
--cluster create``, stopped (every process, killed if it must be) and its
directory removed on close.

Each node runs in its own directory under one temporary directory, on a port
the OS just handed out (Redis also listens on port + 10000 for the cluster
bus, so a port is only taken when both are free). Every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
from typing import Dict, List, Optional, Sequence

from . import BOUND
from .dependencies import unavailable

__all__ = ["RedisCluster", "OnRedisCluster", "redis_missing", "skip_without_redis", "free_port"]

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")


def redis_missing() -> Optional[str]:
    """Why a cluster cannot be started here, or ``None``."""
    if REDIS_SERVER is None or REDIS_CLI is None:
        return ("redis-server and redis-cli are not installed "
                "(Debian: apt-get install redis-server; .ci/run installs them under CI=true)")
    return None


def skip_without_redis(test: unittest.TestCase) -> None:
    reason = redis_missing()
    if reason:
        unavailable(reason)


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(exclude: Sequence[int] = ()) -> int:
    """A loopback port that is free, and whose cluster-bus port (+10000) is
    free too, not in ``exclude``."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 10000 < 65536 and port not in exclude and _port_free(port + 10000):
            return port
    raise AssertionError("no free port pair found in 200 tries")


class RedisNode:
    """One ``redis-server`` process, in cluster mode unless ``cluster`` is
    false."""

    def __init__(self, root: str, port: int, settings: Dict[str, str],
                 cluster: bool = True) -> None:
        self.port = port
        self.dir = os.path.join(root, str(port))
        os.mkdir(self.dir)
        self.settings = settings
        self.cluster = cluster
        self.proc: Optional[subprocess.Popen] = None
        self.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Starts (or restarts, on the same directory and port) the node."""
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--save", "", "--protected-mode", "no",
                "--daemonize", "no", "--logfile", "redis.log"]
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--cluster-node-timeout", "1000"]
        for name, value in self.settings.items():
            args += [f"--{name}", value]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def cli(self, *args: str, timeout: float = BOUND) -> str:
        done = subprocess.run([REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port), *args],
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"redis-cli {' '.join(args)} on {self.port}: "
                                 f"{done.stdout}{done.stderr}")
        return done.stdout

    def info(self, section: str) -> Dict[str, str]:
        fields = {}
        for line in self.cli("info", section).splitlines():
            name, sep, value = line.strip().partition(":")
            if sep:
                fields[name] = value
        return fields

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """``kill -9``: the node loses what it had not written or replicated."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(BOUND)

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(BOUND)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(BOUND)

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.dir, "redis.log"), errors="replace") as log:
                return log.read()[-2000:]
        except OSError:
            return ""


class RedisCluster:
    """``masters`` masters with ``replicas`` replicas each, on loopback.

    ``settings`` are extra ``redis-server`` options for every node (for
    example ``{"appendonly": "yes", "appendfsync": "always"}``). Use as a
    context manager, or call ``close()``; a failed start stops what it began.
    """

    def __init__(self, masters: int = 3, replicas: int = 1,
                 settings: Optional[Dict[str, str]] = None, timeout: float = 3 * BOUND) -> None:
        reason = redis_missing()
        if reason:
            unavailable(reason)
        self.root = tempfile.mkdtemp(prefix="redis-cluster-")
        self.nodes: List[RedisNode] = []
        try:
            ports: List[int] = []
            for _ in range(masters * (1 + replicas)):
                ports.append(free_port(ports + [p + 10000 for p in ports]))
            for port in ports:
                self.nodes.append(RedisNode(self.root, port, dict(settings or {})))
            deadline = time.monotonic() + timeout
            for node in self.nodes:
                self._wait(lambda node=node: self._answers(node), deadline,
                           f"redis-server on {node.port} to answer PING")
            create = subprocess.run(
                [REDIS_CLI, "--cluster", "create", *[n.address for n in self.nodes],
                 "--cluster-replicas", str(replicas), "--cluster-yes"],
                capture_output=True, text=True, timeout=max(1.0, deadline - time.monotonic()))
            if create.returncode != 0:
                raise AssertionError(f"redis-cli --cluster create failed:\n{create.stdout}"
                                     f"{create.stderr}")
            self.wait_ok(deadline - time.monotonic())
            self.replicas = masters * replicas
            self.wait_replicas_linked(deadline - time.monotonic())
        except BaseException:
            self.close()
            raise

    # -- waiting

    @staticmethod
    def _wait(predicate, deadline: float, what: str) -> None:
        while True:
            try:
                if predicate():
                    return
            except (AssertionError, OSError, subprocess.SubprocessError):
                pass
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)

    @staticmethod
    def _answers(node: RedisNode) -> bool:
        if not node.alive():
            raise RuntimeError(f"redis-server on {node.port} exited:\n{node.log_tail()}")
        return node.cli("ping", timeout=2).strip() == "PONG"

    def _replicas_linked(self, count: int) -> bool:
        linked = 0
        for node in self.live_nodes():
            info = node.info("replication")
            if info.get("role") == "slave" and info.get("master_link_status") == "up":
                linked += 1
        return linked >= count

    def wait_replicas_linked(self, timeout: float = 3 * BOUND) -> None:
        """Waits until every replica is linked to its master (and synced)."""
        self._wait(lambda: self._replicas_linked(self.replicas), time.monotonic() + timeout,
                   "every replica to link to its master")
        self.wait_ok(timeout)

    def _all_ok(self) -> bool:
        """Every live node says cluster_state:ok and agrees on the slots."""
        for node in self.live_nodes():
            info = {}
            for line in node.cli("cluster", "info", timeout=2).splitlines():
                name, _, value = line.strip().partition(":")
                info[name] = value
            if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != "16384":
                return False
        return True

    def wait_ok(self, timeout: float = 3 * BOUND) -> None:
        """Waits until every live node reports ``cluster_state:ok``."""
        self._wait(self._all_ok, time.monotonic() + timeout, "cluster_state:ok on every node")

    # -- what tests use

    def live_nodes(self) -> List[RedisNode]:
        return [node for node in self.nodes if node.alive()]

    def masters(self) -> List[RedisNode]:
        return [node for node in self.live_nodes()
                if node.info("replication").get("role") == "master"]

    def node_of_key(self, key: str) -> RedisNode:
        """The master currently serving ``key``'s slot."""
        slot = int(self.nodes[0].cli("cluster", "keyslot", key).strip())
        for line in self.live_nodes()[0].cli("cluster", "nodes").splitlines():
            fields = line.split()
            if "master" not in fields[2] or "fail" in fields[2]:
                continue
            for spec in fields[8:]:
                low, _, high = spec.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
                    return next(n for n in self.nodes if n.port == port)
        raise AssertionError(f"no master serves slot {slot}")

    def wait_failover(self, dead: RedisNode, timeout: float = 3 * BOUND) -> None:
        """After ``dead`` was killed: waits until a replica took its slots."""
        deadline = time.monotonic() + timeout
        self._wait(lambda: len(self.masters()) >= len(self.nodes) // 2, deadline,
                   f"a replica of {dead.port} to become master")
        self.wait_ok(max(0.5, deadline - time.monotonic()))

    def flush(self) -> None:
        """Empties every master (replicas follow)."""
        for node in self.masters():
            node.cli("flushall")

    def reshard(self, slots: int) -> None:
        """Moves ``slots`` slots from the first master to the second, with
        ``redis-cli --cluster reshard`` (keys move with them, live)."""
        masters = self.masters()
        ids = [node.cli("cluster", "myid").strip() for node in masters[:2]]
        done = subprocess.run(
            [REDIS_CLI, "--cluster", "reshard", masters[0].address, "--cluster-from", ids[0],
             "--cluster-to", ids[1], "--cluster-slots", str(slots), "--cluster-yes",
             "--cluster-pipeline", "100"],
            capture_output=True, text=True, timeout=6 * BOUND)
        if done.returncode != 0:
            raise AssertionError(f"reshard failed:\n{done.stdout[-2000:]}{done.stderr}")

    @property
    def url(self) -> str:
        """The ``store=`` argument naming every master as a seed."""
        return "redis-cluster://" + ",".join(n.address for n in self.nodes[:3])

    def close(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "RedisCluster":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class OnRedisCluster:
    """Mixin for a server test class (before the class in the bases): the
    class's servers become gateways to one Redis Cluster, started for the
    class and stopped after it; each server started gets it empty, as it
    would an embedded store. Skipped, with the reason, where redis-server is
    missing."""

    cluster: RedisCluster

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()  # type: ignore[misc]
        cls.cluster = RedisCluster()
        cls.addClassCleanup(cls.cluster.close)  # type: ignore[attr-defined]

    def server_arguments(self) -> Dict[str, object]:
        self.cluster.flush()
        return {"store": self.cluster.url}
