"""Client, AsyncClient and the command line against course-style servers.

The servers (tests/support/course_servers.py) handle one command per read,
as most week-6 solutions do. One request at a time works with all of them;
``put_many(..., window=1)`` does too. A pipelined batch makes them answer
fewer replies than requests and fall silent: the client must then fail
within its timeout, saying how many of the batch were answered and that the
server may not support pipelining, and keep working afterwards.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import subprocess
import sys
import time
import unittest

import client
from client import _agent
from tests.support import BOUND, TestCase
from tests.support.course_servers import COURSE_SERVERS

POINTS = [("load", 0.5, 1), ("load", 1.25, 2), ("temp", 20, 3)]
EXPECTED = {"load": [(1, 0.5), (2, 1.25)], "temp": [(3, 20.0)]}


class CourseServerTest(TestCase):
    def servers(self):
        for kind in COURSE_SERVERS:
            server = kind()
            self.addCleanup(server.stop)
            yield kind.__name__, server

    def test_client_one_request_at_a_time(self):
        for name, server in self.servers():
            with self.subTest(server=name):
                c = self.client(server.address, timeout=BOUND)
                c.put("load", 0.5, 1)
                c.put_many(POINTS[1:], window=1)
                self.assertEqual(c.get("*"), EXPECTED)
                self.assertEqual(c.get("temp"), {"temp": [(3, 20.0)]})
                c.connection.sendall(b"malformed command test\n")
                with self.assertRaises(client.ClientProtocolError):
                    c._read()

    def test_a_pipelined_batch_fails_in_time_and_says_why(self):
        timeout = 0.5
        for name, server in self.servers():
            with self.subTest(server=name, flaw=server.FLAW):
                c = self.client(server.address, timeout=timeout)
                began = time.monotonic()
                with self.assertRaises(client.ClientTimeoutError) as caught:
                    c.put_many(POINTS)
                self.assertLess(time.monotonic() - began, timeout + BOUND / 2)
                message = str(caught.exception)
                self.assertIn("answered 1 of the 3 requests", message)
                self.assertIn("may not support pipelining", message)
                self.assertIn("window=1", message)
                # The connection was discarded; one at a time still works.
                c.put_many(POINTS, window=1)
                self.assertEqual(c.get("*"), EXPECTED)

    def test_async_client(self):
        for name, server in self.servers():
            with self.subTest(server=name):
                host, port = server.address
                asyncio.run(self.async_session(host, port))

    async def async_session(self, host, port):
        async with client.AsyncClient(host, port, timeout=0.5) as c:
            await c.put("load", 0.5, 1)
            await c.put_many(POINTS[1:], window=1)
            self.assertEqual(await c.get("*"), EXPECTED)
            with self.assertRaises(client.ClientTimeoutError) as caught:
                await c.put_many(POINTS)
            self.assertIn("may not support pipelining", str(caught.exception))
            self.assertEqual(await c.get("temp"), {"temp": [(3, 20.0)]})

    def test_command_line(self):
        for name, server in self.servers():
            with self.subTest(server=name):
                host, port = server.address
                common = ["--host", host, "--port", str(port)]
                cli = [sys.executable, "-m", "client"]
                put = subprocess.run([*cli, "put", *common, "load", "0.5", "--timestamp", "1"],
                                     capture_output=True, text=True, timeout=BOUND,
                                     stdin=subprocess.DEVNULL)
                self.assertEqual(put.returncode, 0, put.stderr)
                get = subprocess.run([*cli, "get", *common, "load", "--json"],
                                     capture_output=True, text=True, timeout=BOUND,
                                     stdin=subprocess.DEVNULL)
                self.assertEqual(get.returncode, 0, get.stderr)
                self.assertEqual(get.stdout.strip(), '{"load": [[1, 0.5]]}')


class AgentTest(TestCase):
    """The agent sends each sample with put_many: with ``window=1``
    (``--window 1``) it works against these servers; pipelined (the
    default), the first batch stalls, and the agent falls back to
    ``window=1`` by itself, says so once and sends that batch again."""

    TIMEOUT = 0.5
    START = 1_700_000_000

    def servers(self):
        for kind in COURSE_SERVERS:
            server = kind()
            self.addCleanup(server.stop)
            yield kind.__name__, server

    def agent(self, server, window, count=1):
        host, port = server.address
        out = io.StringIO()
        clock = [float(self.START)]

        def sleep(seconds):
            clock[0] += seconds

        agent = _agent.Agent(
            lambda: client.Client(host, port, timeout=self.TIMEOUT),
            lambda: {"cpu": 12.5, "memory": 4096, "disk": 1.0e9},
            name="course", count=count, window=window, out=out, interval=1,
            clock=lambda: clock[0], monotonic=lambda: clock[0], sleep=sleep)
        return agent, out

    def expected(self, intervals):
        return {
            "course.cpu": [(self.START + i, 12.5) for i in range(intervals)],
            "course.memory": [(self.START + i, 4096.0) for i in range(intervals)],
            "course.disk": [(self.START + i, 1.0e9) for i in range(intervals)]}

    def test_window_one_sends_every_point(self):
        for name, server in self.servers():
            with self.subTest(server=name):
                agent, out = self.agent(server, window=1)
                self.assertEqual(agent.run(), 0)
                self.assertIn("sent 3 points", out.getvalue())
                self.assertNotIn("stalled", out.getvalue())
                with client.Client(*server.address, timeout=BOUND) as c:
                    self.assertEqual(c.get("*"), self.expected(1))

    def test_pipelined_stall_falls_back_to_one_request_at_a_time(self):
        intervals = 3
        for name, server in self.servers():
            with self.subTest(server=name, flaw=server.FLAW):
                agent, out = self.agent(server, window=None, count=intervals)
                began = time.monotonic()
                self.assertEqual(agent.run(), 0)
                # One stall (one timeout), not one per interval.
                self.assertLess(time.monotonic() - began, self.TIMEOUT + BOUND / 2)
                lines = out.getvalue().splitlines()
                notices = [line for line in lines if "stalled on pipelined requests" in line]
                self.assertEqual(len(notices), 1, lines)
                self.assertIn("answered 1 of the 3 requests", notices[0])
                self.assertIn("sending one request at a time from now on", notices[0])
                self.assertEqual(len(lines), intervals + 1, lines)
                self.assertTrue(all("sent 3 points" in line for line in lines[1:]), lines)
                self.assertTrue((agent.window, agent.fell_back) == (1, True))
                self.assertEqual((agent.sent, agent.dropped, len(agent.buffer)), (3 * intervals, 0, 0))
                # Every point exactly once: the first batch was sent twice,
                # and the points the server stored the first time were
                # replaced by the same values.
                with client.Client(*server.address, timeout=BOUND) as c:
                    self.assertEqual(c.get("*"), self.expected(intervals))

    def test_a_silent_server_is_not_taken_for_one_without_pipelining(self):
        # Answers nothing: down or slow, not a server that handles one
        # command per read. The agent keeps its window and buffers.
        with self.server(lambda peer: peer.wait_client_closed()) as silent:
            agent, out = self.agent(silent, window=None)
            with self.assertRaises(_agent.AgentError):
                agent.run()
            self.assertEqual((agent.window, agent.fell_back), (None, False))
            self.assertIn("unavailable (timed out", out.getvalue())
            self.assertIn("3 points buffered", out.getvalue())

    def command_line(self, name, timeout, *options):
        """Runs ``python -m client agent`` once against each course server;
        yields its stdout and what the server stored."""
        for kind, server in self.servers():
            with self.subTest(server=kind):
                host, port = server.address
                result = subprocess.run(
                    [sys.executable, "-m", "client", "agent", "--host", host, "--port", str(port),
                     "--timeout", str(timeout), "--count", "1", "--name", name, *options],
                    capture_output=True, text=True, timeout=BOUND, stdin=subprocess.DEVNULL)
                self.assertEqual(result.returncode, 0, result)
                with client.Client(host, port, timeout=BOUND) as c:
                    stored = c.get("*")
                self.assertEqual(sorted(stored), sorted(f"{name}.{m}" for m in _agent.METRICS))
                self.assertTrue(all(len(points) == 1 for points in stored.values()), stored)
                yield result.stdout

    @unittest.skipUnless(importlib.util.find_spec("psutil"), "the agent command needs psutil")
    def test_command_line_window_option(self):
        for stdout in self.command_line("cli", BOUND / 2, "--window", "1"):
            (status,) = stdout.splitlines()
            self.assertIn("sent 5 points", status)

    @unittest.skipUnless(importlib.util.find_spec("psutil"), "the agent command needs psutil")
    def test_command_line_falls_back_by_itself(self):
        for stdout in self.command_line("auto", self.TIMEOUT):
            notice, status = stdout.splitlines()
            self.assertIn("stalled on pipelined requests", notice)
            self.assertIn("sent 5 points", status)


if __name__ == "__main__":
    unittest.main()
