"""The server as a stateless gateway over a real Redis Cluster on loopback
(3 masters, 3 replicas, started and stopped by the tests; skipped with a
message where redis-server is missing): several gateways sharing it, a
client moving between gateways, gateways and masters killed during a storm
of puts, resharding while serving, and Redis failures as error replies.
"""

from __future__ import annotations

import random
import time
import unittest
from typing import Dict, List, Tuple

from client import Client, Server
from tests.support import BOUND, TestCase, wait_until
from tests.support.processes import ServerProcess
from tests.support.raw import RawConnection, connect
from tests.support.redis_cluster import RedisCluster, free_port, skip_without_redis
from tests.support.storm import Storm
from tests.test_query_columns import HAS_NUMPY, flat, listed, read_frame
from tests.test_week6_checker import run_checker


class GatewayTestCase(TestCase):
    cluster: RedisCluster
    settings: Dict[str, str] = {}

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.cluster = RedisCluster(settings=cls.settings)
        cls.addClassCleanup(cls.cluster.close)

    def setUp(self) -> None:
        super().setUp()
        self.cluster.flush()

    def gateway(self, query: str = "") -> Server:
        srv = Server(store=self.cluster.url + query)
        self.addCleanup(srv.close)
        return srv

    def gateway_process(self) -> ServerProcess:
        proc = ServerProcess(kind="cli", options=["--store", self.cluster.url])
        self.addCleanup(proc.kill)
        return proc


class ManyGateways(GatewayTestCase):
    def test_two_gateways_see_each_others_writes_at_once(self) -> None:
        one, two = self.gateway(), self.gateway()
        with Client(*one.address, timeout=BOUND) as a, Client(*two.address, timeout=BOUND) as b:
            for i in range(50):
                a.put(f"k{i}", i + 0.5, timestamp=i)
                self.assertEqual(b.get(f"k{i}"), {f"k{i}": [(i, i + 0.5)]})
            b.put("k0", 9.0, timestamp=0)
            self.assertEqual(a.get("k0"), {"k0": [(0, 9.0)]})
            everything = a.get("*")
            self.assertEqual(len(everything), 50)
            self.assertEqual(everything, b.get("*"))

    def test_the_week6_checker_passes_through_one_gateway_and_its_data_through_another(self) -> None:
        one, two = self.gateway(), self.gateway()
        run_checker(*one.address)
        with Client(*two.address, timeout=BOUND) as other:
            self.assertEqual(other.get("*"), {"k1": [(1, 0.25), (2, 2.156), (3, 0.35)],
                                              "k2": [(4, 30.0), (5, 40.0)]})

    def test_split_pipelined_and_malformed_input_is_answered_as_the_embedded_store_does(self) -> None:
        parts = []
        for i in range(60):
            parts.append(f"put key{i % 7} {i}.25 {1000 - i % 13}\n")
            if i % 5 == 0:
                parts.append(f"get key{i % 3}\n")
            if i % 11 == 0:
                parts.append("bogus line\nput k 1 1.5\n")
        parts.append("get *\n")
        stream = "".join(parts).encode()

        def replies(srv: Server, pieces: List[bytes]) -> bytes:
            c = RawConnection(srv.address)
            try:
                for piece in pieces:
                    c.send(piece)
                return b"".join(c.reply() for _ in range(stream.count(b"\n")))
            finally:
                c.close()

        with Server() as embedded:
            reference = replies(embedded, [stream])
        self.assertIn(b"error\nwrong command\n\n", reference)
        rng = random.Random(3)
        cuts = sorted(rng.sample(range(1, len(stream)), 40))
        for pieces in ([stream], [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]):
            self.cluster.flush()
            answer = replies(self.gateway(), pieces)
            # get * lists keys in slot order: compare its lines as a set.
            *head, last_get = answer.split(b"\n\nok\n")
            *want_head, want_last = reference.split(b"\n\nok\n")
            self.assertEqual(head, want_head)
            self.assertEqual(sorted(last_get.split(b"\n")), sorted(want_last.split(b"\n")))

    def test_get_star_streams_many_keys_across_every_shard(self) -> None:
        srv = self.gateway()
        with Client(*srv.address, timeout=BOUND) as c:
            points = [(f"host{i}.cpu", float(i), t) for i in range(3000) for t in (1, 2)]
            c.put_many(points)
            everything = c.get("*")
        self.assertEqual(len(everything), 3000)
        self.assertEqual(everything["host2999.cpu"], [(1, 2999.0), (2, 2999.0)])
        # Every master holds some of the keys: the walk went shard by shard.
        for node in self.cluster.masters():
            self.assertGreater(int(node.cli("dbsize").strip()), 100, node.port)

    def test_the_client_moves_to_the_other_gateway_when_one_dies(self) -> None:
        first, second = self.gateway_process(), self.gateway_process()
        storm = Storm([first.address, second.address], "moving")
        try:
            storm.wait_for(200)
            first.kill()
            before = len(storm.acknowledged)
            storm.wait_for(before + 200)
        finally:
            storm.stop()
        with Client(*second.address, timeout=BOUND) as c:
            stored = {t for t, _ in c.get("moving").get("moving", [])}
        lost = set(storm.acknowledged) - stored
        self.assertEqual(lost, set(), f"{len(lost)} acknowledged puts lost")

    def test_a_gateway_killed_during_a_storm_loses_no_acknowledged_put(self) -> None:
        doomed, survivor = self.gateway_process(), self.gateway_process()
        storms = [Storm([doomed.address], "via-doomed"), Storm([survivor.address], "via-survivor")]
        try:
            for storm in storms:
                storm.wait_for(100)
            doomed.kill()
            storms[1].wait_for(len(storms[1].acknowledged) + 100)
        finally:
            for storm in storms:
                storm.stop()
        with Client(*survivor.address, timeout=BOUND) as c:
            everything = c.get("*")
        for storm in storms:
            stored = {t for t, _ in everything.get(storm.key, [])}
            self.assertEqual(set(storm.acknowledged) - stored, set(), storm.key)
        self.assertGreater(storms[0].failures, 0, "the killed gateway's client saw no failure")

    def test_resharding_while_serving_loses_nothing(self) -> None:
        srv = self.gateway()
        with Client(*srv.address, timeout=BOUND) as c:
            c.put_many([(f"r{i}", float(i), 1) for i in range(2000)])
        storm = Storm([srv.address], "during-reshard")
        try:
            storm.wait_for(50)
            self.cluster.reshard(2000)
            self.cluster.wait_ok()
            storm.wait_for(len(storm.acknowledged) + 50)
        finally:
            storm.stop()
        self.assertEqual(storm.failures, 0)
        with Client(*srv.address, timeout=BOUND) as c:
            everything = c.get("*")
        self.assertEqual(len([k for k in everything if k.startswith("r")]), 2000)
        stored = {t for t, _ in everything["during-reshard"]}
        self.assertEqual(set(storm.acknowledged) - stored, set())


class Queries(GatewayTestCase):
    def test_the_gateway_answers_queries_itself_as_the_embedded_store_does(self) -> None:
        rng = random.Random(11)
        points = [(f"{host}.{metric}", round(rng.uniform(-50, 50), 1), rng.randrange(0, 5000))
                  for host in ("web1", "web2", "db1") for metric in ("cpu", "mem")
                  for _ in range(150)]
        queries = [
            "get *.cpu from=1000 until=3000",
            "get web?.{cpu,mem} step=300 agg=max",
            "get db1.mem from=0 until=5000 step=60 agg=count",
            "get * points=10 agg=avg",
            "get web1.cpu from=4000 agg=last step=1000",
            "get nothing.here from=1",
            "get [a-z]eb2.* until=100",
            "get web1.cpu from=10 until=10",
            "get web1.cpu step=0",
        ]

        def answers(srv: Server) -> List[bytes]:
            with Client(*srv.address, timeout=BOUND) as c:
                c.put_many(points)
            conn = RawConnection(srv.address)
            try:
                out = []
                for query in queries:
                    conn.send(query.encode() + b"\n")
                    out.append(conn.reply())
                return out
            finally:
                conn.close()

        api = {"since": 1000, "until": 2000, "step": 100, "agg": "min"}
        with Server() as embedded:
            want = answers(embedded)
            with Client(*embedded.address, timeout=BOUND) as c:
                want_api = c.get("web*.cpu", **api)
        gateway = self.gateway()
        got = answers(gateway)
        for query, mine, theirs in zip(queries, got, want):
            with self.subTest(query=query):
                self.assertNotEqual(mine, b"error\nwrong command\n\n")
                # Keys come in slot order from Redis: compare lines as sets.
                self.assertEqual(mine.split(b"\n")[0], theirs.split(b"\n")[0])
                self.assertEqual(sorted(mine.split(b"\n")), sorted(theirs.split(b"\n")))
        # And through the client's API.
        with Client(*gateway.address, timeout=BOUND) as c:
            self.assertEqual(c.get("web*.cpu", **api), want_api)
            # The columns reply, written by the embedded server's writer.
            sock = connect(gateway.address)
            try:
                for line, pattern, options in [
                    (b"get web?.cpu step=300 agg=max format=columns\n", "web?.cpu", {"step": 300, "agg": "max"}),
                    (b"get db1.mem format=columns\n", "db1.mem", {}),
                ]:
                    sock.sendall(line)
                    self.assertEqual(read_frame(sock), flat(c.get(pattern, **options)))  # type: ignore[arg-type]
            finally:
                sock.close()
            if HAS_NUMPY:
                self.assertEqual(listed(c.get_columns("web*.cpu", **api)), flat(want_api))
                self.assertEqual(listed(c.get_columns("*")), flat(c.get("*")))

    def test_retention_holds_through_the_gateway(self) -> None:
        now = int(time.time())
        srv = Server(store=self.cluster.url, retention="1h")
        self.addCleanup(srv.close)
        with Client(*srv.address, timeout=BOUND) as c:
            c.put_many([("k", 1.0, now - 7200), ("k", 2.0, now)])
            self.assertEqual(c.get("k"), {"k": [(now, 2.0)]})
            self.assertEqual(c.get("*"), {"k": [(now, 2.0)]})
            self.assertEqual(c.get("k", since=0), {"k": [(now, 2.0)]})
        # The old point was never written to Redis.
        fields = [node.cli("hkeys", "m:k").split() for node in self.cluster.masters()
                  if "m:k" in node.cli("keys", "*").split()]
        self.assertEqual(fields, [[str(now)]])


class MasterKilled(GatewayTestCase):
    """``kill -9`` of the master holding the storm's key, with Redis's
    default durability (appendonly off, asynchronous replication) and with
    the gateway's ``wait=1`` (each put acknowledged once a replica has it).
    Prints the acknowledged puts lost; only ``wait=1`` must lose none."""

    def storm_through_a_master_kill(self, query: str, key: str) -> Tuple[int, int]:
        srv = self.gateway(query)
        storm = Storm([srv.address], key)
        try:
            storm.wait_for(200)
            master = self.cluster.node_of_key("m:" + key)
            master.kill()
            self.cluster.wait_failover(master)
            # Restarted, it rejoins as a replica of its successor (which
            # until then has none: with wait=1 puts are refused meanwhile).
            master.start()
            self.cluster.wait_replicas_linked()
            storm.wait_for(len(storm.acknowledged) + 100)
        finally:
            storm.stop()
        with Client(*srv.address, timeout=BOUND) as c:
            stored = {t for t, _ in c.get(key).get(key, [])}
        lost = len(set(storm.acknowledged) - stored)
        print(f"\n  master kill -9, store{query or ' (no wait)'}: {len(storm.acknowledged)} "
              f"acknowledged, {lost} lost, {storm.failures} refused")
        return len(storm.acknowledged), lost

    def test_with_wait_for_a_replica_no_acknowledged_put_is_lost(self) -> None:
        acknowledged, lost = self.storm_through_a_master_kill("?wait=1&wait_timeout=500", "storm-wait")
        self.assertGreater(acknowledged, 300)
        self.assertEqual(lost, 0)

    def test_without_wait_the_loss_is_reported(self) -> None:
        acknowledged, lost = self.storm_through_a_master_kill("", "storm-nowait")
        self.assertGreater(acknowledged, 300)
        self.assertLessEqual(lost, acknowledged)


class MasterKilledWithAppendfsyncAlways(MasterKilled):
    """The same with every node writing an append-only file fsynced before
    each reply (``appendonly yes``, ``appendfsync always``): the figures say
    whether the file changes what a failover loses (it does not: the killed
    master's successor is its replica, whatever the file holds)."""

    settings = {"appendonly": "yes", "appendfsync": "always"}


class MinReplicasToWrite(GatewayTestCase):
    """``min-replicas-to-write 1``: a master whose replica is gone refuses
    writes, so a put to its slots is an error reply, never an ``ok``."""

    settings = {"min-replicas-to-write": "1", "min-replicas-max-lag": "2"}

    def test_a_master_without_its_replica_refuses_puts_with_an_error_reply(self) -> None:
        srv = self.gateway()
        c = RawConnection(srv.address)
        self.addCleanup(c.close)
        master = self.cluster.node_of_key("m:lonely")
        # A replica only counts once the master has had its acknowledgement
        # (sent each second); until then a loaded machine sees NOREPLICAS.
        wait_until(lambda: int(master.info("replication").get("min_slaves_good_slaves", "0")) >= 1,
                   3 * BOUND, interval=0.05, message="the replica counted as good")
        self.assertEqual(c.ask(b"put lonely 1 1\n"), b"ok\n\n")
        replica = next(node for node in self.cluster.live_nodes()
                       if node.info("replication").get("master_port") == str(master.port))
        replica.kill()
        self.addCleanup(self.cluster.wait_replicas_linked)
        self.addCleanup(replica.start)
        # The master notices within min-replicas-max-lag seconds.
        wait_until(lambda: c.ask(b"put lonely 2 2\n") != b"ok\n\n", 3 * BOUND)
        reply = c.ask(b"put lonely 3 3\n")
        self.assertTrue(reply.startswith(b"error\nstore failed: ") and b"NOREPLICAS" in reply.upper()
                        or b"not enough good replicas" in reply, reply)
        self.assertEqual(c.ask(b"get lonely\n")[:3], b"ok\n")


class StoreFailures(TestCase):
    def setUp(self) -> None:
        super().setUp()
        skip_without_redis(self)

    def test_a_store_that_does_not_answer_at_start_is_an_oserror(self) -> None:
        port = free_port()
        started = time.monotonic()
        with self.assertRaisesRegex(OSError, f"cannot connect to the store 127.0.0.1:{port}"):
            Server(store=f"redis-cluster://127.0.0.1:{port}")
        self.assertLess(time.monotonic() - started, BOUND)

    def test_bad_store_arguments_are_value_errors(self) -> None:
        for bad in ("http://x:1", "redis://x", "redis-cluster://a:1?wait=x", "redis-cluster://a:1?fsync=1"):
            with self.assertRaises(ValueError, msg=bad):
                Server(store=bad)
        with self.assertRaisesRegex(ValueError, "store or data"):
            Server(store="redis://127.0.0.1:1", data="x.log")

    def test_settings_of_the_embedded_store_are_refused_not_ignored(self) -> None:
        # A gateway has no journal to fsync and no store to bound: taking
        # fsync="always" silently would promise a durability it lacks.
        port = free_port()   # nothing listens: the refusal comes first
        for setting in ({"fsync": "always"}, {"fsync": "no"}, {"max_memory": "1GiB"}):
            name = next(iter(setting))
            with self.assertRaisesRegex(ValueError, f"invalid {name}: is a setting of the embedded store", msg=setting):
                Server(store=f"redis-cluster://127.0.0.1:{port}", **setting)
        with Server(fsync=None) as server:   # None is the default, everysec
            self.assertEqual(server.fsync, "everysec")

    def test_a_store_lost_while_serving_is_an_error_reply_not_a_hang(self) -> None:
        cluster = RedisCluster()
        self.addCleanup(cluster.close)
        srv = Server(store=cluster.url)
        self.addCleanup(srv.close)
        c = RawConnection(srv.address)
        self.addCleanup(c.close)
        self.assertEqual(c.ask(b"put k 1 1\n"), b"ok\n\n")
        for node in cluster.nodes:
            node.kill()
        started = time.monotonic()
        put = c.ask(b"put k 2 2\n")
        get = c.ask(b"get *\n")
        self.assertLess(time.monotonic() - started, BOUND)
        self.assertTrue(put.startswith(b"error\nstore failed: "), put)
        self.assertTrue(get.startswith(b"error\nstore failed: "), get)
        self.assertTrue(put.endswith(b"\n\n") and put.count(b"\n") == 3, put)


if __name__ == "__main__":
    unittest.main()
