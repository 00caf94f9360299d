"""Hostile seats (issue 16): messages that used to raise, parallel wrong passwords, and a
fuzz of the whole seat message path.

The first part is pure (schema + session core through the in-process loopback);
the rest runs real WebSockets over TLS on loopback against the real server,
with bare connections that never log in.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial import unittest

from callcenter.engine import Engine
from callcenter.seats import schema as s
from callcenter.seats.passwords import PasswordChecks
from callcenter.seats.session import SeatLimits, Send
from seat_agent.client import SeatSession
from seat_agent.testing import LoopbackSeat

from .support import PASSWORDS, SeatWorld, accounts, seat_config, until

BIG_ID = b'{"v": 1, "type": "heartbeat", "id": 1152921504606846976}'
DEEP_ARRAYS = b'{"v": 1, "type": "heartbeat", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
DEEP_OBJECTS = b'{"v": 1, "type": "heartbeat", "x": ' + b'{"a":' * 2500 + b"1" + b"}" * 2500 + b"}"

# (payload, the SchemaError it must be) -- each one raised something else before
HOSTILE = [
    (BIG_ID, s.BadField),
    (b'{"v": 1, "type": "login", "agent_id": "a1", "password": "x", "id": -1}', s.BadField),
    (b'{"v": 1, "type": "heartbeat", "id": 9007199254740992}', s.BadField),  # 2**53
    (b'{"v": 1, "type": "heartbeat", "id": 1.5}', s.BadField),
    (b'{"v": 1, "type": "kb_search", "query": "x", "limit": 18446744073709551616}', s.BadField),
    (b'{"v": 1, "type": "kb_search", "query": "x", "limit": NaN}', s.BadJson),
    (b'{"v": 1, "type": "kb_search", "query": "x", "limit": Infinity}', s.BadJson),
    (b'{"v": 1, "type": "kb_search", "query": "x", "limit": 1e400}', s.BadJson),
    (b'{"v": 1, "type": "heartbeat", "id": ' + b"9" * 5000 + b"}", s.BadJson),
    (DEEP_ARRAYS, s.BadJson),
    (DEEP_OBJECTS, s.BadJson),
    (b"[" * 16_000, s.BadJson),
]


@pytest.mark.parametrize("payload, error", HOSTILE, ids=lambda x: repr(x)[:40] if isinstance(x, bytes) else None)
def test_hostile_messages_get_a_schema_error_that_can_be_sent(payload, error):
    with pytest.raises(error) as info:
        s.decode_client(payload)
    reply = s.encode(s.error(info.value.code, info.value.message, info.value.ref))  # must not raise either
    assert s.decode_server(reply).code == info.value.code


def test_brackets_inside_strings_do_not_count_as_depth():
    deep_text = json.dumps({"v": 1, "type": "not_ready", "reason": "[{" * 90})
    assert s.decode_client(deep_text).reason == "[{" * 90
    assert s.json_depth(b'{"a": [[["\\"[[[["]]]}') == 4


# -- fuzz: any message a seat can send, through the session core ------------------------
_FIELDS = sorted({f for cls in s.CLIENT_MESSAGES.values() for f in cls.model_fields} | {"v", "type", "x"})
_NUMBERS = st.one_of(
    st.integers(), st.sampled_from([2**53 - 1, 2**53, 2**60, 2**63, 2**64, -(2**63), -1, 0]),
    st.floats(allow_nan=True, allow_infinity=True),
)
_SCALARS = st.one_of(st.none(), st.booleans(), _NUMBERS, st.text(max_size=80),
                     st.sampled_from(["a1", "a2", "c1", "x" * 300, "\x00", "hotline"]))
_VALUES = st.recursive(_SCALARS, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                         st.dictionaries(st.text(max_size=8), kids, max_size=4)),
                       max_leaves=20)


@st.composite
def _messages(draw):
    obj = draw(st.dictionaries(st.sampled_from(_FIELDS), _VALUES, max_size=6))
    if draw(st.booleans()):
        obj["v"] = 1
    if draw(st.booleans()):
        obj["type"] = draw(st.sampled_from(sorted(s.CLIENT_MESSAGES)))
    return json.dumps(obj, allow_nan=True).encode()


_PAYLOADS = st.one_of(_messages(), st.binary(max_size=200),
                      st.integers(1, 20_000).map(lambda n: b"[" * n + b"]" * n))


def _world():
    clock = Clock()
    clock.advance(1_800_000_000)
    engine = Engine(seat_config(), clock)
    loop = LoopbackSeat(engine, accounts(), clock=clock, limits=SeatLimits(messages_per_s=1e6, burst=10**6))
    seat = SeatSession("a1", PASSWORDS["a1"], clock=clock)
    loop.connect(seat)
    assert seat.logged_in
    stranger = loop.server.connection_opened(_Quiet())  # never logs in
    return clock, loop.server, seat, stranger


class _Quiet:
    """A connection that is open and discards what it is sent."""

    state = STATE_OPEN = 1

    class transport:  # noqa: N801 - what the server asks a protocol for
        @staticmethod
        def getPeer():
            return type("Peer", (), {"host": "192.0.2.9"})()

    def sendMessage(self, payload, isBinary=False):
        pass


CASES = {"tried": 0}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(payloads=st.lists(_PAYLOADS, min_size=1, max_size=5))
def test_fuzzed_messages_never_raise_and_every_reply_is_valid(payloads):
    clock, server, seat, stranger = _world()
    conns = [server.core.sessions["a1"].conn, stranger]
    for i, payload in enumerate(payloads):
        for conn in conns:
            CASES["tried"] += 1
            effects = server.core.received(conn, payload, clock.seconds() + i)  # must not raise
            for e in effects:
                if isinstance(e, Send):
                    s.decode_server(s.encode(e.msg))  # every reply fits the schema
                else:
                    server._carry_out(e)  # noqa: SLF001 - engine inputs and slow work, for real
    sess = server.core.sessions.get("a1")  # (a fuzzed logout may end it, nothing else)
    assert sess is None or sess.conn == conns[0]


# -- real WebSockets on loopback --------------------------------------------------------
class _WorldTest(unittest.TestCase):
    timeout = 60

    def setUp(self):
        tmp = Path(tempfile.mkdtemp(prefix="seats-hostile-"))
        self.addCleanup(shutil.rmtree, tmp, True)
        self.world = SeatWorld(tmp, **self.world_options())

    def world_options(self) -> dict:
        return {}

    def tearDown(self):
        return self.world.close()


class HostileBeforeLoginTests(_WorldTest):
    @defer.inlineCallbacks
    def test_raising_messages_before_login_get_errors_and_others_carry_on(self):
        a2 = self.world.client("a2")
        yield until(lambda: a2.logged_in, what="a2 logged in")
        bare = yield self.world.raw()
        for n, (payload, error) in enumerate(HOSTILE, start=1):
            bare.send_json(payload)
            yield until(lambda n=n: len(bare.of_type("error")) >= n or bare.closed, what=f"reply to case {n}")
            self.assertIsNone(bare.closed, f"connection closed by case {n}")
            self.assertEqual(bare.of_type("error")[-1]["code"], error.code, payload[:60])
        bare.send_json({"v": 1, "type": "heartbeat", "id": 5})
        yield until(lambda: bare.of_type("heartbeat_ack"), what="the bare connection still answered")
        ack = yield a2.heartbeat()
        self.assertEqual(ack.TYPE, "heartbeat_ack")


class _GatedAccounts:
    """The real accounts behind a gate: every check blocks until the test opens it."""

    def __init__(self, inner):
        self.inner, self.gate = inner, threading.Event()
        self.started = 0
        self._lock = threading.Lock()

    def verify(self, agent_id, password):
        with self._lock:
            self.started += 1
        self.gate.wait(30)
        return self.inner.verify(agent_id, password)


class LoginThrottleConcurrencyTests(_WorldTest):
    def world_options(self):
        return {"kb": True, "limits": SeatLimits(login_failures_per_agent=5, login_failures_per_address=20,
                                                 messages_per_s=1000, burst=1000)}

    @defer.inlineCallbacks
    def test_parallel_wrong_passwords_are_counted_while_in_flight(self):
        """60 connections send a wrong password for one agent at once: 5 (the per-agent limit) are
        checked, the rest are throttled at once; another agent's kb_search is not held up by them."""
        w = self.world
        a2 = w.client("a2")
        yield until(lambda: a2.logged_in, what="a2 logged in")
        gated = w.server.accounts = _GatedAccounts(w.server.accounts)
        self.addCleanup(gated.gate.set)
        bares = []
        for _ in range(60):
            bares.append((yield w.raw()))
        for b in bares:
            b.send_json({"v": 1, "type": "login", "agent_id": "a1", "password": "wrong-password"})
        answered = lambda: sum(1 for b in bares if b.of_type("error"))  # noqa: E731
        yield until(lambda: answered() == 55, what=lambda: f"55 throttled replies, got {answered()}")
        self.assertEqual({b.of_type("error")[0]["code"] for b in bares if b.of_type("error")}, {s.LOGIN_THROTTLED})
        # the 5 checks are stuck in the password pool; the knowledge base still answers
        found = yield a2.kb_search("fever")
        self.assertEqual(found.TYPE, "kb_results")
        yield until(lambda: gated.started == min(5, w.server.password_checks.threads), what="checks running")
        self.assertEqual(w.server.password_checks.pending, 5)
        gated.gate.set()
        yield until(lambda: answered() == 60, what="the 5 checked logins answered")
        codes = sorted(b.of_type("error")[0]["code"] for b in bares)
        self.assertEqual(codes.count(s.BAD_CREDENTIALS), 5)
        self.assertEqual(codes.count(s.LOGIN_THROTTLED), 55)
        self.assertEqual(gated.started, 5)

    @defer.inlineCallbacks
    def test_a_full_password_queue_answers_busy_and_the_reservation_is_returned(self):
        w = self.world
        w.server.password_checks = PasswordChecks(reactor, workers=1, max_queued=2)
        gated = w.server.accounts = _GatedAccounts(w.server.accounts)
        self.addCleanup(gated.gate.set)
        bares = []
        for _ in range(4):
            bares.append((yield w.raw()))
        checks = w.server.password_checks
        for n, (b, agent) in enumerate(zip(bares[:3], ["a1", "a2", "r1"], strict=True), start=1):
            b.send_json({"v": 1, "type": "login", "agent_id": agent, "password": PASSWORDS[agent]})
            yield until(lambda n=n: checks.pending == n, what=f"check {n} queued")
        bares[3].send_json({"v": 1, "type": "login", "agent_id": "a1", "password": PASSWORDS["a1"]})
        yield until(lambda: bares[3].of_type("error"), what="the fourth login refused")
        err = bares[3].of_type("error")[0]
        self.assertEqual(err["code"], s.BUSY)
        self.assertGreaterEqual(err["retry_after_s"], 1.0)
        self.assertEqual(w.server.password_checks.refused, 1)
        gated.gate.set()
        yield until(lambda: all(b.of_type("login_ok") for b in bares[:3]), what="three logins through")
        # a busy refusal is not a failed login: a1 still has its whole allowance
        by_agent = w.server.core._agent_failures["a1"]  # noqa: SLF001
        self.assertEqual(by_agent.tokens, by_agent.capacity)
