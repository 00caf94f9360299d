"""The pure parts: the inbound flow fed replies by hand, and admission control on a Clock."""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest

from callcenter.agi.protocol import parse_reply_line
from callcenter.callflow import FlowOptions, InboundCall, Report, Send
from callcenter.engine.events import CallOffered
from callcenter.fastagi.admission import Admission

from .harness import AcdWorld, agi_config, cancel_leftover_timers, fastagi_call


def sends(actions):
    return [a.command.decode().rstrip("\n") for a in actions if isinstance(a, Send)]


def reply(flow, line):
    return flow.reply_received(parse_reply_line(line))


def holding_flow():
    f = InboundCall(FlowOptions(), call_id="c1", caller_masked="138****5678")
    f.start()
    acts = reply(f, "200 result=0")  # ANSWER
    for _ in range(len(f.outstanding)):
        acts += reply(f, "200 result=1")
    # call_arrived reported, CC_PHASE set; then MOH and the first wait
    assert any(isinstance(a, Report) and a.input == "call_arrived" for a in acts)
    while f.outstanding and f.outstanding[0] != "wfd":
        acts = reply(f, "200 result=0")
    return f


def offer(agent="a1", endpoint="PJSIP/a1"):
    return CallOffered(0.0, "c1", "q", agent, "own", 0, 15.0, endpoint, "other", 0, "", 1.0)


def test_offer_during_wait_interrupts_with_a_noop_then_dials():
    f = holding_flow()
    assert f.outstanding == ("wfd",)
    acts = f.engine_event(offer())
    assert sends(acts) == ["NOOP interrupt"]
    assert reply(f, "200 result=1") == []  # the interrupted WAIT FOR DIGIT (01b): not a digit
    acts = reply(f, "200 result=0")  # the NOOP
    cmds = sends(acts)
    assert cmds[0] == "EXEC StopMusicOnHold"
    assert cmds[-1] == "EXEC Dial PJSIP/a1,14,m(cc-hold)U(cc-agent-answered^c1^a1)"


def test_dial_minus_one_with_caller_still_up_is_agent_hangup():
    f = holding_flow()
    f.engine_event(offer())
    reply(f, "200 result=1")
    reply(f, "200 result=0")
    while f.outstanding[0] != "dial":
        reply(f, "200 result=1")
    acts = reply(f, "200 result=-1")  # 06b
    assert sends(acts) == ["CHANNEL STATUS", "GET VARIABLE DIALSTATUS"]
    reply(f, "200 result=6")  # still up
    acts = reply(f, "200 result=1 (ANSWER)")
    reports = [(a.input, a.args.get("by")) for a in acts if isinstance(a, Report)]
    assert reports == [("offer_answered", None), ("call_completed", "agent")]
    assert sends(acts) == ["SET VARIABLE CC_RESULT answered"]


def test_dead_channel_511_reports_the_hangup_once():
    f = holding_flow()
    acts = reply(f, "200 result=-1")  # WAIT FOR DIGIT interrupted by a hang-up (07a)
    assert sends(acts) == ["CHANNEL STATUS"]
    acts = f.hangup_received()  # the HANGUP line arrives while the probe is outstanding
    assert acts == []
    acts = reply(f, "511 Command Not Permitted on a dead channel or intercept routine")
    assert [a.input for a in acts if isinstance(a, Report)] == ["caller_hung_up"]
    assert sends(acts) == ["SET VARIABLE CC_RESULT hangup"]
    assert f.connection_lost() == []  # already settled: no second report


def test_a_caller_gone_during_the_greeting_gets_one_end_before_queue():
    """Every call gets one CDR: a hang-up before call_arrived is reported as call_not_queued."""
    f = InboundCall(FlowOptions(greeting="cc-welcome"), call_id="c1", caller_masked="138****5678")
    f.start()
    acts = reply(f, "200 result=0")  # ANSWER
    while f.outstanding and f.outstanding[0] != "prompt":
        acts = reply(f, "200 result=1")
    acts = reply(f, "200 result=-1")  # the greeting ends with a hang-up: probe it
    assert sends(acts) == ["CHANNEL STATUS"]
    acts = reply(f, "511 Command Not Permitted on a dead channel or intercept routine")
    reports = [(a.input, a.args.get("outcome"), a.args.get("reason")) for a in acts if isinstance(a, Report)]
    assert reports == [("call_not_queued", "abandoned", "before-queue")]
    assert f.connection_lost() == []  # one end only


def test_a_link_lost_before_queue_reports_the_end_once():
    f = InboundCall(FlowOptions(greeting="cc-welcome"), call_id="c1")
    f.start()
    acts = f.connection_lost()
    assert [(a.input, a.args["outcome"]) for a in acts if isinstance(a, Report)] == [("call_not_queued", "abandoned")]
    assert f.connection_lost() == []


def test_token_bucket_sheds_and_recovers_on_the_clock():
    clock = Clock()
    adm = Admission(clock, max_calls=100, max_setups_per_s=10)
    results = [adm.admit(0) for _ in range(20)]
    assert results.count(True) == 5  # burst of 0.5 s
    assert adm.shed == 15
    clock.advance(1.0)
    assert sum(adm.admit(0) for _ in range(20)) == 5
    assert not adm.admit(100)  # max_calls held


class ShedTest(unittest.TestCase):
    timeout = 20

    def setUp(self):
        self.world = AcdWorld(agi_config(listen={"host": "127.0.0.1", "fastagi_port": 0},
                                         max_setups_per_s=2)).start()

    @defer.inlineCallbacks
    def tearDown(self):
        yield self.world.stop()
        cancel_leftover_timers()

    @defer.inlineCallbacks
    def test_overload_sheds_with_apology_and_fallback(self):
        calls = [fastagi_call(self.world) for _ in range(4)]
        # hang up admitted callers once they hold; shed ones end by themselves
        for ch, _done, _uid in calls:
            ch.when("WAIT FOR DIGIT", lambda c: c.hang_up())
        recs = yield defer.gatherResults([d for _, d, _ in calls])
        shed = [r for r in recs if r.variables.get("CC_RESULT") == "shed"]
        self.assertEqual(len(shed), 3)  # burst of one at 2/s
        for r in shed:
            self.assertIn('STREAM FILE cc-sorry-busy ""', r.commands)
            self.assertTrue(r.dialplan_continued)
        # every call has its one end: the admitted caller abandoned, the shed ones "shed"
        outcomes = sorted(e[0].outcome for e in self.world.ended.values())
        self.assertEqual(outcomes, ["abandoned", "shed", "shed", "shed"])
        self.assertEqual(self.world.sub.control.admission.shed, 3)
