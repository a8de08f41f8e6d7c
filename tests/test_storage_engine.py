"""The storage engine behind ``Server(data=...)``: points older than the
head window are sealed into compressed block files in ``<data>.blocks/``,
the journal then holds only the head, and every answer stays what it was.
Retention drops old points. Run against the installed package::

    python -m unittest tests.test_storage_engine
"""

from __future__ import annotations

import json
import os
import struct
import threading
import time
import warnings
from typing import Dict, List, Set, Tuple

from client import Client, Server
from tests.support import BOUND, TestCase, wait_until
from tests.support.graphite import http_get
from tests.support.journal import records
from tests.support.processes import ServerProcess
from tests.test_server_durability import storm

DAY = 86_400
Series = Dict[str, List[Tuple[int, float]]]


def middle_of_first_chunk(path: str) -> int:
    """The offset of the middle byte of the block's first chunk, read from
    its index (the footer's first field is the index offset; an index entry
    starts with the series id, then the chunk's offset and length). A fixed
    offset would not do: how many points the first block holds, and so
    where its chunks end, depends on where the day boundary falls."""
    with open(path, "rb") as f:
        f.seek(-32, os.SEEK_END)
        (index_offset,) = struct.unpack("<Q", f.read(8))
        f.seek(index_offset)
        _series, chunk_offset, chunk_length = struct.unpack("<QQI", f.read(20))
    return chunk_offset + chunk_length // 2


class EngineCase(TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.dir = self.temporary_directory()
        self.path = os.path.join(self.dir, "metrics.log")
        self.blocks = self.path + ".blocks"
        self.now = int(time.time())

    def start(self, **kwargs) -> Tuple[Server, List[str]]:
        kwargs.setdefault("head_window", 0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            srv = Server(data=self.path, **kwargs)
        self.addCleanup(srv.close)
        return srv, [str(w.message) for w in caught if w.category is RuntimeWarning]

    def block_files(self) -> List[str]:
        if not os.path.isdir(self.blocks):
            return []
        return sorted(n for n in os.listdir(self.blocks) if n.endswith(".block"))

    def wait_sealed(self, blocks_before: int = 0) -> None:
        """Until a seal wrote blocks and the journal holds nothing more (a
        seal runs about every second with ``head_window=0``)."""
        wait_until(
            lambda: len(self.block_files()) > blocks_before and os.path.getsize(self.path) < 64,
            timeout=BOUND,
            interval=0.05,
            message="a seal",
        )

    def history(self, keys: int = 5, points: int = 4000) -> List[Tuple[str, float, int]]:
        """Points over the last few days, out of order across keys, with
        one-decimal values like a gauge."""
        start = self.now - 3 * DAY
        return [
            (f"host{i % keys}.cpu", round((i * 37 % 1000) / 10, 1), start + 60 * (i // keys))
            for i in range(keys * points)
        ]


class Sealing(EngineCase):
    def test_old_points_move_into_blocks_and_every_answer_stays_the_same(self) -> None:
        srv, warned = self.start()
        self.assertEqual(warned, [])
        with Client(*srv.address, timeout=BOUND) as cl:
            cl.put_many(self.history())
            everything = cl.get("*")
            one = cl.get("host3.cpu")
            since = self.now - 2 * DAY
            ranged = cl.get("host*.cpu", since=since, until=since + 3600, step=600, agg="max")
            self.assertEqual(len(self.block_files()), 0)
            self.wait_sealed()
            # One block per day of data (UTC days), all in one seal.
            days = {ts // DAY for points in everything.values() for ts, _ in points}
            self.assertEqual(len(self.block_files()), len(days))
            self.assertEqual(cl.get("*"), everything)
            self.assertEqual(cl.get("host3.cpu"), one)
            self.assertEqual(
                cl.get("host*.cpu", since=since, until=since + 3600, step=600, agg="max"), ranged
            )
        on_disk = sum(os.path.getsize(os.path.join(self.blocks, n)) for n in self.block_files())
        # Compressed: the journal's text takes about 40 bytes a point.
        self.assertLess(on_disk / sum(map(len, everything.values())), 4.0)
        srv.close()

        srv, warned = self.start()
        self.assertEqual(warned, [])
        with Client(*srv.address, timeout=BOUND) as cl:
            self.assertEqual(cl.get("*"), everything)
            self.assertEqual(cl.get("host3.cpu"), one)

    def test_a_put_over_a_sealed_point_replaces_it_before_and_after_the_next_seal(self) -> None:
        srv, _ = self.start()
        old = self.now - 2 * DAY
        with Client(*srv.address, timeout=BOUND) as cl:
            cl.put_many([("k", 1.0, old), ("k", 2.0, old + 10), ("other", 5.0, old)])
            self.wait_sealed()
            sealed_blocks = len(self.block_files())
            cl.put("k", 9.5, timestamp=old + 10)
            cl.put("k", 0.5, timestamp=old - 10)
            want = {"k": [(old - 10, 0.5), (old, 1.0), (old + 10, 9.5)]}
            self.assertEqual(cl.get("k"), want)
            self.wait_sealed(sealed_blocks)
            self.assertEqual(cl.get("k"), want)
            self.assertEqual(cl.get("other"), {"other": [(old, 5.0)]})
        srv.close()
        srv, _ = self.start(head_window="2h")
        with Client(*srv.address, timeout=BOUND) as cl:
            self.assertEqual(cl.get("k"), want)
            self.assertEqual(cl.get("*"), {**want, "other": [(old, 5.0)]})

    def test_the_blocks_of_one_day_are_merged_into_one(self) -> None:
        srv, _ = self.start()
        day = (self.now - 3 * DAY) // DAY * DAY
        with Client(*srv.address, timeout=BOUND) as cl:
            cl.put_many([("a", 1.0, day + 10), ("b", 2.0, day + 20)])
            self.wait_sealed()
            cl.put_many([("a", 3.0, day + 10), ("a", 4.0, day + 30), ("c", 5.0, day + 40)])
            self.wait_sealed(1)
            want = {"a": [(day + 10, 3.0), (day + 30, 4.0)], "b": [(day + 20, 2.0)],
                    "c": [(day + 40, 5.0)]}
            self.assertEqual(cl.get("*"), want)
            # The merger looks every few seconds.
            wait_until(lambda: len(self.block_files()) == 1, timeout=3 * BOUND, interval=0.05,
                       message="a merge")
            self.assertEqual(cl.get("*"), want)
        srv.close()
        srv, _ = self.start()
        with Client(*srv.address, timeout=BOUND) as cl:
            self.assertEqual(cl.get("*"), want)

    def test_near_the_memory_limit_points_past_the_head_window_are_sealed_at_once(self) -> None:
        # Ten minutes of window; the points are 11 to 14 minutes old: past
        # the window, but not yet old enough for a seal without pressure.
        srv, _ = self.start(head_window=600, max_memory="4MiB")
        points = [(f"k{i}", 1.0, self.now - 660 - 2 * t) for i in range(1000) for t in range(100)]
        with Client(*srv.address, timeout=BOUND) as cl:
            cl.put_many(points)
            wait_until(lambda: self.block_files(), timeout=BOUND, interval=0.05,
                       message="a seal under memory pressure")
            got = cl.get("*")
        self.assertEqual(sum(map(len, got.values())), len(points))

    def test_recent_points_stay_in_the_head(self) -> None:
        srv, _ = self.start(head_window="10m")
        with Client(*srv.address, timeout=BOUND) as cl:
            cl.put("old", 1.0, timestamp=self.now - DAY)
            cl.put("new", 2.0, timestamp=self.now)
            wait_until(lambda: self.block_files(), timeout=BOUND, interval=0.05, message="a seal")
            self.assertEqual(
                cl.get("*"), {"old": [(self.now - DAY, 1.0)], "new": [(self.now, 2.0)]}
            )
        srv.close()
        # The journal holds the head only.
        self.assertEqual(records(self.path), [("new", 2.0, self.now)])


class Retention(EngineCase):
    def test_points_past_the_retention_are_never_answered_and_not_kept(self) -> None:
        srv, _ = self.start(retention="2d")
        points = [("k", float(age), self.now - age * DAY) for age in (5, 4, 3, 1)]
        with Client(*srv.address, timeout=BOUND) as cl:
            cl.put_many(points)
            want = {"k": [(self.now - DAY, 1.0)]}
            self.assertEqual(cl.get("k"), want)
            self.assertEqual(cl.get("*"), want)
            self.wait_sealed()
            self.assertEqual(cl.get("k"), want)
        # Only the day still inside the retention has a block.
        self.assertEqual(len(self.block_files()), 1)
        srv.close()
        srv, _ = self.start(retention="2d")
        with Client(*srv.address, timeout=BOUND) as cl:
            self.assertEqual(cl.get("*"), want)

    def test_retention_holds_without_a_data_file_too(self) -> None:
        srv = Server(retention=3600)
        self.addCleanup(srv.close)
        with Client(*srv.address, timeout=BOUND) as cl:
            cl.put("k", 1.0, timestamp=self.now - 7200)
            cl.put("k", 2.0, timestamp=self.now)
            self.assertEqual(cl.get("k"), {"k": [(self.now, 2.0)]})

    def test_bad_settings_are_refused_clearly(self) -> None:
        for kwargs, words in (
            ({"retention": "soon"}, "retention"),
            ({"retention": 0}, "retention: must be more than 0"),
            ({"retention": -5}, "retention"),
            ({"head_window": "2h"}, "head_window: needs data"),
        ):
            with self.subTest(kwargs=kwargs):
                with self.assertRaises((ValueError, TypeError)) as caught:
                    Server(**kwargs)
                self.assertIn(words, str(caught.exception))


class Files(EngineCase):
    def seal_some(self) -> Series:
        srv, _ = self.start()
        with Client(*srv.address, timeout=BOUND) as cl:
            cl.put_many(self.history(keys=3, points=500))
            self.wait_sealed()
            everything = cl.get("*")
        srv.close()
        return everything

    def test_a_file_that_is_not_ours_in_the_blocks_directory_is_refused_untouched(self) -> None:
        self.seal_some()
        stranger = os.path.join(self.blocks, "notes.txt")
        with open(stranger, "wb") as f:
            f.write(b"mine")
        before = sorted(os.listdir(self.blocks))
        with self.assertRaises(OSError) as caught:
            Server(data=self.path)
        self.assertIn("notes.txt", str(caught.exception))
        self.assertEqual(sorted(os.listdir(self.blocks)), before)
        with open(stranger, "rb") as f:
            self.assertEqual(f.read(), b"mine")

    def test_a_block_with_a_damaged_header_is_quarantined_with_a_warning(self) -> None:
        everything = self.seal_some()
        victim = self.block_files()[0]
        path = os.path.join(self.blocks, victim)
        with open(path, "r+b") as f:
            f.seek(12)
            byte = f.read(1)
            f.seek(12)
            f.write(bytes([byte[0] ^ 0xFF]))
        srv, warned = self.start()
        self.assertEqual(len(warned), 1, warned)
        self.assertIn(victim, warned[0])
        self.assertIn("quarantine", warned[0])
        self.assertTrue(os.path.exists(os.path.join(self.blocks, "quarantine", victim)))
        self.assertNotIn(victim, self.block_files())
        with Client(*srv.address, timeout=BOUND) as cl:
            got = cl.get("*")
        # The other days are served whole.
        self.assertLess(sum(map(len, got.values())), sum(map(len, everything.values())))
        for key, points in got.items():
            self.assertTrue(set(points) <= set(everything[key]))

    def test_a_damaged_chunk_is_reported_when_read(self) -> None:
        self.damage_the_first_chunk_and_read()

    def test_a_damaged_chunk_of_a_block_of_few_points_is_reported_when_read(self) -> None:
        # The history starts two minutes before a day boundary, so the
        # first block holds two points a key.
        self.now = int(time.time()) // DAY * DAY - 120
        self.damage_the_first_chunk_and_read()

    def damage_the_first_chunk_and_read(self) -> None:
        self.seal_some()
        path = os.path.join(self.blocks, self.block_files()[0])
        offset = middle_of_first_chunk(path)
        with open(path, "r+b") as f:
            f.seek(offset)
            byte = f.read(1)
            f.seek(offset)
            f.write(bytes([byte[0] ^ 0x55]))
        srv, _ = self.start()
        with Client(*srv.address, timeout=BOUND) as cl:
            with self.assertLogs("client.server", "WARNING") as logged:
                cl.get("*")
                wait_until(lambda: logged.output, timeout=BOUND, interval=0.05, message="a warning")
        self.assertTrue(any("not served" in line for line in logged.output), logged.output)


class KeysOnDisk(EngineCase):
    """After a restart the keys of sealed series are on disk only (the head
    holds the keys with recent points): every read still finds them."""

    def test_after_a_restart_keys_only_on_disk_answer_every_read(self) -> None:
        srv, _ = self.start()
        with Client(*srv.address, timeout=BOUND) as cl:
            cl.put_many(self.history(keys=5, points=200))
            self.wait_sealed()
            before = cl.get("*")
        srv.close()
        srv, warned = self.start(head_window="2h", http_port=0)
        self.assertEqual(warned, [])
        with Client(*srv.address, timeout=BOUND) as cl:
            self.assertEqual(cl.get("*"), before)
            self.assertEqual(cl.get("host3.cpu"), {"host3.cpu": before["host3.cpu"]})
            # A key known only on disk takes more points into its own
            # series; a new key comes after the older ones in `get *`.
            cl.put("new.cpu", 1.0, timestamp=self.now)
            cl.put("host1.cpu", 2.5, timestamp=self.now)
            want = dict(before)
            want["host1.cpu"] = before["host1.cpu"] + [(self.now, 2.5)]
            want["new.cpu"] = [(self.now, 1.0)]
            got = cl.get("*")
            self.assertEqual(got, want)
            self.assertEqual(list(got), list(want), "keys in order of first appearance")
            self.assertEqual(cl.get("host{1,2}.cpu"), {k: want[k] for k in ("host1.cpu", "host2.cpu")})
            self.assertEqual(list(cl.get("host*.cpu", max_points=1)), [f"host{i}.cpu" for i in range(5)])
            self.assertEqual(cl.get("*.cpu", since=self.now - 60),
                             {"host1.cpu": [(self.now, 2.5)], "new.cpu": [(self.now, 1.0)]})
            self.assertEqual(cl.get("nohost*"), {})
        status, _, body = http_get(srv.dashboard_url + "metrics/find?query=host1.*")
        self.assertEqual(status, 200, body)
        self.assertIn(b"host1.cpu", body)
        status, _, body = http_get(srv.dashboard_url + "metrics/index.json")
        self.assertEqual(status, 200, body)
        self.assertEqual(sorted(json.loads(body)), sorted(want))


class Migration(EngineCase):
    def test_a_journal_of_the_first_and_second_formats_is_sealed_without_losing_a_point(self) -> None:
        old = self.now - 2 * DAY
        first = b"".join(b"put a %d %d\n" % (i, old + i) for i in range(100))
        with open(self.path, "wb") as f:
            f.write(first)
        srv, warned = self.start()
        self.assertEqual(warned, [])
        with Client(*srv.address, timeout=BOUND) as cl:
            cl.put("b", 7.0, timestamp=old)  # appended in the second format
            want = cl.get("*")
            self.assertEqual(len(want["a"]), 100)
            self.wait_sealed()
            self.assertEqual(cl.get("*"), want)
        srv.close()
        srv, _ = self.start()
        with Client(*srv.address, timeout=BOUND) as cl:
            self.assertEqual(cl.get("*"), want)


class KillNineWhileSealing(EngineCase):
    def test_acknowledged_puts_survive_kill_9_during_seals_with_fsync_always(self) -> None:
        # Old timestamps and no head window: seals run about every second
        # while the puts go on, so the kill lands among them.
        server = ServerProcess(self.path, "always", kind="cli", options=["--head-window", "0"])
        self.addCleanup(server.kill)
        writers = 4
        acked: List[Set[Tuple[str, int]]] = [set() for _ in range(writers)]
        enough, stop = threading.Event(), threading.Event()
        threads = [threading.Thread(target=storm, args=(server.address, acked, enough, stop, i,
                                                        i % 2 == 1, 5_000))
                   for i in range(writers)]
        for t in threads:
            t.start()
        try:
            self.assertTrue(enough.wait(BOUND), "the storm did not get going")
            # Two seals at least, then the kill, puts still coming.
            wait_until(lambda: len(self.block_files()) >= 2, timeout=3 * BOUND, interval=0.02,
                       message="two seals")
            server.kill()
        finally:
            stop.set()
            for t in threads:
                t.join(BOUND)
        self.assertFalse(any(t.is_alive() for t in threads))
        srv, _ = self.start()
        with Client(*srv.address, timeout=BOUND) as cl:
            data = cl.get("*")
        for index in range(writers):
            key = f"storm.{index}"
            stored = dict(data.get(key, []))
            lost = [t for _, t in acked[index] if stored.get(t) != t + 0.5]
            self.assertEqual(lost, [], f"{len(lost)} acknowledged puts of {key} lost")
