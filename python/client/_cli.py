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
import errno
import json
import math
import os
import select
import signal
import sys
import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO

from ._address import host_port
from ._cli_parser import UsageError, _prog, build_parser
from ._errors import ClientError, ClientSocketError, ClientTimeoutError, ClientTypeError, ClientValueError
from ._native import Server
from ._printable import printable

__all__ = ["main", "build_parser"]

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


class CommandError(Exception):
    """An expected failure reported as one ``error:`` line (exit status 1)."""


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


#: What each command of ``build_parser()`` runs.
COMMANDS: Dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "put": _cmd_put,
    "get": _cmd_get,
    "serve": _cmd_serve,
    "demo": _cmd_demo,
    "agent": _cmd_agent,
}


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
        status: int = COMMANDS[args.command](args, out)
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
