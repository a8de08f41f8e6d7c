"""Load on one Client: 16 threads x 5,000 mixed calls on ONE
client against the embedded ``client.Server``.

test_client_threads does the same shape at 300 calls per thread; this is the
full level. Each thread follows its own seeded mix of put, put_many,
get of its own keys, get of a missing key and one ``get("*")``; every get is
compared with the thread's model at that moment (a reply handed to the wrong
thread, or interleaved frames, would show). Afterwards every put must be
readable through a second client, nothing may be stuck (bounded joins, the
watchdog), and the whole run must finish within LOAD_BOUND seconds.

    CLIENT_TEST_LOAD_CALLS=5000   calls per thread
    CLIENT_TEST_LOAD_BOUND=90     seconds allowed for the 16 x CALLS calls
"""

import faulthandler
import os
import random
import sys
import threading
import time
import unittest

import client
from tests.support import WATCHDOG, TestCase

THREADS = 16
CALLS = int(os.environ.get("CLIENT_TEST_LOAD_CALLS", "5000"))
#: Measured ~6 s on the 2-core development machine; 90 s is a hang, not noise.
LOAD_BOUND = float(os.environ.get("CLIENT_TEST_LOAD_BOUND", "90"))
#: Calls that go to one key before the next: keeps each get's reply small.
PER_KEY = 250


class ManyThreadsOneClientTest(TestCase):
    def setUp(self):
        super().setUp()
        faulthandler.dump_traceback_later(max(WATCHDOG, 2 * LOAD_BOUND), exit=True)

    def test_16_threads_x_5000_mixed_calls(self):
        srv = client.Server()
        self.addCleanup(srv.close)
        c = self.client(srv.address)
        barrier = threading.Barrier(THREADS)
        failures = []
        models = [dict() for _ in range(THREADS)]
        counts = [dict(put=0, put_many=0, get=0, missing=0, star=0) for _ in range(THREADS)]
        stop = threading.Event()

        def worker(n):
            rng = random.Random(n)
            model = models[n]
            count = counts[n]
            try:
                barrier.wait(timeout=LOAD_BOUND)
                for i in range(CALLS):
                    if stop.is_set():
                        return
                    key = f"load.{n}.{i // PER_KEY}"
                    points = model.setdefault(key, [])
                    r = rng.random()
                    if i == CALLS // 2:
                        # Own keys must be exact: this thread's puts all
                        # happened before; other threads' keys may still grow.
                        everything = c.get("*")
                        mine = {k: v for k, v in everything.items() if k.startswith(f"load.{n}.")}
                        expected = {k: v for k, v in model.items() if v}
                        if mine != expected:
                            failures.append((n, i, "get * differs"))
                            return
                        count["star"] += 1
                    elif r < 0.45:
                        value = n * 1e6 + i + 0.5
                        c.put(key, value, i * 8)
                        points.append((i * 8, value))
                        count["put"] += 1
                    elif r < 0.55:
                        batch = [(key, n + j / 8, i * 8 + j) for j in range(1, 6)]
                        c.put_many(batch)
                        points.extend((t, float(v)) for _, v, t in batch)
                        count["put_many"] += 1
                    elif r < 0.95:
                        got = c.get(key)
                        if got != ({key: points} if points else {}):
                            failures.append((n, i, key, "wrong get"))
                            return
                        count["get"] += 1
                    else:
                        if c.get(f"missing.{n}.{i}") != {}:
                            failures.append((n, i, "missing key has points"))
                            return
                        count["missing"] += 1
            except BaseException as error:  # reported below
                failures.append((n, repr(error)))

        threads = [threading.Thread(target=worker, args=(n,), daemon=True, name=f"load-{n}")
                   for n in range(THREADS)]
        started = time.monotonic()
        for t in threads:
            t.start()
        deadline = started + LOAD_BOUND
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        elapsed = time.monotonic() - started
        stuck = [t.name for t in threads if t.is_alive()]
        stop.set()
        self.assertEqual(stuck, [], f"deadlocked or slower than {LOAD_BOUND} s")
        self.assertEqual(failures, [])
        calls = sum(sum(cnt.values()) for cnt in counts)
        self.assertEqual(calls, THREADS * CALLS)

        expected = {}
        for model in models:
            expected.update({k: v for k, v in model.items() if v})
        puts = sum(len(v) for v in expected.values())
        # Every put readable afterwards, through the same client and a new one.
        self.assertEqual(c.get("*"), expected)
        with client.Client(*srv.address, timeout=30) as other:
            self.assertEqual(other.get("*"), expected)
        if os.environ.get("CLIENT_TEST_REPORT"):
            kinds = {k: sum(cnt[k] for cnt in counts) for k in counts[0]}
            print(f"\nload: {THREADS} threads x {CALLS} calls = {calls} calls on one client "
                  f"in {elapsed:.1f} s ({calls / elapsed:,.0f} calls/s); {kinds}; "
                  f"{puts} points all read back", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
