"""Graphite side by side, in one run on the same machine and data:

1. Plaintext ingest: the embedded server's ``--graphite-port`` (journal on,
   ``fsync everysec``) against VictoriaMetrics' Graphite listener (Debian's
   ``victoria-metrics``, temporary data directory), each a child process on
   loopback. The same lines go through the same number of connections; the
   time runs from the first byte sent until the server holds every point
   (the embedded server: a marker point sent last on each connection is
   visible; VictoriaMetrics: ``vm_rows_added_to_storage_total``).
2. ``/render?format=json`` of one series over one day (8,640 points at
   10 s) against graphite-web 1.1.8 (Debian's ``graphite-web`` reading
   ``graphite-carbon``'s whisper files, under wsgiref's threading server):
   requests per second from the same closed-loop client threads (keep-alive
   connections), after checking both answer the same JSON.

``python benches/graphite.py [--points N] [--connections N] [--seconds S]``
prints the figures and the ratios; a side whose package is missing is
skipped, saying so.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import threading
import time
import urllib.request
from typing import List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from children import VICTORIA, Serve, Victoria, send_all, wait  # noqa: E402

from tests.support.graphite import GraphiteWeb, graphite_web_missing  # noqa: E402


def payloads(points: int, connections: int, now: int) -> List[bytes]:
    """The lines of each connection: 1,000 keys, recent timestamps."""
    per = points // connections
    out = []
    for c in range(connections):
        lines = [b"bench.host%d.metric%d %d.5 %d\n" % (c, i % 1000, i % 977, now - 3600 + i // 1000)
                 for i in range(per)]
        out.append(b"".join(lines))
    return out


def ingest(points: int, connections: int) -> Tuple[float, Optional[float]]:
    now = int(time.time())
    chunks = payloads(points, connections, now)
    total = sum(c.count(b"\n") for c in chunks)
    ours = Serve(graphite=True)  # with the Graphite ports
    try:
        marked = [c + b"bench.end%d 1 %d\n" % (i, now) for i, c in enumerate(chunks)]
        start = time.perf_counter()
        send_all(ours.graphite_port, marked)
        wait(lambda: all(ours.has(f"bench.end{i}") for i in range(connections)), 300, "the server's points")
        our_rate = total / (time.perf_counter() - start)
    finally:
        ours.close()
    if VICTORIA is None:
        print("VictoriaMetrics: skipped (Debian package victoria-metrics is not installed)")
        return our_rate, None
    vm = Victoria()
    try:
        start = time.perf_counter()
        send_all(vm.graphite_port, chunks)
        wait(lambda: vm.rows() >= total, 300, "VictoriaMetrics' rows")
        vm_rate = total / (time.perf_counter() - start)
    finally:
        vm.close()
    return our_rate, vm_rate


def requests_per_second(host: str, port: int, path: str, seconds: float, threads: int) -> float:
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def loop(i: int) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=60)
        while time.monotonic() < stop:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"{host}:{port}{path} answered {response.status}")
            counts[i] += 1
        connection.close()
    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts) / (time.monotonic() - started)


def render(seconds: float, threads: int) -> Tuple[float, Optional[float]]:
    now = int(time.time())
    base = now - now % 10 - 86400 - 600
    lines = b"".join(b"bench.render %d.25 %d\n" % (i % 1000, base + 10 * i) for i in range(8640))
    path = f"/render?target=bench.render&from={base - 1}&until={base + 86400 - 10}&format=json"
    ours = Serve(graphite=True)  # with the Graphite ports
    try:
        send_all(ours.graphite_port, [lines + b"bench.rendered 1 %d\n" % now])
        wait(lambda: ours.has("bench.rendered"), 60, "the server's points")
        with urllib.request.urlopen(ours.url + path, timeout=60) as r:
            our_json = json.loads(r.read())
        points = len(our_json[0]["datapoints"])
        assert points == 8640, points
        our_rps = requests_per_second("127.0.0.1", int(ours.url.rsplit(":", 1)[1]), path, seconds, threads)
    finally:
        ours.close()
    missing = graphite_web_missing()
    if missing:
        print(f"graphite-web: skipped ({missing})")
        return our_rps, None
    web = GraphiteWeb(retention="10s:2d")
    try:
        web.send(lines)
        def carbon_ready() -> bool:
            data = web.get_json(path)
            return bool(data) and sum(v is not None for v, _ in data[0]["datapoints"]) == 8640
        wait(carbon_ready, 120, "carbon's points")
        if web.get_json(path) != our_json:
            raise SystemExit("graphite-web and the server answer differently: not comparable")
        web_rps = requests_per_second("127.0.0.1", web.web_port, path, seconds, threads)
    finally:
        web.close()
    return our_rps, web_rps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="plaintext points to ingest (default 1,000,000)")
    parser.add_argument("--connections", type=int, default=4, help="sender connections (default 4)")
    parser.add_argument("--seconds", type=float, default=10, help="render measurement per side (default 10 s)")
    parser.add_argument("--threads", type=int, default=4, help="render client threads (default 4)")
    args = parser.parse_args()
    print(f"# {os.cpu_count()} CPUs; {args.points:,} points over {args.connections} connections; "
          f"render: {args.threads} client threads for {args.seconds:g} s per side")
    ours, vm = ingest(args.points, args.connections)
    print(f"plaintext ingest, embedded server: {ours:,.0f} points/s")
    if vm is not None:
        print(f"plaintext ingest, VictoriaMetrics: {vm:,.0f} points/s")
        print(f"ratio (server / VictoriaMetrics): {ours / vm:.2f}")
    ours_rps, web_rps = render(args.seconds, args.threads)
    print(f"/render json, 8,640 points, embedded server: {ours_rps:,.0f} requests/s")
    if web_rps is not None:
        print(f"/render json, 8,640 points, graphite-web: {web_rps:,.1f} requests/s")
        print(f"ratio (server / graphite-web): {ours_rps / web_rps:.1f}")


if __name__ == "__main__":
    main()
