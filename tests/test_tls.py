"""TLS: the server's rustls side, the client's two paths, mutual TLS.

The client's tests run on both of its paths: the Rust core's TLS (rustls,
``tls_ca=``/``tls_cert=``/``tls_key=``/``ssl=True``; the ``Native`` classes)
and Python's ``ssl`` (an ``ssl.SSLContext``). Each refusal must raise the
same class on both, chained to an ``ssl`` error, with a message saying what
failed. Certificates are made at test time (tests/support/certificates.py).
Every refusal is checked to leave nothing stored and to leave the server
serving the next client.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import tempfile
import threading
from typing import Optional, Tuple

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
    #: "python": an ssl.SSLContext; "native": the Rust core's TLS.
    client_path = "python"

    def setUp(self) -> None:
        super().setUp()
        assert CERTIFICATES is not None
        self.certs = CERTIFICATES

    def trusting(self, ca: Optional[str] = None, presenting: Optional[Pair] = None) -> dict:
        """The client keywords trusting the test CA (or ``ca``), presenting a
        client certificate when given one, on this case's path."""
        if self.client_path == "python":
            return {"ssl": trusting(ca, presenting)}
        options = {"tls_ca": ca or self.certs.ca.cert}
        if presenting is not None:
            options.update(tls_cert=presenting.cert, tls_key=presenting.key)
        return options

    def system_trust(self) -> dict:
        """The client keywords trusting the system's CAs only."""
        if self.client_path == "python":
            return {"ssl": ssl.create_default_context()}
        return {"ssl": True}

    def tls_server(self, pair: Optional[Pair] = None, client_ca: Optional[str] = None) -> Server:
        pair = pair or self.certs.server
        server = Server(tls_cert=pair.cert, tls_key=pair.key, tls_client_ca=client_ca)
        self.addCleanup(server.close)
        return server

    def assert_serves(self, server: Server, options: dict, stored: frozenset = frozenset()) -> None:
        """The server still serves a good client, and holds only the keys
        ``stored`` by good clients before."""
        with Client(*server.address, timeout=BOUND, **options) as good:
            self.assertEqual(set(good.get("*")), stored)
            good.put("after", 1.0, 7)
            self.assertEqual(good.get("after"), {"after": [(7, 1.0)]})

    def assert_tls_error(self, error: BaseException, words: str, verification: bool = False) -> None:
        """``error`` is the TLS failure both paths raise; ``verification``:
        our check of the server's certificate refused it."""
        self.assertIsInstance(error, ClientSocketError)
        self.assertIn(words, str(error))
        self.assertIsInstance(error.__cause__, ssl.SSLError)
        if verification:
            self.assertIsInstance(error.__cause__, ssl.SSLCertVerificationError)


class RoundTripTest(TlsCase):
    def test_put_get_and_put_many_over_tls(self) -> None:
        server = self.tls_server()
        with Client(*server.address, timeout=BOUND, **self.trusting(), max_connections=2) as c:
            c.put("cpu", 0.5, 10)
            c.put_many([("cpu", 1.5, 11), ("mem", 2.0, 11)] * 200)
            self.assertEqual(c.get("*"), {"cpu": [(10, 0.5), (11, 1.5)], "mem": [(11, 2.0)]})
            # A get larger than one TLS record and one write chunk.
            c.put_many([(f"k{i}", float(i), i) for i in range(20_000)])
            self.assertEqual(len(c.get("*")), 20_002)

    def test_mutual_tls_serves_a_client_with_a_certificate_of_the_ca(self) -> None:
        server = self.tls_server(client_ca=self.certs.ca.cert)
        with Client(*server.address, timeout=BOUND, **self.trusting(presenting=self.certs.client)) as c:
            c.put("a", 1.0, 1)
            self.assertEqual(c.get("a"), {"a": [(1, 1.0)]})

    def test_ssl_true_checks_against_the_system_trust_store(self) -> None:
        server = self.tls_server()
        with self.assertRaises(ClientSocketError) as caught:
            Client(*server.address, timeout=BOUND, **self.system_trust())
        self.assert_tls_error(caught.exception, "unknown CA", verification=True)
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
                                   **self.trusting(presenting=self.certs.client)) as c:
                await c.put("a", 1.0, 1)
                await c.put_many([("b", 2.0, 2)] * 50)
                self.assertEqual(await c.get("*"), {"a": [(1, 1.0)], "b": [(2, 2.0)]})
            stranger = AsyncClient(*server.address, timeout=BOUND,
                                   **self.trusting(ca=self.certs.stranger_ca.cert))
            with self.assertRaises(ClientSocketError) as caught:
                await stranger.put("x", 1.0, 1)
            self.assert_tls_error(caught.exception, "unknown CA")
            stranger.close()
            lacking = AsyncClient(*server.address, timeout=BOUND, **self.trusting())
            with self.assertRaises(ClientSocketError) as caught:
                await lacking.put("x", 1.0, 1)
            self.assert_tls_error(caught.exception, "requires a client certificate")
            lacking.close()

        asyncio.run(main())
        self.assert_serves(server, self.trusting(presenting=self.certs.client), frozenset({"a", "b"}))


class ServerCertificateTest(TlsCase):
    """The client refusing the server's certificate."""

    def test_certificate_of_another_ca(self) -> None:
        server = self.tls_server(self.certs.stranger_server)
        with self.assertRaises(ClientSocketError) as caught:
            Client(*server.address, timeout=BOUND, **self.trusting())
        self.assert_tls_error(caught.exception, "unknown CA", verification=True)
        self.assert_serves(server, self.trusting(ca=self.certs.stranger_ca.cert))

    def test_hostname_mismatch(self) -> None:
        server = self.tls_server(self.certs.misnamed_server)
        with self.assertRaises(ClientSocketError) as caught:
            Client(*server.address, timeout=BOUND, **self.trusting())
        self.assert_tls_error(caught.exception, "hostname mismatch", verification=True)
        context = trusting()
        context.check_hostname = False
        self.assert_serves(server, {"ssl": context})

    def python_tls_server(self, pair: Pair, names: Optional[list] = None) -> Tuple[threading.Thread, int]:
        """A Python TLS server serving one connection with ``pair`` until
        the client leaves, recording the SNI names it is sent in ``names``;
        returns its thread and port."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pair.cert, pair.key)
        if names is not None:
            context.sni_callback = lambda _socket, name, _context: names.append(name)
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        listener.settimeout(BOUND)

        def serve_one() -> None:
            connection, _ = listener.accept()
            connection.settimeout(BOUND)
            try:
                with context.wrap_socket(connection, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                connection.close()

        thread = threading.Thread(target=serve_one, daemon=True)
        thread.start()
        self.addCleanup(thread.join, BOUND)
        return thread, listener.getsockname()[1]

    def test_expired_certificate(self) -> None:
        # Our server refuses to start with it: a Python TLS server serves it.
        _, port = self.python_tls_server(self.certs.expired_server)
        with self.assertRaises(ClientSocketError) as caught:
            Client("127.0.0.1", port, timeout=BOUND, **self.trusting())
        self.assert_tls_error(caught.exception, "expired", verification=True)

    def test_self_signed_certificate(self) -> None:
        server = self.tls_server(self.certs.self_signed_server)
        with self.assertRaises(ClientSocketError) as caught:
            Client(*server.address, timeout=BOUND, **self.trusting())
        self.assert_tls_error(caught.exception, "self-signed", verification=True)
        self.assertIn("unknown CA", str(caught.exception))
        self.assert_serves(server, self.trusting(ca=self.certs.self_signed_server.cert))

    def test_the_host_name_is_sent_as_sni_and_checked(self) -> None:
        names: list = []
        thread, port = self.python_tls_server(self.certs.server, names)
        # The handshake is done when Client() returns.
        Client("localhost", port, timeout=BOUND, **self.trusting()).close()
        thread.join(BOUND)
        self.assertEqual(names, ["localhost"])


class ClientCertificateTest(TlsCase):
    """Mutual TLS: the server refusing the client's certificate."""

    def refused(self, presenting: Optional[Pair], words: str) -> None:
        server = self.tls_server(client_ca=self.certs.ca.cert)
        with self.assertRaises(ClientSocketError) as caught:
            # TLS 1.3 clients learn of the refusal on their first read.
            with Client(*server.address, timeout=BOUND, **self.trusting(presenting=presenting)) as c:
                c.put("stranger", 1.0, 1)
        self.assert_tls_error(caught.exception, words)
        self.assert_serves(server, self.trusting(presenting=self.certs.client))

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
        self.assert_serves(server, self.trusting())

    def test_tls_client_to_a_plain_port(self) -> None:
        server = Server()
        self.addCleanup(server.close)
        with self.assertRaises(ClientSocketError) as caught:
            Client(*server.address, timeout=BOUND, **self.trusting())
        self.assert_tls_error(caught.exception, "did not answer with TLS")
        with Client(*server.address, timeout=BOUND) as plain:
            self.assertEqual(plain.get("*"), {})


class NativeRoundTripTest(RoundTripTest):
    client_path = "native"


class NativeServerCertificateTest(ServerCertificateTest):
    client_path = "native"


class NativeClientCertificateTest(ClientCertificateTest):
    client_path = "native"


class NativeWrongSideTest(WrongSideTest):
    client_path = "native"


class NativeArgumentsTest(TlsCase):
    """What the Rust core's TLS takes: ``ssl=True``, ``tls_*`` files."""

    def test_unusable_files_are_refused_naming_the_argument_and_the_file(self) -> None:
        certs = self.certs
        with tempfile.TemporaryDirectory() as directory:
            missing = os.path.join(directory, "missing.pem")
            garbage = os.path.join(directory, "garbage.pem")
            with open(garbage, "w") as out:
                out.write("not a certificate\n")
            cases = [
                ({"tls_ca": missing}, "tls_ca", missing, "cannot read"),
                ({"tls_ca": garbage}, "tls_ca", garbage, "no PEM certificate"),
                ({"tls_cert": garbage, "tls_key": certs.client.key}, "tls_cert", garbage,
                 "no PEM certificate"),
                ({"tls_cert": certs.client.cert, "tls_key": garbage}, "tls_key", garbage,
                 "private key"),
                ({"tls_cert": certs.client.cert, "tls_key": certs.server.key}, "tls_key",
                 certs.server.key, "does not match"),
            ]
            for options, argument, path, words in cases:
                for make in (Client, AsyncClient):
                    with self.subTest(options=options, make=make.__name__):
                        with self.assertRaises(client.ClientValueError) as caught:
                            make("127.0.0.1", 1, **options)
                        message = str(caught.exception)
                        for expected in (argument, path, words):
                            self.assertIn(expected, message)

    def test_contradicting_arguments_are_refused(self) -> None:
        ca = self.certs.ca.cert
        for options, words in [({"tls_key": self.certs.client.key}, "needs tls_cert"),
                               ({"ssl": False, "tls_ca": ca}, "ssl is False"),
                               ({"ssl": trusting(), "tls_ca": ca}, "ssl.SSLContext")]:
            with self.subTest(options=options):
                with self.assertRaises(client.ClientValueError) as caught:
                    Client("127.0.0.1", 1, **options)
                self.assertIn(words, str(caught.exception))

    def test_a_key_in_the_certificate_file(self) -> None:
        server = self.tls_server(client_ca=self.certs.ca.cert)
        with tempfile.TemporaryDirectory() as directory:
            both = os.path.join(directory, "client-with-key.pem")
            with open(both, "w") as out:
                for path in (self.certs.client.cert, self.certs.client.key):
                    with open(path) as part:
                        out.write(part.read())
            with Client(*server.address, timeout=BOUND, tls_ca=self.certs.ca.cert,
                        tls_cert=both) as c:
                c.put("a", 1.0, 1)
                self.assertEqual(c.get("a"), {"a": [(1, 1.0)]})


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
