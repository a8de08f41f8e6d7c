"""The table ``python -m client get`` prints: columns, sparklines and
their ASCII fallback."""

from __future__ import annotations

import json
import textwrap
import unittest
import unittest.mock

from client import _cli, _table
from tests.support import TestCase


class TableTests(TestCase):
    def test_sparkline(self) -> None:
        self.assertEqual(_table.sparkline([]), "")
        self.assertEqual(_table.sparkline([1, 2, 3, 4, 5, 6, 7, 8]), "▁▂▃▄▅▆▇█")
        self.assertEqual(_table.sparkline([5, 5, 5]), "▄▄▄")
        self.assertEqual(_table.sparkline([0, 10], ascii=True), "_#")
        self.assertEqual(_table.sparkline([3, -1, 3]), "█▁█")

    def test_sparkline_downsamples(self) -> None:
        line = _table.sparkline(list(range(1000)), width=10)
        self.assertEqual(len(line), 10)
        self.assertEqual(line[0], "▁")
        self.assertEqual(line[-1], "█")
        self.assertEqual(len(_table.sparkline(list(range(1000)))), _table.DEFAULT_SPARK_WIDTH)

    def test_format_value(self) -> None:
        self.assertEqual(_table.format_value(42000000.0), "42000000")
        self.assertEqual(_table.format_value(0.5), "0.5")
        self.assertEqual(_table.format_value(10.6), "10.6")
        self.assertEqual(_table.format_value(-3.0), "-3")
        self.assertEqual(_table.format_value(1 / 3), "0.333333")
        self.assertEqual(_table.format_value(1e20), "1e+20")

    def test_format_timestamp(self) -> None:
        self.assertEqual(_table.format_timestamp(1642667947), "2022-01-20 08:39:07")
        self.assertEqual(_table.format_timestamp(2**62), str(2**62))

    def test_render_table(self) -> None:
        table = _table.render_table(
            {
                "muninn.cpu": [(1642667951, 4.0), (1642667950, 3.0)],
                "huginn.cpu": [(1642667947, 0.5), (1642667948, 0.5)],
            }
        )
        self.assertEqual(
            table,
            textwrap.dedent(
                """\
                key         points  first (UTC)          last (UTC)           min  max  last  values
                huginn.cpu       2  2022-01-20 08:39:07  2022-01-20 08:39:08  0.5  0.5   0.5  ▄▄
                muninn.cpu       2  2022-01-20 08:39:10  2022-01-20 08:39:11    3    4     4  ▁█"""
            ),
        )
        self.assertEqual(_table.render_table({}), "(no data)")

    def test_render_table_ascii_and_wide_keys(self) -> None:
        table = _table.render_table({"温度": [(0, 1.0), (1, 2.0)], "k": [(0, 1.0)]}, ascii=True)
        rows = table.splitlines()
        self.assertTrue(rows[1].startswith("k     "), rows)
        self.assertTrue(rows[2].startswith("温度  "), rows)
        self.assertTrue(rows[2].endswith("_#"), rows)

    def test_json_shape(self) -> None:
        self.assertEqual(
            json.loads(_cli.to_json({"b": [(2, 1.0)], "a": [(1, 0.5), (3, 2.0)]})),
            {"a": [[1, 0.5], [3, 2.0]], "b": [[2, 1.0]]},
        )


if __name__ == "__main__":
    unittest.main()
