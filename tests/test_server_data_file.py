"""Safety of the embedded server's data file (``Server(data=...)``,
``python -m client serve --data``): what is refused before anything is read
or changed, what recovery keeps, and what it copies aside instead of
dropping. Run against the installed package::

    python -m unittest tests.test_server_data_file
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import warnings
from typing import List, Tuple

from client import Client, Server
from tests.support import BOUND, TestCase, wait_until
from tests.support.processes import child_env
from tests.test_server_durability import HEADER, crc32c, records


def record(text: bytes) -> bytes:
    """A version 2 record, checksum computed independently."""
    return text + b" %08x\n" % crc32c(text)


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

    def test_plain_journals_of_the_previous_format_still_load(self) -> None:
        with open(self.path, "wb") as f:
            f.write(b"put a 1.5 1\nput b 2 2\nput a 3 1\n")
        srv, warned = self.start()
        self.assertEqual(warned, [])
        with Client(*srv.address, timeout=BOUND) as cl:
            self.assertEqual(cl.get("*"), {"a": [(1, 3.0)], "b": [(2, 2.0)]})
            cl.put("c", 4, timestamp=4)
        srv.close()
        with open(self.path, "rb") as f:
            # The old lines are kept as they were; new records follow a header.
            self.assertEqual(f.read(), b"put a 1.5 1\nput b 2 2\nput a 3 1\n" + HEADER
                             + record(b"put c 4 4"))
        srv, warned = self.start()
        self.assertEqual(warned, [])


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
        for version, body in (("plain", b"put a 1 1\n" + nuls + b"put b 2 2\n"),
                              ("checksummed", HEADER + record(b"put a 1 1") + nuls
                               + record(b"put b 2 2"))):
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
                self.assertIn("1 unreadable record(s)", warned[0])
                self.assertIn(self.path + ".quarantine", warned[0])
                with open(self.path + ".quarantine", "rb") as f:
                    side = f.read()
                self.assertTrue(side.endswith(nuls + b"\n"), side[-40:])
                self.assertIn(b"length 700", side)
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
        at = content.index(b"7.5")
        damaged = content[:at] + b"9" + content[at + 1:]  # 0x37 -> 0x39: one bit
        with open(self.path, "wb") as f:
            f.write(damaged)
        srv, warned = self.start()
        with Client(*srv.address, timeout=BOUND) as cl:
            self.assertEqual(cl.get("*"), {"k": [(2, 1.25)]})
        srv.close()
        self.assertEqual(len(warned), 1, warned)
        self.assertIn("1 unreadable record(s) were not applied", warned[0])
        with open(self.path + ".quarantine", "rb") as f:
            side = f.read()
        bad_line = damaged[damaged.index(b"put k 9.5"):].split(b"\n")[0]
        self.assertIn(b"\n" + bad_line + b"\n", side)
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
        self.assertEqual(compacted.count(b"\n"), 101)
        self.assertIn(b"put after ", compacted)
        srv, warned = self.start(link)
        self.assertEqual(warned, [])
        with Client(*srv.address, timeout=BOUND) as cl:
            data = cl.get("*")
        self.assertEqual(sum(len(points) for points in data.values()), 101)
        self.assertEqual(data["key.03"][0], (3, 39.5))


if __name__ == "__main__":
    import unittest
    unittest.main()
