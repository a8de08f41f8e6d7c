"""Pure-Python clients the benchmark compares ``client.Client`` against.

``CanonicalClient`` is the shape of the course's reference solution:
``socket.create_connection``, ``data += sock.recv(1024)`` until the reply
ends with an empty line, one ``decode``, ``str.split`` per row. Appending to
``bytes`` copies the whole buffer each time, so reading a reply of n bytes
costs O(n^2 / 1024): the price a user of that shape pays on a large ``get``.

``CarefulClient`` is what a careful Python programmer writes: TCP_NODELAY,
a ``bytearray`` buffer (amortised O(1) appends) filled with 256 KiB reads,
one ``decode``, one C-level ``str.split()`` of the whole body, ``map`` and
``zip`` to build the points, ``itertools.groupby`` for the keys, and a sort
only for a key whose timestamps are not already in order.

Both return exactly what ``client.Client.get`` returns, and raise
``RuntimeError`` on an ``error`` reply (error handling is not what is
measured here).
"""

import socket
import time
from itertools import groupby
from operator import itemgetter


class CanonicalClient:
    def __init__(self, host, port, timeout=None):
        self.connection = socket.create_connection((host, port), timeout)

    def _read(self):
        data = b""
        while not data.endswith(b"\n\n"):
            chunk = self.connection.recv(1024)
            if not chunk:
                raise ConnectionError("server closed the connection")
            data += chunk
        decoded = data.decode()
        status, payload = decoded.split("\n", 1)
        payload = payload.strip()
        if status == "error":
            raise RuntimeError(payload)
        return payload

    def put(self, key, value, timestamp=None):
        timestamp = timestamp or int(time.time())
        self.connection.sendall(f"put {key} {value} {timestamp}\n".encode())
        self._read()

    def get(self, key):
        self.connection.sendall(f"get {key}\n".encode())
        payload = self._read()
        data = {}
        if payload == "":
            return data
        for row in payload.split("\n"):
            key, value, timestamp = row.split()
            if key not in data:
                data[key] = []
            data[key].append((int(timestamp), float(value)))
        return data

    def close(self):
        self.connection.close()


class CarefulClient:
    RECV_BYTES = 256 * 1024

    def __init__(self, host, port, timeout=None):
        self.sock = socket.create_connection((host, port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _read(self):
        recv = self.sock.recv
        buf = bytearray(recv(self.RECV_BYTES))
        while not buf.endswith(b"\n\n"):
            chunk = recv(self.RECV_BYTES)
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk
        text = buf.decode()
        status, _, body = text.partition("\n")
        if status != "ok":
            raise RuntimeError(body.strip())
        return body

    def put(self, key, value, timestamp=None):
        if timestamp is None:
            timestamp = int(time.time())
        self.sock.sendall(f"put {key} {value} {timestamp}\n".encode())
        self._read()

    def get(self, key):
        self.sock.sendall(f"get {key}\n".encode())
        tokens = self._read().split()
        if len(tokens) % 3:
            raise ValueError("malformed reply")
        keys = tokens[0::3]
        timestamps = list(map(int, tokens[2::3]))
        points = list(zip(timestamps, map(float, tokens[1::3])))
        result = {}
        start = 0
        for name, run in groupby(keys):
            end = start + len(list(run))
            stamps = timestamps[start:end]
            lst = result.get(name)
            if lst is None:
                result[name] = lst = points[start:end]
                if stamps != sorted(stamps):
                    lst.sort(key=itemgetter(0))
            else:  # a key seen before: merge, then sort (stable)
                lst.extend(points[start:end])
                lst.sort(key=itemgetter(0))
            start = end
        return result

    def close(self):
        self.sock.close()
