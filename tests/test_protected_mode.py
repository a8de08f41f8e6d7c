"""Protected mode: a server listening beyond loopback without client
certificates serves loopback peers only, and tells the others how to fix it.

A non-loopback address of the machine's own is needed: the test creates a
network namespace (as root, with ``ip``), gives its loopback interface
10.213.0.1 as well, and runs the server and its clients inside it. The
host's own interfaces are never touched; the namespace is deleted at the
end. Without root or ``ip`` the tests are skipped, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from typing import Any, Dict, List

from client import Server
from tests.support import BOUND, TestCase
from tests.support.certificates import PROTECTED_ADDRESS, Certificates, require
from tests.support.processes import child_env

#: Runs in the namespace: starts a client.Server with the JSON options of
#: argv[1], then puts from a loopback and a non-loopback source, through
#: client.Client and a raw socket, and prints what each saw as JSON.
PROBE = r"""
import json, socket, ssl, sys
from client import Client, ClientError, Server
options, outside, ca, cert, key = json.loads(sys.argv[1]), sys.argv[2], *sys.argv[3:6]
report = {}
with Server(host="0.0.0.0", port=0, **options) as server:
    port = server.address[1]
    report["protected"] = server.protected
    context = None
    if "tls_cert" in options:
        context = ssl.create_default_context(cafile=ca)
        context.load_cert_chain(cert, key)
    for name, host in (("outside", outside), ("loopback", "127.0.0.1")):
        try:
            with Client(host, port, timeout=10, ssl=context) as c:
                c.put(name, 1.0, 1)
                report[name] = "ok"
        except ClientError as error:
            report[name] = f"{type(error).__name__}: {error}"
    if context is None:
        with socket.create_connection((outside, port), timeout=10) as raw:
            raw.sendall(b"put raw 1 1\n")
            raw.shutdown(socket.SHUT_WR)
            received = b""
            while True:
                chunk = raw.recv(4096)
                if not chunk:
                    break
                received += chunk
            report["raw"] = received.decode()
    with Client("127.0.0.1", port, timeout=10, ssl=context) as c:
        report["stored"] = sorted(c.get("*"))
print(json.dumps(report))
"""


class NetworkNamespace:
    """A network namespace of the test's own, with ``address`` on its lo."""

    def __init__(self, address: str) -> None:
        if os.geteuid() != 0:
            raise unittest.SkipTest("protected mode needs a non-loopback address: creating a "
                                "network namespace for one needs root")
        if shutil.which("ip") is None:
            raise unittest.SkipTest("protected mode needs a non-loopback address: the 'ip' "
                                "command (iproute2) is not installed to make a network namespace")
        self.name = f"metrics-test-{os.getpid()}"
        self.address = address
        made = self._ip("netns", "add", self.name)
        if made.returncode != 0:
            raise unittest.SkipTest(f"cannot create a network namespace here: {made.stderr.strip()}")
        for step in (("link", "set", "lo", "up"), ("addr", "add", f"{address}/32", "dev", "lo")):
            done = self._ip("-n", self.name, *step)
            if done.returncode != 0:
                self.delete()
                raise unittest.SkipTest(f"cannot set up the network namespace: {done.stderr.strip()}")

    @staticmethod
    def _ip(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=BOUND,
                              stdin=subprocess.DEVNULL)

    def run(self, argv: List[str], timeout: float = BOUND) -> subprocess.CompletedProcess:
        """Runs ``argv`` inside the namespace, from an empty directory."""
        with tempfile.TemporaryDirectory() as directory:
            return subprocess.run(["ip", "netns", "exec", self.name, *argv], capture_output=True,
                                  text=True, timeout=timeout, env=child_env(), cwd=directory,
                                  stdin=subprocess.DEVNULL)

    def delete(self) -> None:
        self._ip("netns", "delete", self.name)


class ProtectedModeTest(TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        require()
        cls.directory = tempfile.TemporaryDirectory()
        cls.certs = Certificates(cls.directory.name)
        cls.namespace = NetworkNamespace(PROTECTED_ADDRESS)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.namespace.delete()
        cls.directory.cleanup()
        super().tearDownClass()

    def probe(self, **options: Any) -> Dict[str, Any]:
        certs = self.certs
        done = self.namespace.run([sys.executable, "-c", PROBE, json.dumps(options), PROTECTED_ADDRESS,
                                   certs.ca.cert, certs.client.cert, certs.client.key])
        self.assertEqual(done.returncode, 0, done.stderr)
        return json.loads(done.stdout)

    def test_refuses_peers_beyond_loopback_and_serves_loopback(self) -> None:
        report = self.probe()
        self.assertTrue(report["protected"])
        self.assertEqual(report["loopback"], "ok")
        self.assertIn("ClientProtocolError", report["outside"])
        self.assertIn("protected mode", report["outside"])
        self.assertTrue(report["raw"].startswith("error\nprotected mode: "), report["raw"])
        self.assertTrue(report["raw"].endswith("\n\n"), report["raw"])
        self.assertIn("--insecure", report["raw"])
        self.assertIn("--tls-client-ca", report["raw"])
        self.assertEqual(report["raw"].count("\n"), 3)
        self.assertEqual(report["stored"], ["loopback"])

    def test_insecure_serves_everyone(self) -> None:
        report = self.probe(insecure=True)
        self.assertFalse(report["protected"])
        self.assertEqual(report["outside"], "ok")
        self.assertEqual(report["raw"], "ok\n\n")
        self.assertEqual(report["stored"], ["loopback", "outside", "raw"])

    def test_client_certificates_lift_protected_mode(self) -> None:
        certs = self.certs
        report = self.probe(tls_cert=certs.server.cert, tls_key=certs.server.key,
                            tls_client_ca=certs.ca.cert)
        self.assertFalse(report["protected"])
        self.assertEqual(report["outside"], "ok")
        self.assertEqual(report["stored"], ["loopback", "outside"])

    def test_tls_without_client_certificates_stays_protected(self) -> None:
        certs = self.certs
        report = self.probe(tls_cert=certs.server.cert, tls_key=certs.server.key)
        self.assertTrue(report["protected"])
        # The refusal comes over TLS, so the client reads it as the server's answer.
        self.assertIn("ClientProtocolError", report["outside"])
        self.assertIn("protected mode", report["outside"])
        self.assertEqual(report["stored"], ["loopback"])

    def test_serve_warns_when_it_starts_protected(self) -> None:
        script = ("import subprocess, sys\n"
                  "p = subprocess.Popen([sys.executable, '-m', 'client', 'serve', '--host', '0.0.0.0',"
                  " '--port', '0'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)\n"
                  "print(p.stdout.readline().strip())\n"
                  "p.terminate()\n"
                  "out, err = p.communicate(timeout=30)\n"
                  "print(err)\n")
        done = self.namespace.run([sys.executable, "-c", script])
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("listening on 0.0.0.0:", done.stdout)
        self.assertIn("WARNING: protected mode", done.stdout)
        self.assertIn("--insecure", done.stdout)


class LoopbackIsNeverProtectedTest(TestCase):
    def test_loopback_server_is_not_protected(self) -> None:
        for host in ("127.0.0.1", "localhost"):
            with Server(host=host) as server:
                self.assertFalse(server.protected)

    def test_unused_insecure_changes_nothing_on_loopback(self) -> None:
        with Server(insecure=True) as server:
            self.assertFalse(server.protected)


