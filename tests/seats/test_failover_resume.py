"""Seats across an ACD failover: real WebSockets over TLS on loopback, two seat servers.

The "old active" and the "new active" are two SeatServer instances on their
own ports; the new one runs on an engine restored from the old one's snapshot
(as callcenter.state does from Redis).  Engines and grace timers run on
task.Clocks the tests advance; nothing sleeps.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.internet import defer
from twisted.trial import unittest

from callcenter.ports import free_port
from callcenter.seats import schema as s
from callcenter.seats.session import SeatLimits
from callcenter.seats.tokens import TokenSigner

from .support import SeatWorld, of_kind, until

SECRET = "cluster-seat-secret-0123456789"


class CountingAccounts:
    """The real accounts, counting password checks (a resume must need none)."""

    def __init__(self, inner):
        self.inner, self.checks = inner, 0

    def verify(self, agent_id, password):
        self.checks += 1
        return self.inner.verify(agent_id, password)


class FailoverTest(unittest.TestCase):
    timeout = 30

    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="seats-fo-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.worlds: list[SeatWorld] = []

    @defer.inlineCallbacks
    def tearDown(self):
        for w in reversed(self.worlds):
            yield w.close()

    def world(self, name: str, **kw) -> SeatWorld:
        w = SeatWorld(self.tmp / name, tls_dir=self.tmp / "tls", **kw)
        w.server.accounts = CountingAccounts(w.server.accounts)
        self.worlds.append(w)
        return w

    def standby_from(self, old: SeatWorld, **kw) -> SeatWorld:
        """The new active: an engine restored from the old one's state, its own seat server."""
        return self.world("new", snapshot=old.engine.snapshot(), now=old.clock.seconds(), **kw)


class TokenAcrossAcdsTests(FailoverTest):
    @defer.inlineCallbacks
    def test_token_of_one_server_resumes_on_another_sharing_the_secret(self):
        old = self.world("old", token_secret=SECRET)
        new_port = free_port()  # where the standby's seat listener will be once it is active
        new_url = f"wss://127.0.0.1:{new_port}/seat"
        c = old.client("a1", urls=[old.url, new_url])
        yield until(lambda: c.logged_in and c.state == "not-ready", what="logged in on old")
        c.ready()
        yield until(lambda: c.state == "ready", what="ready")
        old.engine.call_arrived("c1", "hotline", caller_masked="138****5678")
        yield until(lambda: c.offer is not None, what="offer on old")
        token = c.token
        # failover: the old active dies; the new one restores its state and starts its seats
        yield old.kill()
        yield until(lambda: not c.connected, what="drop seen")
        new = self.standby_from(old, token_secret=SECRET, port=new_port)
        self.assertEqual(new.server.agents_restored(), 1)
        yield until(
            lambda: c.logged_in and c.status == "session resumed",
            what=lambda: f"resumed on the new ACD: {c.status} {c.url} {[k for k, _ in c.received]}",
        )
        self.assertEqual(c.url, new_url)
        self.assertNotEqual(c.token, token)  # rotated on resume: the token used is dead
        claims = new.server.core.token_signer.verify(c.token, new.clock.seconds())
        self.assertEqual(new.engine.agent_info("a1")["session"], claims.session_id)
        self.assertEqual(new.server.accounts.checks, 0, "no password check on resume")
        resumed = of_kind(c, "resumed")[-1]
        self.assertEqual(resumed.state, "offered")
        self.assertEqual(resumed.offer.call_id, "c1")  # the pending offer is re-sent
        self.assertEqual(resumed.offer.caller, "138****5678")
        self.assertEqual(resumed.offer.ring_timeout_s, 60)
        self.assertEqual(new.server.core.session_of("a1")["attached"], True)
        # the session is fully alive on the new ACD: the call goes on there
        c.accept()
        new.engine.offer_answered("c1", "a1")
        yield until(lambda: c.call_phase == "on-call", what="answered on the new ACD")
        # the grace timer of the restored agent was cancelled by the resume
        new.clock.advance(60)
        self.assertEqual(new.engine.agent_info("a1")["state"], "on-call")

    @defer.inlineCallbacks
    def test_resume_during_a_call_keeps_the_call(self):
        old = self.world("old", token_secret=SECRET)
        c = old.client("a1")
        yield until(lambda: c.logged_in and c.state == "not-ready", what="logged in")
        c.ready()
        yield until(lambda: c.state == "ready", what="ready")
        old.engine.call_arrived("c1", "hotline")
        yield until(lambda: c.offer is not None, what="offer")
        old.engine.offer_answered("c1", "a1")
        yield until(lambda: c.call_phase == "on-call", what="on call")
        token = c.token
        yield c.stop()
        new = self.standby_from(old, token_secret=SECRET)
        c2 = new.client("a1", password="not-needed", token=token)
        yield until(lambda: c2.logged_in, what="resumed")
        resumed = of_kind(c2, "resumed")[-1]
        self.assertEqual((resumed.call.call_id, resumed.call.phase), ("c1", "on-call"))
        self.assertEqual(new.server.accounts.checks, 0)
        new.engine.call_completed("c1")
        yield until(lambda: c2.state == "wrap-up", what="wrap-up on the new ACD")


class BadTokenTests(FailoverTest):
    # one failed password login per address would throttle the next login: a bad
    # token that counted as one would make the client's fresh login fail
    limits = SeatLimits(login_failures_per_address=1, login_failures_per_agent=1)

    @defer.inlineCallbacks
    def refused_then_logged_in(self, world: SeatWorld, token: str):
        c = world.client("a1", token=token)
        yield until(lambda: c.logged_in, what="logged in after the bad token")
        errors = of_kind(c, "error")
        self.assertEqual([e.code for e in errors], [s.BAD_TOKEN])
        self.assertEqual(len(of_kind(c, "login_ok")), 1)
        self.assertEqual(len(of_kind(c, "resumed")), 0)
        self.assertNotEqual(c.token, token)
        core = world.server.core
        self.assertTrue(core._address_failures["127.0.0.1"].full(world.clock.seconds()))  # noqa: SLF001
        self.assertTrue(core._agent_failures["a1"].full(world.clock.seconds()))  # noqa: SLF001
        return c

    @defer.inlineCallbacks
    def test_forged_token_is_refused_and_not_a_failed_login(self):
        w = self.world("w", token_secret=SECRET, limits=self.limits)
        w.engine.agent_logged_in("a1", "own")  # restored agent: only the signature stands in the way
        forged = TokenSigner("some-other-secret-xxxxxxxx").issue("a1", w.clock.seconds(), 3600)
        yield self.refused_then_logged_in(w, forged)
        # a tampered token of the right secret is refused as well
        good = TokenSigner(SECRET).issue("a1", w.clock.seconds(), 3600)
        head, _, sig = good.partition(".")
        tampered = head[:-2] + ("AA" if head[-2:] != "AA" else "BB") + "." + sig
        self.assertIsNone(w.server.core.token_signer.verify(tampered, w.clock.seconds()))

    @defer.inlineCallbacks
    def test_expired_token_is_refused_and_not_a_failed_login(self):
        w = self.world("w", token_secret=SECRET, limits=self.limits)
        w.engine.agent_logged_in("a1", "own")
        expired = TokenSigner(SECRET).issue("a1", w.clock.seconds() - 7200, 3600)
        yield self.refused_then_logged_in(w, expired)

    @defer.inlineCallbacks
    def test_valid_token_of_an_agent_the_engine_no_longer_has_is_refused(self):
        w = self.world("w", token_secret=SECRET, limits=self.limits)
        token = TokenSigner(SECRET).issue("a1", w.clock.seconds(), 3600)  # a1 logged out since
        yield self.refused_then_logged_in(w, token)

    @defer.inlineCallbacks
    def test_token_whose_grace_period_ran_out_during_a_call_is_refused(self):
        w = self.world("w", token_secret=SECRET, limits=self.limits)
        c = w.client("a1")
        yield until(lambda: c.logged_in, what="logged in")
        c.ready()
        yield until(lambda: c.state == "ready", what="ready")
        w.engine.call_arrived("c1", "hotline")
        w.engine.offer_answered("c1", "a1")
        token = c.token
        yield c.stop()
        yield until(lambda: w.server.core.session_of("a1")["attached"] is False, what="detached")
        w.clock.advance(31)  # grace over: logged out once the call ends (engine rule)
        self.assertTrue(w.engine.agent_info("a1")["logout_pending"])
        self.assertIsNone(w.server.core.session_of("a1"))
        c2 = yield self.refused_then_logged_in(w, token)
        self.assertTrue(of_kind(c2, "login_ok")[0].took_over)

    @defer.inlineCallbacks
    def test_old_token_after_a_newer_login_is_refused(self):
        w = self.world("w", token_secret=SECRET)
        c = w.client("a1")
        yield until(lambda: c.logged_in, what="first login")
        old_token = c.token
        c2 = w.client("a1")  # takes over: a new token
        yield until(lambda: c2.logged_in, what="second login")
        c3 = w.client("a2", token=old_token)  # (a stolen/stale token of a1)
        yield until(lambda: of_kind(c3, "error"), what="refused")
        self.assertEqual(of_kind(c3, "error")[0].code, s.BAD_TOKEN)
        self.assertTrue(w.server.core.session_of("a1")["attached"])

    @defer.inlineCallbacks
    def test_without_a_shared_secret_tokens_work_only_where_issued(self):
        old = self.world("old")  # seat_token_secret: null -> per-process random secret
        c = old.client("a1")
        yield until(lambda: c.logged_in, what="logged in")
        token = c.token
        new = self.standby_from(old)
        c2 = new.client("a1", token=token)
        yield until(lambda: c2.logged_in, what="logged in with the password")
        self.assertEqual(of_kind(c2, "error")[0].code, s.BAD_TOKEN)
        self.assertTrue(of_kind(c2, "login_ok")[0].took_over)  # adopted the restored agent
        self.assertEqual(new.server.accounts.checks, 1)


class UrlRotationTests(FailoverTest):
    @defer.inlineCallbacks
    def test_client_rotates_past_a_dead_url(self):
        w = self.world("w")
        dead_url = f"wss://127.0.0.1:{free_port()}/seat"  # nothing listens there: connection refused
        c = w.client("a1", urls=[dead_url, w.url])
        yield until(lambda: c.logged_in, what="logged in on the second URL")
        self.assertEqual((c.url, c.url_index), (w.url, 1))
        self.assertTrue(of_kind(c, "unreachable"))

    @defer.inlineCallbacks
    def test_single_url_form_still_works(self):
        w = self.world("w")
        c = w.client("a1")
        yield until(lambda: c.logged_in, what="logged in")
        self.assertEqual(c.urls, [w.url])
        c.rotate_url()
        self.assertEqual(c.url, w.url)


class RestoredAgentGraceTests(FailoverTest):
    @defer.inlineCallbacks
    def test_restored_agents_without_a_seat_are_logged_out_after_the_grace_period(self):
        old = self.world("old", token_secret=SECRET)
        a1 = old.client("a1")
        a2 = old.client("a2")
        yield until(lambda: a1.logged_in and a2.logged_in, what="both logged in")
        a2.ready()
        yield until(lambda: old.engine.agent_info("a2")["state"] == "ready", what="a2 ready")
        token = a1.token
        yield a1.stop()
        yield a2.stop()
        new = self.standby_from(old, token_secret=SECRET)
        self.assertEqual(new.server.agents_restored(), 2)
        self.assertEqual(new.server.agents_restored(), 0)  # idempotent
        new.clock.advance(20)
        back = new.client("a1", password="not-needed", token=token)  # a1's seat comes back in time
        yield until(lambda: back.logged_in, what="a1 resumed")
        new.clock.advance(9.5)
        self.assertEqual(new.engine.agent_info("a2")["state"], "ready")  # still within grace
        new.clock.advance(1.0)
        self.assertIsNone(new.engine.agent_info("a2"))  # no seat came back: logged out
        self.assertEqual(new.engine.agent_info("a1")["state"], "not-ready")
        new.clock.advance(60)
        self.assertEqual(new.engine.agent_info("a1")["state"], "not-ready")
        self.assertEqual(new.server.accounts.checks, 0)

    @defer.inlineCallbacks
    def test_password_login_of_a_restored_agent_cancels_its_grace_timer(self):
        old = self.world("old")
        a1 = old.client("a1")
        yield until(lambda: a1.logged_in, what="logged in")
        yield a1.stop()
        new = self.standby_from(old)
        self.assertEqual(new.server.agents_restored(), 1)
        c = new.client("a1")
        yield until(lambda: c.logged_in, what="logged in on the new ACD")
        self.assertTrue(of_kind(c, "login_ok")[0].took_over)
        new.clock.advance(60)
        self.assertEqual(new.engine.agent_info("a1")["state"], "not-ready")
