"""FastAGI fail-over as the dialplan does it (second AGI() with ?resume=${CC_CALL_ID}),
and the callback path (call file, U() answer report, callback-done)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.internet import defer, reactor
from twisted.trial import unittest

from callcenter.engine import Engine
from callcenter.fastagi.originate import CallFileOriginator
from callcenter.testing.agi_peer import FakeChannel, FastAgiCall, environment

from .harness import AcdWorld, Agent, answered_hook, cancel_leftover_timers, fastagi_call, until


def second_agi(world: AcdWorld, ch: FakeChannel, uid: str, request: str):
    """The dialplan's next AGI() on the same channel (its variables survive: CC_CALL_ID, CC_PHASE)."""
    ch.answered_hook = answered_hook(lambda: world.port)
    env = environment(request=f"agi://127.0.0.1:{world.port}/{request}", uniqueid=uid, network_script=request)
    return FastAgiCall(reactor, ch, env).connect("127.0.0.1", world.port)


def one_shot(world: AcdWorld, request: str):
    ch = FakeChannel(reactor)
    env = environment(request=f"agi://127.0.0.1:{world.port}/{request}", uniqueid="9.9", network_script=request)
    return FastAgiCall(reactor, ch, env).connect("127.0.0.1", world.port)


class FailoverTest(unittest.TestCase):
    timeout = 30

    def setUp(self):
        self.first = AcdWorld().start()
        self.worlds = [self.first]

    @defer.inlineCallbacks
    def tearDown(self):
        for w in self.worlds:
            yield w.stop()
        cancel_leftover_timers()

    def take_over(self):
        snap = self.first.engine.snapshot()
        second = AcdWorld(engine=Engine.restore(self.first.config, reactor, snap)).start()
        self.worlds.append(second)
        return second

    @defer.inlineCallbacks
    def test_acd_lost_while_waiting_next_acd_resumes_the_place(self):
        ch, done, uid = fastagi_call(self.first)
        yield until(lambda: self.first.engine.call_info(uid) is not None, what="queued")
        second = self.take_over()
        yield self.first.stop()
        rec = yield done
        self.assertEqual(rec.agistatus, "SUCCESS")  # the server closed: the dialplan goes on (08c)
        self.assertNotIn("CC_RESULT", rec.variables)  # ... to the second ACD
        self.assertEqual(rec.variables["CC_CALL_ID"], uid)
        second.agent("a1")
        ch.agents["PJSIP/a1"] = Agent(answer_after=0.05, talk=0.1)
        rec2 = yield second_agi(second, ch, uid, f"hotline?resume={uid}")
        self.assertEqual(rec2.variables["CC_RESULT"], "answered")
        self.assertEqual(second.outcome(uid), "answered")
        self.assertEqual(second.reserved_agents(), [])
        # the standby's records never saw the call queue: call control registers the caller's hash
        # and masked number on the resume too, so its CDR is complete (issue 14)
        self.assertIn(uid, [c for c, _h in second.acd.records.registered])
        self.assertEqual(second.acd.records.masked[uid], "138********")

    @defer.inlineCallbacks
    def test_acd_lost_during_dial_next_acd_settles_it_from_dialstatus(self):
        self.first.agent("a1")
        ch, done, uid = fastagi_call(self.first, agents={"PJSIP/a1": Agent(answer_after=0.3, talk=0.1)})
        yield until(lambda: ch.record.dials, what="the agent's phone rings")
        second = self.take_over()  # the engine state says: offered to a1
        yield self.first.stop()
        yield done
        yield until(lambda: ch._running is None and ch.vars.get("DIALSTATUS") == "ANSWER", what="Dial over")
        self.assertEqual(ch.vars["CC_PHASE"], "dialing:a1")
        rec = yield second_agi(second, ch, uid, f"hotline?resume={uid}")
        self.assertEqual(rec.variables["CC_RESULT"], "answered")
        self.assertEqual(second.outcome(uid), "answered")
        self.assertEqual(second.reserved_agents(), [])
        self.assertEqual(len(ch.record.dials), 1)  # not dialled twice

    @defer.inlineCallbacks
    def test_resume_of_a_call_the_acd_does_not_know_queues_it_again(self):
        ch, done, uid = fastagi_call(self.first, request="hotline?resume=unknown-call-7")
        yield until(lambda: self.first.engine.call_info("unknown-call-7") is not None, what="queued again")
        ch.hang_up()
        yield done
        self.assertEqual(self.first.outcome("unknown-call-7"), "abandoned")

    @defer.inlineCallbacks
    def test_resume_after_a_conversation_the_acd_does_not_know_is_not_queued_again(self):
        # the old ACD died during Dial; the agent hung up; the ACD now asked has no record of the
        # call (issue 14: such conversations heard "sorry, busy" and were queued again)
        ch, done, uid = fastagi_call(self.first, request="hotline?resume=gone-call-8",
                                     variables={"CC_PHASE": "dialing:a9", "DIALSTATUS": "ANSWER"})
        rec = yield done
        self.assertEqual(rec.variables["CC_RESULT"], "answered")
        self.assertIsNone(self.first.engine.call_info("gone-call-8"))
        self.assertNotIn("gone-call-8", self.first.ended)
        self.assertFalse(any(c.startswith("EXEC StartMusicOnHold") for c in rec.commands))


class CallbackTest(unittest.TestCase):
    timeout = 30

    def setUp(self):
        self.world = AcdWorld().start()
        self.spool = Path(tempfile.mkdtemp(prefix="cc-spool-"))
        self.world.sub.control.originator = CallFileOriginator(str(self.spool))

    @defer.inlineCallbacks
    def tearDown(self):
        yield self.world.stop()
        cancel_leftover_timers()
        shutil.rmtree(self.spool, ignore_errors=True)

    @defer.inlineCallbacks
    def test_callback_is_placed_by_call_file_and_reported_once(self):
        ch, done, uid = fastagi_call(self.world)
        ch.when("WAIT FOR DIGIT", lambda c: c.press("2"), delay=0.01)
        rec = yield done
        self.assertEqual(rec.variables["CC_RESULT"], "callback")
        self.world.agent("a1")
        yield until(lambda: list(self.spool.glob("*.call")), what="a call file")
        text = next(self.spool.glob("*.call")).read_text()
        self.assertIn("Channel: PJSIP/a1\n", text)
        self.assertIn(f"Setvar: CC_CALL_ID={uid}\n", text)
        self.assertIn("Context: cc-callback\n", text)
        self.assertNotIn("13812345678", text)  # the number stays in AstDB
        self.assertEqual(list(self.spool.glob(".cc-*")), [])  # written under a temp name, then renamed
        # the agent answered, [cc-callback] dialled the caller; the caller answers (U() gosub) ...
        yield one_shot(self.world, f"answered?call={uid}&agent=a1")
        self.assertEqual(self.world.engine.call_info(uid)["state"], "talking")
        # ... and the leg's h extension reports the end
        yield one_shot(self.world, f"callback-done?call={uid}&agent=a1&status=ANSWER")
        self.assertEqual(self.world.outcome(uid), "called-back")
        yield one_shot(self.world, f"callback-done?call={uid}&agent=a1&status=ANSWER")  # repeated: ignored
        self.assertEqual(self.world.outcome(uid), "called-back")
        self.assertEqual(self.world.reserved_agents(), [])

    @defer.inlineCallbacks
    def test_callback_not_answered_by_caller_is_a_failed_try(self):
        ch, done, uid = fastagi_call(self.world)
        ch.when("WAIT FOR DIGIT", lambda c: c.press("2"), delay=0.01)
        yield done
        self.world.agent("a1")
        yield until(lambda: list(self.spool.glob("*.call")), what="a call file")
        yield one_shot(self.world, f"callback-done?call={uid}&agent=a1&status=NOANSWER")
        results = [e.result for e in self.world.events if e.kind == "OfferEnded" and e.call_id == uid]
        self.assertEqual(results[0], "no-answer")
        self.assertNotIn(uid, self.world.ended)  # the place is kept for the next try
