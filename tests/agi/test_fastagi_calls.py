"""Whole calls over real FastAGI sockets: Asterisk's side played by the peer harness,
the real FastAGI server and a real Engine on the real reactor."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from .harness import AcdWorld, Agent, cancel_leftover_timers, fastagi_call, until


class FastAgiCallTest(unittest.TestCase):
    timeout = 30

    def setUp(self):
        self.world = AcdWorld().start()
        self.engine = self.world.engine

    @defer.inlineCallbacks
    def tearDown(self):
        yield self.world.stop()
        cancel_leftover_timers()

    def assert_clean(self):
        self.assertEqual(self.world.reserved_agents(), [])

    @defer.inlineCallbacks
    def test_normal_call_answered_then_agent_hangs_up(self):
        self.world.agent("a1")
        ch, done, uid = fastagi_call(self.world, agents={"PJSIP/a1": Agent(answer_after=0.05, talk=0.2)})
        rec = yield done
        self.assertEqual(self.world.outcome(uid), "answered")
        self.assertEqual(rec.variables["CC_RESULT"], "answered")
        self.assertEqual(rec.variables["CC_CALL_ID"], uid)
        self.assertIn("agent=a1", rec.variables["CDR(userfield)"])
        self.assertEqual(rec.agistatus, "SUCCESS")
        self.assertTrue(rec.dialplan_continued)
        self.assertEqual(rec.dials, ["PJSIP/a1"])
        self.assert_clean()

    @defer.inlineCallbacks
    def test_caller_hangs_up_while_waiting(self):
        ch, done, uid = fastagi_call(self.world)
        ch.when("WAIT FOR DIGIT", lambda c: c.hang_up(), delay=0.02)
        rec = yield done
        self.assertEqual(self.world.outcome(uid), "abandoned")
        self.assertEqual(self.world.ended[uid][0].reason, "while-waiting")
        self.assertEqual(rec.agistatus, "HANGUP")
        self.assertFalse(rec.dialplan_continued)
        self.assertEqual(rec.variables["CC_RESULT"], "hangup")  # SET VARIABLE works on a dead channel (02)
        self.assertGreaterEqual(rec.hangup_lines, 1)
        self.assert_clean()

    @defer.inlineCallbacks
    def test_caller_hangs_up_while_agent_phone_rings(self):
        self.world.agent("a1")
        ch, done, uid = fastagi_call(self.world, agents={"PJSIP/a1": Agent(answer_after=None)})
        ch.when("EXEC Dial", lambda c: c.hang_up(), delay=0.1)
        rec = yield done
        self.assertEqual(self.world.outcome(uid), "abandoned")
        self.assertEqual(self.world.ended[uid][0].reason, "while-ringing")
        self.assertEqual(rec.variables["DIALSTATUS"], "CANCEL")
        self.assert_clean()
        self.assertEqual(self.engine.agent_info("a1")["state"], "ready")

    @defer.inlineCallbacks
    def test_caller_hangs_up_during_conversation(self):
        self.world.agent("a1")
        ch, done, uid = fastagi_call(self.world, agents={"PJSIP/a1": Agent(answer_after=0.05, talk=None)})
        ch.when("EXEC Dial", lambda c: c.hang_up(), delay=0.4)
        rec = yield done
        self.assertEqual(self.world.outcome(uid), "answered")
        self.assertEqual(rec.agistatus, "HANGUP")
        self.assertEqual(self.engine.agent_info("a1")["state"], "wrap-up")
        self.assert_clean()

    @defer.inlineCallbacks
    def test_agent_hangs_up_first_without_g_is_not_a_caller_hangup(self):
        # 06b: Dial returns -1 but CHANNEL STATUS says 6: the caller is still there
        self.world.agent("a1")
        ch, done, uid = fastagi_call(self.world, agents={"PJSIP/a1": Agent(answer_after=0.05, talk=0.1)})
        rec = yield done
        self.assertIn("CHANNEL STATUS", rec.commands)
        self.assertEqual(rec.variables["CC_RESULT"], "answered")
        self.assertFalse(rec.dead)
        ended = self.world.ended[uid][0]
        self.assertEqual(ended.outcome, "answered")

    @defer.inlineCallbacks
    def test_no_answer_then_next_agent(self):
        self.world.agent("a1")
        self.world.agent("a2")
        agents = {"PJSIP/a1": Agent(answer_after=None), "PJSIP/a2": Agent(answer_after=0.05, talk=0.1)}
        ch, done, uid = fastagi_call(self.world, agents=agents)
        rec = yield done
        self.assertEqual(len(rec.dials), 2)
        self.assertEqual(self.world.outcome(uid), "answered")
        offers = [e for e in self.world.events if e.kind == "OfferEnded" and e.call_id == uid]
        self.assertEqual([o.result for o in offers], ["no-answer", "answered"])
        self.assert_clean()

    @defer.inlineCallbacks
    def test_busy_and_unavailable_agents_are_reported(self):
        self.world.agent("a1")
        self.world.agent("a2", endpoint="PJSIP/nowhere")
        self.world.agent("a3")
        agents = {"PJSIP/a1": Agent(busy=True), "PJSIP/a3": Agent(answer_after=0.05, talk=0.1)}
        ch, done, uid = fastagi_call(self.world, agents=agents)
        yield done
        results = [e.result for e in self.world.events if e.kind == "OfferEnded" and e.call_id == uid]
        self.assertEqual(sorted(results), ["answered", "busy", "unavailable"])
        self.assertEqual(self.world.outcome(uid), "answered")
        self.assert_clean()

    @defer.inlineCallbacks
    def test_dtmf_1_plays_policy_notice_and_keeps_waiting(self):
        ch, done, uid = fastagi_call(self.world)
        ch.when("WAIT FOR DIGIT", lambda c: c.press("1"), delay=0.01)
        yield until(lambda: any(c.startswith("STREAM FILE cc-policy-notice") for c in ch.record.commands),
                    what="the policy notice")
        self.assertIn(("ChoiceMade", uid, "1"), [(e.kind, e.call_id, getattr(e, "choice", None))
                                                   for e in self.world.events])
        # back on hold afterwards, then an agent frees up
        yield until(lambda: ch.record.commands.count("EXEC StartMusicOnHold cc-hold") >= 2, what="hold again")
        ch.agents["PJSIP/a1"] = Agent(answer_after=0.05, talk=0.1)
        self.world.agent("a1")
        yield done
        self.assertEqual(self.world.outcome(uid), "answered")
        self.assert_clean()

    @defer.inlineCallbacks
    def test_dtmf_2_callback_keeps_place_then_callback_is_offered(self):
        ch, done, uid = fastagi_call(self.world)
        ch.when("WAIT FOR DIGIT", lambda c: c.press("2"), delay=0.01)
        rec = yield done
        self.assertEqual(rec.variables["CC_RESULT"], "callback")
        self.assertEqual(ch.db[("cc-callback", uid)], "13812345678")  # the number stays in Asterisk
        info = self.engine.call_info(uid)
        self.assertTrue(info["callback"])
        self.assertNotIn(uid, self.world.ended)
        # no call-file spool configured: the offer fails cleanly, nobody stays reserved
        self.world.agent("a1")
        yield until(lambda: any(e.kind == "OfferEnded" and e.call_id == uid for e in self.world.events))
        self.assert_clean()

    @defer.inlineCallbacks
    def test_position_is_announced_while_waiting(self):
        ch, done, uid = fastagi_call(self.world)
        yield until(lambda: any(c.startswith("SAY NUMBER 1") for c in ch.record.commands), what="announcement")
        i = next(i for i, c in enumerate(ch.record.commands) if c.startswith("STREAM FILE cc-your-position"))
        self.assertEqual(ch.record.commands[i - 1], "EXEC StopMusicOnHold")
        ch.hang_up()
        yield done
        self.assertEqual(self.world.outcome(uid), "abandoned")

    @defer.inlineCallbacks
    def test_emergency_announcement_and_callback_offer_are_played(self):
        ch, done, uid = fastagi_call(self.world)
        self.engine.emergency_set("hotline-12345", "surge", by="test")
        yield until(lambda: "STREAM FILE cc-emergency-notice 12" in ch.record.commands, what="the plan's notice")
        yield until(lambda: "STREAM FILE cc-press-2-for-callback 12" in ch.record.commands, what="option 2")
        cmds = ch.record.commands
        notice = cmds.index("STREAM FILE cc-emergency-notice 12")
        self.assertTrue(cmds[notice + 1].startswith("STREAM FILE cc-your-position"))
        self.assertGreater(cmds.index("STREAM FILE cc-press-2-for-callback 12"), notice)
        ch.hang_up()
        yield done
        self.assertEqual(self.world.outcome(uid), "abandoned")

    @defer.inlineCallbacks
    def test_max_wait_runs_dialplan_fallback_with_apology(self):
        self.world.sub.stop()
        cfg = self.world.config.model_copy(update={"queues": [self.world.config.queues[0].model_copy(
            update={"max_wait_s": 0.3})]})
        self.world = AcdWorld(cfg).start()
        ch, done, uid = fastagi_call(self.world)
        rec = yield done
        self.assertEqual(self.world.outcome(uid), "fallback")
        self.assertEqual(rec.variables["CC_RESULT"], "fallback")
        self.assertTrue(rec.dialplan_continued)
        self.assertIn('STREAM FILE cc-sorry-busy ""', rec.commands)

    @defer.inlineCallbacks
    def test_lines_split_across_segments(self):
        self.world.agent("a1")
        ch, done, uid = fastagi_call(self.world, agents={"PJSIP/a1": Agent(answer_after=0.05, talk=0.1)},
                                     split=True)
        rec = yield done
        self.assertEqual(self.world.outcome(uid), "answered")
        self.assertEqual(rec.variables["CC_RESULT"], "answered")

    @defer.inlineCallbacks
    def test_malformed_environment_closes_only_that_session(self):
        ch, done, uid = fastagi_call(self.world, garbage=b"agi_network: yes\nthis is not agi\n\n")
        rec = yield done
        self.assertEqual(rec.commands, [])
        self.assertEqual(self.world.sub.control.protocol_errors, 1)
        # the server carries on
        self.world.agent("a1")
        ch2, done2, uid2 = fastagi_call(self.world, agents={"PJSIP/a1": Agent(answer_after=0.05, talk=0.1)})
        yield done2
        self.assertEqual(self.world.outcome(uid2), "answered")

    @defer.inlineCallbacks
    def test_malformed_reply_line_mid_call_settles_the_call(self):
        ch, done, uid = fastagi_call(self.world)

        def garble(c):
            c.write("garbage that is not a reply\n")
        ch.when("WAIT FOR DIGIT", garble, delay=0.0)
        yield done
        yield until(lambda: uid in self.world.ended, timeout=30, what="outcome after the resume grace")
        self.assertEqual(self.world.outcome(uid), "abandoned")
        self.assertGreaterEqual(self.world.sub.control.protocol_errors, 1)

    @defer.inlineCallbacks
    def test_unknown_script_and_bad_request_close_at_once(self):
        ch, done, uid = fastagi_call(self.world, request="nosuchscript")
        rec = yield done
        self.assertEqual(rec.commands, [])
        self.assertTrue(rec.dialplan_continued)
        ch, done, uid = fastagi_call(self.world, request="hotline?moh=bad%20name%0aHANGUP")
        rec = yield done
        self.assertEqual(rec.commands, [])

    @defer.inlineCallbacks
    def test_h_extension_report_ends_a_call_nobody_reported(self):
        # the flow's link died without a hang-up line; the h extension reports before the grace runs out
        ch, done, uid = fastagi_call(self.world)
        yield until(lambda: self.engine.call_info(uid) is not None, what="queued")
        ch.agisighup = False
        ch.hang_up()  # AGISIGHUP=no: no HANGUP line (08e); the next command gets 511 anyway
        yield done
        self.assertEqual(self.world.outcome(uid), "abandoned")
        ch2, done2, _ = fastagi_call(self.world, request=f"hangup?call={uid}")
        yield done2
        self.assertEqual(self.world.outcome(uid), "abandoned")  # still exactly one

    @defer.inlineCallbacks
    def test_optional_menu_and_greeting_choose_the_category(self):
        self.world.agent("a1")
        ch, done, uid = fastagi_call(
            self.world, agents={"PJSIP/a1": Agent(answer_after=0.05, talk=0.1)},
            request="hotline?greeting=cc-welcome&menu=cc-menu&menu_map=1:other;2:medical")
        ch.when("GET DATA", lambda c: c.press("2"), delay=0.01)
        rec = yield done
        self.assertIn('STREAM FILE cc-welcome ""', rec.commands)
        self.assertIn("GET DATA cc-menu 5000 1", rec.commands)
        queued = next(e for e in self.world.events if e.kind == "CallQueued" and e.call_id == uid)
        self.assertEqual(queued.category, "medical")
        self.assertEqual(self.world.outcome(uid), "answered")

    @defer.inlineCallbacks
    def test_dtmf_during_announcement_is_a_hold_option(self):
        ch, done, uid = fastagi_call(self.world)
        ch.when("STREAM FILE cc-your-position", lambda c: c.press("1"), delay=0.005)
        yield until(lambda: any(c.startswith("STREAM FILE cc-policy-notice") for c in ch.record.commands),
                    what="notice after a key pressed during the announcement")
        ch.hang_up()
        yield done
        self.assertEqual(self.world.outcome(uid), "abandoned")

    @defer.inlineCallbacks
    def test_oversized_line_closes_the_session(self):
        ch, done, uid = fastagi_call(self.world)
        ch.when("WAIT FOR DIGIT", lambda c: c.write("2" * 20000), delay=0.0)
        yield done
        yield until(lambda: uid in self.world.ended, timeout=30, what="outcome after the resume grace")
        self.assertEqual(self.world.outcome(uid), "abandoned")
        self.assertGreaterEqual(self.world.sub.control.protocol_errors, 1)
