"""A reproduction of the course's week-6 checker, run against our server.

The checker imports ``Client``, ``ClientSocketError`` and
``ClientProtocolError``, opens two clients with ``timeout=5``, writes a
malformed command straight onto a connection (``client.connection.sendall``)
and expects ``client._read()`` to raise ``ClientProtocolError``; then it
interleaves puts from both clients and compares ``get`` results with exact
dictionaries. Run against the installed package::

    pip install . && python -m unittest discover -s tests -t . -p 'test_week6_checker.py'
"""

from __future__ import annotations

import unittest

from client import Client, ClientProtocolError, ClientSocketError, Server
from tests.support import TestCase


def run_checker(host: str, port: int) -> None:
    """The checker's steps; raises AssertionError describing the first
    failed check, as the checker reports one."""
    try:
        client1 = Client(host, port, timeout=5)
        client2 = Client(host, port, timeout=5)
    except ClientSocketError as err:
        raise AssertionError(f"cannot connect to the server: {err}") from None

    try:
        client1.connection.sendall(b"malformed command test\n")
        client1._read()
    except ClientProtocolError:
        pass
    else:
        raise AssertionError("a malformed command was not answered with an error")

    client1.put("k1", 0.25, timestamp=1)
    client2.put("k1", 2.156, timestamp=2)
    client1.put("k1", 0.35, timestamp=3)
    client2.put("k2", 30, timestamp=4)
    client1.put("k2", 40, timestamp=5)
    client1.put("k2", 40, timestamp=5)

    expected = {"k1": [(1, 0.25), (2, 2.156), (3, 0.35)], "k2": [(4, 30.0), (5, 40.0)]}
    result = client1.get("*")
    if result != expected:
        raise AssertionError(f"get('*') returned {result!r}, expected {expected!r}")

    expected = {"k2": [(4, 30.0), (5, 40.0)]}
    result = client2.get("k2")
    if result != expected:
        raise AssertionError(f"get('k2') returned {result!r}, expected {expected!r}")

    result = client1.get("k3")
    if result != {}:
        raise AssertionError(f"get('k3') returned {result!r}, expected {{}}")

    client1.close()
    client2.close()


class Week6Checker(TestCase):
    def test_the_checker_passes_against_our_server(self) -> None:
        with Server() as srv:
            run_checker(*srv.address)

    def test_the_checker_passes_against_a_durable_server(self) -> None:
        import os
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "metrics.log")
            with Server(data=path, fsync="always") as srv:
                run_checker(*srv.address)
            # And the data is still all there after a restart.
            with Server(data=path) as srv, Client(*srv.address, timeout=5) as cl:
                self.assertEqual(cl.get("*"), {"k1": [(1, 0.25), (2, 2.156), (3, 0.35)],
                                               "k2": [(4, 30.0), (5, 40.0)]})

    def test_the_checker_notices_a_server_that_accepts_anything(self) -> None:
        # The reproduction can fail: after this put, get('*') has an extra key.
        with Server() as srv:
            with Client(*srv.address, timeout=5) as cl:
                cl.put("k0", 1, timestamp=1)
            with self.assertRaisesRegex(AssertionError, r"get\('\*'\) returned"):
                run_checker(*srv.address)


if __name__ == "__main__":
    unittest.main()
