"""Graphite plaintext ingest (``Server(graphite_port=...)``) fed by real
senders: graphyte (PyPI) and collectd's write_graphite plugin (Debian's
``collectd``, a child process with a config file written here), and by a
raw socket for the bad lines, which are counted, logged and skipped
without losing their neighbours. Skipped, saying why, where a sender is
absent (a failure under CI=true, where .ci/run installs both)."""
from __future__ import annotations

import math
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
from typing import Dict, List, Tuple

from client import Client, Server
from tests.support import BOUND, TestCase, wait_until
from tests.support.dependencies import requires
from tests.support.graphite import LogRecords

try:
    import graphyte
except ImportError:  # pragma: no cover - depends on the environment
    graphyte = None

COLLECTD = shutil.which("collectd") or ("/usr/sbin/collectd" if os.path.exists("/usr/sbin/collectd") else None)
COLLECTD_PLUGINS = "/usr/lib/collectd"


def stored(server: Server) -> Dict[str, List[Tuple[int, float]]]:
    with Client(*server.address, timeout=BOUND) as client:
        return client.get("*")


class PlaintextTestCase(TestCase):
    def start(self, **kwargs: object) -> Server:
        server = Server(graphite_port=0, **kwargs)  # type: ignore[arg-type]
        self.addCleanup(server.close)
        return server

    def wait_points(self, server: Server, count: int) -> Dict[str, List[Tuple[int, float]]]:
        def enough() -> object:
            data = stored(server)
            return data if sum(map(len, data.values())) >= count else None
        return wait_until(enough, timeout=BOUND, interval=0.02, message=f"{count} points")  # type: ignore[return-value]


@requires("graphyte is not installed: pip install graphyte" if graphyte is None else None)
class FromGraphyte(PlaintextTestCase):
    def test_points_sent_one_by_one_are_stored(self) -> None:
        server = self.start()
        host, port = server.graphite_address
        sender = graphyte.Sender(host, port=port, prefix="app", raise_send_errors=True)
        base = 1_700_000_000
        for i in range(20):
            sender.send("requests", i * 1.5, timestamp=base + 10 * i)
        sender.send("latency", 12, timestamp=base, tags={"region": "eu"})
        data = self.wait_points(server, 21)
        self.assertEqual(data["app.requests"], [(base + 10 * i, i * 1.5) for i in range(20)])
        self.assertEqual(data["app.latency;region=eu"], [(base, 12.0)])

    def test_batches_from_the_sender_thread_are_stored(self) -> None:
        server = self.start()
        host, port = server.graphite_address
        sender = graphyte.Sender(host, port=port, interval=0.05, batch_size=100)
        now = int(time.time())
        for i in range(500):
            sender.send(f"batch.k{i % 5}", i, timestamp=now - i)
        sender.stop()  # sends what is queued
        data = self.wait_points(server, 500)
        self.assertEqual(sorted(data), [f"batch.k{j}" for j in range(5)])
        self.assertEqual(data["batch.k0"][-1], (now, 0.0))


@requires("collectd with write_graphite is not installed (Debian package collectd)"
          if COLLECTD is None or not os.path.exists(f"{COLLECTD_PLUGINS}/write_graphite.so") else None)
class FromCollectd(PlaintextTestCase):
    def test_write_graphite_metrics_are_stored(self) -> None:
        server = self.start()
        host, port = server.graphite_address
        work = tempfile.mkdtemp(prefix="collectd-")
        self.addCleanup(shutil.rmtree, work, True)
        conf = os.path.join(work, "collectd.conf")
        with open(conf, "w") as f:
            f.write(f"""\
Hostname "graphite-test"
FQDNLookup false
Interval 1
BaseDir "{work}"
PIDFile "{work}/collectd.pid"
PluginDir "{COLLECTD_PLUGINS}"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin load
LoadPlugin memory
LoadPlugin write_graphite
<Plugin write_graphite>
  <Node "test">
    Host "{host}"
    Port "{port}"
    Protocol "tcp"
    Prefix "collectd."
    StoreRates true
    SeparateInstances true
  </Node>
</Plugin>
""")
        started = int(time.time())
        proc = subprocess.Popen([COLLECTD, "-f", "-C", conf], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def stop() -> None:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.communicate(timeout=BOUND)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate(timeout=BOUND)
        self.addCleanup(stop)

        def loads() -> object:
            if proc.poll() is not None:
                raise AssertionError(f"collectd exited {proc.returncode}: {proc.stdout.read()!r}")
            data = stored(server)
            return data if any(k.startswith("collectd.graphite-test.load.") for k in data) else None
        # write_graphite sends once its buffer (about 1.4 KB) fills: a few intervals.
        data: Dict[str, List[Tuple[int, float]]] = wait_until(  # type: ignore[assignment]
            loads, timeout=30, interval=0.1, message="collectd's first points")
        stop()
        keys = [k for k in data if k.startswith("collectd.graphite-test.")]
        self.assertTrue(any(".memory." in k for k in keys), keys)
        for key in keys:
            for timestamp, value in data[key]:
                self.assertTrue(math.isfinite(value))
                self.assertLessEqual(started - 2, timestamp)
                self.assertLessEqual(timestamp, int(time.time()) + 2)


class BadLines(PlaintextTestCase):
    def test_bad_lines_are_counted_logged_and_skipped(self) -> None:
        with LogRecords() as logs:
            server = self.start()
            good = [b"ok.a 1 1000", b"ok.b 2.5 1000.75", b"  ok.c\t3   1000\r", b"ok.d 4 -1"]
            bad = [
                (b"only two", "expected 3 fields"),
                (b"too many fields here", "expected 3 fields"),
                (b"ok.x notanumber 1000", "value is not a finite number"),
                (b"ok.x nan 1000", "value is not a finite number"),
                (b"ok.x 1 yesterday", "timestamp is not a number"),
                (b"ok.\xff 1 1000", "not valid UTF-8"),
                (b"* 1 1000", "bad path"),
                (b"ok.long " + b"9" * 20000 + b" 1000", "longer than"),
            ]
            payload = b""
            for i, line in enumerate(good):
                payload += line + b"\n"
                payload += bad[i][0] + b"\n"
                payload += bad[i + 4][0] + b"\n"
            payload += b"\n" + b"ok.e 5 1001"  # a blank line, and a last line without \n
            before = int(time.time())
            with socket.create_connection(server.graphite_address, timeout=BOUND) as sock:
                # In awkward pieces: lines (the long one too) split across reads.
                for at in range(0, len(payload), 4093):
                    sock.sendall(payload[at:at + 4093])
            summary = logs.wait_for(lambda m: "Graphite plaintext connection from" in m and "closed" in m, BOUND)
            self.assertIn("5 points stored, 8 bad lines skipped", summary)
            for _, reason in bad:
                logs.wait_for(lambda m, reason=reason: "bad line" in m and reason in m, BOUND)
        data = stored(server)
        self.assertEqual(data["ok.a"], [(1000, 1.0)])
        self.assertEqual(data["ok.b"], [(1000, 2.5)])
        self.assertEqual(data["ok.c"], [(1000, 3.0)])
        self.assertEqual(data["ok.e"], [(1001, 5.0)])
        ((now_ts, value),) = data["ok.d"]
        self.assertEqual(value, 4.0)
        self.assertLessEqual(before, now_ts)
        self.assertLessEqual(now_ts, int(time.time()))
        self.assertEqual(sorted(data), ["ok.a", "ok.b", "ok.c", "ok.d", "ok.e"])

    def test_points_go_through_the_journal_under_fsync_always(self) -> None:
        work = tempfile.mkdtemp(prefix="graphite-journal-")
        self.addCleanup(shutil.rmtree, work, True)
        path = os.path.join(work, "metrics.log")
        server = self.start(data=path, fsync="always")
        with socket.create_connection(server.graphite_address, timeout=BOUND) as sock:
            sock.sendall(b"".join(b"durable.k %d %d\n" % (i, 2000 + i) for i in range(100)))
        # Under fsync=always a point is visible only once fsynced.
        self.wait_points(server, 100)
        server.close()
        with Server(data=path) as again:
            self.assertEqual(stored(again)["durable.k"], [(2000 + i, float(i)) for i in range(100)])

    def test_memory_limit_and_connection_limit_apply(self) -> None:
        with LogRecords() as logs:
            server = self.start(max_memory=1)
            with socket.create_connection(server.graphite_address, timeout=BOUND) as sock:
                sock.sendall(b"full.a 1 1\nfull.b 2 2\n")
            logs.wait_for(lambda m: "points refused: out of memory" in m, BOUND)
            self.assertEqual(stored(server), {})
            server = self.start(max_connections=1)
            with Client(*server.address, timeout=BOUND) as client:
                client.get("*")  # holds the one connection
                with socket.create_connection(server.graphite_address, timeout=BOUND) as sock:
                    sock.sendall(b"late.a 1 1\n")
                    try:
                        closed = sock.recv(10) == b""
                    except ConnectionResetError:  # closed with the line unread
                        closed = True
                    self.assertTrue(closed, "a connection past the limit is closed")
            logs.wait_for(lambda m: "refusing a Graphite plaintext connection" in m, BOUND)
        self.assertEqual(stored(server), {})


class OverTls(PlaintextTestCase):
    def test_plaintext_over_tls_and_plain_text_refused(self) -> None:
        from tests.support.certificates import Certificates
        work = tempfile.mkdtemp(prefix="graphite-tls-")
        self.addCleanup(shutil.rmtree, work, True)
        certs = Certificates(work)
        server = self.start(tls_cert=certs.server.cert, tls_key=certs.server.key)
        context = ssl.create_default_context(cafile=certs.ca.cert)
        host, port = server.graphite_address
        with socket.create_connection((host, port), timeout=BOUND) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                sock.sendall(b"secure.a 1 1\nsecure.b 2 2\n")
        with socket.create_connection((host, port), timeout=BOUND) as sock:
            sock.sendall(b"plain.a 1 1\n")
            self.assertIn(b"requires TLS", sock.recv(200))
        with Client(*server.address, timeout=BOUND, ssl=context) as client:
            wait_until(lambda: len(client.get("*")) == 2, timeout=BOUND, message="the TLS points")
            self.assertEqual(sorted(client.get("*")), ["secure.a", "secure.b"])


if __name__ == "__main__":
    unittest.main()
