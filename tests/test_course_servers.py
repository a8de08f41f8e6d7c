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
import subprocess
import sys
import time
import unittest

import client
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


if __name__ == "__main__":
    unittest.main()
