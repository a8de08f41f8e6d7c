"""``python -m client serve`` and ``demo``, in a subprocess: the demo's
session, data kept across SIGTERM and SIGINT, a torn journal, and a bad
data path, a port in use or conflicting options as one error line."""


import ast
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Tuple

from client import Client
from tests.support import TestCase
from tests.support.cli import (
    DEADLINE,
    LOOPBACK,
    CliAssertions,
    LineReader,
    child_env,
    run_cli,
    start_cli,
)


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
