"""Tests of the command line (``python -m client ...``), the table and the agent.

Every command runs in a subprocess (``[sys.executable, "-m", "client", ...]``)
against a real embedded server (``client.Server``) that the test starts on
127.0.0.1. The agent's buffering logic is also driven in-process through its
injectable hooks (fake metric source, fake connection, fake clock), so no
test waits on a real interval. Run against the installed package::

    pip install . && python -m unittest discover -s tests -t . -p 'test_cli*.py'
"""

from __future__ import annotations

import ast
import contextlib
import errno
import importlib.metadata
import importlib.util
import io
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
import unittest.mock
from typing import Dict, List, Optional, Tuple

from client.__main__ import main as console_main

import client
from client import Client, ClientRejectedError, ClientSocketError, ClientTimeoutError, _agent, _cli, _table
from tests.support import ScriptedServer, TestCase, respond

HAVE_PSUTIL = importlib.util.find_spec("psutil") is not None

NEEDS_PSUTIL = "psutil is not installed (pip install 'metrics-client[agent]' to run the agent's real-metrics tests)"

#: Bound on any wait in these tests (seconds); never reached when all is well.
DEADLINE = 30.0

LOOPBACK = "127.0.0.1"


def Server(**kwargs):  # noqa: N802 - stands for client.Server
    """A real embedded server on a free loopback port."""
    kwargs.setdefault("host", LOOPBACK)
    kwargs.setdefault("port", 0)
    return client.Server(**kwargs)


def free_port() -> int:
    """A loopback port nobody listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def child_env(**extra: str) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(*args: str, env: Optional[Dict[str, str]] = None, timeout: float = DEADLINE) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "client", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env or child_env(),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def start_cli(*args: str, env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "client", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        env=env or child_env(),
    )


class LineReader:
    """Reads a subprocess's stdout lines in a thread, so a test can wait for
    one line with a deadline."""

    def __init__(self, stream) -> None:
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put("")  # end of stream

    def next(self, timeout: float = DEADLINE) -> str:
        return self.lines.get(timeout=timeout)

    def rest(self) -> str:
        self.thread.join(DEADLINE)
        out = []
        while not self.lines.empty():
            out.append(self.lines.get_nowait())
        return "".join(out)


class CliAssertions(TestCase):
    def assertOneErrorLine(self, result, code: int, *fragments: str) -> str:
        """Exit status ``code``, nothing on stdout, exactly one ``error:`` line on stderr."""
        self.assertEqual(result.returncode, code, result)
        self.assertNotIn("Traceback", result.stderr)
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertTrue(lines[0].startswith("error: "), lines[0])
        for fragment in fragments:
            self.assertIn(fragment, lines[0])
        self.assertEqual(result.stdout, "")
        return lines[0]


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


# -- demo and serve ----------------------------------------------------------------


class DemoTests(TestCase):
    def test_demo(self) -> None:
        before = int(time.time())
        result = run_cli("demo")
        after = int(time.time())
        self.assertEqual(result.returncode, 0, result)
        self.assertNotIn("Traceback", result.stderr)
        lines = result.stdout.splitlines()
        self.assertIn(">>> client.put('huginn.cpu', 0.5, timestamp=1642667947)", lines)
        self.assertIn(">>> client.put('muninn.memory', 42000000)", lines)
        index = lines.index(">>> client.get('*')")
        got = ast.literal_eval(lines[index + 1])
        self.assertTrue(lines[index + 2].startswith("# "), lines[index + 2])
        memory = got.pop("muninn.memory")
        self.assertEqual(
            got,
            {
                "huginn.cpu": [(1642667947, 0.5), (1642667948, 0.5)],
                "muninn.cpu": [(1642667950, 3.0), (1642667951, 4.0)],
            },
        )
        ((timestamp, value),) = memory
        self.assertEqual(value, 42000000.0)
        self.assertTrue(before <= timestamp <= after)
        table = lines[index + 4 :]
        self.assertEqual(lines[index + 3], "")
        self.assertEqual(table[0].split()[:2], ["key", "points"])
        self.assertEqual([row.split()[0] for row in table[1:]], ["huginn.cpu", "muninn.cpu", "muninn.memory"])
        self.assertEqual(table[1].split()[-1], "▄▄")
        self.assertEqual(table[2].split()[-1], "▁█")


class ServeTests(CliAssertions):
    def start(self, *args: str) -> Tuple[subprocess.Popen, LineReader, str, int]:
        proc = start_cli("serve", "--port", "0", *args)
        self.addCleanup(self._reap, proc)
        reader = LineReader(proc.stdout)
        line = reader.next()
        self.assertTrue(line.startswith("listening on "), line)
        host, _, port = line[len("listening on ") :].strip().rpartition(":")
        self.assertEqual(host, LOOPBACK)
        return proc, reader, host, int(port)

    @staticmethod
    def _reap(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=DEADLINE)

    def stop(self, proc: subprocess.Popen, reader: LineReader, signum: int) -> str:
        proc.send_signal(signum)
        proc.wait(DEADLINE)
        err = proc.stderr.read()
        self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(reader.rest(), "")  # nothing else on stdout
        self.assertNotIn("Traceback", err)
        return err

    def test_serve_then_sigterm_keeps_data(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "metrics.log")
            proc, reader, host, port = self.start("--data", data, "--fsync", "everysec")
            with Client(host, port, timeout=DEADLINE) as c:
                c.put("kept", 1.5, timestamp=10)
                c.put("kept", 2.5, timestamp=11)
            err = self.stop(proc, reader, signal.SIGTERM)
            self.assertIn("SIGTERM", err)
            self.assertIn("stopped", err)

            proc, reader, host, port = self.start("--data", data)
            result = run_cli("get", "kept", "--json", "--port", str(port))
            self.assertEqual(json.loads(result.stdout), {"kept": [[10, 1.5], [11, 2.5]]})
            self.stop(proc, reader, signal.SIGINT)

    def test_serve_stops_when_the_signal_lands_inside_a_lock(self) -> None:
        # A signal handler runs in the main thread between two bytecodes,
        # possibly while that thread holds a lock inside threading (say in
        # Event.wait, whose Condition lock it takes and drops every second).
        # Here every threading.Event's wait holds that lock almost all the
        # time, so the stop signal lands inside it: a handler that takes the
        # same lock (Event.set) deadlocks instead of stopping the server.
        code = textwrap.dedent("""
            import sys, threading, time
            class LockHoldingEvent(threading.Event):
                def wait(self, timeout=None):
                    with self._cond:
                        time.sleep(0.5)
                    return self.is_set()
            threading.Event = LockHoldingEvent
            from client import _cli
            sys.exit(_cli.main(["serve", "--port", "0", "--fsync", "no"]))
        """)
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True, encoding="utf-8", env=child_env())
        self.addCleanup(self._reap, proc)
        reader = LineReader(proc.stdout)
        self.assertTrue(reader.next().startswith("listening on "))
        err = self.stop(proc, reader, signal.SIGTERM)
        self.assertIn("SIGTERM", err)

    def test_serve_sigint_in_memory(self) -> None:
        proc, reader, host, port = self.start("--fsync", "no")
        self.assertEqual(run_cli("put", "m", "1", "--port", str(port)).returncode, 0)
        err = self.stop(proc, reader, signal.SIGINT)
        self.assertIn("SIGINT", err)

    def test_serve_torn_journal_warns_once_and_starts(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "metrics.log")
            with open(data, "w") as log:
                log.write("put torn 1.0 1\nput torn 2.0 2\nput torn 3")  # a crash mid-write
            proc, reader, host, port = self.start("--data", data)
            with Client(host, port, timeout=DEADLINE) as c:
                self.assertEqual(c.get("torn"), {"torn": [(1, 1.0), (2, 2.0)]})
            err = self.stop(proc, reader, signal.SIGTERM)
        warnings = [line for line in err.splitlines() if "torn" in line]
        self.assertEqual(len(warnings), 1, err)
        self.assertIn("WARNING", warnings[0])

    def test_serve_bad_data_path(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            missing = os.path.join(tmp, "no", "such", "dir", "metrics.log")
            result = run_cli("serve", "--port", "0", "--data", missing)
        self.assertOneErrorLine(result, 1, "No such file or directory")

    def test_serve_port_in_use(self) -> None:
        with socket.create_server((LOOPBACK, 0)) as taken:
            port = taken.getsockname()[1]
            result = run_cli("serve", "--port", str(port))
        self.assertOneErrorLine(result, 1, f"127.0.0.1:{port}")

    def test_serve_refuses_embedded_store_settings_with_a_redis_store(self) -> None:
        # Nothing listens on the store's port: the refusal comes before any
        # connection, so no Redis is needed.
        with socket.create_server((LOOPBACK, 0)) as taken:
            store = f"redis-cluster://127.0.0.1:{taken.getsockname()[1]}"
        for option in (("--fsync", "always"), ("--max-memory", "1GiB")):
            with self.subTest(option=option):
                result = run_cli("serve", "--port", "0", "--store", store, *option)
                self.assertOneErrorLine(result, 1, "is a setting of the embedded store")


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


# -- the agent's logic, in-process with fakes ---------------------------------------------


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


# -- the table ---------------------------------------------------------------------


class TableTests(TestCase):
    def test_sparkline(self) -> None:
        self.assertEqual(_table.sparkline([]), "")
        self.assertEqual(_table.sparkline([1, 2, 3, 4, 5, 6, 7, 8]), "▁▂▃▄▅▆▇█")
        self.assertEqual(_table.sparkline([5, 5, 5]), "▄▄▄")
        self.assertEqual(_table.sparkline([0, 10], ascii=True), "_#")
        self.assertEqual(_table.sparkline([3, -1, 3]), "█▁█")

    def test_sparkline_downsamples(self) -> None:
        line = _table.sparkline(list(range(1000)), width=10)
        self.assertEqual(len(line), 10)
        self.assertEqual(line[0], "▁")
        self.assertEqual(line[-1], "█")
        self.assertEqual(len(_table.sparkline(list(range(1000)))), _table.DEFAULT_SPARK_WIDTH)

    def test_format_value(self) -> None:
        self.assertEqual(_table.format_value(42000000.0), "42000000")
        self.assertEqual(_table.format_value(0.5), "0.5")
        self.assertEqual(_table.format_value(10.6), "10.6")
        self.assertEqual(_table.format_value(-3.0), "-3")
        self.assertEqual(_table.format_value(1 / 3), "0.333333")
        self.assertEqual(_table.format_value(1e20), "1e+20")

    def test_format_timestamp(self) -> None:
        self.assertEqual(_table.format_timestamp(1642667947), "2022-01-20 08:39:07")
        self.assertEqual(_table.format_timestamp(2**62), str(2**62))

    def test_render_table(self) -> None:
        table = _table.render_table(
            {
                "muninn.cpu": [(1642667951, 4.0), (1642667950, 3.0)],
                "huginn.cpu": [(1642667947, 0.5), (1642667948, 0.5)],
            }
        )
        self.assertEqual(
            table,
            textwrap.dedent(
                """\
                key         points  first (UTC)          last (UTC)           min  max  last  values
                huginn.cpu       2  2022-01-20 08:39:07  2022-01-20 08:39:08  0.5  0.5   0.5  ▄▄
                muninn.cpu       2  2022-01-20 08:39:10  2022-01-20 08:39:11    3    4     4  ▁█"""
            ),
        )
        self.assertEqual(_table.render_table({}), "(no data)")

    def test_render_table_ascii_and_wide_keys(self) -> None:
        table = _table.render_table({"温度": [(0, 1.0), (1, 2.0)], "k": [(0, 1.0)]}, ascii=True)
        rows = table.splitlines()
        self.assertTrue(rows[1].startswith("k     "), rows)
        self.assertTrue(rows[2].startswith("温度  "), rows)
        self.assertTrue(rows[2].endswith("_#"), rows)

    def test_json_shape(self) -> None:
        self.assertEqual(
            json.loads(_cli.to_json({"b": [(2, 1.0)], "a": [(1, 0.5), (3, 2.0)]})),
            {"a": [[1, 0.5], [3, 2.0]], "b": [[2, 1.0]]},
        )


if __name__ == "__main__":
    unittest.main()
