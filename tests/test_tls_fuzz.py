"""Fuzzing both ends' TLS with hostile bytes, bounded in count and time.

The server's: garbage before the handshake (random bytes, bytes that look
like a TLS record, mutated and truncated ClientHellos) and after it (raw
bytes inside the TLS stream's place, and garbage lines sent over TLS).
After every case the server must close or answer that connection, keep
serving a good TLS client on each of the client's paths (the Rust core's
TLS and Python's ``ssl``), and store nothing from the garbage.

The client's, on each path: a server that answers a request with garbage
over TLS, with raw bytes in place of TLS records, or with its reply's
records altered or cut short. The call must raise a ClientError (never
hang, never anything else), and the client's next call, on a new
connection, must work.

    CLIENT_TEST_TLS_FUZZ_SEED=N   the generator's seed (default: fixed)
    CLIENT_TEST_TLS_FUZZ_CASES=N  how many cases (default 120)
"""

from __future__ import annotations

import os
import random
import socket
import ssl
import tempfile
import time

from client import Client, ClientError, Server
from tests.support import BOUND, Peer, TestCase
from tests.support.certificates import Certificates, require
from tests.support.transports import certificates, server_context

SEED = int(os.environ.get("CLIENT_TEST_TLS_FUZZ_SEED", "20261126"))
CASES = int(os.environ.get("CLIENT_TEST_TLS_FUZZ_CASES", "120"))
#: The whole run stops early (still checked) past this many seconds.
TIME_LIMIT = 60.0
#: Cases of the client's fuzzing, per client path.
CLIENT_CASES = int(os.environ.get("CLIENT_TEST_TLS_CLIENT_FUZZ_CASES", "60"))
CLIENT_TIME_LIMIT = 30.0
#: Garbage lines sent over TLS: no letter of "put", so none can store a point.
LINE_ALPHABET = bytes(b for b in range(256) if b not in b"putPUT") + b"\n\n\n"


def client_hello(context: ssl.SSLContext) -> bytes:
    """The first flight of a real TLS client, made in memory."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def drain(sock: socket.socket) -> None:
    """Reads until the server closes (or resets) the connection; bounded."""
    sock.settimeout(BOUND)
    for _ in range(10_000):
        try:
            if not sock.recv(65536):
                return
        except (ConnectionError, ssl.SSLError, OSError):
            return
    raise AssertionError("the server kept sending")


class TlsFuzzTest(TestCase):
    def test_garbage_before_and_after_the_handshake(self) -> None:
        require()
        with tempfile.TemporaryDirectory() as directory:
            certs = self.certs = Certificates(directory)
            context = ssl.create_default_context(cafile=certs.ca.cert)
            with Server(tls_cert=certs.server.cert, tls_key=certs.server.key) as server:
                self.run_cases(server, context)

    def run_cases(self, server: Server, context: ssl.SSLContext) -> None:
        self.good = [{"ssl": context}, {"tls_ca": self.certs.ca.cert}]
        rng = random.Random(SEED)
        hello = client_hello(context)
        address = server.address
        started = time.monotonic()
        kinds = [self.random_bytes, self.record_like, self.mutated_hello, self.truncated_hello,
                 self.garbage_after_handshake, self.garbage_lines_over_tls]
        ran = 0
        for index in range(CASES):
            if time.monotonic() - started > TIME_LIMIT:
                break
            kind = kinds[index % len(kinds)]
            with self.subTest(case=index, kind=kind.__name__, seed=SEED):
                kind(rng, address, hello, context)
                if index % 10 == 9:
                    self.assert_serves(address, context)
            ran += 1
        self.assertGreaterEqual(ran, len(kinds))
        self.assert_serves(address, context)
        for options in self.good:
            with Client(*address, timeout=BOUND, **options) as good:
                self.assertEqual(list(good.get("*")), ["good"])

    def assert_serves(self, address: tuple, context: ssl.SSLContext) -> None:
        """A good client on each path is served."""
        for options in self.good:
            with Client(*address, timeout=BOUND, **options) as good:
                good.put("good", 1.0, 1)
                self.assertEqual(good.get("good"), {"good": [(1, 1.0)]})

    @staticmethod
    def send_raw(address: tuple, data: bytes) -> None:
        with socket.create_connection(address, timeout=BOUND) as sock:
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                return  # refused early: the server closed on what it saw
            drain(sock)

    def random_bytes(self, rng: random.Random, address: tuple, hello: bytes, _: ssl.SSLContext) -> None:
        self.send_raw(address, rng.randbytes(rng.randint(1, 3000)))

    def record_like(self, rng: random.Random, address: tuple, hello: bytes, _: ssl.SSLContext) -> None:
        # A handshake record header (type 22, version 3.x, any length).
        header = bytes([0x16, 3, rng.randint(0, 4)]) + rng.randint(0, 0xFFFF).to_bytes(2, "big")
        self.send_raw(address, header + rng.randbytes(rng.randint(0, 2000)))

    def mutated_hello(self, rng: random.Random, address: tuple, hello: bytes, _: ssl.SSLContext) -> None:
        data = bytearray(hello)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(1, len(data))] = rng.randrange(256)
        self.send_raw(address, bytes(data) + rng.randbytes(rng.randint(0, 64)))

    def truncated_hello(self, rng: random.Random, address: tuple, hello: bytes, _: ssl.SSLContext) -> None:
        self.send_raw(address, hello[:rng.randint(1, len(hello) - 1)])

    def garbage_after_handshake(self, rng: random.Random, address: tuple, hello: bytes,
                                context: ssl.SSLContext) -> None:
        with socket.create_connection(address, timeout=BOUND) as raw:
            tls = context.wrap_socket(raw, server_hostname="localhost")
            try:
                # Bytes in place of TLS records, straight onto the socket.
                os.write(tls.fileno(), rng.randbytes(rng.randint(1, 2000)))
                drain(tls)
            finally:
                tls.close()

    def garbage_lines_over_tls(self, rng: random.Random, address: tuple, hello: bytes,
                               context: ssl.SSLContext) -> None:
        with socket.create_connection(address, timeout=BOUND) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                data = bytes(rng.choice(LINE_ALPHABET) for _ in range(rng.randint(1, 3000)))
                tls.sendall(data + b"\n")
                # Each line gets an answer (an error); closing our side ends it.
                tls.shutdown(socket.SHUT_WR)
                drain(tls)


class TlsClientFuzzTest(TestCase):
    """A hostile TLS server against each client path."""

    def test_hostile_replies_on_both_client_paths(self) -> None:
        certs = certificates()
        paths = {"native": {"tls_ca": certs.ca.cert},
                 "python": {"ssl": ssl.create_default_context(cafile=certs.ca.cert)}}
        kinds = [self.garbage_over_tls, self.raw_bytes_for_records, self.altered_record,
                 self.cut_record]
        for path, options in paths.items():
            rng = random.Random(SEED)
            started = time.monotonic()
            ran = 0
            for index in range(CLIENT_CASES):
                if time.monotonic() - started > CLIENT_TIME_LIMIT:
                    break
                kind = kinds[index % len(kinds)]
                with self.subTest(path=path, case=index, kind=kind.__name__, seed=SEED):
                    # Garbage plaintext may happen to be a reply; broken
                    # records never are.
                    self.run_case(options, lambda peer: kind(rng, peer),
                                  must_fail=kind != self.garbage_over_tls)
                ran += 1
            self.assertGreaterEqual(ran, len(kinds))

    def run_case(self, options: dict, hostile, must_fail: bool) -> None:
        def first(peer: Peer) -> None:
            peer.read_line()
            hostile(peer)
            peer.close()

        def good(peer: Peer) -> None:
            while True:
                peer.read_line()
                peer.send(b"ok\nk 1.0 1\n\n")

        server = self.server([first, good], tls=server_context())
        c = self.client(server, timeout=BOUND, **options)
        try:
            c.get("k")
        except ClientError:
            pass
        else:
            self.assertFalse(must_fail, "the hostile reply was taken for an answer")
        self.assertEqual(c.get("k"), {"k": [(1, 1.0)]})

    @staticmethod
    def reply(rng: random.Random) -> bytes:
        return b"ok\n" + b"".join(b"k %d.5 %d\n" % (i, i) for i in range(rng.randint(1, 2000))) + b"\n"

    def garbage_over_tls(self, rng: random.Random, peer: Peer) -> None:
        peer.send(rng.randbytes(rng.randint(1, 3000)))

    def raw_bytes_for_records(self, rng: random.Random, peer: Peer) -> None:
        peer.sock.sendall(rng.randbytes(rng.randint(1, 3000)))

    def altered_record(self, rng: random.Random, peer: Peer) -> None:
        assert peer.tls is not None
        records = bytearray(peer.tls.records(self.reply(rng)))
        for _ in range(rng.randint(1, 4)):
            records[rng.randrange(len(records))] ^= 1 << rng.randrange(8)
        peer.sock.sendall(bytes(records))

    def cut_record(self, rng: random.Random, peer: Peer) -> None:
        assert peer.tls is not None
        records = peer.tls.records(self.reply(rng))
        peer.sock.sendall(records[:rng.randrange(1, len(records))])
