"""A hostile server's bytes cannot drive the terminal: ``python -m client
get`` shows control and other non-printable characters of keys escaped
(``\\x1b``, ``\\u202e``), the table stays aligned, and an error message
quoting the server is escaped too. ``--json`` keeps the keys exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata

from client._printable import printable

from client import _table
from tests.support import BOUND, TestCase

#: Keys a hostile server might send, and how the table must show them.
HOSTILE_KEYS = {
    "\x1b]0;pwned\x07": "\\x1b]0;pwned\\x07",   # sets the terminal's title
    "\x1b[2J": "\\x1b[2J",                       # clears the screen
    "\x1b[31mred": "\\x1b[31mred",
    "nul\x00key": "nul\\x00key",
    "del\x7fkey": "del\\x7fkey",
    "csi\u009b2J": "csi\\x9b2J",                  # C1 control: CSI
    "\u202eevil": "\\u202eevil",                  # right-to-left override
    "zero\u200bwidth": "zero\\u200bwidth",
    "tab\tkey": "tab\\x09key",
    "line\u2028sep": "line\\u2028sep",
    "back\\slash": "back\\\\slash",
    "huginn.cpu": "huginn.cpu",
    "温度": "温度",
}


def hostile_server_script(reply: bytes):
    def script(peer):
        while True:
            peer.read_line()
            peer.send(reply)
    return script


def points_reply() -> bytes:
    lines = [f"{key} {i}.5 {1642667947 + i}\n" for i, key in enumerate(HOSTILE_KEYS)]
    return b"ok\n" + "".join(lines).encode("utf-8") + b"\n"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, "-m", "client", *args], capture_output=True,
                          env=env, timeout=3 * BOUND, stdin=subprocess.DEVNULL)


def columns(text: str) -> int:
    """Terminal columns of ``text``, counted as the table counts them."""
    return _table._width(text)


class PrintableTest(TestCase):
    def test_every_kind_of_non_printable_character_is_escaped(self) -> None:
        for key, shown in HOSTILE_KEYS.items():
            with self.subTest(key=key):
                self.assertEqual(printable(key), shown)

    def test_the_whole_unicode_range_comes_out_printable(self) -> None:
        # Lone surrogates cannot come from UTF-8.
        everything = "".join(chr(code) for code in range(0x110000)
                             if unicodedata.category(chr(code)) != "Cs")
        shown = printable(everything)
        bad = sorted({f"U+{ord(char):04X}" for char in shown if not char.isprintable()})
        self.assertEqual(bad, [])

    def test_messages_keep_their_backslashes(self) -> None:
        self.assertEqual(printable("C:\\data\x1b[2J", unambiguous=False), "C:\\data\\x1b[2J")


class HostileServerTableTest(TestCase):
    def check_output_is_inert(self, output: bytes) -> str:
        text = output.decode("utf-8")
        for line in text.split("\n"):
            bad = [char for char in line if not char.isprintable()]
            self.assertEqual(bad, [], f"raw non-printable characters reached the terminal in {line!r}")
        return text

    def test_get_shows_hostile_keys_escaped_and_aligned(self) -> None:
        server = self.server(hostile_server_script(points_reply()))
        result = run_cli("get", "*", "--host", server.host, "--port", str(server.port))
        self.assertEqual(result.returncode, 0, result.stderr)
        text = self.check_output_is_inert(result.stdout)
        lines = text.rstrip("\n").split("\n")
        self.assertEqual(len(lines), 1 + len(HOSTILE_KEYS), text)
        for shown in HOSTILE_KEYS.values():
            self.assertEqual(sum(line.startswith(shown + " ") for line in lines[1:]), 1,
                             f"{shown!r} is not one row's key in\n{text}")
        # Every row's "first (UTC)" column starts at the same terminal column
        # as its heading, and the points count ends where "points" does.
        first_column = columns(lines[0][:lines[0].index("first (UTC)")])
        points_end = columns(lines[0][:lines[0].index("points") + len("points")])
        for line in lines[1:]:
            self.assertEqual(columns(line[:line.index("2022-")]), first_column, line)
            self.assertEqual(columns(line[:line.index(" 2022-")].rstrip()), points_end, line)

    def test_json_keeps_the_keys_exact(self) -> None:
        server = self.server(hostile_server_script(points_reply()))
        result = run_cli("get", "*", "--json", "--host", server.host, "--port", str(server.port))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.check_output_is_inert(result.stdout)
        self.assertEqual(sorted(json.loads(result.stdout)), sorted(HOSTILE_KEYS))

    def test_an_error_message_from_the_server_is_escaped(self) -> None:
        server = self.server(hostile_server_script(b"error\n\x1b]0;pwned\x07\x1b[2J\n\n"))
        result = run_cli("get", "k", "--host", server.host, "--port", str(server.port))
        self.assertEqual(result.returncode, 1, result.stderr)
        stderr = self.check_output_is_inert(result.stderr)
        self.assertIn("\\x1b]0;pwned\\x07\\x1b[2J", stderr)
