"""The Graphite HTTP API against graphite-web itself: the same plaintext
lines go to carbon-cache (whose whisper files graphite-web reads) and to
the embedded server, then the same queries go to both and the parsed JSON
(and the CSV text) must be equal. Skipped, saying why, without Debian's
graphite-web and graphite-carbon (a failure under CI=true, where .ci/run
installs them)."""
from __future__ import annotations

import json
import math
import socket
import time
import unittest
import urllib.parse
import urllib.request
from typing import Any, ClassVar, List, Tuple

from client import Server
from tests.support import BOUND, TestCase, wait_until
from tests.support.dependencies import requires
from tests.support.graphite import STEP, GraphiteWeb, graphite_web_missing, http_get

MISSING = graphite_web_missing()

#: Points per series: half an hour at 10 s.
POINTS = 180

TARGETS = [
    "web.host1.cpu",
    "web.*.cpu",
    "web.{host1,host2}.cpu",
    "web.host[12].cpu",
    "sumSeries(web.*.cpu)",
    "averageSeries(web.*.cpu)",
    "maxSeries(web.*.cpu)",
    "minSeries(web.host1.cpu,web.host2.cpu)",
    "sumSeries(web.host1.cpu)",
    "alias(web.host1.cpu,'first')",
    "aliasByNode(web.*.cpu,1)",
    "aliasByNode(web.*.cpu,1,-1)",
    "aliasByNode(sumSeries(web.*.cpu),0,2)",
    "scale(web.host1.cpu,2.5)",
    "scale(web.*.cpu,10)",
    "summarize(web.host1.requests,'1min')",
    "summarize(web.host1.cpu,'5min','avg')",
    "summarize(web.host2.cpu,'5min','max',true)",
    "derivative(web.host1.requests)",
    "perSecond(web.host1.requests)",
    "movingAverage(web.host1.cpu,5)",
    "movingAverage(web.host2.cpu,'1min')",
    "sumSeries(scale(web.*.cpu,2))",
    # NaN rows (inf - inf): Python's max/min keep a NaN that comes first.
    "maxSeries(derivative(scale(web.host1.cpu,1e999)),web.host2.cpu)",
    "minSeries(web.host2.cpu,derivative(scale(web.host1.cpu,1e999)))",
    "summarize(derivative(scale(web.host1.cpu,1e999)),'5min','max')",
    "no.such.metric",
]


@requires(MISSING)
class SameAnswersAsGraphiteWeb(TestCase):
    web: ClassVar[GraphiteWeb]
    server: ClassVar[Server]
    base: ClassVar[int]

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.web = GraphiteWeb()
        try:
            cls.server = Server(graphite_port=0, http_port=0)
        except BaseException:
            cls.web.close()
            raise
        now = int(time.time())
        # An hour ago, within whisper's day of retention and before now.
        cls.base = now - now % STEP - 3600
        lines = cls.lines(cls.base)
        cls.expected = lines.count(b"\n")
        cls.web.send(lines)
        with socket.create_connection(cls.server.graphite_address, timeout=BOUND) as sock:
            sock.sendall(lines)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.close()
        cls.web.close()
        super().tearDownClass()

    @staticmethod
    def lines(base: int) -> bytes:
        out: List[str] = []
        requests = 1000.0
        for i in range(POINTS):
            t = base + STEP * i
            out.append(f"web.host1.cpu {round(40 + 25 * math.sin(i / 9), 4)} {t}")
            if i % 17 != 5:  # gaps: slots with no value
                out.append(f"web.host2.cpu {round(10 + i % 7 * 1.25, 4)} {t}")
            # A counter, reset once.
            requests = 3.0 if i == 100 else requests + 7 + i % 3
            out.append(f"web.host1.requests {requests} {t}")
        return ("\n".join(out) + "\n").encode()

    def window(self) -> str:
        # Unaligned on purpose: whisper's slot rules decide the edges.
        return f"from={self.base + 5}&until={self.base + STEP * POINTS - 15}"

    def both(self, path: str) -> Tuple[Any, Any]:
        return self.web.get_json(path), self.ours_json(path)

    def ours_json(self, path: str) -> Any:
        status, kind, body = http_get(self.server.dashboard_url.rstrip("/") + path)
        self.assertEqual(status, 200, body[-500:])
        self.assertEqual(kind, "application/json")
        return json.loads(body)

    def setUp(self) -> None:
        super().setUp()
        # Carbon writes its whisper files in the background: wait until
        # graphite-web sees every point sent (and the server too).
        everything = "/render?" + urllib.parse.urlencode(
            {"target": "web.*.*", "format": "json", "from": self.base - 1, "until": self.base + STEP * POINTS})

        def count(data: Any) -> int:
            return sum(1 for s in data for v, _ in s["datapoints"] if v is not None)

        wait_until(lambda: count(self.web.get_json(everything)) == self.expected, timeout=60,
                   interval=0.2, message="carbon to write every point")
        wait_until(lambda: count(self.ours_json(everything)) == self.expected, timeout=BOUND,
                   interval=0.05, message="the server to store every point")

    def test_render_json_matches(self) -> None:
        for target in TARGETS:
            for extra in ("", "&maxDataPoints=20", "&noNullPoints=1", "&maxDataPoints=1"):
                with self.subTest(target=target, extra=extra):
                    path = "/render?" + urllib.parse.urlencode({"target": target, "format": "json"})
                    path += "&" + self.window() + extra
                    theirs, ours = self.both(path)
                    self.assertEqual(ours, theirs)

    def test_several_targets_and_post(self) -> None:
        form = [("target", "web.host1.cpu"), ("target", "sumSeries(web.*.cpu)"), ("format", "json"),
                ("from", str(self.base + 5)), ("until", str(self.base + 600))]
        theirs = self.web.get_json("/render?" + urllib.parse.urlencode(form))
        request = urllib.request.Request(self.server.dashboard_url + "render",
                                         data=urllib.parse.urlencode(form).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=BOUND) as response:
            ours = json.loads(response.read())
        self.assertEqual(ours, theirs)
        self.assertEqual(len(ours), 2)

    def test_csv_matches(self) -> None:
        for target in ("web.*.cpu", "summarize(web.host1.requests,'1min')"):
            with self.subTest(target=target):
                path = "/render?" + urllib.parse.urlencode({"target": target, "format": "csv"}) + "&" + self.window()
                status, _, theirs = http_get(self.web.url + path)
                self.assertEqual(status, 200)
                status, kind, ours = http_get(self.server.dashboard_url.rstrip("/") + path)
                self.assertEqual((status, kind), (200, "text/csv"))
                self.assertEqual(ours.decode(), theirs.decode())

    def test_find_expand_and_index_match(self) -> None:
        for query in ("*", "web.*", "web.host1.*", "web.*.cpu", "web.host[12]", "nothing.*"):
            for extra in ("", "&format=completer"):
                with self.subTest(query=query, extra=extra):
                    theirs, ours = self.both("/metrics/find?query=" + urllib.parse.quote(query) + extra)
                    if extra:
                        # graphite-web leaves nodes of the same name in the
                        # file system's order; the server orders them by path.
                        theirs["metrics"].sort(key=lambda m: (m["name"], m["path"]))
                    self.assertEqual(ours, theirs)
        for queries in (["web.*"], ["web.*.*"], ["web.*.cpu", "web.host1.*"]):
            for extra in ("", "&leavesOnly=1", "&groupByExpr=1"):
                with self.subTest(queries=queries, extra=extra):
                    path = "/metrics/expand?" + urllib.parse.urlencode([("query", q) for q in queries]) + extra
                    theirs, ours = self.both(path)
                    self.assertEqual(ours, theirs)
        theirs, ours = self.both("/metrics/index.json")
        self.assertEqual(ours, theirs)
        self.assertEqual(ours, ["web.host1.cpu", "web.host1.requests", "web.host2.cpu"])


if __name__ == "__main__":
    unittest.main()
