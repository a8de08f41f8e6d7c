"""Put and get throughput of the server as a gateway to a Redis Cluster (1
and 2 gateways in front of one 3-master/3-replica cluster on loopback)
against the embedded store, side by side in one run.

    python benches/gateway.py [--points 40000] [--clients 4] [--rounds 3]

Every server runs as ``python -m client serve`` in a process of its own; the
clients are threads of this process (the client releases the GIL while it
waits), spread round-robin over the gateways. Measured per round and
contender, interleaved, medians printed:

- puts: each client sends its share of ``--points`` with ``put_many``
  (pipelined), distinct keys, new to the store (each contender its own);
- puts again: the same keys once more, later timestamps (keys a gateway
  already knows are indexed);
- single puts: each client sends 500 one-by-one ``put`` round trips;
- get: each client asks ``get`` of one 100-point key 200 times;
- get *: one client reads every key back.

For the gateways it also prints the Redis commands each put cost (the
masters' ``INFO commandstats`` counts, reset before each put phase, summed
over the masters; the counting's own ``INFO`` and ``CONFIG RESETSTAT`` left
out), and where the CPU of the ``put_many`` phase went: CPU seconds per
million points of the servers, the Redis nodes (masters and replicas) and
the clients, and the rate the cores would allow if Redis' share were all
the work (its ceiling: no gateway can put faster than that).

Needs redis-server and redis-cli (Debian's ``redis-server`` package).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time

import psutil

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from client import Client  # noqa: E402
from tests.support.processes import ServerProcess  # noqa: E402
from tests.support.redis_cluster import RedisCluster, redis_missing  # noqa: E402


def in_threads(count, work):
    """Runs ``work(i)`` in ``count`` threads; returns the wall time."""
    errors = []

    def run(i):
        try:
            work(i)
        except BaseException as e:  # reported after the join
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    if errors:
        raise errors[0]
    return time.perf_counter() - started


def commands_run(cluster):
    """Commands the cluster's masters ran since their last reset, by name,
    and the reset for the next count."""
    calls = {}
    for node in cluster.masters():
        for name, fields in node.info("commandstats").items():
            command = name.removeprefix("cmdstat_")
            if command not in ("info", "config|resetstat"):
                calls[command] = calls.get(command, 0) + int(fields.split(",")[0].split("=")[1])
        node.cli("config", "resetstat")
    return calls


def cpu_seconds(pids):
    """User and system CPU seconds the processes ``pids`` used so far."""
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def measure(addresses, points, clients, tag, cpu, cluster=None):
    """One round against the servers at ``addresses``: rates per second,
    with ``cluster`` the Redis commands per point of each put phase, and
    the CPU seconds per point of the put_many phase, by the process groups
    of ``cpu`` (name: pids)."""
    share = points // clients
    conns = [Client(*addresses[i % len(addresses)], timeout=60) for i in range(clients)]
    try:
        rates, costs = {}, {}
        for what, base in (("puts (put_many)", 0), ("puts again (known keys)", share)):
            if cluster is not None:
                commands_run(cluster)
            # The clients build their batches before the clock starts.
            batches = [[(f"{tag}.c{i}.k{j}", j * 0.5, base + j) for j in range(share)]
                       for i in range(clients)]
            before = {group: cpu_seconds(pids) for group, pids in cpu.items()}
            elapsed = in_threads(clients, lambda i: conns[i].put_many(batches[i]))
            rates[what] = share * clients / elapsed
            if what == "puts (put_many)":
                costs["cpu"] = {group: (cpu_seconds(pids) - before[group]) / (share * clients)
                                for group, pids in cpu.items()}
            if cluster is not None:
                costs[what] = {name: calls / (share * clients)
                               for name, calls in commands_run(cluster).items()}
        elapsed = in_threads(clients, lambda i: [
            conns[i].put(f"{tag}.single{i}", float(j), timestamp=j) for j in range(500)])
        rates["single puts"] = 500 * clients / elapsed
        if cluster is not None:
            costs["single puts"] = {name: calls / (500 * clients)
                                    for name, calls in commands_run(cluster).items()}
        conns[0].put_many([(f"{tag}.hot", float(j), j) for j in range(100)])
        elapsed = in_threads(clients, lambda i: [conns[i].get(f"{tag}.hot") for _ in range(200)])
        rates["get (100 points)"] = 200 * clients / elapsed
        started = time.perf_counter()
        everything = conns[0].get("*")
        elapsed = time.perf_counter() - started
        rates["get * (points/s)"] = sum(len(v) for v in everything.values()) / elapsed
        return rates, costs
    finally:
        for c in conns:
            c.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=40000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    reason = redis_missing()
    if reason:
        sys.exit(f"gateway benchmark skipped: {reason}")
    cluster = RedisCluster()
    servers = []
    try:
        embedded = ServerProcess(kind="cli")
        gateways = [ServerProcess(kind="cli", options=["--store", cluster.url]) for _ in range(2)]
        servers = [embedded, *gateways]
        contenders = {
            "embedded store": ([embedded], [embedded.address]),
            "1 gateway": (gateways[:1], [gateways[0].address]),
            "2 gateways": (gateways, [g.address for g in gateways]),
        }
        redis_pids = [node.proc.pid for node in cluster.nodes if node.proc is not None]
        results = {name: {} for name in contenders}
        costs = {name: {} for name in contenders}
        cpus = {name: [] for name in contenders}
        for r in range(args.rounds):
            for n, (name, (serving, addresses)) in enumerate(contenders.items()):
                counted = None if name == "embedded store" else cluster
                cpu = {"servers": [s.pid for s in serving], "redis": redis_pids,
                       "clients": [os.getpid()]}
                # Keys of their own: each contender creates its keys (the
                # gateways share one cluster, where overwriting another
                # contender's keys would cost Redis less).
                rates, cost = measure(addresses, args.points, args.clients, f"r{r}.{n}", cpu,
                                      counted)
                cpus[name].append(cost.pop("cpu"))
                for what, rate in rates.items():
                    results[name].setdefault(what, []).append(rate)
                for what, per_command in cost.items():
                    costs[name].setdefault(what, []).append(per_command)
            cluster.flush()
        print(f"{os.cpu_count()} cores, {args.clients} client threads, {args.points} points "
              f"per put_many round, median of {args.rounds} rounds (per second)")
        whats = list(next(iter(results.values())))
        print(f"| | {' | '.join(whats)} |")
        print(f"|---|{'---|' * len(whats)}")
        for name, rates in results.items():
            cells = []
            for what in whats:
                rate = statistics.median(rates[what])
                base = statistics.median(results["embedded store"][what])
                cells.append(f"{rate:,.0f} ({rate / base:.2f}x)")
            print(f"| {name} | {' | '.join(cells)} |")
        print("\nRedis commands per point (median of the rounds):")
        for name, phases in costs.items():
            for what, rounds in phases.items():
                names = sorted({c for per in rounds for c in per})
                each = {c: statistics.median(per.get(c, 0) for per in rounds) for c in names}
                detail = ", ".join(f"{c} {n:.3f}" for c, n in each.items() if n >= 0.0005)
                print(f"  {name}, {what}: {sum(each.values()):.3f} ({detail})")
        cores = os.cpu_count() or 1
        embedded_rate = statistics.median(results["embedded store"]["puts (put_many)"])
        print("\nCPU seconds per million points of the put_many phase (median of the rounds):")
        for name, rounds in cpus.items():
            each = {g: statistics.median(r[g] for r in rounds) * 1e6 for g in rounds[0]}
            line = ", ".join(f"{g} {v:.2f}" for g, v in each.items())
            if each["redis"] > 0.001:
                ceiling = cores / (each["redis"] / 1e6)
                line += (f"; Redis alone allows {ceiling:,.0f} points/s on {cores} cores "
                         f"({ceiling / embedded_rate:.2f}x the embedded store)")
            print(f"  {name}: {line}")
    finally:
        for server in servers:
            server.kill()
        cluster.close()


if __name__ == "__main__":
    main()
