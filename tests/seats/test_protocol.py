"""The seat protocol against the real server: real WebSockets over real TLS on loopback.

Agents log in with the real client library (seat_agent.client.SeatClient,
reconnecting through ClientService); hostile messages are sent as raw frames
on a logged-in client's own connection.  The engine and the grace timers run
on a task.Clock the tests advance; nothing sleeps.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.internet import defer
from twisted.trial import unittest

from callcenter.seats import schema as s
from callcenter.seats.session import SeatLimits

from .support import SeatWorld, of_kind, raw, until


class SeatTest(unittest.TestCase):
    timeout = 30
    world_options: dict = {}

    def setUp(self):
        tmp = Path(tempfile.mkdtemp(prefix="seats-"))  # (trial's mktemp() writes under the cwd)
        self.addCleanup(shutil.rmtree, tmp, True)
        self.world = SeatWorld(tmp, **self.world_options)
        self.engine = self.world.engine

    def tearDown(self):
        return self.world.close()

    @defer.inlineCallbacks
    def logged_in(self, agent_id: str, ready: bool = False):
        c = self.world.client(agent_id)
        yield until(lambda: c.logged_in and c.state == "not-ready", what=f"{agent_id} logged in")
        if ready:
            c.ready()
            yield until(lambda: c.state in ("ready", "offered"), what=f"{agent_id} ready")
        return c


class LoginTests(SeatTest):
    @defer.inlineCallbacks
    def test_login_gives_token_and_logs_agent_in_to_engine(self):
        c = yield self.logged_in("a1")
        self.assertTrue(c.token and len(c.token) >= 32)
        self.assertEqual(c.pool, "own")
        self.assertEqual(self.engine.agent_info("a1")["state"], "not-ready")
        self.assertEqual(self.engine.agent_info("a1")["endpoint"], "PJSIP/1001")
        hello = of_kind(c, "hello")[0]
        self.assertEqual(hello.versions, [s.PROTOCOL_VERSION])

    @defer.inlineCallbacks
    def test_wrong_password_is_refused_and_client_stops(self):
        c = self.world.client("a1", password="wrong")
        yield until(lambda: c.ended == "bad-credentials", what="bad credentials")
        self.assertEqual(of_kind(c, "error")[-1].code, s.BAD_CREDENTIALS)
        self.assertIsNone(self.engine.agent_info("a1"))
        yield until(lambda: not self.world.server.protocols, what="client closed")
        self.assertFalse(c.logged_in)

    @defer.inlineCallbacks
    def test_failed_logins_are_throttled_per_agent(self):
        self.world.server.core.limits = SeatLimits(login_failures_per_agent=3, login_failures_per_address=50)
        # a fresh connection per attempt, as a password guesser would do
        guesses = []
        for i in range(5):
            g = self.world.client("a1", password=f"guess{i}")
            yield until(lambda g=g: g.ended is not None or any(e.code == s.LOGIN_THROTTLED for e in of_kind(g, "error")),
                        what="guess answered")
            guesses.append(of_kind(g, "error")[0].code)
            yield g.stop()
        self.assertEqual(guesses[:3], [s.BAD_CREDENTIALS] * 3)
        self.assertEqual(guesses[3:], [s.LOGIN_THROTTLED] * 2)
        # the right password is throttled too until the bucket refills: no oracle
        right = self.world.client("a1")
        yield until(lambda: any(e.code == s.LOGIN_THROTTLED for e in of_kind(right, "error")), what="throttled")
        self.assertIsNone(self.engine.agent_info("a1"))
        yield right.stop()
        self.world.clock.advance(60)  # the buckets refill on the server's (injected) clock
        again = yield self.logged_in("a1")
        self.assertTrue(again.logged_in)
        # another agent from the same address is not affected by a1's lock
        r1 = yield self.logged_in("r1")
        self.assertTrue(r1.logged_in)

    @defer.inlineCallbacks
    def test_failed_logins_are_throttled_per_address(self):
        self.world.server.core.limits = SeatLimits(login_failures_per_agent=50, login_failures_per_address=3)
        codes = []
        for i in range(4):
            g = self.world.client(f"nobody{i}", password="x")
            yield until(lambda g=g: of_kind(g, "error"), what="answer")
            codes.append(of_kind(g, "error")[0].code)
            yield g.stop()
        self.assertEqual(codes, [s.BAD_CREDENTIALS] * 3 + [s.LOGIN_THROTTLED])

    @defer.inlineCallbacks
    def test_second_login_takes_over(self):
        first = yield self.logged_in("a1", ready=True)
        second = self.world.client("a1")
        yield until(lambda: second.logged_in, what="second login")
        yield until(lambda: first.ended == "taken-over", what="first told")
        self.assertTrue(of_kind(second, "login_ok")[0].took_over)
        self.assertEqual(second.state, "ready")  # the engine state carried over
        self.assertNotEqual(first.token, second.token)
        self.assertEqual(self.engine.agent_info("a1")["state"], "ready")
        # the old seat does not come back and steal it again
        yield until(lambda: first._service is None and not first.connected, what="first closed")
        self.assertTrue(second.logged_in)

    @defer.inlineCallbacks
    def test_logout(self):
        c = yield self.logged_in("a1")
        c.logout()
        yield until(lambda: c.ended == "logged-out", what="logged out")
        self.assertIn(self.engine.agent_info("a1"), (None,))  # the engine forgets a logged-out agent
        self.assertIsNone(self.world.server.core.session_of("a1"))


class CallFlowTests(SeatTest):
    world_options = {"kb": True}

    @defer.inlineCallbacks
    def test_ready_offer_accept_talk_wrapup(self):
        c = yield self.logged_in("a1", ready=True)
        self.engine.call_arrived("c1", "hotline", caller_masked="138****5678", category="medical")
        yield until(lambda: c.offer is not None, what="offer")
        offer = c.offer
        self.assertEqual((offer.call_id, offer.queue, offer.category, offer.priority), ("c1", "hotline", "medical", 5))
        self.assertEqual(offer.caller, "138****5678")
        self.assertEqual(offer.contacts, [])  # no records helper configured here
        self.assertEqual(c.state, "offered")
        c.accept()
        # call control (Asterisk via AGI in production) answers the agent's leg
        self.engine.offer_answered("c1", "a1")
        yield until(lambda: c.call_phase == "on-call", what="call answered")
        self.world.clock.advance(42)
        self.engine.call_completed("c1", by="caller")
        yield until(lambda: c.call_phase == "wrap-up" and c.state == "wrap-up", what="wrap-up")
        self.assertEqual(of_kind(c, "call_ended")[0].talk_s, 42)
        saved = yield c.wrapup("resolved", "told about fever clinic hours", {"title": "fever clinic", "district": "A"})
        self.assertEqual(saved.call_id, "c1")
        self.assertEqual(self.world.wrapups[0]["disposition"], "resolved")
        self.assertEqual(self.world.wrapups[0]["ticket"], {"title": "fever clinic", "district": "A"})
        c.end_wrapup()
        yield until(lambda: c.state == "ready", what="ready after wrap-up")

    @defer.inlineCallbacks
    def test_offer_carries_choices_and_wait(self):
        self.engine.call_arrived("c2", "hotline", caller_masked="139****0000")
        self.engine.choice_made("c2", "1")
        self.world.clock.advance(12)
        c = yield self.logged_in("a1", ready=True)
        yield until(lambda: c.offer is not None, what="offer")
        self.assertEqual(c.offer.choices, ["1"])
        self.assertEqual(c.offer.waited_s, 12)

    @defer.inlineCallbacks
    def test_reject_sends_call_to_next_agent(self):
        a1 = yield self.logged_in("a1", ready=True)
        self.engine.call_arrived("c1", "hotline")
        yield until(lambda: a1.offer is not None, what="offer a1")
        a2 = yield self.logged_in("a2", ready=True)
        a1.reject()
        yield until(lambda: a2.offer is not None and a2.offer.call_id == "c1", what="offer a2")
        yield until(lambda: of_kind(a1, "offer_ended"), what="a1 told")
        self.assertEqual(of_kind(a1, "offer_ended")[0].result, "rejected")

    @defer.inlineCallbacks
    def test_kb_search(self):
        c = yield self.logged_in("a1")
        res = yield c.kb_search("fever")
        self.assertEqual([a.title for a in res.articles][0], "Fever clinic opening hours")
        self.assertEqual(len(res.articles), 2)  # title hit first, body hit second
        res = yield c.kb_search("fever clinic hours")
        self.assertEqual(res.articles[0].title, "Fever clinic opening hours")  # every word in it: first
        res = yield c.kb_search("nothing-like-this")
        self.assertEqual(res.articles, [])


class DemoCallControlTests(SeatTest):
    world_options = {"demo": True}

    @defer.inlineCallbacks
    def test_accept_answers_and_hangup_completes(self):
        c = yield self.logged_in("a1", ready=True)
        self.assertTrue(of_kind(c, "hello")[0].demo_call_control)
        self.engine.call_arrived("c1", "hotline")
        yield until(lambda: c.offer is not None, what="offer")
        c.accept()
        yield until(lambda: c.call_phase == "on-call", what="answered")
        c.hangup()
        yield until(lambda: c.state == "wrap-up", what="wrap-up")
        self.assertEqual(self.engine.agent_info("a1")["state"], "wrap-up")


class ResumeTests(SeatTest):
    @defer.inlineCallbacks
    def test_resume_after_dropped_connection_keeps_offer(self):
        c = yield self.logged_in("a1", ready=True)
        token = c.token
        self.engine.call_arrived("c1", "hotline")
        yield until(lambda: c.offer is not None, what="offer")
        c.protocol.dropConnection(abort=True)  # the network blips
        yield until(lambda: not c.connected, what="drop seen")
        yield until(lambda: self.world.server.core.session_of("a1")["attached"] is False or c.logged_in,
                    what="server noticed")
        # ClientService reconnects on its own and the client resumes with the token
        yield until(lambda: c.logged_in and c.status == "session resumed", what="resumed")
        self.assertNotEqual(c.token, token)  # rotated on resume
        self.assertNotIn(token, self.world.server.core.tokens)
        self.assertEqual(c.offer.call_id, "c1")
        self.assertEqual(self.engine.agent_info("a1")["state"], "offered")
        c.accept()
        self.engine.offer_answered("c1", "a1")
        yield until(lambda: c.call_phase == "on-call", what="answered after resume")

    @defer.inlineCallbacks
    def test_resume_during_call_keeps_call(self):
        c = yield self.logged_in("a1", ready=True)
        self.engine.call_arrived("c1", "hotline")
        yield until(lambda: c.offer is not None, what="offer")
        c.accept()
        self.engine.offer_answered("c1", "a1")
        yield until(lambda: c.call_phase == "on-call", what="answered")
        c.protocol.dropConnection(abort=True)
        yield until(lambda: c.logged_in and c.status == "session resumed", what="resumed")
        self.assertEqual((c.call_id, c.call_phase), ("c1", "on-call"))
        self.engine.call_completed("c1")
        yield until(lambda: c.state == "wrap-up", what="wrap-up")

    @defer.inlineCallbacks
    def test_grace_expiry_logs_out_and_offer_goes_to_next_agent(self):
        a1 = yield self.logged_in("a1", ready=True)
        self.engine.call_arrived("c1", "hotline")
        yield until(lambda: a1.offer is not None, what="offer a1")
        a2 = yield self.logged_in("a2", ready=True)
        yield a1.stop()  # a1's PC is gone: no reconnect
        yield until(lambda: self.world.server.core.session_of("a1")["attached"] is False, what="detached")
        self.world.clock.advance(29.0)
        self.assertEqual(self.engine.agent_info("a1")["state"], "offered")  # still within grace
        self.assertIsNone(a2.offer)
        self.world.clock.advance(1.5)
        self.assertIsNone(self.engine.agent_info("a1"))  # logged out (the engine forgets it)
        self.assertIsNone(self.world.server.core.session_of("a1"))
        yield until(lambda: a2.offer is not None and a2.offer.call_id == "c1", what="offer to a2")
        # the old token is dead: a resume now is refused and the client logs in afresh
        self.assertNotIn(a1.token, self.world.server.core.tokens)


class HostileTests(SeatTest):
    world_options = {"limits": SeatLimits(messages_per_s=20, burst=40, flood_close_after=200)}

    @defer.inlineCallbacks
    def error_for(self, c, payload: bytes, binary: bool = False):
        before = len(of_kind(c, "error"))
        c.protocol.sendMessage(payload, isBinary=binary)
        yield until(lambda: len(of_kind(c, "error")) > before, what=f"error for {payload[:40]!r}")
        return of_kind(c, "error")[-1]

    @defer.inlineCallbacks
    def test_bad_messages_get_errors_and_session_carries_on(self):
        c = yield self.logged_in("a1")
        cases = [
            (b"{not json", s.BAD_JSON),
            (b"[1, 2]", s.BAD_JSON),
            (raw({"v": 99, "type": "ready"}), s.UNSUPPORTED_VERSION),
            (raw({"v": 1, "type": "make_me_admin", "id": 7}), s.UNKNOWN_TYPE),
            (raw({"v": 1, "type": "not_ready", "reason": {"x": 1}}), s.BAD_FIELD),
            (raw({"v": 1, "type": "ready", "surprise": True}), s.BAD_FIELD),
            (raw({"v": 1, "type": "kb_search", "query": "x", "limit": 10_000}), s.BAD_FIELD),
            (raw({"v": 1, "type": "not_ready", "reason": "x" * 20_000}), s.TOO_LARGE),
        ]
        for payload, code in cases:
            err = yield self.error_for(c, payload)
            self.assertEqual(err.code, code, payload[:60])
        err = yield self.error_for(c, b"\x00\x01", binary=True)
        self.assertEqual(err.code, s.BAD_JSON)
        self.assertEqual(of_kind(c, "error")[3].ref, 7)  # errors name the request they answer
        # still logged in, still works
        c.ready()
        yield until(lambda: c.state == "ready", what="ready after garbage")

    @defer.inlineCallbacks
    def test_huge_message_closes_only_that_connection(self):
        a1 = yield self.logged_in("a1")
        a2 = yield self.logged_in("a2")
        a1.protocol.sendMessage(b'{"v":1,"type":"ready","pad":"' + b"x" * 200_000 + b'"}')
        yield until(lambda: not a1.connected, what="a1 closed")
        ack = yield a2.heartbeat()
        self.assertEqual(ack.TYPE, "heartbeat_ack")
        # a1's session is in its grace period and the client resumes it
        yield until(lambda: a1.logged_in, what="a1 resumed")

    @defer.inlineCallbacks
    def test_acting_as_another_agent_is_forbidden(self):
        a1 = yield self.logged_in("a1", ready=True)
        a2 = yield self.logged_in("a2")
        err = yield self.error_for(a2, raw({"v": 1, "type": "not_ready", "agent_id": "a1", "reason": "x"}))
        self.assertEqual(err.code, s.FORBIDDEN)
        err = yield self.error_for(a2, raw({"v": 1, "type": "logout", "agent_id": "a1"}))
        self.assertEqual(err.code, s.FORBIDDEN)
        self.assertEqual(self.engine.agent_info("a1")["state"], "ready")
        # a call offered to a1 cannot be taken or refused by a2
        self.engine.call_arrived("c1", "hotline")
        yield until(lambda: a1.offer is not None, what="offer a1")
        for typ in ("accept", "reject"):
            err = yield self.error_for(a2, raw({"v": 1, "type": typ, "call_id": "c1"}))
            self.assertEqual(err.code, s.NOT_YOUR_CALL)
        err = yield self.error_for(a2, raw({"v": 1, "type": "wrapup", "call_id": "c1", "disposition": "x"}))
        self.assertEqual(err.code, s.NOT_YOUR_CALL)
        self.assertEqual(self.engine.agent_info("a1")["state"], "offered")
        # commands before login are refused
        self.assertEqual(self.engine.call_info("c1")["agent_id"], "a1")

    @defer.inlineCallbacks
    def test_forged_token_and_relogin_on_one_connection_are_refused(self):
        a2 = yield self.logged_in("a2")
        err = yield self.error_for(a2, raw({"v": 1, "type": "resume", "token": "A" * 43}))
        self.assertEqual(err.code, s.ALREADY_LOGGED_IN)
        err = yield self.error_for(a2, raw({"v": 1, "type": "login", "agent_id": "a1", "password": "pw-a1"}))
        self.assertEqual(err.code, s.ALREADY_LOGGED_IN)
        self.assertIsNone(self.engine.agent_info("a1"))

    @defer.inlineCallbacks
    def test_flood_is_limited_and_closed_while_others_carry_on(self):
        flooder = yield self.logged_in("a1")
        other = yield self.logged_in("a2", ready=True)
        for _ in range(400):
            flooder.protocol.sendMessage(raw({"v": 1, "type": "heartbeat"}))
        yield until(lambda: not flooder.connected, what="flooder closed")
        errors = of_kind(flooder, "error")
        self.assertEqual([e.code for e in errors], [s.RATE_LIMITED])  # one error, not one per message
        # the bucket (burst 40) refills on the server's clock, which the test holds still:
        # the login took one token, so exactly 39 heartbeats got through
        self.assertEqual(len(of_kind(flooder, "heartbeat_ack")), 39)
        # the other session did not notice
        ack = yield other.heartbeat()
        self.assertEqual(ack.TYPE, "heartbeat_ack")
        self.engine.call_arrived("c1", "hotline")
        yield until(lambda: other.offer is not None, what="other still gets offers")


class LivenessTests(SeatTest):
    world_options = {"limits": SeatLimits(heartbeat_s=0.3, pong_timeout_s=0.3)}

    @defer.inlineCallbacks
    def test_silent_peer_is_dropped_and_live_one_kept_by_pings(self):
        live = yield self.logged_in("a1")
        dead = yield self.logged_in("a2")
        dead.protocol.transport.pauseProducing()  # its PC froze: it reads nothing, answers no ping
        core = self.world.server.core
        yield until(lambda: core.session_of("a2")["attached"] is False, timeout=30, what="silent seat dropped")
        # a2 is in its grace period now, not logged out
        self.assertEqual(self.engine.agent_info("a2")["state"], "not-ready")
        # a1 said nothing either, but answered the pings
        self.assertTrue(core.session_of("a1")["attached"])
        self.assertTrue(live.connected)
        dead.protocol.transport.resumeProducing()
