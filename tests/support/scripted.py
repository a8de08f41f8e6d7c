"""A scriptable threaded TCP server on loopback (each accepted connection a
``Peer`` that a script drives), and an in-memory metrics server built on it."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
import traceback
from typing import Callable, List, Optional, Sequence, Tuple, Union

from .acceptor import Acceptor
from .bounds import BOUND
from .tls_peer import TlsLayer


class PeerClosed(Exception):
    """The client closed its end of the connection (or the server did)."""


class ServerStopped(Exception):
    """The scripted server is shutting down."""


class Peer:
    """The server's side of one accepted connection.

    A reader thread records every byte the client sends (``received()``),
    whatever the script does; the script consumes them with ``read_line`` /
    ``read_lines`` and answers with ``send``.
    """

    def __init__(self, server: "ScriptedServer", sock: socket.socket, index: int,
                 tls: Optional[ssl.SSLContext] = None) -> None:
        self.server = server
        self.sock = sock
        #: TLS on the socket (``ScriptedServer(tls=)``); bytes here are plaintext.
        self.tls = TlsLayer(tls, sock, BOUND) if tls is not None else None
        self.index = index
        #: The client's (host, port) as seen by the server.
        self.address = sock.getpeername()[:2]
        self._cond = threading.Condition()
        self._data = bytearray()
        self._pos = 0
        self._eof = False          # the client closed (recv returned 0 or failed)
        self._closing = False      # we closed or are stopping
        #: Bytes this side has sent so far.
        self.sent = 0
        #: Largest number of complete requests seen at once by read_lines().
        self.max_batch = 0
        self.script_done = threading.Event()
        self._reader = threading.Thread(
            target=self._read_loop, name=f"peer-{index}-reader", daemon=True)

    def start(self) -> None:
        self._reader.start()

    def _read_loop(self) -> None:
        while True:
            try:
                chunk = self.sock.recv(1 << 16)
            except OSError:
                chunk = b""
            data = chunk
            if chunk and self.tls is not None:
                plaintext = self.tls.received(chunk)
                # TLS failing is the end of this connection's stream.
                data, chunk = (plaintext, chunk) if plaintext is not None else (b"", b"")
            with self._cond:
                if chunk:
                    self._data += data
                else:
                    self._eof = True
                self._cond.notify_all()
            if not chunk:
                return

    # -- observing -------------------------------------------------------

    def received(self) -> bytes:
        """Every byte received from the client so far."""
        with self._cond:
            return bytes(self._data)

    def pending(self) -> bytes:
        """Received bytes the script has not consumed yet."""
        with self._cond:
            return bytes(self._data[self._pos:])

    @property
    def client_closed(self) -> bool:
        with self._cond:
            return self._eof and not self._closing

    def _wait(self, predicate: Callable[[], object], timeout: float, what: str) -> object:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                if self.server.stopping:
                    raise ServerStopped()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"peer {self.index}: timed out waiting for {what}; "
                                       f"received {bytes(self._data)[:200]!r}")
                self._cond.wait(left)

    def wait_received(self, expected: bytes, timeout: float = BOUND) -> bytes:
        """Waits until at least ``len(expected)`` bytes arrived and returns
        them all (the caller compares; a wrong prefix returns at once)."""
        def enough():
            if len(self._data) >= len(expected) or self._eof or self._closing:
                return True
            return not expected.startswith(bytes(self._data))
        self._wait(enough, timeout, f"{expected!r}")
        return self.received()

    def wait_data(self, predicate: Callable[[bytes], object], timeout: float = BOUND) -> bytes:
        """Waits until ``predicate(everything received)`` is true; returns the data."""
        self._wait(lambda: predicate(bytes(self._data)), timeout, "data")
        return self.received()

    def wait_client_closed(self, timeout: float = BOUND) -> None:
        """Waits until the client closes its end (EOF or reset)."""
        self._wait(lambda: self._eof, timeout, "the client to close")

    # -- consuming -------------------------------------------------------

    def _wait_line_end(self, last: bool, timeout: float, what: str):
        """Waits for a ``\\n`` after the consumed bytes and returns the offset
        just past the first one (the last one, with ``last``); raises
        PeerClosed if the connection ends first."""
        def end():
            find = self._data.rfind if last else self._data.find
            found = find(b"\n", self._pos)
            if found >= 0:
                return found + 1
            if self._eof or self._closing:
                raise PeerClosed()
            return None
        return self._wait(end, timeout, what)

    def read_line(self, timeout: float = BOUND) -> bytes:
        """The next complete line, ``\\n`` included. Raises PeerClosed if the
        connection ends first."""
        end = self._wait_line_end(False, timeout, "a line")
        with self._cond:
            data = bytes(self._data[self._pos:end])
            self._pos = end
        return data

    def read_lines(self, timeout: float = BOUND) -> List[bytes]:
        """Every complete line available now (at least one, waiting for it),
        without their ``\\n``."""
        end = self._wait_line_end(True, timeout, "lines")
        with self._cond:
            block = bytes(self._data[self._pos:end - 1])
            self._pos = end
        result = block.split(b"\n")
        self.max_batch = max(self.max_batch, len(result))
        return result

    # -- answering -------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Sends ``data`` (raises OSError if the client has gone)."""
        if self.tls is not None:
            self.tls.send(data)
        else:
            self.sock.sendall(data)
        self.sent += len(data)

    def try_send(self, data: bytes) -> bool:
        """Sends ``data``; False if the connection is gone."""
        try:
            self.send(data)
            return True
        except OSError:
            return False

    def close(self) -> None:
        """Closes the connection gracefully (FIN), as a server that quits."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._reader.join(BOUND)
        self.sock.close()

    def abort(self) -> None:
        """Resets the connection (RST), as a crashing server."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def _stop(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


Script = Callable[[Peer], None]


class ScriptedServer:
    """A TCP server on loopback that runs ``script(peer)`` in a thread for
    every accepted connection and records everything it receives.

    ``script`` is one callable for every connection, or a sequence giving the
    script of connection 0, 1, ... (the last one repeats). ``None`` accepts and
    never answers. A script returning does not close the connection; the
    server closes everything on ``stop()``.
    """

    def __init__(self, script: Union[None, Script, Sequence[Optional[Script]]] = None, *,
                 host: str = "127.0.0.1", port: int = 0,
                 tls: Optional[ssl.SSLContext] = None) -> None:
        #: A server context: every connection speaks TLS (see tls_peer.py).
        self.tls = tls
        self._acceptor = Acceptor(host, port, self._accepted, name="accept", reuse_address=True)
        self.address: Tuple[str, int] = self._acceptor.address
        self.host, self.port = self.address
        self._scripts = script
        self._cond = threading.Condition()
        self.peers: List[Peer] = []
        #: Tracebacks of scripts that failed (other than the client leaving).
        self.errors: List[str] = []
        self.stopping = False
        self._script_threads: List[threading.Thread] = []
        self._acceptor.start()

    # -- lifecycle -------------------------------------------------------

    def __enter__(self) -> "ScriptedServer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _script_for(self, index: int) -> Optional[Script]:
        scripts = self._scripts
        if scripts is None or callable(scripts):
            return scripts
        if not scripts:
            return None
        return scripts[min(index, len(scripts) - 1)]

    def _accepted(self, sock: socket.socket) -> bool:
        with self._cond:
            if self.stopping:
                sock.close()
                return False
            peer = Peer(self, sock, len(self.peers), self.tls)
            self.peers.append(peer)
            peer.start()
            script = self._script_for(peer.index)
            if script is not None:
                thread = threading.Thread(target=self._run_script, args=(script, peer),
                                          name=f"peer-{peer.index}-script", daemon=True)
                self._script_threads.append(thread)
                thread.start()
            else:
                peer.script_done.set()
            self._cond.notify_all()
            return True

    def _run_script(self, script: Script, peer: Peer) -> None:
        try:
            script(peer)
        except (PeerClosed, ServerStopped):
            pass
        except OSError:
            # The client went away while we were answering.
            if not (peer.client_closed or self.stopping):
                self.errors.append(traceback.format_exc())
        except BaseException:
            self.errors.append(traceback.format_exc())
        finally:
            peer.script_done.set()

    def stop(self) -> None:
        """Closes the listener and every connection; joins the threads (bounded)."""
        with self._cond:
            if self.stopping:
                return
            self.stopping = True
            self._cond.notify_all()
            peers = list(self.peers)
        self._acceptor.stop()
        for peer in peers:
            peer._stop()
        for thread in self._script_threads:
            thread.join(BOUND)
        for peer in peers:
            peer._reader.join(BOUND)
            peer.sock.close()

    # -- observing -------------------------------------------------------

    @property
    def connection_count(self) -> int:
        with self._cond:
            return len(self.peers)

    def wait_connections(self, count: int, timeout: float = BOUND) -> List[Peer]:
        """Waits until at least ``count`` connections were accepted."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.peers) >= count, timeout):
                raise AssertionError(
                    f"server saw {len(self.peers)} connection(s), expected {count} within {timeout} s")
            return list(self.peers)

    def peer(self, index: int, timeout: float = BOUND) -> Peer:
        """Connection number ``index`` (waiting for it to be accepted)."""
        return self.wait_connections(index + 1, timeout)[index]

    def received(self) -> List[bytes]:
        """What each connection received so far, in accept order."""
        with self._cond:
            peers = list(self.peers)
        return [p.received() for p in peers]

    def assert_no_script_errors(self) -> None:
        if self.errors:
            raise AssertionError("server script failed:\n" + "\n".join(self.errors))


# --------------------------------------------------------------------------
# Ready-made scripts


def respond(answer: Union[bytes, Callable[[bytes], Optional[bytes]]]) -> Script:
    """A script answering each request line (``\\n`` included) with ``answer``
    (bytes, or a function of the line returning bytes or None for silence)."""
    def script(peer: Peer) -> None:
        while True:
            line = peer.read_line()
            reply = answer(line) if callable(answer) else answer
            if reply:
                peer.send(reply)
    return script


#: Answers ``ok\n\n`` to every line.
ok_to_everything = respond(b"ok\n\n")


def point_reply(line: bytes) -> bytes:
    """``get <key>`` -> one point whose key is the requested key; anything
    else -> ``ok``."""
    if line.startswith(b"get "):
        key = line[4:-1]
        return b"ok\n" + key + b" 1.0 1\n\n"
    return b"ok\n\n"


#: Answers every request with `point_reply`.
answer_points = respond(point_reply)


def silent(peer: Peer) -> None:
    """Reads the request and never answers."""
    peer.read_line()


class MetricsStore:
    """The protocol's semantics in memory: put replaces the value stored for
    a (key, timestamp); get returns points sorted by timestamp; ``*`` is every
    key; anything else is ``error\\nwrong command\\n\\n``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: dict = {}
        #: Lines that were not valid commands (would reveal interleaved frames).
        self.bad_lines: List[bytes] = []
        self.requests = 0

    def handle(self, line: bytes) -> bytes:
        parts = line.split(b" ")
        with self.lock:
            self.requests += 1
            try:
                if parts[0] == b"put" and len(parts) == 4:
                    key = parts[1].decode("utf-8")
                    value = float(parts[2])
                    timestamp = int(parts[3])
                    if not key:
                        raise ValueError("empty key")
                    self.data.setdefault(key, {})[timestamp] = value
                    return b"ok\n\n"
                if parts[0] == b"get" and len(parts) == 2 and parts[1]:
                    wanted = parts[1].decode("utf-8")
                    keys = list(self.data) if wanted == "*" else [wanted]
                    out = [b"ok\n"]
                    for key in keys:
                        for timestamp, value in sorted(self.data.get(key, {}).items()):
                            out.append(f"{key} {value!r} {timestamp}\n".encode("utf-8"))
                    out.append(b"\n")
                    return b"".join(out)
            except (ValueError, UnicodeDecodeError):
                pass
            self.bad_lines.append(line)
            return b"error\nwrong command\n\n"

    def snapshot(self) -> dict:
        """``{key: [(timestamp, value), ...]}`` as ``Client.get('*')`` returns it."""
        with self.lock:
            return {k: sorted(v.items()) for k, v in self.data.items()}

    def script(self, peer: Peer) -> None:
        """Serves one connection; pipelined requests are answered in order,
        all the replies to one read in one send."""
        while True:
            lines = peer.read_lines()
            peer.send(b"".join(self.handle(line) for line in lines))


class MetricsServer(ScriptedServer):
    """A ScriptedServer whose every connection is served by one MetricsStore."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 store: Optional[MetricsStore] = None, tls: Optional[ssl.SSLContext] = None) -> None:
        self.store = store or MetricsStore()
        super().__init__(self.store.script, host=host, port=port, tls=tls)
