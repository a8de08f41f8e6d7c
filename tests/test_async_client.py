"""AsyncClient: pipelining from many tasks, its errors, cancellation, close.

The cancellation tests are the CVE-2023-28858/28859 scenario for asyncio
(redis-py's bug was exactly a cancelled call whose late reply answered the
next one): the delaying proxy of tests/support/proxy.py holds a real
server's reply while a call is cancelled at every byte of its reply and at
every step of the event loop; the next call must get its own answer.
Blocking waits on the proxy run in a thread (``asyncio.to_thread``) so the
loop keeps reading meanwhile.
"""

from __future__ import annotations

import asyncio
import unittest

import client
from client import AsyncClient, ClientProtocolError, ClientReplyError, ClientSocketError
from tests.support import BOUND, TestCase, refused_address, respond
from tests.support.proxy import ProxyTestCase
from tests.support.transports import OverTls


def reply_bytes(points):
    lines = [f"{k} {float(v)!r} {t}\n" for k, pts in points.items() for t, v in pts]
    return ("ok\n" + "".join(lines) + "\n").encode()


class AsyncTestCase(TestCase):
    def run_async(self, coroutine_function, *args):
        async def bounded():
            return await asyncio.wait_for(coroutine_function(*args), 4 * BOUND)
        return asyncio.run(bounded())

    def embedded(self):
        return self.embedded_server()


class AsyncClientApiTest(AsyncTestCase):
    def test_put_get_put_many_like_client(self):
        srv = self.embedded()

        async def session():
            async with self.async_client(*srv.address, timeout=BOUND) as c:
                await c.put("a", 1.5, 10)
                await c.put("a", 2, 11)
                await c.put_many([("b", 1, 1), ("b", 2.5, 2, ), ("c", 3, 3)])
                await c.put_many([("d", i, i) for i in range(50)], window=3)
                await c.put_many([])
                return await c.get("*"), await c.get("a"), await c.get("missing")

        everything, a, missing = self.run_async(session)
        self.assertEqual(everything, self.direct_get(srv))
        self.assertEqual(a, {"a": [(10, 1.5), (11, 2.0)]})
        self.assertEqual(missing, {})
        self.assertEqual(len(everything["d"]), 50)

    def direct_get(self, srv):
        return self.client(srv.address).get("*")

    def test_refused_points_are_reported_as_client_does(self):
        answer = respond(lambda line: b"error\nno\n\n" if b"bad" in line else b"ok\n\n")
        srv = self.server(answer)
        points = [("good", 1, 1), ("bad", 2, 2), ("good", 3, 3), ("bad", 4, 4)] * 3000

        async def session():
            async with self.async_client(*srv.address, timeout=BOUND) as c:
                for window in (None, 7):
                    with self.assertRaises(client.ClientRejectedError) as caught:
                        await c.put_many(points, window=window)
                    error = caught.exception
                    self.assertEqual(error.total, len(points))
                    self.assertEqual(error.rejected,
                                     [(i, "no") for i in range(1, len(points), 2)])
                    await c.put("good", 5, 5)
                return str(error)

        message = self.run_async(session)
        with self.assertRaises(client.ClientRejectedError) as caught:
            self.client(srv.address).put_many(points)
        self.assertEqual(message, str(caught.exception))
        self.assertEqual(srv.connection_count, 2)

    def test_validation_errors_are_the_clients(self):
        srv = self.embedded()
        blocking = self.client(srv.address)
        bad_calls = [
            ("put", ("bad key", 1)), ("put", ("k", "1")), ("put", ("k", float("nan"))),
            ("put", ("k", 1, 1.5)), ("get", (3,)), ("put_many", ([("k",)],)),
            ("put_many", (5,)),
        ]

        async def session():
            got = []
            async with self.async_client(*srv.address, timeout=BOUND) as c:
                for name, args in bad_calls:
                    try:
                        await getattr(c, name)(*args)
                    except client.ClientError as error:
                        got.append((type(error), str(error)))
            return got

        expected = []
        for name, args in bad_calls:
            with self.assertRaises(client.ClientError) as caught:
                getattr(blocking, name)(*args)
            expected.append((type(caught.exception), str(caught.exception)))
        self.assertEqual(self.run_async(session), expected)
        for args, kwargs in [(("h",), {}), ((5, 1), {}), (("h", 0), {}), (("h", 1), {"timeout": -1}),
                             (("h", 1), {"retry": 3}), (([],), {})]:
            with self.assertRaises(client.ClientError, msg=(args, kwargs)) as caught:
                self.async_client(*args, **kwargs)
            with self.assertRaises(type(caught.exception)) as blocking_caught:
                client.Client(*args, **kwargs)
            self.assertEqual(str(caught.exception), str(blocking_caught.exception))

    def test_many_tasks_pipeline_on_one_connection_each_getting_its_own_reply(self):
        srv = self.metrics_server()

        async def session():
            async with self.async_client(*srv.address, timeout=BOUND) as c:
                await asyncio.gather(*(c.put(f"k{i}", i + 0.5, i) for i in range(200)))
                return await asyncio.gather(*(c.get(f"k{i}") for i in range(200)))

        got = self.run_async(session)
        self.assertEqual(got, [{f"k{i}": [(i, i + 0.5)]} for i in range(200)])
        self.assertEqual(srv.connection_count, 1)
        self.assertGreater(srv.peer(0).max_batch, 1, "requests were not pipelined")

    def test_an_error_reply_keeps_the_connection_a_bad_reply_drops_it(self):
        answers = iter([b"error\nwrong command\n\n", b"ok\n\n", b"what?\n\n"])
        srv = self.server(respond(lambda line: next(answers)))

        async def session():
            c = self.async_client(*srv.address, timeout=BOUND)
            with self.assertRaises(ClientProtocolError) as caught:
                await c.put("k", 1, 1)
            self.assertEqual(caught.exception.message, "wrong command")
            await c.put("k", 2, 2)
            with self.assertRaises(ClientReplyError):
                await c.put("k", 3, 3)
            self.assertIn("disconnected", repr(c))
            c.close()

        self.run_async(session)
        self.assertEqual(srv.connection_count, 1)
        srv.peer(0).wait_client_closed()

    def test_connection_errors_are_the_clients_and_the_next_address_is_tried(self):
        srv = self.embedded()
        refused = self.enterContext(refused_address())

        async def session():
            with self.assertRaises(ClientSocketError) as caught:
                await self.async_client(*refused, timeout=BOUND).get("k")
            self.assertEqual(caught.exception.address, f"{refused[0]}:{refused[1]}")
            self.assertIsNotNone(caught.exception.errno)
            self.assertIsInstance(caught.exception.__cause__, ConnectionRefusedError)
            async with self.async_client([refused, srv.address], timeout=BOUND) as c:
                await c.put("k", 1, 1)
                return await c.get("k")

        self.assertEqual(self.run_async(session), {"k": [(1, 1.0)]})

    def test_close_aborts_calls_under_way(self):
        srv = self.server(respond(lambda line: None))  # never answers

        async def session():
            c = self.async_client(*srv.address)
            await c.connect()
            calls = [asyncio.ensure_future(c.get(f"k{i}")) for i in range(5)]
            await asyncio.to_thread(srv.peer(0).wait_data, lambda d: d.count(b"\n") == 5)
            c.close()
            results = await asyncio.gather(*calls, return_exceptions=True)
            for result in results:
                self.assertIsInstance(result, ClientSocketError)
                self.assertIn("closed during the call", str(result))
            with self.assertRaises(ClientSocketError) as caught:
                await c.put("k", 1, 1)
            self.assertIn("the client is closed", str(caught.exception))

        self.run_async(session)
        srv.peer(0).wait_client_closed()

    def test_a_timeout_drops_the_connection_and_the_calls_behind_it(self):
        srv = self.server(respond(lambda line: None))

        async def session():
            c = self.async_client(*srv.address, timeout=0.2)
            first = asyncio.ensure_future(c.get("a"))
            await asyncio.sleep(0)
            second = asyncio.ensure_future(c.get("b"))
            results = await asyncio.gather(first, second, return_exceptions=True)
            self.assertIsInstance(results[0], client.ClientTimeoutError)
            self.assertIsInstance(results[1], ClientSocketError)
            c.close()

        self.run_async(session)
        srv.peer(0).wait_client_closed()


class AsyncCancellationTest(AsyncTestCase, ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.direct().put_many([("a", 1, 1), ("b", 2, 2)])

    def test_a_call_cancelled_at_every_byte_of_its_reply(self):
        late = reply_bytes({"a": [(1, 1)]})

        async def session(timeout):
            async with AsyncClient(*self.proxy.address, timeout=timeout) as c:
                for after in range(len(late)):
                    self.proxy.hold(after=after)
                    call = asyncio.ensure_future(c.get("a"))
                    await asyncio.to_thread(self.proxy.wait_held, len(late) - after, exact=True)
                    call.cancel()
                    with self.assertRaises(asyncio.CancelledError):
                        await call
                    self.proxy.release()
                    # The late reply is read and thrown away: the next call
                    # gets its own answer, on the same connection.
                    self.assertEqual(await c.get("b"), {"b": [(2, 2.0)]}, f"after {after}")
                    self.assertEqual(await c.get("a"), {"a": [(1, 1.0)]}, f"after {after}")

        # Without a timeout calls take a shorter path: both are covered.
        for count, timeout in enumerate([BOUND, None], start=1):
            with self.subTest(timeout=timeout):
                self.run_async(session, timeout)
                self.assertEqual(self.proxy.connection_count, count)

    def test_a_call_cancelled_at_every_step_of_the_event_loop(self):
        # Every step from 0 to 59, then ever longer waits until a round sees
        # the call finish before the cancel (on a busy machine the reply can
        # take more than 60 loop steps), at most 20,000 steps.
        def schedule():
            yield from range(60)
            steps = 60
            while steps <= 20_000:
                yield steps
                steps = steps * 3 // 2

        async def session():
            steps_seen = 0
            for steps in schedule():
                if steps >= 60 and steps_seen:
                    break
                # A new client each round: the early steps cancel the
                # connection attempt itself.
                c = AsyncClient(*self.proxy.address, timeout=BOUND)
                try:
                    kind = steps % 3
                    if kind == 0:
                        call = asyncio.ensure_future(c.get("a"))
                    elif kind == 1:
                        call = asyncio.ensure_future(c.put("c", steps, steps))
                    else:
                        call = asyncio.ensure_future(
                            c.put_many([("d", steps, steps), ("d", steps + 1, steps + 1)]))
                    for _ in range(steps):
                        await asyncio.sleep(0)
                    if call.done():
                        steps_seen += 1
                    call.cancel()
                    try:
                        await call
                    except asyncio.CancelledError:
                        pass
                    for _ in range(3):
                        self.assertEqual(await c.get("b"), {"b": [(2, 2.0)]}, f"steps {steps}")
                finally:
                    c.close()
            return steps_seen

        # Some rounds let the call finish before the cancel: every point of
        # the call, the end included, was reached.
        self.assertGreater(self.run_async(session), 0)

    def test_a_cancelled_call_in_the_middle_of_a_pipeline(self):
        async def session():
            async with AsyncClient(*self.proxy.address, timeout=BOUND) as c:
                self.proxy.hold()
                calls = [asyncio.ensure_future(c.get(key)) for key in ("a", "b", "a", "b")]
                held = len(reply_bytes({"a": [(1, 1)]})) * 2 + len(reply_bytes({"b": [(2, 2)]})) * 2
                await asyncio.to_thread(self.proxy.wait_held, held, exact=True)
                calls[1].cancel()
                self.proxy.release()
                results = await asyncio.gather(*calls, return_exceptions=True)
                self.assertIsInstance(results[1], asyncio.CancelledError)
                self.assertEqual([results[0], results[2], results[3]],
                                 [{"a": [(1, 1.0)]}, {"a": [(1, 1.0)]}, {"b": [(2, 2.0)]}])

        self.run_async(session)


class UvloopTest(AsyncTestCase):
    def test_on_uvloop(self):
        try:
            import uvloop
        except ImportError:
            self.skipTest("uvloop is not installed (pip install uvloop to run this test)")
        srv = self.embedded()

        async def session():
            async with AsyncClient(*srv.address, timeout=BOUND) as c:
                await asyncio.gather(*(c.put("k", i, i) for i in range(100)))
                await c.put_many([("m", i, i) for i in range(1000)], window=10)
                return await c.get("k"), len((await c.get("m"))["m"])

        loop = uvloop.new_event_loop()
        try:
            self.assertIsInstance(loop, uvloop.Loop)
            points, count = loop.run_until_complete(asyncio.wait_for(session(), 4 * BOUND))
        finally:
            loop.close()
        self.assertEqual(points, {"k": [(i, float(i)) for i in range(100)]})
        self.assertEqual(count, 1000)


class RetryTest(AsyncTestCase):
    def test_retries_after_a_lost_connection_only(self):
        # The first connection closes without replying; the second answers.
        def first(peer):
            peer.read_line()
            peer.close()

        for retry, outcome in [(None, ClientSocketError), (client.Retry(2, 0, 0), None)]:
            with self.subTest(retry=retry):
                srv = self.server([first, respond(b"ok\n\n")])
                c = self.client(srv.address, retry=retry, max_connections=1)
                if outcome is None:
                    c.put("k", 1)
                    received = srv.received()
                    self.assertEqual(len(received), 2)
                    # Both attempts sent the same point, timestamp included.
                    self.assertEqual(received[0], received[1])
                else:
                    with self.assertRaises(outcome):
                        c.put("k", 1)

    def test_an_error_reply_is_never_retried(self):
        srv = self.server(respond(b"error\nwrong command\n\n"))
        c = self.client(srv.address, retry=client.Retry(5, 0, 0))
        with self.assertRaises(ClientProtocolError):
            c.put("k", 1, 1)
        self.assertEqual(srv.peer(0).received(), b"put k 1 1\n")

    def test_async_retries(self):
        def first(peer):
            peer.read_line()
            peer.close()

        srv = self.server([first, respond(b"ok\n\n")])

        async def session():
            c = self.async_client(*srv.address, timeout=BOUND, retry=client.Retry(attempts=2, backoff=0))
            await c.put("k", 1)
            c.close()

        self.run_async(session)
        received = srv.received()
        self.assertEqual(len(received), 2)
        self.assertEqual(received[0], received[1])

    def test_a_stalled_batch_is_not_retried(self):
        def first_line_only(peer):
            peer.read_line()
            peer.send(b"ok\n\n")

        points = [("k", 1, 1), ("k", 2, 2), ("k", 3, 3)]
        retry = client.Retry(attempts=3, backoff=0)
        blocking_server = self.server(first_line_only)
        c = self.client(blocking_server.address, timeout=0.3, retry=retry)
        with self.assertRaises(client.ClientTimeoutError):
            c.put_many(points)
        self.assertEqual(blocking_server.connection_count, 1)

        async_server = self.server(first_line_only)

        async def session():
            ac = self.async_client(*async_server.address, timeout=0.3, retry=retry)
            with self.assertRaises(client.ClientTimeoutError) as caught:
                await ac.put_many(points)
            self.assertIn("answered 1 of the 3", str(caught.exception))
            ac.close()

        self.run_async(session)
        self.assertEqual(async_server.connection_count, 1)

    def test_several_addresses_move_to_the_next_when_one_is_down(self):
        srv = self.embedded()
        refused = self.enterContext(refused_address())
        c = client.Client([refused, srv.address], timeout=BOUND, **self.tls_options())
        self.addCleanup(c.close)
        c.put("k", 1, 1)
        self.assertEqual(c.get("k"), {"k": [(1, 1.0)]})
        self.assertEqual(c.addresses, [refused, srv.address])
        with self.assertRaises(client.ClientTypeError):
            client.Client([refused, srv.address], 8888)


# The same on TLS: the Rust core's (asyncio moving the bytes, rustls in
# client._async_tls), and Python's ssl (an ssl.SSLContext).


class AsyncClientApiOverTlsTest(OverTls, AsyncClientApiTest):
    pass


class RetryOverTlsTest(OverTls, RetryTest):
    pass


class AsyncClientApiOverPythonSslTest(OverTls, AsyncClientApiTest):
    client_path = "python"


if __name__ == "__main__":
    unittest.main()
