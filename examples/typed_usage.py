# pyright: strict
"""A typed use of the package's public API.

CI runs it, and checks it with ``mypy --strict`` and pyright against the
package's stubs: a function that returns inside ``with Client(...)`` must
not be reported as possibly missing a return, and every result has a
precise type.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from fractions import Fraction

from client import Client, ClientError, ClientProtocolError, Server

Points = dict[str, list[tuple[int, float]]]


def store_and_read(address: tuple[str, int]) -> Points:
    with Client(*address, timeout=5) as client:
        client.put("huginn.cpu", 0.5, timestamp=1642667947)
        client.put("huginn.cpu", Decimal("2.0"), timestamp=1642667948)
        client.put("muninn.cpu", Fraction(7, 2), timestamp=1642667950)
        client.put_many([("muninn.memory", 42000000, 1642667951), ("muninn.memory", 41000000)])
        return client.get("*")


def last_value(points: Points, key: str) -> float | None:
    series = points.get(key)
    if not series:
        return None
    _timestamp, value = series[-1]
    return value


def refused(address: tuple[str, int]) -> str | None:
    try:
        with Client(*address, timeout=5) as client:
            client.connection.sendall(b"nonsense\n")
            client._read()
    except ClientProtocolError as exc:
        return exc.message
    except ClientError:
        raise
    return None


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
    with Server(fsync="no") as server:
        host, port = server.address
        points = store_and_read((host, port))
        print(sorted(points), last_value(points, "huginn.cpu"), refused(server.address))
    return 0 if server.closed else 1


if __name__ == "__main__":
    raise SystemExit(main())
