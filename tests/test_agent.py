"""The agent's buffering, batching and fallback logic, driven in-process
through its injectable hooks (a fake metric source, connection and clock),
so no test waits on a real interval. The agent as a command, in a
subprocess against a real server, is tested in ``test_cli``."""

from __future__ import annotations

import errno
import io
import os
import sys
import tempfile
import unittest
import unittest.mock
from typing import Dict, List, Optional, Tuple

from client import Client, ClientRejectedError, ClientSocketError, ClientTimeoutError, _agent
from tests.support import TestCase
from tests.support.cli import DEADLINE, Server


class FakeClock:
    """Wall and monotonic time that only move when the agent sleeps (or a
    fake source says a sample took time)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.sleeps: List[float] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now - 1_600_000_000.0

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, seconds
        self.sleeps.append(seconds)
        self.now += seconds


class FakeServer:
    """What a real server would store ({(key, ts): value}, a later put for
    the same key and second replaces the earlier), plus switches to fail."""

    def __init__(self) -> None:
        self.store: Dict[Tuple[str, int], float] = {}
        self.up = True
        self.fail_after: Optional[int] = None  # store this many points of the next batch, then drop
        self.refuse: set = set()  # keys answered with an error
        self.acknowledged: List[Tuple[str, float, int]] = []
        self.connects = 0
        self.max_batch = 0

    def connect(self) -> "FakeClient":
        self.connects += 1
        if not self.up:
            # As the client raises it: the message, the address and what the OS said.
            raise ClientSocketError("cannot connect to 127.0.0.1:8888: ConnectionRefusedError: [Errno 111] Connection refused",
                                    "127.0.0.1:8888", errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))
        return FakeClient(self)


class FakeClient:
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.closed = False

    def put_many(self, points, *, window=None) -> None:
        server = self.server
        assert not self.closed
        points = list(points)
        server.max_batch = max(server.max_batch, len(points))
        if not server.up:
            raise ClientSocketError("connection reset by peer")
        rejected = []
        for index, (key, value, timestamp) in enumerate(points):
            if server.fail_after is not None and index >= server.fail_after:
                server.fail_after = None
                raise ClientTimeoutError("timed out after 5.000 s")
            if key in server.refuse:
                rejected.append((index, "wrong command"))
                continue
            server.store[(key, timestamp)] = value
        server.acknowledged.extend(p for i, p in enumerate(points) if i not in {r for r, _ in rejected})
        if rejected:
            raise ClientRejectedError(f"{len(rejected)} of {len(points)} points refused", rejected, len(points))

    def close(self) -> None:
        self.closed = True


class CountingSource:
    """Metric values that tell which sample they come from: sample n gives
    ``{"a": n, "b": n + 0.5, "c": -n}``."""

    def __init__(self, clock: Optional[FakeClock] = None, takes: float = 0.0) -> None:
        self.samples = 0
        self.clock = clock
        self.takes = takes

    def __call__(self) -> Dict[str, float]:
        self.samples += 1
        if self.clock is not None:
            self.clock.now += self.takes
        n = self.samples
        return {"a": n, "b": n + 0.5, "c": -n}


def make_agent(server: FakeServer, clock: FakeClock, **kwargs) -> Tuple[_agent.Agent, io.StringIO]:
    out = io.StringIO()
    kwargs.setdefault("source", CountingSource())
    agent = _agent.Agent(
        server.connect,
        kwargs.pop("source"),
        name="h",
        interval=kwargs.pop("interval", 10),
        server="127.0.0.1:8888",
        clock=clock.time,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        out=out,
        **kwargs,
    )
    return agent, out


def expected_points(first_ts: int, ticks: int, interval: int = 10) -> Dict[Tuple[str, int], float]:
    points = {}
    for n in range(1, ticks + 1):
        ts = first_ts + (n - 1) * interval
        points[("h.a", ts)] = n
        points[("h.b", ts)] = n + 0.5
        points[("h.c", ts)] = -n
    return points


class AgentLogicTests(TestCase):
    def test_steady_run(self) -> None:
        server, clock = FakeServer(), FakeClock()
        agent, out = make_agent(server, clock, count=3)
        self.assertEqual(agent.run(), 0)
        self.assertEqual(server.store, expected_points(1_700_000_000, 3))
        self.assertEqual(clock.sleeps, [10, 10])  # count=3: no sleep after the last
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 3)
        self.assertTrue(all("sent 3 points to 127.0.0.1:8888" in line for line in lines), lines)
        self.assertEqual(server.connects, 1)  # one connection kept
        self.assertEqual(len(server.acknowledged), 9)

    def test_server_down_then_back_no_loss_no_duplicates(self) -> None:
        server, clock = FakeServer(), FakeClock()
        agent, out = make_agent(server, clock, buffer_size=100)
        lines = []
        for tick in range(10):
            server.up = tick not in (3, 4, 5, 6)
            lines.append(agent.tick())
            clock.sleep(10)
        self.assertEqual(server.store, expected_points(1_700_000_000, 10))
        # Every point was acknowledged exactly once: none lost, none sent twice.
        self.assertEqual(len(server.acknowledged), 30)
        self.assertEqual(len(set(server.acknowledged)), 30)
        self.assertEqual(len(agent.buffer), 0)
        self.assertEqual((agent.sent, agent.dropped), (30, 0))
        # The kept connection fails first, then reconnecting is refused.
        self.assertIn("127.0.0.1:8888 unavailable (connection reset by peer); 3 points buffered (max 100)", lines[3])
        self.assertIn("127.0.0.1:8888 unavailable (Connection refused); 6 points buffered (max 100)", lines[4])
        self.assertIn("12 points buffered", lines[6])
        self.assertIn("sent 15 points to 127.0.0.1:8888 (12 from the buffer)", lines[7])
        self.assertIn("sent 3 points", lines[8])

    def test_buffer_bound_drops_oldest(self) -> None:
        server, clock = FakeServer(), FakeClock()
        agent, out = make_agent(server, clock, buffer_size=7)
        server.up = False
        lines = []
        for _ in range(5):  # 15 points for a 7-point buffer
            lines.append(agent.tick())
            self.assertLessEqual(len(agent.buffer), 7)
            clock.sleep(10)
        self.assertEqual(agent.dropped, 8)
        self.assertIn("buffer full, dropped the 2 oldest", lines[2])
        server.up = True
        lines.append(agent.tick())
        everything = expected_points(1_700_000_000, 6)
        # The newest 7 of the outage survive, then the sample taken once back.
        survivors = sorted(everything.items(), key=lambda kv: (kv[0][1], kv[0][0]))[8:]
        self.assertEqual(server.store, dict(survivors))
        self.assertEqual(len(server.acknowledged), len(set(server.acknowledged)))
        self.assertIn("sent 10 points", lines[-1])

    def test_connection_lost_mid_batch(self) -> None:
        server, clock = FakeServer(), FakeClock()
        agent, out = make_agent(server, clock, buffer_size=100, batch_points=4)
        server.up = False
        for _ in range(3):
            agent.tick()
            clock.sleep(10)
        server.up = True
        server.fail_after = 2  # the first batch of 4 stores 2 points, then times out
        line = agent.tick()
        self.assertIn("unavailable (timed out after 5.000 s)", line)
        self.assertEqual(len(agent.buffer), 12)
        self.assertEqual(len(server.store), 2)
        clock.sleep(10)
        line = agent.tick()
        self.assertIn("sent 15 points", line)
        self.assertEqual(server.store, expected_points(1_700_000_000, 5))
        self.assertEqual(len(agent.buffer), 0)
        self.assertEqual(server.max_batch, 4)
        self.assertEqual(server.connects, 1 + 1 + 1 + 1 + 1)  # 3 refused, then one per connection

    def test_partial_progress_kept_when_later_batch_fails(self) -> None:
        server, clock = FakeServer(), FakeClock()
        agent, out = make_agent(server, clock, buffer_size=100, batch_points=3)
        server.up = False
        for _ in range(3):
            agent.tick()
            clock.sleep(10)
        server.up = True
        original = FakeClient.put_many
        calls = []

        def flaky(client_self, points, *, window=None):
            calls.append(list(points))
            if len(calls) == 2:  # the second batch is lost before the server sees it
                raise ClientSocketError("connection reset by peer")
            return original(client_self, points, window=window)

        with unittest.mock.patch.object(FakeClient, "put_many", flaky):
            line = agent.tick()
        self.assertIn("unavailable (connection reset by peer); sent 3; 9 points buffered", line)
        self.assertEqual(len(agent.buffer), 9)
        clock.sleep(10)
        self.assertIn("sent 12 points", agent.tick())
        self.assertEqual(server.store, expected_points(1_700_000_000, 5))
        # The acknowledged batch left the buffer at once: nothing sent twice.
        self.assertEqual(len(server.acknowledged), 15)
        self.assertEqual(len(set(server.acknowledged)), 15)

    def test_refused_points_are_not_retried(self) -> None:
        server, clock = FakeServer(), FakeClock()
        server.refuse = {"h.b"}
        agent, out = make_agent(server, clock)
        line = agent.tick()
        self.assertIn("sent 2 points", line)
        self.assertIn("server refused 1", line)
        self.assertEqual(len(agent.buffer), 0)
        self.assertEqual(agent.rejected, 1)

    def test_unsent_points_at_the_end_raise(self) -> None:
        server, clock = FakeServer(), FakeClock()
        server.up = False
        agent, out = make_agent(server, clock, count=2)
        with self.assertRaisesRegex(_agent.AgentError, "^6 points could not be sent to 127.0.0.1:8888$"):
            agent.run()
        self.assertEqual(len(out.getvalue().splitlines()), 2)

    def test_pacing_on_a_fixed_grid(self) -> None:
        clock = FakeClock()
        server = FakeServer()
        agent, _ = make_agent(server, clock, count=4, source=CountingSource(clock, takes=3))
        agent.run()
        self.assertEqual(clock.sleeps, [7, 7, 7])  # sampling takes 3 s of each 10 s

    def test_late_interval_waits_for_next_slot(self) -> None:
        clock = FakeClock()
        server = FakeServer()
        agent, _ = make_agent(server, clock, count=3, source=CountingSource(clock, takes=25))
        agent.run()
        # Each sample takes 25 s: the next slot of the 10 s grid is 5 s away.
        self.assertEqual(clock.sleeps, [5, 5])
        timestamps = sorted({ts for (_, ts) in server.store})
        self.assertEqual(len(timestamps), 3)

    def test_non_numeric_values_are_skipped(self) -> None:
        server, clock = FakeServer(), FakeClock()
        agent, _ = make_agent(server, clock, source=lambda: {"a": 1, "b": float("nan"), "c": None, "d": True})
        line = agent.tick()
        self.assertIn("sent 1 point to", line)
        self.assertIn("no value for b, c, d", line)
        self.assertEqual(server.store, {("h.a", 1_700_000_000): 1})

    def test_psutil_source_with_a_fake_psutil(self) -> None:
        import types

        class Error(Exception):
            pass

        def disk_usage(path):
            raise PermissionError(13, "denied", path)

        fake = types.SimpleNamespace(
            Error=Error,
            cpu_percent=lambda interval=None: 12.5 if interval else 30.0,
            virtual_memory=lambda: types.SimpleNamespace(used=1000),
            disk_usage=disk_usage,
            net_io_counters=lambda: None,
        )
        with unittest.mock.patch.dict(sys.modules, {"psutil": fake}):
            source = _agent.PsutilSource()
            first, second = source(), source()
        self.assertEqual(first, {"cpu": 12.5, "memory": 1000, "disk": None, "net_sent": None, "net_recv": None})
        self.assertEqual(second["cpu"], 30.0)
        server, clock = FakeServer(), FakeClock()
        agent, _ = make_agent(server, clock, source=lambda: first)
        self.assertIn("sent 2 points to 127.0.0.1:8888; no value for disk, net_sent, net_recv", agent.tick())

    def test_psutil_missing(self) -> None:
        with unittest.mock.patch.dict(sys.modules, {"psutil": None}):
            with self.assertRaisesRegex(_agent.AgentError, r"install with pip install 'metrics-client\[agent\]'$"):
                _agent.PsutilSource()

    def test_run_closes_connection(self) -> None:
        server, clock = FakeServer(), FakeClock()
        clients = []
        connect = server.connect

        def tracking_connect():
            clients.append(connect())
            return clients[-1]

        server.connect = tracking_connect
        agent, _ = make_agent(server, clock, count=2)
        agent.run()
        self.assertEqual(len(clients), 1)
        self.assertTrue(clients[0].closed)

    def test_real_server_restarted(self) -> None:
        """The agent logic with the real Client against a real server that
        stops and comes back on the same port with its data file."""
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "m.log")
            server = Server(data=data, fsync="always")
            host, port = server.address[0], server.address[1]
            clock = FakeClock()
            agent, out = make_agent(
                FakeServer(), clock, buffer_size=100, count=None
            )
            agent.connect = lambda: Client(host, port, timeout=DEADLINE)
            try:
                lines = [agent.tick()]
                clock.sleep(10)
                server.close()
                lines += [agent.tick()]
                clock.sleep(10)
                lines += [agent.tick()]
                clock.sleep(10)
                server = Server(port=port, data=data, fsync="always")
                lines += [agent.tick()]
                with Client(host, port, timeout=DEADLINE) as c:
                    stored = c.get("*")
            finally:
                server.close()
        self.assertIn("unavailable", lines[1])
        self.assertIn("6 points buffered", lines[2])
        self.assertIn("sent 9 points", lines[3])
        expected = {}
        for (key, ts), value in expected_points(1_700_000_000, 4).items():
            expected.setdefault(key, []).append((ts, float(value)))
        self.assertEqual(stored, expected)
