"""Hostile servers: replies that break the protocol, arrive unasked or
never end. The client must raise a clear error, discard the connection
and use a new one for the next call.
"""

import time

from client import (
    ClientError,
    ClientProtocolError,
    ClientReplyError,
    ClientSocketError,
)
from tests.support import (
    BOUND,
    TestCase,
    respond,
    wait_client_socket,
)
from tests.support.scripted import answer_points, point_reply
from tests.support.transports import OverTls


class HostileServerTest(TestCase):
    def assert_reconnects(self, srv, c, connections):
        """The next call works, on a new connection."""
        self.assertEqual(c.get("next"), {"next": [(1, 1.0)]})
        self.assertEqual(srv.connection_count, connections)
        self.assertEqual(srv.peer(connections - 1).received(), b"get next\n")

    def test_server_closing_mid_reply(self):
        def close_mid_reply(peer):
            peer.read_line()
            peer.send(b"ok\ntest 0.5")
            peer.close()

        srv = self.server([close_mid_reply, answer_points])
        c = self.client(srv)
        with self.assertRaises(ClientSocketError) as caught:
            c.get("test")
        self.assertIsInstance(caught.exception, ConnectionError)
        self.assertNotIsInstance(caught.exception, ClientReplyError)
        self.assert_reconnects(srv, c, 2)

    def test_server_closing_without_reply(self):
        def close_at_once(peer):
            peer.read_line()
            peer.close()

        for call in (lambda c: c.get("k"), lambda c: c.put("k", 1, 1)):
            srv = self.server([close_at_once, answer_points])
            c = self.client(srv)
            with self.assertRaises(ClientSocketError):
                call(c)
            self.assert_reconnects(srv, c, 2)

    def test_server_resetting_mid_reply(self):
        def reset(peer):
            peer.read_line()
            peer.send(b"ok\nk 1 ")
            peer.abort()

        srv = self.server([reset, answer_points])
        c = self.client(srv)
        with self.assertRaises(ClientSocketError) as caught:
            c.get("k")
        self.assertIsInstance(caught.exception, ConnectionError)
        self.assert_reconnects(srv, c, 2)

    def test_garbage_replies(self):
        cases = [
            ("get", b"hello\n\n"),
            ("get", b"OK\n\n"),
            ("get", b"ok \n\n"),
            ("get", b"\n\n"),
            ("get", b"\x00\xff\xfe\n\n"),
            ("get", b"HTTP/1.1 400 Bad Request\r\n\r\n"),
            ("get", b"ok\ntest 0.5\n\n"),
            ("get", b"ok\ntest\n\n"),
            ("get", b"ok\ntest abc 1\n\n"),
            ("get", b"ok\ntest 0.5 1.5\n\n"),
            ("get", b"ok\ntest 0.5 x\n\n"),
            ("get", b"ok\ntest 0.5 1 extra\n\n"),
            ("get", b"ok\ntest 0.5 99999999999999999999\n\n"),
            ("put", b"ok\ntest 0.5 1\n\n"),
            ("put", b"okay\n\n"),
        ]
        for command, reply in cases:
            with self.subTest(command=command, reply=reply):
                def garbage(peer, reply=reply):
                    peer.read_line()
                    peer.send(reply)

                srv = self.server([garbage, answer_points])
                c = self.client(srv)
                call = (lambda: c.get("test")) if command == "get" else (lambda: c.put("test", 1, 1))
                with self.assertRaises(ClientReplyError) as caught:
                    call()
                self.assertIsInstance(caught.exception, ClientError)
                self.assertNotIsInstance(caught.exception, ClientProtocolError)
                self.assert_reconnects(srv, c, 2)
                srv.stop()

    def test_extra_bytes_after_a_reply_in_the_same_segment(self):
        for extra in (b"ok\n\n", b"x", b"\n"):
            with self.subTest(extra=extra):
                def two_replies(peer, extra=extra):
                    line = peer.read_line()
                    peer.send(point_reply(line) + extra)

                srv = self.server([two_replies, answer_points])
                c = self.client(srv)
                with self.assertRaises(ClientReplyError):
                    c.get("k")
                self.assert_reconnects(srv, c, 2)
                srv.stop()

    def test_reply_in_one_byte_segments(self):
        reply = (b"ok\n" + b"".join(b"key.%d %d.25 %d\n" % (i % 3, i, 100 - i) for i in range(12))
                 + b"\n")
        expected = {}
        for i in range(12):
            expected.setdefault("key.%d" % (i % 3), []).append((100 - i, i + 0.25))
        for points in expected.values():
            points.sort()

        def byte_by_byte(peer):
            peer.read_line()
            for i in range(len(reply)):
                # Each byte is sent only once the client has read the previous
                # one, so the client really decodes one byte at a time.
                wait_client_socket(self, peer, lambda state, rx: rx == 0,
                                   "the client to read the previous byte")
                peer.send(reply[i:i + 1])
            answer_points(peer)

        srv = self.server(byte_by_byte)
        c = self.client(srv)
        self.assertEqual(c.get("*"), expected)
        self.assertEqual(c.get("next"), {"next": [(1, 1.0)]})
        self.assertEqual(srv.connection_count, 1)
        srv.assert_no_script_errors()

    def test_max_reply_bytes_boundary(self):
        reply = b"ok\nk 1 1\n\n"   # 10 bytes
        srv = self.server(respond(reply))
        c = self.client(srv, max_reply_bytes=len(reply))
        self.assertEqual(c.max_reply_bytes, 10)
        self.assertEqual(c.get("k"), {"k": [(1, 1.0)]})
        c = self.client(srv, max_reply_bytes=len(reply) - 1)
        with self.assertRaises(ClientReplyError) as caught:
            c.get("k")
        self.assertIn("9", str(caught.exception))

    def test_endless_reply_is_cut_at_max_reply_bytes(self):
        limit = 256 * 1024
        for name, first, block in [("lines", b"ok\n", b"key 1.0 1\n" * 6554),
                                   ("one endless line", b"ok\nkey ", b"9" * 65536),
                                   ("endless error", b"error\n", b"e\n" * 32768)]:
            with self.subTest(name):
                def endless(peer, first=first, block=block):
                    peer.read_line()
                    peer.send(first)
                    while not peer.server.stopping and peer.try_send(block):
                        pass

                srv = self.server([endless, answer_points])
                c = self.client(srv, max_reply_bytes=limit)
                start = time.monotonic()
                with self.assertRaises(ClientReplyError) as caught:
                    c.get("key")
                self.assertLess(time.monotonic() - start, BOUND / 2)
                self.assertIn(str(limit), str(caught.exception))
                # The client stopped reading and closed: the server could only
                # push the limit plus what the socket buffers hold.
                srv.peer(0).script_done.wait(BOUND)
                self.assertLess(srv.peer(0).sent, limit + 64 * 1024 * 1024)
                self.assert_reconnects(srv, c, 2)
                srv.stop()




class HostileServerOverTlsTest(OverTls, HostileServerTest):
    pass
