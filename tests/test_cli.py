"""Tests of the command line (``python -m client ...``).

Every command runs in a subprocess (``[sys.executable, "-m", "client", ...]``)
against a real embedded server (``client.Server``) that the test starts on
127.0.0.1 (the agent's logic in-process is ``test_agent``, the table
``test_table``). Run against the installed package::

    pip install . && python -m unittest discover -s tests -t . -p 'test_cli*.py'
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
import json
import os
import signal
import tempfile
import time
import unittest
import unittest.mock

from client.__main__ import main as console_main

from client import Client, _agent
from tests.support import ScriptedServer, TestCase, respond
from tests.support.cli import (
    DEADLINE,
    HAVE_PSUTIL,
    NEEDS_PSUTIL,
    CliAssertions,
    LineReader,
    Server,
    child_env,
    free_port,
    run_cli,
    start_cli,
)

# -- put / get ------------------------------------------------------------------


class PutGetTests(CliAssertions):
    @classmethod
    def setUpClass(cls) -> None:
        cls.server = Server()
        cls.host, cls.port = cls.server.address[0], cls.server.address[1]
        cls.where = ["--host", cls.host, "--port", str(cls.port)]

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.close()

    def stored(self, key: str):
        with Client(self.host, self.port, timeout=DEADLINE) as c:
            return c.get(key)

    def test_put_with_timestamp_is_stored(self) -> None:
        result = run_cli("put", "huginn.cpu", "10.6", "--timestamp", "1642667947", *self.where)
        self.assertEqual(result.returncode, 0, result)
        self.assertEqual(result.stdout, "ok huginn.cpu 10.6 1642667947\n")
        self.assertEqual(result.stderr, "")
        self.assertEqual(self.stored("huginn.cpu"), {"huginn.cpu": [(1642667947, 10.6)]})

    def test_put_int_and_negative_values(self) -> None:
        self.assertEqual(run_cli("put", "t.int", "301", "--timestamp", "3", *self.where).returncode, 0)
        result = run_cli("put", "t.neg", "-2.5", "--timestamp", "4", *self.where)
        self.assertEqual(result.returncode, 0, result)
        self.assertEqual(self.stored("t.int"), {"t.int": [(3, 301.0)]})
        self.assertEqual(self.stored("t.neg"), {"t.neg": [(4, -2.5)]})

    def test_put_without_timestamp_uses_now(self) -> None:
        before = int(time.time())
        result = run_cli("put", "t.now", "1", *self.where)
        after = int(time.time())
        self.assertEqual(result.returncode, 0, result)
        ((timestamp, value),) = self.stored("t.now")["t.now"]
        self.assertTrue(before <= timestamp <= after, (before, timestamp, after))
        self.assertEqual(value, 1.0)
        self.assertEqual(result.stdout, f"ok t.now 1 {timestamp}\n")

    def test_get_table(self) -> None:
        for ts, value in ((100, "1"), (101, "5"), (102, "3")):
            self.assertEqual(run_cli("put", "t.table", value, "--timestamp", str(ts), *self.where).returncode, 0)
        result = run_cli("get", "t.table", *self.where)
        self.assertEqual(result.returncode, 0, result)
        self.assertEqual(result.stderr, "")
        header, row = result.stdout.splitlines()
        self.assertEqual(header.split()[:2], ["key", "points"])
        for column in ("first (UTC)", "last (UTC)", "min", "max", "last", "values"):
            self.assertIn(column, header)
        self.assertEqual(
            row.split(),
            ["t.table", "3", "1970-01-01", "00:01:40", "1970-01-01", "00:01:42", "1", "5", "3", "▁█▅"],
        )

    def test_get_json(self) -> None:
        run_cli("put", "t.json", "0.5", "--timestamp", "1", *self.where)
        run_cli("put", "t.json", "0.4", "--timestamp", "2", *self.where)
        result = run_cli("get", "t.json", "--json", *self.where)
        self.assertEqual(result.returncode, 0, result)
        self.assertEqual(json.loads(result.stdout), {"t.json": [[1, 0.5], [2, 0.4]]})

    def test_get_star_json_has_every_key(self) -> None:
        run_cli("put", "t.star", "7", "--timestamp", "9", *self.where)
        result = run_cli("get", "*", "--json", *self.where)
        self.assertEqual(result.returncode, 0, result)
        everything = json.loads(result.stdout)
        self.assertEqual(everything["t.star"], [[9, 7.0]])
        self.assertEqual(
            {key: [tuple(p) for p in points] for key, points in everything.items()}, self.stored("*")
        )

    def test_get_missing_key(self) -> None:
        result = run_cli("get", "t.nothing", *self.where)
        self.assertEqual((result.returncode, result.stdout), (0, "(no data)\n"), result)
        result = run_cli("get", "t.nothing", "--json", *self.where)
        self.assertEqual((result.returncode, result.stdout), (0, "{}\n"), result)

    def test_key_refused_by_client_is_a_usage_error(self) -> None:
        self.assertOneErrorLine(run_cli("put", "*", "1", *self.where), 2, "invalid key")
        self.assertOneErrorLine(run_cli("get", "two words", *self.where), 2, "whitespace")

    def test_timestamp_out_of_range(self) -> None:
        self.assertOneErrorLine(run_cli("put", "k", "1", "--timestamp", str(2**70), *self.where), 2, "timestamp")


class FailureTests(CliAssertions):
    def test_bad_arguments(self) -> None:
        cases = [
            ((), "required"),
            (("nope",), "invalid choice"),
            (("put",), "required"),
            (("put", "k"), "VALUE"),
            (("put", "k", "abc"), "not a number"),
            (("put", "k", "nan"), "finite"),
            (("put", "k", "inf"), "finite"),
            (("put", "k", "1", "--timestamp", "1.5"), "integer"),
            (("put", "k", "1", "--port", "70000"), "port"),
            (("get", "k", "--port", "http"), "port"),
            (("get", "k", "--timeout", "0"), "timeout"),
            (("get",), "KEY"),
            (("serve", "--fsync", "sometimes"), "invalid choice"),
            (("agent", "--interval", "0.5"), "at least 1"),
            (("agent", "--count", "0"), "count"),
            (("agent", "--name", "two words"), "name"),
            (("agent", "--buffer", "-1"), "buffer"),
        ]
        for args, fragment in cases:
            with self.subTest(args=args):
                self.assertOneErrorLine(run_cli(*args), 2, fragment, "--help")

    def test_help(self) -> None:
        result = run_cli("--help")
        self.assertEqual(result.returncode, 0, result)
        for command in ("put", "get", "serve", "demo", "agent"):
            self.assertIn(command, result.stdout)
        for command in ("put", "get", "serve", "demo", "agent"):
            with self.subTest(command=command):
                self.assertEqual(run_cli(command, "--help").returncode, 0)

    def test_server_down(self) -> None:
        port = str(free_port())
        for args in (("put", "k", "1"), ("get", "k"), ("get", "*", "--json")):
            with self.subTest(args=args):
                self.assertOneErrorLine(
                    run_cli(*args, "--port", port), 1, f"cannot connect to 127.0.0.1:{port}", "refused"
                )

    def test_server_error_reply(self) -> None:
        with ScriptedServer(respond(b"error\nwrong command\n\n")) as server:
            result = run_cli("get", "k", "--port", str(server.port))
        self.assertOneErrorLine(result, 1, "wrong command")

    def test_put_server_error_reply(self) -> None:
        with ScriptedServer(respond(b"error\nwrong command\n\n")) as server:
            result = run_cli("put", "k", "1", "--port", str(server.port))
        self.assertOneErrorLine(result, 1, "wrong command")

    def test_garbage_reply(self) -> None:
        with ScriptedServer(respond(b"hello\n\n")) as server:
            result = run_cli("get", "k", "--port", str(server.port))
        self.assertOneErrorLine(result, 1)

    def test_timeout(self) -> None:
        with ScriptedServer(None) as server:
            result = run_cli("get", "k", "--port", str(server.port), "--timeout", "0.2")
        self.assertOneErrorLine(result, 1, "timed out")

    def test_ctrl_c_exits_130_quietly(self) -> None:
        with ScriptedServer(None) as server:
            proc = start_cli("get", "k", "--port", str(server.port), "--timeout", "60")
            try:
                # The request arrived: the client is now waiting for the reply.
                server.peer(0).wait_received(b"get k\n", timeout=DEADLINE)
                proc.send_signal(signal.SIGINT)
                out, err = proc.communicate(timeout=DEADLINE)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
        self.assertEqual((proc.returncode, out, err), (130, "", ""))


class EntryPointTests(TestCase):
    def test_console_script_declared(self) -> None:
        scripts = [
            ep
            for ep in importlib.metadata.distribution("metrics-client").entry_points
            if ep.group == "console_scripts"
        ]
        self.assertEqual([(ep.name, ep.value) for ep in scripts], [("metrics-client", "client.__main__:main")])
        self.assertIs(scripts[0].load(), console_main)

    def test_main_returns_status(self) -> None:
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            self.assertEqual(console_main(["put"]), 2)
        self.assertTrue(stderr.getvalue().startswith("error: "))
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            self.assertEqual(console_main(["--help"]), 0)
        self.assertIn("usage:", stdout.getvalue())

    def test_main_in_process_against_server(self) -> None:
        with Server() as server:
            port = str(server.address[1])
            stdout = io.StringIO()
            with contextlib.redirect_stdout(stdout):
                self.assertEqual(console_main(["put", "k", "2", "--timestamp", "5", "--port", port]), 0)
                self.assertEqual(console_main(["get", "k", "--json", "--port", port]), 0)
        self.assertEqual(stdout.getvalue().splitlines(), ["ok k 2 5", '{"k": [[5, 2.0]]}'])


# -- the agent, in a subprocess ------------------------------------------------------


class AgentCommandTests(CliAssertions):
    @unittest.skipUnless(HAVE_PSUTIL, NEEDS_PSUTIL)
    def test_agent_sends_five_metrics(self) -> None:
        with Server() as server:
            port = str(server.address[1])
            before = int(time.time())
            result = run_cli("agent", "--port", port, "--count", "1", "--name", "testhost")
            after = int(time.time())
            with Client(*server.address, timeout=DEADLINE) as c:
                stored = c.get("*")
        self.assertEqual(result.returncode, 0, result)
        self.assertNotIn("Traceback", result.stderr)
        (line,) = result.stdout.splitlines()
        self.assertIn(f"sent 5 points to 127.0.0.1:{port}", line)
        self.assertEqual(sorted(stored), sorted(f"testhost.{m}" for m in _agent.METRICS))
        for key, points in stored.items():
            ((timestamp, value),) = points
            self.assertTrue(before <= timestamp <= after)
            self.assertGreaterEqual(value, 0.0, key)
        self.assertLessEqual(stored["testhost.cpu"][0][1], 100.0)
        self.assertGreater(stored["testhost.memory"][0][1], 0.0)
        self.assertGreater(stored["testhost.disk"][0][1], 0.0)

    @unittest.skipUnless(HAVE_PSUTIL, NEEDS_PSUTIL)
    def test_agent_two_intervals(self) -> None:
        with Server() as server:
            result = run_cli(
                "agent", "--port", str(server.address[1]), "--count", "2", "--interval", "1", "--name", "two"
            )
            with Client(*server.address, timeout=DEADLINE) as c:
                stored = c.get("two.memory")
        self.assertEqual(result.returncode, 0, result)
        self.assertEqual(len(result.stdout.splitlines()), 2)
        self.assertEqual(len(stored["two.memory"]), 2)

    @unittest.skipUnless(HAVE_PSUTIL, NEEDS_PSUTIL)
    def test_agent_server_down(self) -> None:
        port = free_port()
        result = run_cli("agent", "--port", str(port), "--count", "1", "--name", "down")
        self.assertEqual(result.returncode, 1, result)
        (line,) = result.stdout.splitlines()
        self.assertIn(f"127.0.0.1:{port} unavailable", line)
        self.assertIn("5 points buffered", line)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        self.assertEqual(errors, [f"error: 5 points could not be sent to 127.0.0.1:{port}"])
        self.assertNotIn("Traceback", result.stderr)

    @unittest.skipUnless(HAVE_PSUTIL, NEEDS_PSUTIL)
    def test_agent_ctrl_c(self) -> None:
        with Server() as server:
            proc = start_cli("agent", "--port", str(server.address[1]), "--interval", "60", "--name", "intr")
            try:
                reader = LineReader(proc.stdout)
                self.assertIn("sent 5 points", reader.next())
                proc.send_signal(signal.SIGINT)
                proc.wait(DEADLINE)
                err = proc.stderr.read()
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.communicate()
        self.assertEqual(proc.returncode, 130)
        self.assertEqual(reader.rest(), "")
        self.assertNotIn("Traceback", err)
        self.assertNotIn("error", err)

    def test_agent_without_psutil(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "psutil.py"), "w") as blocker:
                blocker.write("raise ImportError('No module named psutil')\n")
            path = os.pathsep.join(p for p in (tmp, os.environ.get("PYTHONPATH")) if p)
            result = run_cli("agent", "--count", "1", "--port", str(free_port()), env=child_env(PYTHONPATH=path))
        line = self.assertOneErrorLine(result, 1, "psutil")
        self.assertIn("install with pip install 'metrics-client[agent]'", line)
