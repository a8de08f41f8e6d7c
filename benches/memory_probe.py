"""Peak memory of one ``get("*")``, measured in a fresh process.

``python benches/memory_probe.py CONTENDER HOST PORT SHAPE_JSON`` with
CONTENDER one of ``client``, ``careful``, ``canonical``, ``floor``; prints
one JSON object.

tracemalloc only sees allocations made through Python's allocator, not the
Rust client's, so this measures the resident set size (RSS) of the process,
which counts every allocator alike:

- baseline: VmRSS after imports, connecting and a small warm-up request,
  with the cycle collector run;
- peak: VmHWM (the kernel's high-water mark of RSS) after the get, having
  reset the mark to the current RSS just before it (``/proc/self/clear_refs``
  with ``5``; where that is refused the process's earlier peak, far below
  the get's, stands in);
- result size: what the returned objects themselves occupy, summed with
  ``sys.getsizeof`` over the dict, keys, lists, tuples, ints and floats, each
  rounded up to pymalloc's 16-byte granularity;
- overhead = peak - baseline - result size: memory the get needed beyond
  its result (buffers, intermediate lists, strings, Rust vectors), compared
  with the reply's size in bytes.
"""

import gc
import json
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def result_size(result):
    def rounded(obj):
        return (sys.getsizeof(obj) + 15) & ~15

    total = rounded(result)
    for key, points in result.items():
        total += rounded(key) + rounded(points)
        for point in points:
            total += rounded(point) + rounded(point[0]) + rounded(point[1])
    return total


class Floor:
    """Receives the reply into one buffer with ``recv_into`` (no copies),
    then builds objects of the same shape at C speed: the benchmark's floor.
    The timed runs preallocate the buffer; the memory probe counts it. With
    ``collector=False`` the cycle collector is off while the objects are
    built (client.Client untracks its tuples, which saves the same work)."""

    def __init__(self, host, port, shape, preallocate=True, collector=True):
        self.sock = socket.create_connection((host, port))
        self.shape = shape
        self.collector = collector
        self.size = shape["reply_bytes"] + (1 << 20)
        self.buffer = bytearray(self.size) if preallocate else None

    def get(self, key):
        if self.buffer is None:  # the memory probe counts the buffer
            self.buffer = bytearray(self.size)
        view = memoryview(self.buffer)
        self.sock.sendall(f"get {key}\n".encode())
        received = 0
        while received < 2 or self.buffer[received - 2 : received] != b"\n\n":
            n = self.sock.recv_into(view[received:])
            if not n:
                raise ConnectionError("server closed the connection")
            received += n
        if self.collector:
            return build_like(self.shape)
        gc.disable()  # a variant of the floor without the cycle collector's passes
        try:
            return build_like(self.shape)
        finally:
            gc.enable()

    def close(self):
        self.sock.close()


def build_like(shape):
    return {
        key: list(zip(range(first, first + count), map(float, range(count))))
        for key, first, count in shape["keys"]
    }


def make_contender(name, host, port, shape):
    if name == "client":
        from client import Client

        return Client(host, port, timeout=600)
    if name == "floor":
        return Floor(host, port, shape, preallocate=False)
    from pyclients import CanonicalClient, CarefulClient

    return {"careful": CarefulClient, "canonical": CanonicalClient}[name](host, port, 600)


def main():
    name, host, port, shape_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    with open(shape_path) as f:
        shape = json.load(f)
    contender = make_contender(name, host, port, shape)
    if name != "floor":
        contender.get("bench.missing")  # warm-up: an empty reply
    gc.collect()
    baseline = status_kib("VmRSS")
    exact = reset_peak()
    started = time.perf_counter()
    result = contender.get("*")
    elapsed = time.perf_counter() - started
    peak = status_kib("VmHWM")
    size = result_size(result)
    points = sum(map(len, result.values()))
    print(
        json.dumps(
            {
                "contender": name,
                "seconds": elapsed,
                "points": points,
                "baseline_bytes": baseline * 1024,
                "peak_bytes": peak * 1024,
                "result_bytes": size,
                "overhead_bytes": peak * 1024 - baseline * 1024 - size,
                "peak_reset": exact,
            }
        )
    )


if __name__ == "__main__":
    main()
