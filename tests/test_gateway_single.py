"""The server as a gateway to a single Redis node (``redis://``), a real
``redis-server`` on loopback started by each test: the node restarted under
a running gateway, ``wait`` with and without replicas, and how many Redis
commands a put costs (counted by the node's ``INFO commandstats``)."""

from __future__ import annotations

import time
import unittest
from typing import Dict

from client import Client, Server
from tests.support import BOUND, TestCase, wait_until
from tests.support.raw import RawConnection
from tests.support.redis_single import RedisServer
from tests.support.storm import Storm

DURABLE = {"appendonly": "yes", "appendfsync": "always"}


def command_calls(redis: RedisServer) -> Dict[str, int]:
    """Calls per command since the node's last ``CONFIG RESETSTAT``."""
    calls = {}
    for line in redis.node.cli("info", "commandstats").splitlines():
        name, sep, fields = line.strip().partition(":")
        if sep and name.startswith("cmdstat_"):
            stats = dict(field.split("=", 1) for field in fields.split(","))
            calls[name[len("cmdstat_"):]] = int(stats["calls"])
    return calls


class SingleNodeTestCase(TestCase):
    settings: Dict[str, str] = DURABLE

    def setUp(self) -> None:
        super().setUp()
        self.redis = RedisServer(settings=self.settings)
        self.addCleanup(self.redis.close)

    def gateway(self, query: str = "") -> Server:
        srv = Server(store=self.redis.url + query)
        self.addCleanup(srv.close)
        return srv


class Restart(SingleNodeTestCase):
    def test_puts_resume_after_the_node_restarts_and_no_acknowledged_put_is_lost(self) -> None:
        srv = self.gateway()
        storm = Storm([srv.address], "restarted")
        try:
            storm.wait_for(200)
            self.redis.restart()
            before = len(storm.acknowledged)
            storm.wait_for(before + 200)
        finally:
            storm.stop()
        with Client(*srv.address, timeout=BOUND) as c:
            everything = c.get("*")
        stored = {t for t, _ in everything.get("restarted", [])}
        lost = set(storm.acknowledged) - stored
        print(f"\n  redis:// kill -9 and restart (appendfsync always): {len(storm.acknowledged)} "
              f"acknowledged, {len(lost)} lost, {storm.failures} refused")
        self.assertEqual(lost, set(), f"{len(lost)} acknowledged puts lost")

    def test_a_put_while_the_node_restarts_waits_for_it_within_the_bound(self) -> None:
        srv = self.gateway()
        c = RawConnection(srv.address)
        self.addCleanup(c.close)
        self.assertEqual(c.ask(b"put k 1 1\n"), b"ok\n\n")
        self.redis.restart()
        started = time.monotonic()
        # The first command after the restart meets the closed connection:
        # it is retried on a new one, not answered with an error.
        self.assertEqual(c.ask(b"put k 2 2\n"), b"ok\n\n")
        self.assertEqual(c.ask(b"get *\n"), b"ok\nk 1.0 1\nk 2.0 2\n\n")
        self.assertLess(time.monotonic() - started, BOUND)


class RestartWithoutData(SingleNodeTestCase):
    """A node without an append-only file comes back empty: what is put
    after the restart must be listed by ``get *`` again, although the
    gateway had these keys as indexed."""

    settings: Dict[str, str] = {}

    def test_keys_put_after_a_restart_that_lost_everything_are_listed_again(self) -> None:
        srv = self.gateway()
        with Client(*srv.address, timeout=BOUND) as c:
            c.put_many([(f"k{i}", 1.0, 1) for i in range(20)])
            self.redis.restart()
            c.put_many([(f"k{i}", 2.0, 2) for i in range(20)])
            self.assertEqual(c.get("*"), {f"k{i}": [(2, 2.0)] for i in range(20)})


class Wait(SingleNodeTestCase):
    def test_wait_for_replicas_the_node_does_not_have_is_refused_at_start(self) -> None:
        # WAIT counts replicas, not fsyncs: with none every put would be
        # refused after wait_timeout; the durability of one node is its
        # appendfsync.
        with self.assertRaisesRegex(OSError, "wait=1 asks for 1 replicas, the node has 0"):
            Server(store=self.redis.url + "?wait=1")

    def test_wait_for_a_replica_the_node_has_acknowledges_once_the_replica_has_the_put(self) -> None:
        replica = RedisServer(settings={"replicaof": f"127.0.0.1 {self.redis.node.port}"})
        self.addCleanup(replica.close)
        wait_until(lambda: self.redis.node.info("replication").get("connected_slaves") == "1"
                   and replica.node.info("replication").get("master_link_status") == "up",
                   3 * BOUND, interval=0.05, message="the replica linked")
        srv = self.gateway("?wait=1&wait_timeout=2000")
        c = RawConnection(srv.address)
        self.addCleanup(c.close)
        self.assertEqual(c.ask(b"put k 1.5 7\n"), b"ok\n\n")
        self.assertEqual(replica.node.cli("hget", "m:k", "7").strip(), "1.5")


class CommandsPerPut(SingleNodeTestCase):
    settings: Dict[str, str] = {}

    def test_a_put_of_a_key_already_indexed_costs_one_command(self) -> None:
        srv = self.gateway()
        c = RawConnection(srv.address)
        self.addCleanup(c.close)
        self.redis.node.cli("config", "resetstat")
        for t in range(20):
            self.assertEqual(c.ask(f"put k {t} {t}\n".encode()), b"ok\n\n")
        calls = command_calls(self.redis)
        self.assertEqual((calls.get("hset"), calls.get("sadd")), (20, 1), calls)

    def test_a_batch_costs_one_hset_per_key_and_one_sadd_per_index_bucket(self) -> None:
        srv = self.gateway()
        self.redis.node.cli("config", "resetstat")
        points = [(f"k{i % 10}", float(t), t) for t in range(100) for i in range(10)]
        with Client(*srv.address, timeout=BOUND) as c:
            c.put_many(points)
            self.assertEqual(len(c.get("*")), 10)
        calls = command_calls(self.redis)
        writes = calls.get("hset", 0) + calls.get("sadd", 0)
        self.assertLess(writes, len(points) / 10, calls)
        self.assertEqual(self.redis.node.cli("hlen", "m:k3").strip(), "100")


if __name__ == "__main__":
    unittest.main()
