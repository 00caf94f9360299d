"""The real pyst2 scripts as Asterisk runs them: forked with the env block on stdin,
commands on stdout, SIGHUP on hang-up; relayed to a real ACD over TCP with the
shared secret."""

from __future__ import annotations

from twisted.internet import defer, reactor
from twisted.trial import unittest

from callcenter.engine import Engine
from callcenter.ports import free_port

from .harness import AcdWorld, Agent, cancel_leftover_timers, classic_call, until


class ClassicScriptTest(unittest.TestCase):
    timeout = 40

    def setUp(self):
        self.world = AcdWorld().start()
        self.engine = self.world.engine
        self.others: list[AcdWorld] = []

    @defer.inlineCallbacks
    def tearDown(self):
        yield self.world.stop()
        for w in self.others:
            yield w.stop()
        cancel_leftover_timers()

    @defer.inlineCallbacks
    def test_normal_call_through_the_relay(self):
        self.world.agent("a1")
        ch, done, uid = classic_call(self.world, agents={"PJSIP/a1": Agent(answer_after=0.05, talk=0.2)},
                                     extra_args=("medical", "7"))
        rec = yield done
        self.assertEqual(rec.exit_status, 0)
        self.assertEqual(rec.stderr, b"")  # pyst2's debug output is silenced (Asterisk would log it)
        self.assertEqual(self.world.outcome(uid), "answered")
        self.assertEqual(rec.variables["CC_RESULT"], "answered")
        queued = next(e for e in self.world.events if e.kind == "CallQueued" and e.call_id == uid)
        self.assertEqual((queued.category, queued.priority, queued.caller_masked), ("medical", 7, "138********"))
        self.assertEqual(self.world.acd.records.registered[0][0], uid)
        self.assertNotIn("13812345678", self.world.acd.records.registered[0][1])
        self.assertEqual(self.world.reserved_agents(), [])

    @defer.inlineCallbacks
    def test_caller_hangs_up_while_waiting_sighup(self):
        ch, done, uid = classic_call(self.world)
        ch.when("WAIT FOR DIGIT", lambda c: c.hang_up(), delay=0.05)
        rec = yield done
        self.assertEqual(rec.signals, 1)
        self.assertEqual(rec.agistatus, "HANGUP")
        self.assertEqual(rec.variables["CC_RESULT"], "hangup")
        self.assertEqual(self.world.outcome(uid), "abandoned")

    @defer.inlineCallbacks
    def test_caller_hangs_up_during_conversation_classic(self):
        self.world.agent("a1")
        ch, done, uid = classic_call(self.world, agents={"PJSIP/a1": Agent(answer_after=0.05, talk=None)})
        ch.when("EXEC Dial", lambda c: c.hang_up(), delay=0.4)
        rec = yield done
        self.assertEqual(self.world.outcome(uid), "answered")
        self.assertEqual(rec.exit_status, 0)
        self.assertEqual(self.world.reserved_agents(), [])

    @defer.inlineCallbacks
    def test_exit_on_hangup_closes_pipes(self):
        # AGIEXITONHANGUP=yes (04): SIGHUP then both pipes closed; the relay reports HANGUP and exits
        ch, done, uid = classic_call(self.world, exit_on_hangup=True)
        ch.when("WAIT FOR DIGIT", lambda c: c.hang_up(), delay=0.05)
        rec = yield done
        self.assertEqual(rec.exit_status, 0)
        yield until(lambda: uid in self.world.ended, what="outcome")
        self.assertEqual(self.world.outcome(uid), "abandoned")

    @defer.inlineCallbacks
    def test_no_acd_at_call_start_exits_within_2s_with_failure(self):
        dead = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
        t0 = reactor.seconds()
        ch, done, uid = classic_call(None, addresses=dead, answered_port=1)
        rec = yield done
        elapsed = reactor.seconds() - t0
        # The script gives up after relay_client.START_BUDGET_S (1.2 s) of refused connects, far from
        # the 20 s resume budget; the bound leaves room for interpreter start-up on a loaded machine.
        self.assertLess(elapsed, 10.0)
        self.assertEqual(rec.exit_status, 1)
        self.assertEqual(rec.agistatus, "FAILURE")  # the dialplan fallback step runs
        self.assertTrue(rec.dialplan_continued)
        self.assertEqual(rec.variables["CC_RESULT"], "noacd")

    @defer.inlineCallbacks
    def test_wrong_secret_is_refused(self):
        import os
        os.environ["CALLCENTER_AGI_SECRET_BACKUP"] = "1"
        ch, done, uid = classic_call(self.world)
        # a raw connection with a bad AUTH line is closed, the next good one works
        from twisted.internet.protocol import ClientCreator, Protocol

        class Bad(Protocol):
            got = b""

            def dataReceived(self, data):
                self.got += data
                if b"\n" in self.got:
                    self.transport.write(b"AUTH 00\n")
        p = yield ClientCreator(reactor, Bad).connectTCP("127.0.0.1", self.world.sub.relay_port)
        yield until(lambda: self.world.sub.control.auth_failures == 1, what="auth failure")
        yield until(lambda: not p.transport.connected, what="closed")
        ch.hang_up()
        yield done

    @defer.inlineCallbacks
    def test_acd_restart_while_caller_waits_resumes_by_call_id(self):
        # the address list starts with an ACD that is down: the relay moves on to the next
        addresses = f"127.0.0.1:{free_port()},{self.world.relay_address}"
        ch, done, uid = classic_call(self.world, addresses=addresses)
        yield until(lambda: self.engine.call_info(uid) is not None, what="queued on the ACD")
        snap = self.engine.snapshot()  # what the failover store would hold
        relay_port = self.world.sub.relay_port
        yield self.world.stop()  # the ACD goes away while the caller waits
        self.assertIsNone(self.world.ended.get(uid))  # a stop hands calls over; it records no outcome
        restarted = AcdWorld(engine=Engine.restore(self.world.config, reactor, snap), relay_port=relay_port).start()
        self.others.append(restarted)
        yield until(lambda: uid in restarted.sub.control.sessions, timeout=15, what="resumed after the restart")
        self.assertEqual(restarted.engine.call_info(uid)["state"], "waiting")
        restarted.agent("a1")
        ch.agents["PJSIP/a1"] = Agent(answer_after=0.05, talk=0.1)
        rec = yield done
        self.assertEqual(restarted.outcome(uid), "answered")
        self.assertEqual(rec.variables["CC_RESULT"], "answered")
        self.assertEqual(restarted.reserved_agents(), [])
        self.assertEqual(rec.exit_status, 0)
