"""A stand-in metrics server for the client benchmarks: replays canned bytes.

``python benches/standin_server.py REPLY_FILE`` listens on 127.0.0.1 (a free
port), prints ``host port`` on stdout and then answers, per request line:
``get *`` with the bytes of REPLY_FILE (a complete reply, read into memory
once), any other ``get`` with ``ok\\n\\n``, and everything else (``put``)
with ``ok\\n\\n``. Pipelined lines are answered in order, the replies to one
read joined in one ``sendall``. One thread per connection; it stops when
stdin closes, so it never outlives the benchmark.

It does no parsing beyond the first word, so its cost is the smallest a
server can have: the get figures measure the client, not a server.
"""

import socket
import sys
import threading

OK = b"ok\n\n"


def serve_connection(conn, reply):
    buf = bytearray()
    with conn:
        while True:
            try:
                data = conn.recv(1 << 16)
            except OSError:
                return
            if not data:
                return
            buf += data
            end = buf.rfind(b"\n")
            if end < 0:
                continue
            lines = bytes(buf[:end]).split(b"\n")
            del buf[: end + 1]
            out = []
            for line in lines:
                out.append(reply if line.strip() == b"get *" else OK)
            try:
                conn.sendall(b"".join(out) if len(out) > 1 else out[0])
            except OSError:
                return


def main():
    with open(sys.argv[1], "rb") as f:
        reply = f.read()
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    host, port = listener.getsockname()[:2]

    def accept():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=serve_connection, args=(conn, reply), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print(host, port, flush=True)
    sys.stdin.read()  # until the parent closes our stdin (or dies)


if __name__ == "__main__":
    main()
