"""Readable rendering of a ``Client.get`` result: a table and a sparkline.

Used by ``python -m client get`` and ``python -m client demo``::

    key            points  first (UTC)          last (UTC)             min    max   last  values
    huginn.cpu          2  2022-01-20 08:39:07  2022-01-20 08:39:08    0.5    0.5    0.5  ▄▄

Pure functions of their arguments (no I/O), so they are easy to test. Keys
come from the server: characters a terminal would act on instead of showing
(escape sequences, bidi overrides) are shown escaped (``\x1b``, ``\u202e``).
"""

from __future__ import annotations

import datetime
import math
import unicodedata
from typing import Mapping, Sequence, Tuple

from ._printable import printable

__all__ = [
    "SPARK_BLOCKS",
    "SPARK_ASCII",
    "format_timestamp",
    "format_value",
    "render_table",
    "sparkline",
]

#: Eight levels, lowest to highest.
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
#: Fallback for terminals that cannot show the block characters.
SPARK_ASCII = "_.-~=+*#"

#: A sparkline longer than this is downsampled (mean of each bucket).
DEFAULT_SPARK_WIDTH = 40

#: A point of a series, as ``get`` returns it: ``(timestamp, value)``.
Point = Tuple[int, float]

_HEADERS = ("key", "points", "first (UTC)", "last (UTC)", "min", "max", "last", "values")
# Columns aligned right (numbers); the others are aligned left.
_RIGHT = {1, 4, 5, 6}


def format_timestamp(timestamp: int) -> str:
    """``2022-01-20 08:39:07`` (UTC); the raw integer when out of range."""
    try:
        moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return str(timestamp)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def format_value(value: float) -> str:
    """A short, exact-enough text for a metric value.

    Whole numbers print without a fraction (``42000000``), others with up to
    six significant digits (``0.5``, ``10.6``, ``0.333333``, ``1.5e-07``).
    """
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return format(value, ".6g")


def sparkline(values: Sequence[float], width: int = DEFAULT_SPARK_WIDTH, ascii: bool = False) -> str:
    """One character per value (or per bucket of values when there are more
    than ``width``), its height proportional to the value between the
    series' minimum and maximum. A flat series is drawn at mid height.
    """
    if width < 1:
        raise ValueError("width must be positive")
    levels = SPARK_ASCII if ascii else SPARK_BLOCKS
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return ""
    if len(values) > width:
        values = _downsample(values, width)
    low, high = min(values), max(values)
    if high == low:
        return levels[len(levels) // 2 - 1] * len(values)
    span = high - low
    top = len(levels) - 1
    return "".join(levels[min(top, int((v - low) / span * top + 0.5))] for v in values)


def _downsample(values: Sequence[float], width: int) -> list[float]:
    """Mean of ``width`` consecutive, nearly equal buckets."""
    count = len(values)
    out = []
    for bucket in range(width):
        start = bucket * count // width
        end = (bucket + 1) * count // width
        chunk = values[start:end]
        out.append(math.fsum(chunk) / len(chunk))
    return out


def render_table(
    metrics: Mapping[str, Sequence[Point]],
    ascii: bool = False,
    spark_width: int = DEFAULT_SPARK_WIDTH,
) -> str:
    """The table for a ``get`` result, one row per key sorted by key, as
    lines joined by ``\\n`` (no trailing newline). ``{}`` gives ``(no data)``.

    Points within a key are taken in timestamp order whatever order they
    come in. Keys are shown through ``printable`` (control and other
    non-printable characters escaped).
    """
    if not metrics:
        return "(no data)"
    rows = [_HEADERS]
    for key in sorted(metrics):
        points = sorted(metrics[key], key=lambda point: point[0])
        if not points:
            rows.append((printable(key), "0", "", "", "", "", "", ""))
            continue
        values = [float(value) for _, value in points]
        rows.append(
            (
                printable(key),
                str(len(points)),
                format_timestamp(points[0][0]),
                format_timestamp(points[-1][0]),
                format_value(min(values)),
                format_value(max(values)),
                format_value(values[-1]),
                sparkline(values, width=spark_width, ascii=ascii),
            )
        )
    widths = [max(_width(row[column]) for row in rows) for column in range(len(_HEADERS))]
    lines = []
    for row in rows:
        cells = []
        for column, cell in enumerate(row):
            pad = " " * (widths[column] - _width(cell))
            cells.append(pad + cell if column in _RIGHT else cell + pad)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _width(text: str) -> int:
    """Terminal columns taken by ``text`` (wide East Asian characters count 2)."""
    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1
        for char in text
    )
