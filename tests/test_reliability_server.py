"""The embedded server with 1000 concurrent connections AND slow clients at
once. test_server_conformance checks 1000 well-behaved
connections, and a handful of slow ones, separately; here they share the
server:

    100 slow readers   ask for ``get *`` (~0.46 MB) often enough to exceed
                       what the kernel can buffer (tcp_wmem's maximum, 4 MiB
                       here, plus their 4 KiB receive buffer: 11 times) and
                       read nothing until the end
    100 idlers         send half a line (``put idle.N 1``) and stop
    100 tricklers      send their request one byte per round
    700 active         25 rounds of put + get on their own key, every
                       reply read and checked

All 1000 are open and in their state before the first round. The active
connections must finish all their rounds within ACTIVE_BOUND seconds while
the server is provably blocked writing to the slow readers (their server-side
send queues are non-empty in /proc/net/tcp). Then the idlers finish their
line, the tricklers' requests complete, and every slow reader drains its ten
replies and finds each complete and well-framed.
"""

import os
import resource
import sys
import time
import unittest

import client
from tests.support import BOUND, TestCase, _proc_address, wait_until
from tests.support.raw import connect, read_reply

CONNECTIONS = 1000
SLOW, IDLE, TRICKLE = 100, 100, 100
ACTIVE = CONNECTIONS - SLOW - IDLE - TRICKLE
ROUNDS = 25
BULK = 20_000           # points in the data set that `get *` returns (~0.46 MB)
ACTIVE_BOUND = float(os.environ.get("CLIENT_TEST_SLOW_BOUND", "30"))


def bulk_of(reply):
    """The bulk.* lines of a get reply, by key, in the reply's order."""
    by_key = {}
    for line in reply[3:-2].split(b"\n"):
        if line.startswith(b"bulk."):
            by_key.setdefault(line.split(b" ")[0], []).append(line)
    return by_key


def kernel_send_buffer_max():
    """The most a TCP socket's send buffer can grow to (tcp_wmem's maximum)."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            return int(f.read().split()[2])
    except (OSError, IndexError, ValueError):
        return 4 << 20


def server_send_queues(server_address, client_ports):
    """tx_queue of the server's side of each connection to a client port."""
    local = _proc_address(*server_address)
    wanted = {p: 0 for p in client_ports}
    with open("/proc/net/tcp") as rows:
        next(rows)
        for row in rows:
            fields = row.split()
            if fields[1] != local:
                continue
            port = int(fields[2].split(":")[1], 16)
            if port in wanted:
                wanted[port] = int(fields[4].split(":")[0], 16)
    return wanted


class ThousandConnectionsWithSlowClientsTest(TestCase):
    def test_slow_clients_among_a_thousand_do_not_stall_the_others(self):
        if not os.path.exists("/proc/net/tcp"):
            self.skipTest("needs /proc/net/tcp to observe the server's send queues")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = 2 * CONNECTIONS + 200       # both ends live in this process
        if soft < need:
            if hard != resource.RLIM_INFINITY and hard < need:
                self.skipTest(f"needs {need} file descriptors, the hard limit is {hard}")
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))

        srv = client.Server()
        self.addCleanup(srv.close)
        with client.Client(*srv.address, timeout=BOUND) as loader:
            loader.put_many([(f"bulk.{i % 4}", i + 0.5, 1_000_000 + i) for i in range(BULK)])
            bulk_reply = b"ok\n" + b"".join(
                f"bulk.{k} {i + 0.5!r} {1_000_000 + i}\n".encode()
                for k in range(4) for i in range(k, BULK, 4)) + b"\n"

        # More than the server's send buffer and the reader's receive buffer
        # can hold: the server's writer to each slow reader really blocks.
        slow_gets = (kernel_send_buffer_max() + 65536) // len(bulk_reply) + 1
        socks = []

        def opened(sock):
            socks.append(sock)
            return sock

        self.addCleanup(lambda: [s.close() for s in socks])
        slow = [opened(connect(srv.address, rcvbuf=4096)) for _ in range(SLOW)]
        idle = [opened(connect(srv.address)) for _ in range(IDLE)]
        trickle = [opened(connect(srv.address)) for _ in range(TRICKLE)]
        active = [opened(connect(srv.address)) for _ in range(ACTIVE)]
        self.assertEqual(len(socks), CONNECTIONS)

        for s in slow:
            s.sendall(b"get *\n" * slow_gets)
        for n, s in enumerate(idle):
            s.sendall(f"put idle.{n} 1".encode())
        trickle_requests = [f"put trickle.{n} {n} {n}\nget trickle.{n}\n".encode()
                            for n in range(TRICKLE)]

        # The server is stuck writing to every slow reader.
        slow_ports = [s.getsockname()[1] for s in slow]
        wait_until(lambda: all(q > 0 for q in server_send_queues(srv.address, slow_ports).values()),
                   message="the server's send queue to every slow reader to fill")

        buffers = [bytearray() for _ in active]
        started = time.monotonic()
        for r in range(ROUNDS):
            for n, s in enumerate(trickle):           # one byte each per round
                request = trickle_requests[n]
                if r < len(request):
                    s.sendall(request[r:r + 1])
            for n, s in enumerate(active):
                s.sendall(f"put active.{n} {r}.5 {r}\nget active.{n}\n".encode())
            for n, s in enumerate(active):
                self.assertEqual(read_reply(s, buffers[n]), b"ok\n\n")
                reply = read_reply(s, buffers[n])
                expected = b"ok\n" + b"".join(f"active.{n} {i}.5 {i}\n".encode()
                                              for i in range(r + 1)) + b"\n"
                self.assertEqual(reply, expected, (n, r))
        active_time = time.monotonic() - started
        self.assertLess(active_time, ACTIVE_BOUND)
        # Still blocked on the slow readers the whole time.
        queues = server_send_queues(srv.address, slow_ports)
        self.assertTrue(all(q > 0 for q in queues.values()), queues)

        for r in range(ROUNDS, max(len(x) for x in trickle_requests)):
            for n, s in enumerate(trickle):
                if r < len(trickle_requests[n]):
                    s.sendall(trickle_requests[n][r:r + 1])
        for n, s in enumerate(trickle):
            buf = bytearray()
            self.assertEqual(read_reply(s, buf), b"ok\n\n")
            self.assertEqual(read_reply(s, buf), f"ok\ntrickle.{n} {float(n)!r} {n}\n\n".encode())
        for s in idle:
            s.sendall(b" 1\n")
            self.assertEqual(read_reply(s, bytearray()), b"ok\n\n")

        expected_bulk = bulk_of(bulk_reply)

        # The slow readers finally read: ten complete, well-framed replies
        # each, holding every bulk point (other keys changed meanwhile, so
        # the replies are compared on the bulk lines only).
        drained = time.monotonic()
        for s in slow:
            buf = bytearray()
            for _ in range(slow_gets):
                reply = read_reply(s, buf)
                self.assertTrue(reply.startswith(b"ok\n"))
                self.assertEqual(bulk_of(reply), expected_bulk)
            self.assertEqual(buf, b"")
        drain_time = time.monotonic() - drained

        # Every connection is still served.
        for s in socks[::50]:
            s.sendall(b"get active.0\n")
            self.assertTrue(read_reply(s, bytearray()).startswith(b"ok\nactive.0 0.5 0\n"))
        if os.environ.get("CLIENT_TEST_REPORT"):
            print(f"\nserver: {CONNECTIONS} connections ({SLOW} slow readers blocking "
                  f"{slow_gets} x {len(bulk_reply) / 1e6:.2f} MB each, {IDLE} idle half-lines, "
                  f"{TRICKLE} tricklers); {ACTIVE} active x {ROUNDS} rounds in {active_time:.2f} s; "
                  f"slow readers drained {SLOW * slow_gets * len(bulk_reply) / 1e6:.0f} MB "
                  f"in {drain_time:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
