"""The embedded server's journal read back independently of the server's
own code: every format it has written (version 1: plain put lines;
version 2: put lines each with a CRC-32C; version 3: checksummed binary
frames), and writers for the text versions, to make files of the older
formats a server must migrate.

Version 3 (the README's "data file" section): the line
``metrics-journal 3``, then frames. A frame is the byte 0xB3, the payload's
length, the number of records and a CRC-32C of all that and the payload
(each u32, little-endian), then the payload. A record is a varint head
(the zigzag delta of the record's id from the previous record's, shifted
left by one, with bit 0 set when the key follows), the key (varint length
and bytes) if so, the zigzag varint delta of the timestamp, and the value
as 8 bytes of f64, little-endian. The deltas start from 0 in every frame;
an id keeps its key until the file defines it again.
"""

from __future__ import annotations

import struct
from typing import Dict, List, NamedTuple, Tuple

HEADER_V2 = b"metrics-journal 2\n"
HEADER = b"metrics-journal 3\n"
KIND = 0xB3
FRAME_HEADER = 13

Record = Tuple[str, float, int]
"""A put as the journal holds it: key, value, timestamp."""


def _table() -> List[int]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_CRC_TABLE = _table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), by table: an independent reference."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFFFFFF


def record_v2(text: bytes) -> bytes:
    """A version 2 record line, its checksum computed here."""
    return text + b" %08x\n" % crc32c(text)


def _push_varint(out: bytearray, n: int) -> None:
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)


def _zigzag(n: int) -> int:
    return (n << 1) if n >= 0 else ((-n) << 1) - 1


def frame_v3(points: List[Record], base: int = 0) -> bytes:
    """One version 3 frame of ``points``, encoded here: the keys get ids
    from ``base`` up in order of first appearance, and each key is written
    with its first record (so the frame decodes alone)."""
    ids: Dict[str, int] = {}
    payload = bytearray()
    previous_id = previous_ts = 0
    for key, value, ts in points:
        defines = key not in ids
        ident = ids.setdefault(key, base + len(ids))
        _push_varint(payload, _zigzag(ident - previous_id) << 1 | int(defines))
        if defines:
            _push_varint(payload, len(key.encode()))
            payload += key.encode()
        _push_varint(payload, _zigzag(ts - previous_ts))
        payload += struct.pack("<d", value)
        previous_id, previous_ts = ident, ts
    head = struct.pack("<BII", KIND, len(payload), len(points))
    return head + struct.pack("<I", crc32c(head + payload)) + payload


class Frame(NamedTuple):
    """Where a frame is in the file, and what it holds."""

    offset: int
    length: int
    records: int


def _varint(data: bytes, at: int) -> Tuple[int, int]:
    n = shift = 0
    while True:
        byte = data[at]
        at += 1
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            return n, at
        shift += 7
        if shift > 63:
            raise AssertionError(f"varint too long at {at}")


def _unzigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _frame(data: bytes, at: int, keys: Dict[int, str], out: List[Record]) -> int:
    """Decodes the frame at ``at`` into ``out``; returns where it ends."""
    if len(data) - at < FRAME_HEADER:
        raise AssertionError(f"a frame header cut short at {at}")
    kind, length, count, crc = struct.unpack_from("<BIII", data, at)
    if kind != KIND:
        raise AssertionError(f"not a frame at {at}: {data[at:at + 16]!r}")
    end = at + FRAME_HEADER + length
    if end > len(data):
        raise AssertionError(f"a frame cut short at {at}")
    payload = data[at + FRAME_HEADER:end]
    if crc32c(data[at:at + 9] + payload) != crc:
        raise AssertionError(f"bad checksum in the frame at {at}")
    p, ident, ts = 0, 0, 0
    for _ in range(count):
        head, p = _varint(payload, p)
        ident += _unzigzag(head >> 1)
        if head & 1:
            size, p = _varint(payload, p)
            keys[ident] = payload[p:p + size].decode()
            p += size
        delta, p = _varint(payload, p)
        ts += _unzigzag(delta)
        (value,) = struct.unpack_from("<d", payload, p)
        p += 8
        if ident not in keys:
            raise AssertionError(f"the frame at {at} uses id {ident} before defining it")
        out.append((keys[ident], value, ts))
    if p != len(payload):
        raise AssertionError(f"{len(payload) - p} bytes left over in the frame at {at}")
    return end


def decode(data: bytes) -> List[Record]:
    """Every record of a journal's bytes, in file order; AssertionError on
    anything that is not a valid journal of formats 1 to 3."""
    out: List[Record] = []
    keys: Dict[int, str] = {}
    at, version = 0, 1
    while at < len(data):
        if version == 3:
            at = _frame(data, at, keys, out)
            continue
        end = data.find(b"\n", at)
        if end < 0:
            raise AssertionError(f"a line without its end at {at}: {data[at:]!r}")
        line, at = data[at:end], end + 1
        if line + b"\n" in (HEADER_V2, HEADER):
            version = 2 if line + b"\n" == HEADER_V2 else 3
            continue
        if version == 2:
            line, _, crc = line.rpartition(b" ")
            if int(crc, 16) != crc32c(line):
                raise AssertionError(f"bad checksum in {line!r}")
        verb, key, value, timestamp = line.split()
        if verb != b"put":
            raise AssertionError(f"not a put: {line!r}")
        out.append((key.decode(), float(value), int(timestamp)))
    return out


def records(path: str) -> List[Record]:
    """Every record of the journal at ``path``, checksums checked."""
    with open(path, "rb") as f:
        return decode(f.read())


def starts_with(path: str, prefix: bytes) -> bool:
    with open(path, "rb") as f:
        return f.read(len(prefix)) == prefix


def frames(data: bytes) -> List[Frame]:
    """The frames of a version 3 journal's bytes (all of them valid)."""
    if not data.startswith(HEADER):
        raise AssertionError(f"not a version 3 journal: {data[:20]!r}")
    found: List[Frame] = []
    keys: Dict[int, str] = {}
    at = len(HEADER)
    while at < len(data):
        decoded: List[Record] = []
        end = _frame(data, at, keys, decoded)
        found.append(Frame(at, end - at, len(decoded)))
        at = end
    return found
