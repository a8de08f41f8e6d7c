"""Showing text from the network on a terminal.

Keys and error messages come from the server, which may be hostile: printed
raw, an escape sequence in them (``\\x1b]0;title\\x07``, ``\\x1b[2J``) would be
executed by the terminal, and a bidi override (U+202E) would reorder what
follows. Such characters are shown escaped instead, as Python's ``repr``
writes them.
"""

from __future__ import annotations

__all__ = ["printable"]


def printable(text: str, *, unambiguous: bool = True) -> str:
    """``text`` with every character that ``str.isprintable`` rejects (C0
    and C1 controls, DEL, format characters such as bidi overrides and
    zero-width spaces, separators other than the ASCII space, unassigned
    and private-use code points) written as ``\\xNN``, ``\\uNNNN`` or
    ``\\UNNNNNNNN``.

    ``unambiguous`` also doubles backslashes, so that an escape shown can
    only come from a character that was escaped and two different texts
    never look alike (for keys); without it a message keeps its
    backslashes as they are (a Windows path stays readable)."""
    if text.isprintable() and not (unambiguous and "\\" in text):
        return text
    return "".join(_escape(char, unambiguous) for char in text)


def _escape(char: str, unambiguous: bool) -> str:
    if char == "\\" and unambiguous:
        return "\\\\"
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
