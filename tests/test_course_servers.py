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
    (``--window 1``) it works against these servers; pipelined, every
    interval stalls and the status line says what to do."""

    TIMEOUT = 0.5

    def servers(self):
        for kind in COURSE_SERVERS:
            server = kind()
            self.addCleanup(server.stop)
            yield kind.__name__, server

    def agent(self, server, window):
        host, port = server.address
        out = io.StringIO()
        agent = _agent.Agent(
            lambda: client.Client(host, port, timeout=self.TIMEOUT),
            lambda: {"cpu": 12.5, "memory": 4096, "disk": 1.0e9},
            name="course", count=1, window=window, out=out,
            clock=lambda: 1_700_000_000.0, sleep=lambda seconds: None)
        return agent, out

    def test_window_one_sends_every_point(self):
        for name, server in self.servers():
            with self.subTest(server=name):
                agent, out = self.agent(server, window=1)
                self.assertEqual(agent.run(), 0)
                self.assertIn("sent 3 points", out.getvalue())
                with client.Client(*server.address, timeout=BOUND) as c:
                    self.assertEqual(c.get("*"), {
                        "course.cpu": [(1_700_000_000, 12.5)],
                        "course.memory": [(1_700_000_000, 4096.0)],
                        "course.disk": [(1_700_000_000, 1.0e9)]})

    def test_pipelined_stalls_and_the_status_line_says_why(self):
        for name, server in self.servers():
            with self.subTest(server=name):
                agent, out = self.agent(server, window=None)
                began = time.monotonic()
                with self.assertRaises(_agent.AgentError):
                    agent.run()
                self.assertLess(time.monotonic() - began, self.TIMEOUT + BOUND / 2)
                line = out.getvalue()
                self.assertIn("answered 1 of the 3 requests", line)
                self.assertIn("run the agent with --window 1", line)

    @unittest.skipUnless(importlib.util.find_spec("psutil"), "the agent command needs psutil")
    def test_command_line_window_option(self):
        for name, server in self.servers():
            with self.subTest(server=name):
                host, port = server.address
                result = subprocess.run(
                    [sys.executable, "-m", "client", "agent", "--host", host, "--port", str(port),
                     "--timeout", str(BOUND / 2), "--count", "1", "--name", "cli", "--window", "1"],
                    capture_output=True, text=True, timeout=BOUND, stdin=subprocess.DEVNULL)
                self.assertEqual(result.returncode, 0, result)
                self.assertIn("sent 5 points", result.stdout)
                with client.Client(host, port, timeout=BOUND) as c:
                    stored = c.get("*")
                self.assertEqual(sorted(stored), sorted(f"cli.{m}" for m in _agent.METRICS))


if __name__ == "__main__":
    unittest.main()
