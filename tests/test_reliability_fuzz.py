"""Python-level fuzzing of the client against random server replies.

A seeded generator writes replies from the protocol's grammar (``ok`` with
data lines, ``error`` with message lines) out of hostile pieces: odd keys
(UTF-8, invalid UTF-8, control bytes), every spelling of a number Rust's and
Python's parsers disagree on, wrong separators; then mutates some (truncated
and closed, unsolicited bytes appended, a byte flipped, inserted or
deleted). A scripted server sends each reply, in one to four writes, to a
real client over loopback.

An independent reference decoder, written here from the protocol's rules,
says what each reply must give, and the client must agree exactly:

- a valid reply: the parsed result (keys in order of first appearance,
  points stably sorted by timestamp, int timestamps, float values bit for
  bit) or ``ClientProtocolError`` with the server's message;
- anything malformed or above ``max_reply_bytes``: ``ClientReplyError``;
- a reply cut short by the server closing: ``ClientSocketError``;
- unsolicited bytes after a reply: ``ClientReplyError`` (or, if they arrive
  in a later read, the reply and a fresh connection for the next call).

Nothing else may ever come out (no other exception, no hang: the client's
timeout would turn a hang into a failure), and the connection discipline is
checked case by case: the next call reuses the connection exactly when the
previous outcome keeps it (a result or ``ClientProtocolError``), and opens a
new one otherwise.

    CLIENT_TEST_FUZZ_CASES=20000    replies tried
    CLIENT_TEST_FUZZ_SEED=20230328 the generator's seed
"""

import faulthandler
import math
import os
import random
import re
import sys
import threading
import time
import unittest
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import client
from client import (
    ClientProtocolError,
    ClientReplyError,
    ClientSocketError,
    ClientTimeoutError,
)
from tests.support import WATCHDOG, TestCase

CASES = int(os.environ.get("CLIENT_TEST_FUZZ_CASES", "20000"))
SEED = int(os.environ.get("CLIENT_TEST_FUZZ_SEED", "20230328"))
#: The second client's reply limit, small enough that many replies exceed it.
SMALL_LIMIT = 96

# ---------------------------------------------------------------------------
# The reference decoder


FLOAT = re.compile(rb"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
                   rb"|(?i:inf|infinity|nan))")
INT = re.compile(rb"[+-]?[0-9]+")


def parse_data_line(line: bytes):
    """``(key, (timestamp, value))`` or None if the line is malformed."""
    fields = [f for f in line.split(b" ") if f]
    if len(fields) != 3:
        return None
    key, value, timestamp = fields
    try:
        key = key.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not FLOAT.fullmatch(value) or not INT.fullmatch(timestamp):
        return None
    ts = int(timestamp)
    if not -(1 << 63) <= ts < (1 << 63):
        return None
    return key, (ts, float(value))


@dataclass
class Expected:
    #: "result", "protocol", "reply" (ClientReplyError), "socket" (closed
    #: mid-reply) or "incomplete" (no reply and the connection left open).
    kind: str
    result: object = None          # dict items or None for put
    message: Optional[str] = None  # ClientProtocolError's message
    trailing: int = 0              # bytes after a complete reply


def reference(data: bytes, want_points: bool, limit: int, closed: bool) -> Expected:
    state = "status"
    received = 0
    pos = 0
    entries: List[Tuple[str, list]] = []
    index = {}
    message: List[str] = []
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            if received + len(data) - pos > limit:
                return Expected("reply")
            return Expected("socket" if closed else "incomplete")
        line = data[pos:end]
        pos = end + 1
        received += len(line) + 1
        if received > limit:
            return Expected("reply")
        done = None
        if state == "status":
            if line == b"ok":
                state = "ok"
            elif line == b"error":
                state = "error"
            else:
                return Expected("reply")
        elif state == "ok" and line == b"":
            if want_points:
                result = [(k, sorted(points, key=lambda p: p[0])) for k, points in entries]
            else:
                result = None
            done = Expected("result", result=result)
        elif state == "ok":
            if not want_points:
                return Expected("reply")
            parsed = parse_data_line(line)
            if parsed is None:
                return Expected("reply")
            key, point = parsed
            if key not in index:
                index[key] = len(entries)
                entries.append((key, []))
            entries[index[key]][1].append(point)
        elif line == b"":
            done = Expected("protocol", message="\n".join(message))
        else:
            message.append(line.decode("utf-8", "replace"))
        if done is not None:
            done.trailing = len(data) - pos
            return done


# ---------------------------------------------------------------------------
# The generator

KEYS = [b"k", b"cpu.load", b"huginn.cpu", "ключ".encode(), "é".encode(), b"*", b"a\tb",
        b"\x00", b"k\r", b"\xff\xfe", b"\xc3", "😀".encode(), b"\xed\xa0\x80", b"\xc0\xaf",
        b"x" * 300, b"-", b"1.5", b"ok", b"error"]
VALUES = [b"0.5", b"2.0", b"301", b"-0", b"-0.0", b"0", b"+1.5", b".5", b"5.", b"-.5", b"1e5",
          b"1E-5", b"1e+16", b"4.2e-05", b"1e308", b"1e309", b"-1e309", b"4.9e-324", b"1e-400",
          b"inf", b"-inf", b"+inf", b"Infinity", b"INF", b"nan", b"NaN", b"-nan", b"infinit",
          b"nan(1)", b"1_0", b"", b".", b"-", b"+", b"e5", b"1e", b"1e+", b"0x10", "١".encode(),
          b"1.5.2", b"--1", b"+-1", b"1,5", b"1\x00", b"123456789012345", b"1234567890123456",
          b"123456789012345.5", b"0.000000000000001", b"9007199254740993", b"0.30000000000000004",
          b"1" * 400, b"0." + b"0" * 350 + b"1", b"00000000000000000001.5", b"1.7976931348623157e308"]
TIMESTAMPS = [b"0", b"1", b"-1", b"-0", b"+5", b"007", b"1642667947", b"9223372036854775807",
              b"-9223372036854775808", b"9223372036854775808", b"-9223372036854775809",
              b"99999999999999999999", b"1.0", b"1e3", b"", b"0x1", "١٢".encode(), b"+", b"-",
              b"1 ", b"1\r", b"123456789012345678", b"1234567890123456789"]
SEPARATORS = [b" "] * 12 + [b"  ", b"\t", b"", b" \t"]


def random_bytes(rng: random.Random, alphabet: bytes, low: int, high: int) -> bytes:
    return bytes(rng.choice(alphabet) for _ in range(rng.randint(low, high)))


def gen_key(rng):
    if rng.random() < 0.6:
        return random_bytes(rng, b"abcxyz.0123_-", 1, 8)
    return rng.choice(KEYS)


def gen_value(rng):
    r = rng.random()
    if r < 0.3:
        return repr(rng.uniform(-1e6, 1e6)).encode()
    if r < 0.4:
        return repr(rng.random() * 10.0 ** rng.randint(-320, 308)).encode()
    if r < 0.5:
        return str(rng.randint(-10 ** 18, 10 ** 18)).encode()
    if r < 0.6:
        return random_bytes(rng, b"0123456789.-+eEinfa_ ", 0, 8)
    return rng.choice(VALUES)


def gen_timestamp(rng):
    r = rng.random()
    if r < 0.5:
        return str(rng.randint(-10 ** 12, 10 ** 12)).encode()
    if r < 0.6:
        return random_bytes(rng, b"0123456789-+ .e", 0, 6)
    return rng.choice(TIMESTAMPS)


def gen_data_line(rng):
    if rng.random() < 0.85:
        # Mostly points of a few keys, so grouping and sorting are exercised.
        key = rng.choice([b"a", b"b", b"c.d"]) if rng.random() < 0.5 else gen_key(rng)
        value = gen_value(rng) if rng.random() < 0.7 else repr(rng.uniform(-5, 5)).encode()
        ts = gen_timestamp(rng) if rng.random() < 0.6 else str(rng.randint(-3, 3)).encode()
        sep1, sep2 = rng.choice(SEPARATORS), rng.choice(SEPARATORS)
        lead = rng.choice([b""] * 10 + [b" ", b"  "])
        tail = rng.choice([b""] * 10 + [b" ", b"\r", b" x"])
        return lead + key + sep1 + value + sep2 + ts + tail
    return random_bytes(rng, b"ab 1.-\t\x00\xff", 0, 12)


def gen_clean_line(rng):
    """A well-formed line as a server would write it."""
    key = rng.choice([b"a", b"b", b"c.d", b"huginn.cpu", "ключ".encode()])
    value = rng.choice([repr(rng.uniform(-1e6, 1e6)), repr(float(rng.randint(-999, 999))),
                        repr(rng.random() * 10.0 ** rng.randint(-30, 30)),
                        str(rng.randint(-10 ** 15, 10 ** 15))]).encode()
    return key + b" " + value + b" " + str(rng.randint(-5, 5) * 10 ** rng.randint(0, 12)).encode()


def gen_reply(rng):
    r = rng.random()
    if r < 0.35:
        lines = [gen_clean_line(rng) for _ in range(rng.choice([0, 1, 2, 3, 5, 8, 20, 50]))]
        if lines and rng.random() < 0.5:
            lines[rng.randrange(len(lines))] = gen_data_line(rng)   # one odd line
        return b"ok\n" + b"".join(line + b"\n" for line in lines) + b"\n"
    if r < 0.7:
        lines = [gen_data_line(rng) for _ in range(rng.choice([0, 0, 1, 1, 2, 3, 5, 8, 20]))]
        lines = [line for line in lines if line]   # an empty line would end the reply
        return b"ok\n" + b"".join(line + b"\n" for line in lines) + b"\n"
    if r < 0.9:
        lines = [random_bytes(rng, b"wrong command \x00\xff\xc3\xa9\r", 1, 20)
                 for _ in range(rng.choice([0, 1, 1, 1, 2, 3]))]
        return b"error\n" + b"".join(line + b"\n" for line in lines) + b"\n"
    status = rng.choice([b"OK", b"ok ", b"ok\r", b"", b"error ", b"err", b"okay", b"\x00",
                         b"HTTP/1.1 200 OK\r", random_bytes(rng, b"oker\x00 ", 1, 6)])
    return status + b"\n" + rng.choice([b"\n", b"k 1 1\n\n", b"", b"ok\n\n"])


@dataclass
class Case:
    index: int
    want_points: bool
    small: bool               # sent to the client with max_reply_bytes=SMALL_LIMIT
    data: bytes
    chunks: List[bytes]
    close: bool
    expected: Expected
    mutation: str
    request: bytes = field(default=b"")


def gen_case(rng: random.Random, index: int) -> Case:
    want_points = rng.random() < 0.75
    small = rng.random() < 0.15
    data = gen_reply(rng)
    if not want_points and data.startswith(b"ok\n") and rng.random() < 0.6:
        data = b"ok\n\n"          # most puts get a plain ack
    mutation = rng.choice(["none"] * 16 + ["truncate"] * 3 + ["trailing"] * 2
                          + ["flip", "insert", "delete"])
    if mutation == "truncate":
        data = data[:rng.randrange(len(data))] if data else data
    elif mutation == "trailing":
        data += rng.choice([b"ok\n\n", b"x", b"\n", b"error\nlate\n\n",
                            random_bytes(rng, b"ok\n k1", 1, 10)])
    elif data and mutation == "flip":
        i = rng.randrange(len(data))
        data = data[:i] + bytes([rng.randrange(256)]) + data[i + 1:]
    elif data and mutation == "insert":
        i = rng.randrange(len(data) + 1)
        data = data[:i] + bytes([rng.choice(b"\n \x00ok1.e-")]) + data[i:]
    elif data and mutation == "delete":
        i = rng.randrange(len(data))
        data = data[:i] + data[i + 1:]
    limit = SMALL_LIMIT if small else client.DEFAULT_MAX_REPLY_BYTES
    expected = reference(data, want_points, limit, closed=True)
    # Close only when the reply is incomplete: closing after a complete reply
    # would race with the client's next request on that connection.
    close = expected.kind in ("socket",)
    if expected.kind in ("result", "protocol") and expected.trailing:
        chunks = [data]            # reply and unsolicited bytes in one write
    else:
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 3)))) \
            if len(data) > 1 else []
        chunks = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
    key = f"fuzz.{index}"
    request = (f"get {key}\n" if want_points else f"put {key} 1 1\n").encode()
    return Case(index, want_points, small, data, chunks, close, expected, mutation, request)


def normalise(result):
    """Items of a get result with values made comparable bit for bit (NaN
    equal to NaN, -0.0 different from 0.0) and types checked."""
    out = []
    for key, points in result:
        norm = []
        for ts, value in points:
            if type(ts) is not int or type(value) is not float:
                return ("bad types", key, ts, value)
            norm.append((ts, "nan" if math.isnan(value) else (value, math.copysign(1, value))))
        out.append((key, norm))
    return out


# ---------------------------------------------------------------------------


class ReplyFuzzTest(TestCase):
    def setUp(self):
        super().setUp()
        # About 0.5 ms a case here; a large CLIENT_TEST_FUZZ_CASES needs longer.
        faulthandler.dump_traceback_later(max(WATCHDOG, 60 + CASES * 0.005), exit=True)

    def test_random_replies_give_the_reference_outcome(self):
        rng = random.Random(SEED)
        cases = [gen_case(rng, i) for i in range(CASES)]
        served: List[Tuple[int, int]] = []        # (case, connection) in order
        script_errors: List[str] = []
        lock = threading.Lock()

        def script(peer):
            try:
                serve(peer)
            finally:
                # Close our end as soon as the client leaves: tens of
                # thousands of connections must not pile up as open files.
                peer.close()

        def serve(peer):
            while True:
                line = peer.read_line()
                try:
                    key = line.split(b" ")[1].strip()
                    case = cases[int(key.split(b".")[1])]
                except (IndexError, ValueError):
                    script_errors.append(f"unexpected request {line!r}")
                    return
                if line != case.request:
                    script_errors.append(f"case {case.index}: request {line!r}")
                with lock:
                    served.append((case.index, peer.index))
                for chunk in case.chunks:
                    if not peer.try_send(chunk):
                        return
                if case.close:
                    return          # closed (FIN) by script()

        srv = self.server(script)
        clients = [self.client(srv, timeout=5.0),
                   self.client(srv, timeout=5.0, max_reply_bytes=SMALL_LIMIT)]
        tally = {}
        mismatches = []
        keeps = [True, True]            # does the client's connection survive?
        last_peer = [None, None]
        started = time.monotonic()
        for case in cases:
            which = 1 if case.small else 0
            c = clients[which]
            exp = case.expected
            outcome = None
            try:
                if case.want_points:
                    got = c.get(f"fuzz.{case.index}")
                    outcome = ("result", normalise(list(got.items())))
                else:
                    got = c.put(f"fuzz.{case.index}", 1, 1)
                    outcome = ("result", got)
            except ClientProtocolError as error:
                outcome = ("protocol", error.message)
            except ClientReplyError:
                outcome = ("reply",)
            except ClientTimeoutError as error:
                outcome = ("timeout", str(error))
            except ClientSocketError:
                outcome = ("socket",)
            except BaseException as error:  # anything else is a failure
                outcome = ("unexpected", repr(error))

            if exp.kind == "result":
                want = ("result", normalise(exp.result) if case.want_points else None)
            elif exp.kind == "protocol":
                want = ("protocol", exp.message)
            else:
                want = (exp.kind,)
            allowed = [want]
            if exp.trailing:
                # The extra bytes are normally read with the reply (an
                # error); if they come in a later read, the reply is returned
                # and the connection is dropped before the next call.
                allowed = [("reply",), want]
            if outcome not in allowed:
                mismatches.append((case.index, case.mutation, case.data[:200], case.small,
                                   case.want_points, outcome, allowed))
                if len(mismatches) >= 20:
                    break
            tally[outcome[0]] = tally.get(outcome[0], 0) + 1

            # Connection discipline: which connection served this case?
            with lock:
                entry = served[-1] if served and served[-1][0] == case.index else None
            if entry is None:
                mismatches.append((case.index, "not served", outcome))
                break
            peer = entry[1]
            if last_peer[which] is not None:
                same = peer == last_peer[which]
                if same != keeps[which]:
                    mismatches.append((case.index, "connection reused" if same else
                                       "connection dropped without cause", outcome))
                    break
            last_peer[which] = peer
            keeps[which] = outcome[0] in ("result", "protocol") and not exp.trailing

        elapsed = time.monotonic() - started
        self.assertEqual(script_errors, [])
        srv.assert_no_script_errors()
        self.assertEqual(mismatches, [], "client disagrees with the reference decoder")
        # The generator must actually reach every outcome.
        for kind in ("result", "protocol", "reply", "socket"):
            self.assertGreater(tally.get(kind, 0), CASES // 100, (kind, tally))
        if os.environ.get("CLIENT_TEST_REPORT"):
            print(f"\nfuzz: {CASES} random replies (seed {SEED}) in {elapsed:.1f} s, "
                  f"{srv.connection_count} connections; outcomes {tally}", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
