"""A metrics server in the course's week-6 shape, written for the benchmark.

The layout of the course's reference solution: an ``asyncio.Protocol`` that
buffers bytes until they end with a newline, decodes them, and hands them to
a ``Parser`` (lines split with ``str.split``, arguments checked), an
``Executor`` (dispatch to the storage) and back to the ``Parser`` to encode
the replies, written with one ``transport.write`` per ``data_received``.
The ``Storage`` is a dict of dicts ``{key: {timestamp: value}}``. Pipelined
requests are answered in order.

``python benches/asyncio_server.py`` listens on 127.0.0.1 (a free port),
prints ``host port`` and serves until its stdin closes.
"""

import asyncio
import sys


class ParseError(ValueError):
    pass


class ExecutorError(ValueError):
    pass


class Storage:
    def __init__(self):
        self._data = {}

    def put(self, key, value, timestamp):
        if key not in self._data:
            self._data[key] = {}
        self._data[key][timestamp] = value

    def get(self, key):
        data = self._data
        if key != "*":
            data = {key: data.get(key, {})}
        result = {}
        for name, points in data.items():
            result[name] = sorted(points.items())
        return result


class Parser:
    def decode(self, text):
        commands = []
        for line in text.split("\n"):
            if not line:
                continue
            try:
                method, params = line.strip().split(" ", 1)
                if method == "put":
                    key, value, timestamp = params.split()
                    commands.append((method, key, float(value), int(timestamp)))
                elif method == "get":
                    (key,) = params.split()
                    commands.append((method, key))
                else:
                    raise ValueError(method)
            except ValueError:
                raise ParseError("wrong command") from None
        return commands

    def encode(self, responses):
        rows = []
        for response in responses:
            if not response:
                rows.append("ok\n\n")
                continue
            lines = ["ok"]
            for key, points in response.items():
                for timestamp, value in points:
                    lines.append(f"{key} {value} {timestamp}")
            rows.append("\n".join(lines) + "\n\n")
        return "".join(rows)


class Executor:
    def __init__(self, storage):
        self.storage = storage

    def run(self, method, *params):
        if method == "put":
            return self.storage.put(*params)
        if method == "get":
            return self.storage.get(*params)
        raise ExecutorError("wrong command")


class ClientServerProtocol(asyncio.Protocol):
    storage = Storage()

    def __init__(self):
        super().__init__()
        self.parser = Parser()
        self.executor = Executor(self.storage)
        self._buffer = b""

    def connection_made(self, transport):
        self.transport = transport

    def process_data(self, data):
        commands = self.parser.decode(data)
        responses = [self.executor.run(*command) for command in commands]
        return self.parser.encode(responses)

    def data_received(self, data):
        self._buffer += data
        try:
            decoded = self._buffer.decode()
        except UnicodeDecodeError:
            return
        if not decoded.endswith("\n"):
            return
        self._buffer = b""
        try:
            response = self.process_data(decoded)
        except (ParseError, ExecutorError) as err:
            self.transport.write(f"error\n{err}\n\n".encode())
            return
        self.transport.write(response.encode())


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(ClientServerProtocol, "127.0.0.1", 0, backlog=512)
    host, port = server.sockets[0].getsockname()[:2]
    print(host, port, flush=True)
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    async with server:
        await stdin_closed


if __name__ == "__main__":
    asyncio.run(main())
