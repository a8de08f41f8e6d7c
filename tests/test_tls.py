"""TLS: the server's rustls side, the client's ``ssl`` side, mutual TLS.

Certificates are made at test time (tests/support/certificates.py). Every
refusal is checked to say what failed, to leave nothing stored and to leave
the server serving the next client.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import tempfile
import threading
from typing import Optional

import client
from client import AsyncClient, Client, ClientProtocolError, ClientSocketError, Server
from tests.support import BOUND, TestCase
from tests.support.certificates import Certificates, Pair, require
from tests.support.processes import ServerProcess

CERTIFICATES: Optional[Certificates] = None
DIRECTORY: Optional[tempfile.TemporaryDirectory] = None


def setUpModule() -> None:
    global CERTIFICATES, DIRECTORY
    require()
    DIRECTORY = tempfile.TemporaryDirectory()
    CERTIFICATES = Certificates(DIRECTORY.name)


def tearDownModule() -> None:
    if DIRECTORY is not None:
        DIRECTORY.cleanup()


def trusting(ca: Optional[str] = None, presenting: Optional[Pair] = None) -> ssl.SSLContext:
    """A client context trusting the test CA (or ``ca``), presenting a client
    certificate when given one."""
    assert CERTIFICATES is not None
    context = ssl.create_default_context(cafile=ca or CERTIFICATES.ca.cert)
    if presenting is not None:
        context.load_cert_chain(presenting.cert, presenting.key)
    return context


class TlsCase(TestCase):
    def setUp(self) -> None:
        super().setUp()
        assert CERTIFICATES is not None
        self.certs = CERTIFICATES

    def tls_server(self, pair: Optional[Pair] = None, client_ca: Optional[str] = None) -> Server:
        pair = pair or self.certs.server
        server = Server(tls_cert=pair.cert, tls_key=pair.key, tls_client_ca=client_ca)
        self.addCleanup(server.close)
        return server

    def assert_serves(self, server: Server, context: ssl.SSLContext, stored: frozenset = frozenset()) -> None:
        """The server still serves a good client, and holds only the keys
        ``stored`` by good clients before."""
        with Client(*server.address, timeout=BOUND, ssl=context) as good:
            self.assertEqual(set(good.get("*")), stored)
            good.put("after", 1.0, 7)
            self.assertEqual(good.get("after"), {"after": [(7, 1.0)]})

    def assert_tls_error(self, error: BaseException, words: str) -> None:
        self.assertIsInstance(error, ClientSocketError)
        self.assertIn(words, str(error))
        self.assertIsInstance(error.__cause__, ssl.SSLError)


class RoundTripTest(TlsCase):
    def test_put_get_and_put_many_over_tls(self) -> None:
        server = self.tls_server()
        with Client(*server.address, timeout=BOUND, ssl=trusting(), max_connections=2) as c:
            c.put("cpu", 0.5, 10)
            c.put_many([("cpu", 1.5, 11), ("mem", 2.0, 11)] * 200)
            self.assertEqual(c.get("*"), {"cpu": [(10, 0.5), (11, 1.5)], "mem": [(11, 2.0)]})
            # A get larger than one TLS record and one write chunk.
            c.put_many([(f"k{i}", float(i), i) for i in range(20_000)])
            self.assertEqual(len(c.get("*")), 20_002)

    def test_mutual_tls_serves_a_client_with_a_certificate_of_the_ca(self) -> None:
        server = self.tls_server(client_ca=self.certs.ca.cert)
        with Client(*server.address, timeout=BOUND, ssl=trusting(presenting=self.certs.client)) as c:
            c.put("a", 1.0, 1)
            self.assertEqual(c.get("a"), {"a": [(1, 1.0)]})

    def test_ssl_true_checks_against_the_system_trust_store(self) -> None:
        server = self.tls_server()
        with self.assertRaises(ClientSocketError) as caught:
            Client(*server.address, timeout=BOUND, ssl=True)
        self.assert_tls_error(caught.exception, "unknown CA")
        self.assertEqual(caught.exception.address, f"127.0.0.1:{server.address[1]}")

    def test_ssl_argument_is_checked(self) -> None:
        with self.assertRaises(client.ClientTypeError) as caught:
            Client("127.0.0.1", 1, ssl="yes")
        self.assertIn("ssl", str(caught.exception))
        with self.assertRaises(client.ClientTypeError):
            AsyncClient("127.0.0.1", 1, ssl=1)

    def test_async_client_over_tls(self) -> None:
        server = self.tls_server(client_ca=self.certs.ca.cert)

        async def main() -> None:
            async with AsyncClient(*server.address, timeout=BOUND,
                                   ssl=trusting(presenting=self.certs.client)) as c:
                await c.put("a", 1.0, 1)
                await c.put_many([("b", 2.0, 2)] * 50)
                self.assertEqual(await c.get("*"), {"a": [(1, 1.0)], "b": [(2, 2.0)]})
            stranger = AsyncClient(*server.address, timeout=BOUND,
                                   ssl=trusting(ca=self.certs.stranger_ca.cert))
            with self.assertRaises(ClientSocketError) as caught:
                await stranger.put("x", 1.0, 1)
            self.assert_tls_error(caught.exception, "unknown CA")
            stranger.close()
            lacking = AsyncClient(*server.address, timeout=BOUND, ssl=trusting())
            with self.assertRaises(ClientSocketError) as caught:
                await lacking.put("x", 1.0, 1)
            self.assert_tls_error(caught.exception, "requires a client certificate")
            lacking.close()

        asyncio.run(main())
        self.assert_serves(server, trusting(presenting=self.certs.client), frozenset({"a", "b"}))


class ServerCertificateTest(TlsCase):
    """The client refusing the server's certificate."""

    def test_certificate_of_another_ca(self) -> None:
        server = self.tls_server(self.certs.stranger_server)
        with self.assertRaises(ClientSocketError) as caught:
            Client(*server.address, timeout=BOUND, ssl=trusting())
        self.assert_tls_error(caught.exception, "unknown CA")
        self.assert_serves(server, trusting(ca=self.certs.stranger_ca.cert))

    def test_hostname_mismatch(self) -> None:
        server = self.tls_server(self.certs.misnamed_server)
        with self.assertRaises(ClientSocketError) as caught:
            Client(*server.address, timeout=BOUND, ssl=trusting())
        self.assert_tls_error(caught.exception, "hostname mismatch")
        context = trusting()
        context.check_hostname = False
        self.assert_serves(server, context)

    def test_expired_certificate(self) -> None:
        # Our server refuses to start with it: a Python TLS server serves it.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certs.expired_server.cert, self.certs.expired_server.key)
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        listener.settimeout(BOUND)

        def serve_one() -> None:
            connection, _ = listener.accept()
            connection.settimeout(BOUND)
            try:
                context.wrap_socket(connection, server_side=True).close()
            except (OSError, ssl.SSLError):
                connection.close()

        thread = threading.Thread(target=serve_one, daemon=True)
        thread.start()
        self.addCleanup(thread.join, BOUND)
        with self.assertRaises(ClientSocketError) as caught:
            Client(*listener.getsockname(), timeout=BOUND, ssl=trusting())
        self.assert_tls_error(caught.exception, "expired")


class ClientCertificateTest(TlsCase):
    """Mutual TLS: the server refusing the client's certificate."""

    def refused(self, presenting: Optional[Pair], words: str) -> None:
        server = self.tls_server(client_ca=self.certs.ca.cert)
        with self.assertRaises(ClientSocketError) as caught:
            # TLS 1.3 clients learn of the refusal on their first read.
            with Client(*server.address, timeout=BOUND, ssl=trusting(presenting=presenting)) as c:
                c.put("stranger", 1.0, 1)
        self.assert_tls_error(caught.exception, words)
        self.assert_serves(server, trusting(presenting=self.certs.client))

    def test_no_client_certificate(self) -> None:
        self.refused(None, "requires a client certificate")

    def test_client_certificate_of_another_ca(self) -> None:
        self.refused(self.certs.stranger_client, "unknown CA")

    def test_expired_client_certificate(self) -> None:
        self.refused(self.certs.expired_client, "expired")


class WrongSideTest(TlsCase):
    def test_plain_text_client_to_a_tls_port(self) -> None:
        server = self.tls_server()
        with Client(*server.address, timeout=BOUND) as plain:
            with self.assertRaises(ClientProtocolError) as caught:
                plain.put("plain", 1.0, 1)
        self.assertIn("requires TLS", str(caught.exception))
        self.assert_serves(server, trusting())

    def test_tls_client_to_a_plain_port(self) -> None:
        server = Server()
        self.addCleanup(server.close)
        with self.assertRaises(ClientSocketError) as caught:
            Client(*server.address, timeout=BOUND, ssl=trusting())
        self.assert_tls_error(caught.exception, "did not answer with TLS")
        with Client(*server.address, timeout=BOUND) as plain:
            self.assertEqual(plain.get("*"), {})


class StartTest(TlsCase):
    """Unusable certificate files stop the server at start, naming the file."""

    def refuses(self, path: str, words: str, **files: Optional[str]) -> None:
        with self.assertRaises(OSError) as caught:
            Server(**files)
        message = str(caught.exception)
        self.assertIn(path, message)
        self.assertIn(words, message)
        self.assertNotIn("\n", message)

    def test_missing_unreadable_garbage_expired_and_mismatched_files(self) -> None:
        good = self.certs.server
        with tempfile.TemporaryDirectory() as directory:
            missing = os.path.join(directory, "missing.pem")
            garbage = os.path.join(directory, "garbage.pem")
            with open(garbage, "w") as out:
                out.write("not a certificate\n")
            self.refuses(missing, "cannot read", tls_cert=missing, tls_key=good.key)
            self.refuses(missing, "cannot read", tls_cert=good.cert, tls_key=missing)
            # A directory cannot be read, even by root.
            self.refuses(directory, "cannot read", tls_cert=directory, tls_key=good.key)
            self.refuses(garbage, "no PEM certificate", tls_cert=garbage, tls_key=good.key)
            self.refuses(garbage, "private key", tls_cert=good.cert, tls_key=garbage)
            self.refuses(garbage, "no PEM certificate", tls_cert=good.cert, tls_key=good.key,
                         tls_client_ca=garbage)
        self.refuses(self.certs.expired_server.cert, "expired",
                     tls_cert=self.certs.expired_server.cert, tls_key=self.certs.expired_server.key)
        self.refuses(self.certs.client.key, "does not match",
                     tls_cert=good.cert, tls_key=self.certs.client.key)
        with self.assertRaises(ValueError):
            Server(tls_cert=good.cert)


class CommandLineTest(TlsCase):
    def test_serve_put_and_get_with_mutual_tls(self) -> None:
        certs = self.certs
        server = ServerProcess(kind="cli", options=[
            "--tls-cert", certs.server.cert, "--tls-key", certs.server.key,
            "--tls-client-ca", certs.ca.cert])
        self.addCleanup(server.kill)
        host, port = server.address
        base = ["--host", host, "--port", str(port), "--tls-ca", certs.ca.cert]
        mine = ["--tls-cert", certs.client.cert, "--tls-key", certs.client.key]
        from tests.test_cli import run_cli
        put = run_cli("put", "cpu", "1.5", "--timestamp", "10", *base, *mine)
        self.assertEqual(put.returncode, 0, put.stderr)
        got = run_cli("get", "cpu", "--json", *base, *mine)
        self.assertEqual(got.returncode, 0, got.stderr)
        self.assertEqual(got.stdout.strip(), '{"cpu": [[10, 1.5]]}')
        refused = run_cli("get", "cpu", *base)
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("requires a client certificate", refused.stderr)
        self.assertEqual(refused.stderr.count("\n"), 1, refused.stderr)

    def test_serve_refuses_an_expired_certificate_in_one_line(self) -> None:
        from tests.test_cli import run_cli
        expired = self.certs.expired_server
        done = run_cli("serve", "--port", "0", "--tls-cert", expired.cert, "--tls-key", expired.key)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn(expired.cert, done.stderr)
        self.assertIn("expired", done.stderr)
        self.assertEqual(done.stderr.count("\n"), 1, done.stderr)
