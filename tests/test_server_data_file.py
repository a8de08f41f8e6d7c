"""Safety of the embedded server's data file (``Server(data=...)``,
``python -m client serve --data``): what is refused before anything is read
or changed, what recovery keeps, and what it copies aside instead of
dropping. Run against the installed package::

    python -m unittest tests.test_server_data_file
"""

from __future__ import annotations

import os
import stat
import struct
import subprocess
import sys
import time
import warnings
from typing import Dict, List, Tuple

from client import Client, Server
from tests.support import BOUND, TestCase, wait_until
from tests.support.journal import HEADER, HEADER_V2, frame_v3, frames, record_v2, records, starts_with
from tests.support.processes import child_env


def snapshot(path: str) -> Tuple[bytes, int]:
    st = os.stat(path)
    with open(path, "rb") as f:
        return f.read(), st.st_mtime_ns


class DataFileCase(TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.dir = self.temporary_directory()
        self.path = os.path.join(self.dir, "metrics.log")

    def start(self, path: str = "") -> Tuple[Server, List[str]]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            srv = Server(data=path or self.path)
        self.addCleanup(srv.close)
        return srv, [str(w.message) for w in caught if w.category is RuntimeWarning]

    def serve(self, data: str) -> subprocess.CompletedProcess:
        """``python -m client serve --data DATA`` expected to refuse at once."""
        try:
            return subprocess.run(
                [sys.executable, "-m", "client", "serve", "--port", "0", "--data", data],
                capture_output=True, timeout=BOUND, env=child_env(), cwd=self.dir)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"serve --data {data} did not refuse within {BOUND} s") from None

    def assert_refused(self, data: str, words: str) -> None:
        done = self.serve(data)
        self.assertEqual(done.returncode, 1, done)
        err = done.stderr.decode()
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn(data, err)
        self.assertIn(words, err)


class NotAJournal(DataFileCase):
    def test_files_that_are_not_journals_are_refused_and_left_untouched(self) -> None:
        cases = {
            "no-newline.bin": b"x" * (2 << 20),
            "notes.txt": b"shopping list\nmilk\neggs\n",
            "binary.bin": bytes(range(256)) * 64,
            "zeros.bin": b"\0" * 4096,
        }
        for name, content in cases.items():
            with self.subTest(name=name):
                path = os.path.join(self.dir, name)
                with open(path, "wb") as f:
                    f.write(content)
                os.utime(path, ns=(1_000_000_000, 1_000_000_000))
                before = snapshot(path)
                with self.assertRaises(OSError) as caught:
                    Server(data=path)
                message = str(caught.exception)
                self.assertIn(path, message)
                self.assertIn("does not look like a metrics journal", message)
                self.assertEqual(len(message.splitlines()), 1)
                self.assertEqual(snapshot(path), before)
                self.assert_refused(path, "does not look like a metrics journal")
                self.assertEqual(snapshot(path), before)
                self.assertFalse(os.path.exists(path + ".quarantine"))

    def test_journals_of_formats_1_and_2_are_migrated_without_losing_a_point(self) -> None:
        # 40 keys, 200 rounds, every fifth round overwriting the round
        # before: 8000 lines, 6400 live points, recent enough to stay in
        # the head (and so in the journal).
        start = int(time.time()) - 1800
        lines = [b"put k.%d %d.5 %d" % (key, n, start + n - (n % 5 == 4)) for n in range(200) for key in range(40)]
        want: Dict[str, Dict[int, float]] = {}
        for line in lines:
            _, key, value, ts = line.split()
            want.setdefault(key.decode(), {})[int(ts)] = float(value)
        expected = {key: sorted(points.items()) for key, points in want.items()}
        for version, body in (("1", b"".join(line + b"\n" for line in lines)),
                              ("2", HEADER_V2 + b"".join(map(record_v2, lines)))):
            with self.subTest(version=version):
                with open(self.path, "wb") as f:
                    f.write(body)
                srv, warned = self.start()
                self.assertEqual(warned, [])
                with Client(*srv.address, timeout=BOUND) as cl:
                    self.assertEqual(cl.get("*"), expected)
                    cl.put("after", 4, timestamp=start)
                    # Rewritten in the background, in format 3 only.
                    wait_until(lambda: starts_with(self.path, HEADER), message="the migration")
                srv.close()
                with open(self.path, "rb") as f:
                    self.assertGreater(len(frames(f.read())), 0)
                migrated = records(self.path)
                self.assertEqual(len(migrated), 6401)
                self.assertEqual(
                    {key: sorted((ts, value) for k, value, ts in migrated if k == key) for key in want},
                    expected)
                srv, warned = self.start()
                self.assertEqual(warned, [])
                with Client(*srv.address, timeout=BOUND) as cl:
                    self.assertEqual(cl.get("*"), {**expected, "after": [(start, 4.0)]})
                srv.close()


class NotARegularFile(DataFileCase):
    def test_a_device_a_fifo_and_a_directory_are_refused(self) -> None:
        fifo = os.path.join(self.dir, "fifo")
        os.mkfifo(fifo)
        directory = os.path.join(self.dir, "dir")
        os.mkdir(directory)
        link = os.path.join(self.dir, "link-to-zero")
        os.symlink("/dev/zero", link)
        cases = [("/dev/zero", "character device"), (fifo, "FIFO"),
                 (directory, "directory"), (link, "character device")]
        for path, kind in cases:
            with self.subTest(path=path):
                self.assert_refused(path, f"is a {kind}, not a regular file")
                with self.assertRaises(OSError) as caught:
                    Server(data=path)
                self.assertIn(path, str(caught.exception))
        self.assertTrue(stat.S_ISFIFO(os.stat(fifo).st_mode))
        self.assertEqual(os.listdir(directory), [])


class Garbage(DataFileCase):
    def test_a_valid_record_after_a_nul_run_is_kept_and_the_nuls_copied_aside(self) -> None:
        nuls = b"\0" * 700
        for version, body in (("1", b"put a 1 1\n" + nuls + b"put b 2 2\n"),
                              ("2", HEADER_V2 + record_v2(b"put a 1 1") + nuls + record_v2(b"put b 2 2")),
                              ("3", HEADER + frame_v3([("a", 1.0, 1)]) + nuls + frame_v3([("b", 2.0, 2)]))):
            with self.subTest(version=version):
                for suffix in ("", ".quarantine"):
                    if os.path.exists(self.path + suffix):
                        os.remove(self.path + suffix)
                with open(self.path, "wb") as f:
                    f.write(body)
                srv, warned = self.start()
                with Client(*srv.address, timeout=BOUND) as cl:
                    self.assertEqual(cl.get("*"), {"a": [(1, 1.0)], "b": [(2, 2.0)]})
                srv.close()
                self.assertEqual(len(warned), 1, warned)
                self.assertIn("1 unreadable piece(s)", warned[0])
                self.assertIn(self.path + ".quarantine", warned[0])
                with open(self.path + ".quarantine", "rb") as f:
                    side = f.read()
                self.assertTrue(side.endswith(nuls + b"\n"), side[-40:])
                self.assertIn(b"length 700", side)
                if version == "3":
                    # Kept until the journal's next compaction (the older
                    # formats are rewritten at once: the nuls are aside).
                    with open(self.path, "rb") as f:
                        self.assertTrue(f.read().startswith(body))


class Integrity(DataFileCase):
    def test_a_flipped_bit_is_not_applied_and_the_record_is_copied_aside(self) -> None:
        with Server(data=self.path, fsync="always") as srv:
            with Client(*srv.address, timeout=BOUND) as cl:
                cl.put("k", 7.5, timestamp=1)
                cl.put("k", 1.25, timestamp=2)
        with open(self.path, "rb") as f:
            content = f.read()
        self.assertTrue(content.startswith(HEADER))
        first = frames(content)[0]
        at = content.index(struct.pack("<d", 7.5))
        self.assertTrue(first.offset < at < first.offset + first.length)
        damaged = content[:at] + bytes([content[at] ^ 0x04]) + content[at + 1:]  # one bit
        with open(self.path, "wb") as f:
            f.write(damaged)
        srv, warned = self.start()
        with Client(*srv.address, timeout=BOUND) as cl:
            self.assertEqual(cl.get("*"), {"k": [(2, 1.25)]})
        srv.close()
        self.assertEqual(len(warned), 1, warned)
        self.assertIn("1 unreadable piece(s) were not applied", warned[0])
        with open(self.path + ".quarantine", "rb") as f:
            side = f.read()
        # The whole frame the bit is in (its checksum no longer matches).
        self.assertIn(b"\n" + damaged[first.offset:first.offset + first.length] + b"\n", side)
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), damaged)  # nothing removed from the log


class SymlinkedData(DataFileCase):
    def test_compaction_writes_the_links_target_and_keeps_the_link(self) -> None:
        real_dir = os.path.join(self.dir, "real")
        os.mkdir(real_dir)
        target = os.path.join(real_dir, "data.log")
        link = os.path.join(self.dir, "link.log")
        os.symlink(target, link)
        # A plain log past the 64 MiB compaction threshold: 100 points
        # overwritten many times, so the next put starts a compaction.
        line_block = b"".join(b"put key.%02d %d.5 %d\n" % (i % 10, n, i) for n in range(40)
                              for i in range(100))
        with open(target, "wb") as f:
            while f.tell() < (64 << 20) + (1 << 20):
                f.write(line_block)
        with Server(data=link, fsync="always") as srv:
            with Client(*srv.address, timeout=BOUND) as cl:
                cl.put("after", 1, timestamp=1)
                wait_until(lambda: os.path.getsize(target) < (1 << 20), message="compaction")
        self.assertTrue(os.path.islink(link))
        self.assertEqual(os.readlink(link), target)
        # The blocks live beside the real file too.
        self.assertEqual(sorted(os.listdir(real_dir)), ["data.log", "data.log.blocks"])
        self.assertEqual(sorted(os.listdir(self.dir)), ["link.log", "real"])
        with open(target, "rb") as f:
            self.assertTrue(f.read().startswith(HEADER))
        compacted = records(target)
        self.assertEqual(len(compacted), 101)
        self.assertIn(("after", 1.0, 1), compacted)
        srv, warned = self.start(link)
        self.assertEqual(warned, [])
        with Client(*srv.address, timeout=BOUND) as cl:
            data = cl.get("*")
        self.assertEqual(sum(len(points) for points in data.values()), 101)
        self.assertEqual(data["key.03"][0], (3, 39.5))


if __name__ == "__main__":
    import unittest
    unittest.main()
