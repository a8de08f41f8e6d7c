"""The command line: ``python -m client {put,get,serve,demo,agent}``.

``main(argv=None)`` parses ``argv`` (default ``sys.argv[1:]``), runs the
command and returns the exit status; it never prints a traceback for an
expected failure:

- 0: success;
- 1: the command failed (server unreachable, timeout, error reply, points
  left unsent by the agent, cannot listen), one ``error: ...`` line on stderr;
- 2: bad arguments (also values the client refuses, such as a key with a
  space), one ``error: ...`` line on stderr;
- 130: interrupted with Ctrl-C, nothing printed.
"""

from __future__ import annotations

import argparse
import datetime
import errno
import json
import math
import os
import re
import select
import signal
import sys
import time
import warnings
from typing import Any, Callable, Dict, List, NoReturn, Optional, Sequence, TextIO

from ._address import host_port
from ._errors import ClientError, ClientSocketError, ClientTimeoutError, ClientTypeError, ClientValueError
from ._native import Server, __version__
from ._printable import printable

__all__ = ["main", "build_parser"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8888
#: Seconds a client command waits for the connection and each reply.
DEFAULT_TIMEOUT = 10.0

#: The assignment's example session, replayed by ``demo``
#: (``None``: no timestamp, the client stamps the current second).
DEMO_PUTS = (
    ("huginn.cpu", 0.5, 1642667947),
    ("huginn.cpu", 2.0, 1642667948),
    ("huginn.cpu", 0.5, 1642667948),
    ("muninn.cpu", 3, 1642667950),
    ("muninn.cpu", 4, 1642667951),
    ("muninn.memory", 42000000, None),
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad command-line arguments (exit status 2)."""


class CommandError(Exception):
    """An expected failure reported as one ``error:`` line (exit status 1)."""


# -- argument parsing ---------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Reports a usage error as one line instead of usage text plus exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _port(allow_zero: bool) -> Callable[[str], int]:
    low = 0 if allow_zero else 1

    def parse(text: str) -> int:
        try:
            port = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid port {text!r}: not an integer") from None
        if not low <= port <= 65535:
            raise argparse.ArgumentTypeError(f"invalid port {port}: must be between {low} and 65535")
        return port

    parse.__name__ = "port"
    return parse


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


def _positive_int(what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: not an integer") from None
        if number < 1:
            raise argparse.ArgumentTypeError(f"invalid {what} {number}: must be at least 1")
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
    put.set_defaults(run=_cmd_put)

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
    get.set_defaults(run=_cmd_get)

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
    serve.add_argument("--data", metavar="PATH", help="the journal: an append-only file to keep data in (default: memory only)")
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
    serve.set_defaults(run=_cmd_serve)

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
    demo.set_defaults(run=_cmd_demo)

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
    agent.set_defaults(run=_cmd_agent)
    return parser


# -- commands -----------------------------------------------------------------


def _tls_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The Client keywords the --tls-* options ask for (none: plain text).
    TLS is then the Rust core's; a file that cannot be used is refused by
    Client, naming it."""
    if args.tls_key and not args.tls_cert:
        raise CommandError("--tls-key needs --tls-cert")
    names = {"tls_ca": args.tls_ca, "tls_cert": args.tls_cert, "tls_key": args.tls_key}
    return {name: path for name, path in names.items() if path}


def _client(args: argparse.Namespace) -> Any:
    from ._native import Client

    return Client(args.host, args.port, timeout=args.timeout, **_tls_options(args))


def _cmd_put(args: argparse.Namespace, out: TextIO) -> int:
    timestamp = args.timestamp if args.timestamp is not None else int(time.time())
    with _client(args) as client:
        client.put(args.key, args.value, timestamp=timestamp)
    print(f"ok {args.key} {args.value} {timestamp}", file=out)
    return EXIT_OK


def _cmd_get(args: argparse.Namespace, out: TextIO) -> int:
    with _client(args) as client:
        metrics = client.get(
            args.key, since=args.since, until=args.until, step=args.step, agg=args.agg, max_points=args.points
        )
    if args.json:
        print(to_json(metrics), file=out)
    else:
        from ._table import render_table

        print(render_table(metrics, ascii=not _can_encode(out)), file=out)
    return EXIT_OK


def to_json(metrics: Dict[str, List[Any]]) -> str:
    """``{"key": [[ts, value], ...]}``, keys sorted."""
    return json.dumps({key: [[ts, value] for ts, value in metrics[key]] for key in sorted(metrics)})


def _address(address: Sequence[Any]) -> str:
    return host_port(address[0], address[1])


def _log(message: str, source: str = "metrics-server", level: str = "INFO") -> None:
    """One log line on stderr, in the embedded server's own format."""
    print(f"{source}: {level}: {message}", file=sys.stderr, flush=True)


def _cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    # The handler runs in the main thread between two bytecodes, possibly
    # while that thread holds a lock inside threading.Event.wait: setting an
    # Event from it can deadlock. It only records the signal and writes a
    # byte to a pipe the main thread waits on, neither of which takes a lock.
    received: List[str] = []
    wake_read, wake_write = -1, -1

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signal.Signals(signum).name)
        try:
            os.write(wake_write, b"!")
        except BlockingIOError:  # the pipe is full: a wake-up is pending anyway
            pass

    def stop_received(timeout: float) -> bool:
        """Waits up to ``timeout`` seconds for a stop signal."""
        if not received:
            select.select([wake_read], [], [], timeout)
        return bool(received)

    stop_signals = {signal.SIGINT, signal.SIGTERM}
    # The server's threads inherit the signal mask of the thread that starts
    # them: with the stop signals blocked there, the kernel delivers them to
    # this (main) thread, which wakes at once to run the handler.
    masking = hasattr(signal, "pthread_sigmask")
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals) if masking else None
    previous_handlers: Dict[int, Any] = {}
    server = None
    where = _address((args.host, args.port))

    def refused(exc: BaseException) -> CommandError:
        detail = (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or type(exc).__name__
        # The server's errors say which address or data file failed (and
        # then name it in their message); others get the address here.
        names_itself = getattr(exc, "address", None) is not None or getattr(exc, "data", None) is not None
        return CommandError(detail if names_itself else f"cannot serve on {where}: {detail}")

    if bool(args.tls_cert) != bool(args.tls_key) or (args.tls_client_ca and not args.tls_cert):
        raise CommandError("TLS needs both --tls-cert and --tls-key (and --tls-client-ca needs them)")
    try:
        try:
            # Checks the data file and binds; the replay goes on in a
            # thread, so the stop signals are handled while it runs.
            limits = {
                name: getattr(args, name)
                for name in (
                    "max_memory",
                    "max_connections",
                    "idle_timeout",
                    "max_request_buffers",
                    "store",
                    "graphite_port",
                    "http_port",
                    "retention",
                    "head_window",
                )
                if getattr(args, name) is not None
            }
            server = Server(
                host=args.host,
                port=args.port,
                data=args.data,
                fsync=args.fsync,
                log=True,
                wait=False,
                tls_cert=args.tls_cert,
                tls_key=args.tls_key,
                tls_client_ca=args.tls_client_ca,
                insecure=args.insecure,
                **limits,
            )
        except (OSError, ValueError, TypeError, ClientError) as exc:
            raise refused(exc) from None
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        for signum in stop_signals:
            previous_handlers[signum] = signal.signal(signum, on_signal)
    finally:
        if previous_mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
    try:
        with warnings.catch_warnings():
            # Recovery warnings (records copied to the quarantine file) are
            # already written to stderr by the server's own log.
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                # Slices short enough to notice a stop signal at once.
                while not received and not server.wait(0.05):
                    pass
            except (OSError, ValueError, TypeError, ClientError) as exc:
                raise refused(exc) from None
        if received and not server.ready:
            _log(f"received {received[0]} while loading {args.data}; stopping, the data file is left as it was")
            server.close()
            _log("stopped")
            return EXIT_OK
        address = _address(server.address)
        if args.store:
            storage = f"data in Redis at {args.store} (this server keeps none)"
        elif args.data:
            storage = f"data in {args.data} (fsync {server.fsync})"
        else:
            storage = "data in memory only (lost on exit)"
        _log(f"{storage}; stop with Ctrl-C or SIGTERM")
        print(f"listening on {address}", file=out, flush=True)
        if server.graphite_address is not None:
            print(f"graphite plaintext on {_address(server.graphite_address)}", file=out, flush=True)
        if server.dashboard_url is not None:
            print(f"dashboard on {server.dashboard_url}", file=out, flush=True)
        while not stop_received(1.0):  # the timeout is only a safety net
            pass
        _log(f"received {received[0]}, shutting down")
    finally:
        try:
            server.close()  # stops accepting, then writes and fsyncs the journal
        finally:
            for number, handler in previous_handlers.items():
                signal.signal(number, handler)
            os.close(wake_read)
            os.close(wake_write)
    _log("stopped" + (", data flushed" if args.data else ""))
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    from ._native import Client
    from ._table import render_table

    if args.serve:
        return _cmd_demo_serve(out)
    with Server(http_port=0) as server:
        host, port = server.address[0], server.address[1]
        print(f"# embedded server on {_address(server.address)} (in memory)", file=out)
        print(f"# dashboard: {server.dashboard_url}", file=out)
        print(f">>> client = Client({host!r}, {port}, timeout=15)", file=out)
        with Client(host, port, timeout=15) as client:
            for key, value, timestamp in DEMO_PUTS:
                if timestamp is None:
                    print(f">>> client.put({key!r}, {value!r})", file=out)
                    client.put(key, value)
                else:
                    print(f">>> client.put({key!r}, {value!r}, timestamp={timestamp})", file=out)
                    client.put(key, value, timestamp=timestamp)
            print(">>> client.get('*')", file=out)
            metrics = client.get("*")
    print({key: metrics[key] for key in sorted(metrics)}, file=out)
    print("# the server keeps one value per key and second: the later put at 1642667948 replaced 2.0", file=out)
    print(file=out)
    print(render_table(metrics, ascii=not _can_encode(out)), file=out)
    return EXIT_OK


def _cmd_demo_serve(out: TextIO) -> int:
    """``demo --serve``: the demo's data on a server that stays up, its
    dashboard live, until Ctrl-C or SIGTERM."""
    from ._native import Client

    def stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    # Both stop it, also where the shell started it with SIGINT ignored.
    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Server(http_port=0, graphite_port=0) as server:
            with Client(*server.address, timeout=15) as client:
                for key, value, timestamp in DEMO_PUTS:
                    client.put(key, value, timestamp=timestamp)
            print(f"# embedded server on {_address(server.address)} (in memory)", file=out)
            print(f"# graphite plaintext on {_address(server.graphite_address or ())}", file=out)
            print(f"# dashboard: {server.dashboard_url}", file=out)
            print("# live series demo.cpu.user, demo.cpu.system, demo.requests; stop with Ctrl-C", file=out, flush=True)
            requests = 0.0
            try:
                with Client(*server.address, timeout=15) as client:
                    while True:
                        now = time.time()
                        requests += 40 + 30 * math.sin(now / 60)
                        client.put("demo.cpu.user", round(35 + 20 * math.sin(now / 90), 3))
                        client.put("demo.cpu.system", round(12 + 6 * math.cos(now / 45), 3))
                        client.put("demo.requests", round(requests))
                        time.sleep(1)
            except KeyboardInterrupt:
                pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return EXIT_OK


def _cmd_agent(args: argparse.Namespace, out: TextIO) -> int:
    from ._agent import Agent, PsutilSource, default_name
    from ._native import Client

    source = PsutilSource()
    name = args.name or default_name()
    server = _address((args.host, args.port))
    host, port, timeout = args.host, args.port, args.timeout
    tls = _tls_options(args)

    def connect() -> Any:
        return Client(host, port, timeout=timeout, **tls)

    agent = Agent(
        connect,
        source,
        name=name,
        interval=args.interval,
        count=args.count,
        buffer_size=args.buffer,
        window=args.window,
        server=server,
        out=out,
    )
    _log(
        f"sending {name}.{{cpu,memory,disk,net_sent,net_recv}} to {server} "
        f"every {args.interval:g} s" + (f", {args.count} time(s)" if args.count else ""),
        source="metrics-agent",
    )
    return agent.run()


# -- entry point ----------------------------------------------------------------


def _can_encode(stream: TextIO) -> bool:
    from ._table import SPARK_BLOCKS

    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        SPARK_BLOCKS.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ClientSocketError) and exc.address is not None and exc.strerror:
        # "cannot connect to host:port: Connection refused", without the
        # chained exception's class name and errno.
        kind = "timed out connecting" if isinstance(exc, ClientTimeoutError) else "cannot connect"
        text = f"{kind} to {exc.address}: {exc.strerror}"
        if exc.errno == errno.ECONNREFUSED:
            text += f" (is the server running? start one with: {_prog()} serve)"
        return text
    return str(exc) or type(exc).__name__


def _error(message: str) -> None:
    try:
        # The message may quote the server (its error text, a malformed
        # line): never let it drive the terminal.
        print(f"error: {printable(message, unambiguous=False)}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _join_times(argv: Sequence[str]) -> List[str]:
    """``--from -1h`` as ``--from=-1h``: argparse would take ``-1h`` for an
    option and say ``--from`` lacks its value."""
    joined: List[str] = []
    items = iter(argv)
    for item in items:
        if item in ("--from", "--until"):
            value = next(items, None)
            if value is not None and value.startswith("-"):
                joined.append(f"{item}={value}")
                continue
            joined.append(item)
            if value is not None:
                joined.append(value)
            continue
        joined.append(item)
    return joined


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line on ``argv`` (default ``sys.argv[1:]``) and
    returns the exit status (see the module docstring)."""
    from ._agent import AgentError

    out = sys.stdout
    try:
        try:
            args = build_parser().parse_args(_join_times(sys.argv[1:] if argv is None else argv))
        except SystemExit as exc:  # --help, --version
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
        status: int = args.run(args, out)
        return status
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except (ClientValueError, ClientTypeError) as exc:
        _error(_describe(exc))
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly; keep Python
        # from failing again when it flushes stdout at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return EXIT_FAILURE
    except (ClientError, CommandError, AgentError, OSError) as exc:
        _error(_describe(exc))
        return EXIT_FAILURE
