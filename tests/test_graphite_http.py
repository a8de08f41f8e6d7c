"""The Graphite HTTP port beyond what graphite-web answers: clear errors,
request size limits, TLS, protected mode (in a network namespace, as the
metrics port's test), the settings that cannot go together, and the
command line's ``serve --graphite-port/--http-port`` and ``demo``."""
from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import unittest
import urllib.parse
from typing import Any, Dict, Optional, Tuple

from client import Server
from tests.support import BOUND, TestCase
from tests.support.graphite import http_get
from tests.support.processes import ChildProcess


class Errors(TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.server = Server(http_port=0)
        cls.base = cls.server.dashboard_url

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.close()
        super().tearDownClass()

    def render(self, **params: str) -> Tuple[int, str]:
        status, _, body = http_get(self.base + "render?" + urllib.parse.urlencode(params))
        return status, body.decode()

    def test_bad_queries_are_400_saying_why(self) -> None:
        cases = [
            ({"target": "nope(a.b)"}, 'unknown function "nope"'),
            ({"target": "sumSeries(a.b"}, "bad target at character"),
            ({"target": "scale(a.b)"}, "scale: factor must be a number"),
            ({"target": "summarize(a.b,'1x')"}, "bad time offset"),
            ({"target": "a.b", "from": "soon"}, "from: unknown time reference"),
            ({"target": "a.b", "format": "png"}, "unsupported format"),
            ({"target": "a.b", "maxDataPoints": "-3"}, "maxDataPoints must be a positive integer"),
            ({"target": "a.[b"}, "bad path: unclosed '['"),
            ({"target": "a.b", "from": "100", "until": "100"}, "invalid empty time range"),
        ]
        for params, message in cases:
            with self.subTest(params=params):
                status, body = self.render(**params)
                self.assertEqual(status, 400)
                self.assertIn(message, body)
        status, _, body = http_get(self.base + "metrics/find")
        self.assertEqual((status, body), (400, b"missing required parameter 'query'"))
        status, _, body = http_get(self.base + "metrics/find?query=a.&format=pickle")
        self.assertEqual(status, 400)

    def test_an_empty_store_answers_empty(self) -> None:
        self.assertEqual(self.render(target="a.*"), (200, "[]"))
        self.assertEqual(http_get(self.base + "metrics/index.json")[2], b"[]")
        self.assertEqual(http_get(self.base + "metrics/find?query=*")[2], b"[]")

    def request(self, method: str, path: str, body: bytes = b"",
                headers: Optional[Dict[str, str]] = None) -> Tuple[int, bytes]:
        host, port = self.server.http_address
        connection = http.client.HTTPConnection(host, port, timeout=BOUND)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def whole_request(self, head: bytes, body: bytes = b"") -> bytes:
        """Sends all of a request before reading anything, as http.client
        and most scripts do, and returns all the server answered."""
        with socket.create_connection(self.server.http_address, timeout=BOUND) as sock:
            sock.sendall(head + b"\r\n\r\n" + body)
            answer = b""
            while chunk := sock.recv(1 << 16):
                answer += chunk
            return answer

    def test_request_sizes_and_methods_are_bounded(self) -> None:
        # The refusal reaches a peer that sends its whole request first,
        # even though the server stops reading early (a server that closed
        # on the unread rest would reset the connection, destroying the
        # answer before the peer reads it).
        body = b"target=" + b"a" * (8 << 20)
        answer = self.whole_request(
            b"POST /render HTTP/1.1\r\nHost: h\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d" % len(body), body)
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer[:200])
        self.assertIn(b"longer than 1048576 bytes", answer)
        # Without a length (chunked), the body is cut at the limit.
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in [body[i:i + 60000]
                          for i in range(0, 2 << 20, 60000)]) + b"0\r\n\r\n"
        answer = self.whole_request(
            b"POST /render HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked", chunks)
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer[:200])
        answer = self.whole_request(b"GET /render HTTP/1.1\r\nHost: h\r\nX-Big: "
                                    + b"x" * (8 << 20))
        self.assertTrue(answer.startswith(b"HTTP/1.1 431 "), answer[:200])
        status, body = self.request("PUT", "/render")
        self.assertEqual(status, 405)
        self.assertIn(b"use GET or POST", body)
        # After all that the port still serves.
        self.assertEqual(self.request("GET", "/metrics/index.json"), (200, b"[]"))

    def test_graphite_ports_need_the_embedded_store(self) -> None:
        for port in ("graphite_port", "http_port"):
            with self.subTest(port=port), self.assertRaisesRegex(ValueError, port):
                Server(store="redis://127.0.0.1:1", **{port: 0})  # type: ignore[arg-type]
        with self.assertRaisesRegex(TypeError, "http_port"):
            Server(http_port="80")  # type: ignore[arg-type]
        with self.assertRaisesRegex(ValueError, "graphite_port"):
            Server(graphite_port=70000)


class OverTls(TestCase):
    def test_https_and_plain_http_refused(self) -> None:
        from tests.support.certificates import Certificates
        work = tempfile.mkdtemp(prefix="graphite-https-")
        self.addCleanup(shutil.rmtree, work, True)
        certs = Certificates(work)
        with Server(http_port=0, tls_cert=certs.server.cert, tls_key=certs.server.key) as server:
            self.assertTrue(server.dashboard_url.startswith("https://127.0.0.1:"))
            context = ssl.create_default_context(cafile=certs.ca.cert)
            host, port = server.http_address
            connection = http.client.HTTPSConnection(host, port, timeout=BOUND, context=context)
            connection.request("GET", "/metrics/index.json")
            self.assertEqual(connection.getresponse().read(), b"[]")
            connection.close()
            with socket.create_connection((host, port), timeout=BOUND) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                try:
                    answer = sock.recv(100)
                except ConnectionResetError:
                    answer = b""
                self.assertFalse(answer.startswith(b"HTTP/"), answer)


#: Runs in the namespace: the Graphite ports on 0.0.0.0, probed from the
#: namespace's non-loopback address and from loopback.
PROBE = r"""
import json, socket, sys, time, urllib.request, urllib.error
from client import Client, Server
options, outside = json.loads(sys.argv[1]), sys.argv[2]
report = {}
with Server(host="0.0.0.0", port=0, graphite_port=0, http_port=0, **options) as server:
    for name, host in (("outside", outside), ("loopback", "127.0.0.1")):
        with socket.create_connection((host, server.graphite_address[1]), timeout=10) as sock:
            # A refused peer's connection is closed as soon as it is
            # accepted, so any of these may fail (reset, not connected):
            # what was stored is checked below.
            try:
                sock.sendall(f"{name} 1 1\n".encode())
                sock.shutdown(socket.SHUT_WR)
                sock.recv(10)
            except OSError:
                pass
        try:
            with urllib.request.urlopen(f"http://{host}:{server.http_address[1]}/metrics/index.json", timeout=10) as r:
                report["http_" + name] = [r.status, r.read().decode()]
        except urllib.error.HTTPError as e:
            report["http_" + name] = [e.code, e.read().decode()]
    with Client("127.0.0.1", server.address[1], timeout=10) as c:
        deadline = time.monotonic() + 10
        while "loopback" not in c.get("*") and time.monotonic() < deadline:
            time.sleep(0.01)
        report["stored"] = sorted(c.get("*"))
print(json.dumps(report))
"""


class ProtectedMode(TestCase):
    def probe(self, **options: Any) -> Dict[str, Any]:
        from tests.support.certificates import PROTECTED_ADDRESS
        from tests.test_protected_mode import NetworkNamespace
        namespace = NetworkNamespace(PROTECTED_ADDRESS)
        self.addCleanup(namespace.delete)
        done = namespace.run([sys.executable, "-c", PROBE, json.dumps(options), PROTECTED_ADDRESS])
        self.assertEqual(done.returncode, 0, done.stderr)
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    def test_peers_beyond_loopback_are_refused(self) -> None:
        report = self.probe()
        status, body = report["http_outside"]
        self.assertEqual(status, 403)
        self.assertIn("protected mode", body)
        self.assertIn("--insecure", body)
        self.assertEqual(report["http_loopback"], [200, '["loopback"]'])
        self.assertEqual(report["stored"], ["loopback"])

    def test_insecure_serves_everyone(self) -> None:
        report = self.probe(insecure=True)
        self.assertEqual(report["http_outside"][0], 200)
        self.assertEqual(report["stored"], ["loopback", "outside"])


class CommandLine(TestCase):
    def test_serve_prints_the_graphite_addresses(self) -> None:
        child = ChildProcess(["-m", "client", "serve", "--port", "0", "--graphite-port", "0", "--http-port", "0"])
        self.addCleanup(child.kill)
        self.assertRegex(child.readline(), r"^listening on 127\.0\.0\.1:\d+$")
        graphite = child.readline()
        self.assertRegex(graphite, r"^graphite plaintext on 127\.0\.0\.1:\d+$")
        dashboard = child.readline()
        self.assertRegex(dashboard, r"^dashboard on http://127\.0\.0\.1:\d+/$")
        port = int(graphite.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=BOUND) as sock:
            sock.sendall(b"cli.k 1 1\n")
        url = dashboard.split(" on ", 1)[1]
        from tests.support import wait_until
        wait_until(lambda: http_get(url + "metrics/index.json")[2] == b'["cli.k"]', timeout=BOUND,
                   interval=0.02, message="the point through the CLI's server")
        child.signal(signal.SIGTERM)
        code, _, _ = child.finish()
        self.assertEqual(code, 0)

    def test_demo_prints_the_dashboard_address(self) -> None:
        child = ChildProcess(["-m", "client", "demo"])
        code, out, err = child.finish()
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r"# dashboard: http://127\.0\.0\.1:\d+/\n")


if __name__ == "__main__":
    unittest.main()
