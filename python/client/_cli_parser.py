"""The command line's arguments: ``build_parser()`` and the converters that
check each option's text, so a bad value is a usage error (exit status 2)
naming the option. What each command does is in ``_cli``."""

from __future__ import annotations

import argparse
import datetime
import math
import os
import re
import sys
from typing import Callable, NoReturn, Optional

from ._native import __version__

__all__ = ["build_parser", "UsageError", "DEFAULT_HOST", "DEFAULT_PORT", "DEFAULT_TIMEOUT"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8888
#: Seconds a client command waits for the connection and each reply.
DEFAULT_TIMEOUT = 10.0


class UsageError(Exception):
    """Bad command-line arguments (exit status 2)."""


# -- argument parsing ---------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Reports a usage error as one line instead of usage text plus exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _integer(what: str, low: int, high: Optional[int] = None) -> Callable[[str], int]:
    """An int from ``low`` to ``high`` (no upper bound when None)."""

    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: not an integer") from None
        if number < low or (high is not None and number > high):
            bound = f"at least {low}" if high is None else f"between {low} and {high}"
            raise argparse.ArgumentTypeError(f"invalid {what} {number}: must be {bound}")
        return number

    parse.__name__ = what
    return parse


def _port(allow_zero: bool) -> Callable[[str], int]:
    return _integer("port", 0 if allow_zero else 1, 65535)


def _positive_int(what: str) -> Callable[[str], int]:
    return _integer(what, 1)


def _positive_float(minimum: float, what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: not a number") from None
        if not math.isfinite(number) or number < minimum or number <= 0:
            bound = f"at least {minimum:g}" if minimum > 0 else "positive"
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: must be {bound}")
        return number

    parse.__name__ = what
    return parse


_SIZE_UNITS = {"": 0, "B": 0, "KiB": 10, "MiB": 20, "GiB": 30, "TiB": 40}


def _size(what: str) -> Callable[[str], int]:
    """Bytes as ``1048576``, ``512KiB``, ``64MiB``, ``2GiB`` (the units the
    server accepts; decimal ``GB`` is refused as ambiguous)."""

    def parse(text: str) -> int:
        stripped = text.strip()
        digits = len(stripped) - len(stripped.lstrip("0123456789"))
        number, unit = stripped[:digits], stripped[digits:].strip()
        if not number or unit not in _SIZE_UNITS:
            raise argparse.ArgumentTypeError(
                f"invalid {what} {text!r}: use a whole number of bytes, optionally followed by KiB, MiB, GiB or TiB"
            )
        size = int(number) << _SIZE_UNITS[unit]
        if size < 1:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: must be more than 0")
        return size

    parse.__name__ = what
    return parse


def _number(text: str) -> float:
    """A metric value: an int when written as one (sent as ``301``), else a
    float (sent as Python's ``str(float)``)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: not a number") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be a finite number")
    return number


def _timestamp(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid timestamp {text!r}: must be an integer (Unix time in seconds)"
        ) from None


#: Seconds in each unit of ``--from``/``--until``/``--step``.
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"([0-9]+)([smhdw])")


def _duration(text: str) -> Optional[int]:
    """``90``, ``90s``, ``5m``, ``1h``, ``2d``, ``1w`` in seconds; None if not that shape."""
    if text.isdigit():
        return int(text)
    match = _DURATION.fullmatch(text)
    return int(match[1]) * _UNITS[match[2]] if match else None


def _instant(text: str) -> "int | datetime.timedelta":
    """``--from``/``--until``: epoch seconds, or ``-<n><s|m|h|d|w>`` back from now."""
    if text.startswith("-") and not text[1:].isdigit():
        back = _duration(text[1:])
        if back is not None:
            return datetime.timedelta(seconds=back)
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}: must be epoch seconds or a time back from now such as -30m, -1h, -7d"
        ) from None


def _step(text: str) -> int:
    seconds = _duration(text)
    if not seconds:
        raise argparse.ArgumentTypeError(
            f"invalid step {text!r}: must be a positive number of seconds or 30s, 1m, 1h, 1d, 1w"
        )
    return seconds


def _agent_name(text: str) -> str:
    from ._agent import validate_name

    try:
        return validate_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid name {text!r}: {exc}") from None


def _prog() -> str:
    arg0 = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if arg0 in ("", "-c", "-m", "__main__.py"):
        return "python -m client"
    return arg0


def build_parser() -> argparse.ArgumentParser:
    """The ``argparse`` parser of the whole command line."""
    parser = _Parser(
        prog=_prog(),
        description="Client (and embedded server) for the plain-text TCP metrics protocol.",
        epilog=(
            "examples:\n"
            "  %(prog)s demo                      run the assignment's example on an embedded server\n"
            "  %(prog)s serve --data metrics.log  serve on 127.0.0.1:8888, keeping data on disk\n"
            "  %(prog)s put huginn.cpu 10.6       store a value now\n"
            "  %(prog)s get '*'                   show everything as a table\n"
            "  %(prog)s get 'host0*.cpu' --from -1h --step 1m --agg max\n"
            "                                     one-minute maxima of the last hour\n"
            "  %(prog)s agent --interval 10       send this machine's cpu/memory/disk/net figures\n"
            "\n"
            "exit status: 0 ok, 1 failure, 2 bad arguments, 130 interrupted"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    connection = _Parser(add_help=False)
    group = connection.add_argument_group("server connection")
    group.add_argument("--host", default=DEFAULT_HOST, help="server address (default: %(default)s)")
    group.add_argument("--port", type=_port(False), default=DEFAULT_PORT, help="server port (default: %(default)s)")
    group.add_argument(
        "--timeout",
        type=_positive_float(0, "timeout"),
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="limit on connecting and on each request (default: %(default)s)",
    )
    tls = connection.add_argument_group("TLS (any of these connects with TLS)")
    tls.add_argument("--tls-ca", metavar="PEM", help="CA certificate(s) to trust for the server (default: the system's)")
    tls.add_argument("--tls-cert", metavar="PEM", help="client certificate, for a server that requires one")
    tls.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert (default: in the --tls-cert file)")

    put = commands.add_parser(
        "put", parents=[connection], help="store one value", description="Store one value of a metric."
    )
    put.add_argument("key", metavar="KEY", help="metric name, e.g. huginn.cpu")
    put.add_argument("value", metavar="VALUE", type=_number, help="a number, e.g. 10.6 or 301")
    put.add_argument(
        "--timestamp",
        type=_timestamp,
        metavar="TS",
        help="Unix time in seconds (default: now)",
    )

    get = commands.add_parser(
        "get",
        parents=[connection],
        help="show stored values",
        description="Show the values of a metric, or of every metric with '*' (quote it in a shell).",
    )
    get.add_argument(
        "key", metavar="KEY", help="metric name, '*' for all, or a Graphite glob such as 'host0*.cpu' or 'h.{cpu,mem}'"
    )
    get.add_argument("--json", action="store_true", help='print {"key": [[ts, value], ...]} instead of a table')
    query = get.add_argument_group("query (sent as the query form of get; computed here if the server lacks it)")
    query.add_argument(
        "--from", dest="since", type=_instant, metavar="TIME",
        help="first second included: epoch seconds, or back from now: -30m, -1h, -7d",
    )
    query.add_argument("--until", type=_instant, metavar="TIME", help="first second excluded (same forms as --from)")
    query.add_argument("--step", type=_step, metavar="STEP", help="roll up into buckets of STEP: seconds, or 1m, 1h, 1d")
    query.add_argument(
        "--agg", choices=["avg", "min", "max", "sum", "count", "last"],
        help="aggregation of each bucket (default: avg)",
    )
    query.add_argument(
        "--points", type=_positive_int("points"), metavar="N", help="at most N points per metric (for charts)"
    )

    serve = commands.add_parser(
        "serve",
        help="run a metrics server",
        description=(
            "Run the embedded metrics server until SIGINT (Ctrl-C) or SIGTERM. Prints "
            "'listening on HOST:PORT' on stdout once ready; logs go to stderr."
        ),
    )
    serve.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s)")
    serve.add_argument(
        "--port", type=_port(True), default=DEFAULT_PORT, help="port to bind, 0 for any free one (default: %(default)s)"
    )
    serve.add_argument("--data", metavar="PATH", help="keep data on disk: PATH is the journal (the write-ahead log of recent points), "
                       "older points are sealed into compressed blocks in PATH.blocks/ (default: memory only)")
    serve.add_argument(
        "--store",
        metavar="URL",
        help="keep data in Redis instead, as a stateless gateway: redis://HOST:PORT or "
        "redis-cluster://HOST:PORT,HOST:PORT,...[?wait=N&wait_timeout=MS] (default: the embedded store)",
    )
    serve.add_argument(
        "--fsync",
        choices=("always", "everysec", "no"),
        help="when the journal is synced to disk (default: everysec)",
    )
    graphite = serve.add_argument_group("Graphite (the embedded store only)")
    graphite.add_argument(
        "--graphite-port",
        type=_port(True),
        metavar="PORT",
        help="also accept Graphite plaintext (path value timestamp) on this port, 0 for any free one",
    )
    graphite.add_argument(
        "--http-port",
        type=_port(True),
        metavar="PORT",
        help="also serve Graphite's HTTP API (/render, /metrics/find) and the dashboard at / on this port",
    )
    security = serve.add_argument_group("security")
    security.add_argument("--tls-cert", metavar="PEM", help="serve TLS with this certificate chain (with --tls-key)")
    security.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    security.add_argument(
        "--tls-client-ca",
        metavar="PEM",
        help="serve only clients presenting a certificate signed by this CA (mutual TLS)",
    )
    security.add_argument(
        "--insecure",
        action="store_true",
        help="serve clients beyond loopback without client certificates (turns protected mode off)",
    )
    storage = serve.add_argument_group("storage")
    storage.add_argument(
        "--retention",
        metavar="SPAN",
        help="drop points older than this, e.g. 30d (s, m, h, d, w, y; default: keep everything)",
    )
    storage.add_argument(
        "--head-window",
        metavar="SPAN",
        help="with --data: points older than this are sealed into compressed blocks (default: 2h)",
    )
    limits = serve.add_argument_group("limits")
    limits.add_argument(
        "--max-memory",
        type=_size("size"),
        metavar="SIZE",
        help="memory for stored keys and points, e.g. 2GiB; past it puts are refused (default: no limit)",
    )
    limits.add_argument(
        "--max-connections",
        type=_positive_int("count"),
        metavar="N",
        help="connections served at once; more are told 'too many connections' (default: 10000)",
    )
    limits.add_argument(
        "--idle-timeout",
        type=_positive_float(0, "timeout"),
        metavar="SECONDS",
        help="close connections that make no progress for this long (default: never)",
    )
    limits.add_argument(
        "--max-request-buffers",
        type=_size("size"),
        metavar="SIZE",
        help="memory all connections together may hold for unfinished long lines (default: 256MiB)",
    )

    demo = commands.add_parser(
        "demo",
        help="run the assignment's example on an embedded server",
        description=(
            "Start an embedded server on a free loopback port, store the assignment's "
            "huginn/muninn example, print get('*') and the table, then stop. It prints the "
            "dashboard's address too; with --serve the server stays up, fed a few live "
            "demo.* series each second, so the dashboard has something to draw."
        ),
    )
    demo.add_argument(
        "--serve", action="store_true", help="keep the server and its dashboard up, with live data, until Ctrl-C"
    )

    agent = commands.add_parser(
        "agent",
        parents=[connection],
        help="send this machine's figures every interval (needs psutil)",
        description=(
            "Every interval, store NAME.cpu (percent), NAME.memory (used bytes), NAME.disk "
            "(used bytes of the root file system), NAME.net_sent and NAME.net_recv (bytes). "
            "While the server is unreachable, points wait in a bounded buffer and are sent "
            "once it is back. One status line per interval. Needs psutil: "
            "pip install 'metrics-client[agent]'."
        ),
    )
    agent.add_argument(
        "--interval",
        type=_positive_float(1, "interval"),
        default=10.0,
        metavar="SECONDS",
        help="seconds between samples, at least 1 (the protocol stores one value per second) (default: %(default)s)",
    )
    agent.add_argument("--count", type=_positive_int("count"), metavar="N", help="stop after N intervals (default: run until Ctrl-C)")
    agent.add_argument("--name", type=_agent_name, metavar="HOST", help="key prefix (default: this machine's host name)")
    agent.add_argument(
        "--buffer",
        type=_positive_int("buffer"),
        default=10_000,
        metavar="POINTS",
        help="most unsent points kept while the server is down; the oldest are dropped beyond it (default: %(default)s)",
    )
    agent.add_argument(
        "--window",
        type=_positive_int("window"),
        metavar="N",
        help="at most N requests sent without waiting for their replies (default: pipelined, and 1 "
        "from the first batch the server stops answering part-way, after one --timeout); "
        "1 works with any server, also one that handles one command per read, as many course servers do",
    )
    return parser
