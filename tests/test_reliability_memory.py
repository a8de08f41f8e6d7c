"""Memory stays flat over 1,000,000 calls (no leak, measured
RSS), in the client process and in the server process.

A server (``client.Server``) and a client run in two child processes. The
client makes CALLS calls in ten equal phases, a fixed mix per 100 calls:

    50 put           (50 keys x 200 timestamps: the data set stops growing
                      at 10,000 points, later puts replace values)
    30 get key       (about 200 points each: lists, tuples, floats built
                      through the C API in src/python/results.rs)
    10 get missing   (a new key name each time: {} )
     5 put_many      (10 points each)
     2 error reply   (raw ``bogus`` line, ClientProtocolError raised and dropped)
     2 bad argument  (ClientValueError raised by the client, nothing sent)
     1 get("*")      every 10,000 calls (10,000 points, ~230 KB reply),
                     otherwise a put

and every 1,000 calls it closes its Client and makes a new one (1,000
connections opened and closed on each side). After each phase the child
reports its RSS and waits while the test reads the server's RSS.

The first phase is warm-up (data set filled, allocator pools and Python's
caches grown). After it, RSS may grow by at most GROWTH_BOUND in either
process over the remaining 900,000 calls: 4 MiB is under 5 bytes per call, so
a leak of a single Python object per call (>= 24 bytes, >= 21 MiB in all),
of one request string in Rust (>= 32 bytes with malloc's header), or of one
connection's 16 KiB of buffers per reconnect (>= 14 MiB) fails the test,
while allocator noise (measured well under 1 MiB) passes.

    CLIENT_TEST_MEMORY_CALLS=1000000   (about 40 s on the 2-core development machine)
"""

import faulthandler
import os
import sys
import textwrap
import time
import unittest

from tests.support import WATCHDOG, TestCase
from tests.support.processes import ChildProcess, ServerProcess, rss_bytes

CALLS = int(os.environ.get("CLIENT_TEST_MEMORY_CALLS", "1000000"))
PHASES = 10
MiB = 1 << 20
GROWTH_BOUND = int(float(os.environ.get("CLIENT_TEST_MEMORY_GROWTH_MIB", "4")) * MiB)
#: Seconds allowed for the whole run (a hang, not a slow machine, if hit).
TIME_BOUND = float(os.environ.get("CLIENT_TEST_MEMORY_BOUND", "300")) * max(1.0, CALLS / 1e6)

CLIENT_CHILD = textwrap.dedent("""
    import os, sys
    import client
    from client import Client, ClientProtocolError, ClientValueError

    host, port, calls, phases = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    page = os.sysconf("SC_PAGE_SIZE")

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page

    c = Client(host, port, timeout=30)
    print("start", rss(), flush=True)
    sys.stdin.readline()
    per_phase = calls // phases
    i = 0
    errors = 0
    for phase in range(phases):
        for _ in range(per_phase):
            op = i % 100
            if op < 50:
                c.put(f"mem.{i % 50}", i + 0.25, (i // 50) % 200)
            elif op < 80:
                points = c.get(f"mem.{i % 50}")
                if len(points) != 1:
                    raise AssertionError(points.keys())
            elif op < 90:
                if c.get(f"absent.{i}"):
                    raise AssertionError("absent key has points")
            elif op < 95:
                c.put_many([(f"mem.{(i + j) % 50}", j, (i // 50 + j) % 200) for j in range(10)])
            elif op < 97:
                c.connection.sendall(b"bogus\\n")
                try:
                    c._read()
                except ClientProtocolError:
                    errors += 1
            elif op < 99:
                try:
                    c.put("bad key", 1, 1)
                except ClientValueError:
                    errors += 1
            elif i % 10000 == 99:
                everything = c.get("*")
                if len(everything) != 50:
                    raise AssertionError(len(everything))
            else:
                c.put(f"mem.{i % 50}", -1.5, (i // 50) % 200)
            if i % 1000 == 999:
                c.close()
                c = Client(host, port, timeout=30)
            i += 1
        print("phase", phase, i, rss(), errors, flush=True)
        sys.stdin.readline()
    c.close()
    print("done", flush=True)
""")


class MemoryTest(TestCase):
    def setUp(self):
        super().setUp()
        faulthandler.dump_traceback_later(max(WATCHDOG, TIME_BOUND + 60), exit=True)

    def test_rss_is_flat_over_a_million_calls(self):
        if not os.path.exists("/proc/self/statm"):
            self.skipTest("needs /proc to measure RSS")
        server = ServerProcess()
        self.addCleanup(server.kill)
        host, port = server.address
        child = ChildProcess(["-c", CLIENT_CHILD, host, str(port), str(CALLS), str(PHASES)],
                             stdin=True)
        self.addCleanup(child.kill)
        line = child.readline().split()
        self.assertEqual(line[0], "start")
        at_start = (int(line[1]), rss_bytes(server.pid))
        child.write("\n")
        started = time.monotonic()
        client_rss, server_rss = [], []
        for phase in range(PHASES):
            left = TIME_BOUND - (time.monotonic() - started)
            line = child.readline(timeout=max(1.0, left)).split()
            self.assertEqual(line[:2], ["phase", str(phase)])
            self.assertEqual(int(line[2]), (phase + 1) * (CALLS // PHASES))
            client_rss.append(int(line[3]))
            server_rss.append(rss_bytes(server.pid))
            child.write("\n")
        self.assertEqual(child.readline(), "done")
        code, _, err = child.finish()
        self.assertEqual(code, 0, err)
        elapsed = time.monotonic() - started

        report = (f"memory: {CALLS:,} calls in {elapsed:.1f} s ({CALLS / elapsed:,.0f} calls/s)\n"
                  f"  client RSS MiB at start {at_start[0] / MiB:.1f}, after each tenth: "
                  f"{' '.join(f'{r / MiB:.1f}' for r in client_rss)}\n"
                  f"  server RSS MiB at start {at_start[1] / MiB:.1f}, after each tenth: "
                  f"{' '.join(f'{r / MiB:.1f}' for r in server_rss)}")
        if os.environ.get("CLIENT_TEST_REPORT"):
            print("\n" + report, file=sys.stderr)
        for name, samples in (("client", client_rss), ("server", server_rss)):
            growth = max(samples[1:]) - samples[0]
            self.assertLessEqual(
                growth, GROWTH_BOUND,
                f"{name} RSS grew by {growth / MiB:.2f} MiB after warm-up "
                f"({growth / (CALLS * (PHASES - 1) / PHASES):.1f} bytes per call)\n{report}")


if __name__ == "__main__":
    unittest.main()
