"""What a release promises about the installed package: its metadata
(version, license, supported Pythons), ``--version``, and the embedded
server's diagnostics reaching Python's ``logging``."""

from __future__ import annotations

import gc
import importlib.metadata
import logging
import os
import subprocess
import sys
import tempfile
import unittest
import warnings
from typing import List

import client

from .support import BOUND, TestCase, wait_until
from .support.processes import child_env

DISTRIBUTION = "metrics-client"


class MetadataTest(TestCase):
    def test_version_is_the_distribution_version(self) -> None:
        self.assertEqual(client.__version__, importlib.metadata.version(DISTRIBUTION))

    def test_version_flag(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "client", "--version"],
            capture_output=True, text=True, env=child_env(), timeout=BOUND, stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 0, result)
        self.assertEqual(result.stdout, f"python -m client {client.__version__}\n")
        self.assertEqual(result.stderr, "")

    def test_license(self) -> None:
        meta = importlib.metadata.metadata(DISTRIBUTION)
        self.assertEqual(meta["License-Expression"], "MIT")
        self.assertIn("LICENSE", meta.get_all("License-File") or [])
        files = importlib.metadata.files(DISTRIBUTION) or []
        licenses = [f for f in files if f.name == "LICENSE"]
        self.assertTrue(licenses, "no LICENSE file installed")
        self.assertIn("MIT License", licenses[0].read_text())

    def test_this_python_is_claimed(self) -> None:
        # The suite runs on every Python CI tests: each must be claimed by a
        # classifier and allowed by Requires-Python, and no other one claimed.
        meta = importlib.metadata.metadata(DISTRIBUTION)
        this = f"{sys.version_info.major}.{sys.version_info.minor}"
        classifiers = meta.get_all("Classifier") or []
        claimed = [c.rsplit(" :: ", 1)[1] for c in classifiers
                   if c.startswith("Programming Language :: Python :: 3.")]
        self.assertIn(this, claimed)
        self.assertEqual(meta["Requires-Python"], f">={min(claimed, key=lambda v: tuple(map(int, v.split('.'))))}")


class ServerLoggingTest(TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.records: List[logging.LogRecord] = []
        handler = logging.Handler(logging.DEBUG)
        handler.emit = self.records.append  # type: ignore[method-assign]
        logger = logging.getLogger("client.server")
        logger.addHandler(handler)
        previous = logger.level
        logger.setLevel(logging.DEBUG)
        self.addCleanup(logger.removeHandler, handler)
        self.addCleanup(logger.setLevel, previous)

    def messages(self) -> List[tuple]:
        return [(r.levelname, r.getMessage()) for r in self.records]

    def test_start_and_close_are_logged_before_they_return(self) -> None:
        srv = client.Server()
        host, port = srv.address
        self.assertEqual(self.messages(), [("INFO", f"listening on {host}:{port}")])
        srv.close()
        self.assertEqual(self.messages()[-1], ("INFO", "closed"))
        self.assertEqual({r.name for r in self.records}, {"client.server"})

    def test_recovery_warning(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "metrics.log")
            with open(path, "w") as f:
                f.write("put k 1.5 10\nput k 2")  # a torn last line
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with client.Server(data=path):
                    pass
        self.assertEqual(len(caught), 1)
        warned = [m for level, m in self.messages() if level == "WARNING"]
        self.assertEqual(warned, [str(caught[0].message)])
        self.assertIn("torn", warned[0])

    def test_dropped_without_close(self) -> None:
        # Collected with the GIL held: the server closes while its log
        # thread needs the GIL to report it; neither may wait for the other.
        srv = client.Server()
        del srv
        gc.collect()
        wait_until(lambda: ("INFO", "closed") in self.messages(), message="'closed' logged")

    def test_log_true_writes_stderr_not_logging(self) -> None:
        code = (
            "import logging, client\n"
            "logging.getLogger('client.server').addHandler(logging.StreamHandler(__import__('sys').stdout))\n"
            "logging.getLogger('client.server').setLevel(logging.INFO)\n"
            "client.Server(log=True).close()\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env=child_env(), timeout=BOUND, stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 0, result)
        self.assertEqual(result.stdout, "")
        self.assertRegex(result.stderr, r"^metrics-server: INFO: listening on 127\.0\.0\.1:\d+\n")
        self.assertTrue(result.stderr.endswith("metrics-server: INFO: closed\n"), result.stderr)

    def test_unconfigured_logging_shows_only_warnings(self) -> None:
        # Without any logging setup, Python's last-resort handler prints
        # warnings and errors to stderr, and INFO stays quiet.
        code = (
            "import sys, warnings, client\n"
            "warnings.simplefilter('ignore')\n"
            "client.Server(data=sys.argv[1]).close()\n"
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "metrics.log")
            with open(path, "w") as f:
                f.write("put k 2")
            result = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True,
                                    env=child_env(), timeout=BOUND, stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 0, result)
        self.assertEqual(result.stderr.count("\n"), 1, result.stderr)
        self.assertIn("torn", result.stderr)


if __name__ == "__main__":
    unittest.main()
