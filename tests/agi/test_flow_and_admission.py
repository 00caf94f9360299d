"""The pure parts: the inbound flow fed replies by hand, and admission control on a Clock."""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest

from callcenter.agi.protocol import parse_reply_line
from callcenter.callflow import Finish, FlowOptions, InboundCall, Report, Send
from callcenter.engine.events import CallOffered
from callcenter.fastagi.admission import Admission

from .harness import AcdWorld, agi_config, cancel_leftover_timers, fastagi_call


def sends(actions):
    return [a.command.decode().rstrip("\n") for a in actions if isinstance(a, Send)]


def reply(flow, line):
    acts = flow.reply_received(parse_reply_line(line))
    assert len(sends(acts)) <= 1, f"more than one command written at once: {sends(acts)}"
    return acts


def drive(flow, line, until_tag):
    """Answer each command with ``line`` until ``until_tag`` is the one in flight; return every command sent."""
    cmds = []
    while flow.in_flight[0] != until_tag:
        cmds += sends(reply(flow, line))
    return cmds


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
    assert cmds == ["EXEC StopMusicOnHold"]  # one at a time: the next only after this reply
    cmds += drive(f, "200 result=1", "dial")
    assert cmds[-1] == "EXEC Dial PJSIP/a1,14.5,m(cc-hold)U(cc-agent-answered^c1^a1)"


def test_dial_minus_one_with_caller_still_up_is_agent_hangup():
    f = holding_flow()
    f.engine_event(offer())
    reply(f, "200 result=1")
    reply(f, "200 result=0")
    while f.outstanding[0] != "dial":
        reply(f, "200 result=1")
    acts = reply(f, "200 result=-1")  # 06b
    assert sends(acts) == ["CHANNEL STATUS"]
    assert sends(reply(f, "200 result=6")) == ["GET VARIABLE DIALSTATUS"]  # still up
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


# ---------------------------------------------------------------- the interrupt race and bounded loops


def test_interrupt_stranded_behind_the_wait_is_recovered_by_a_nudge():
    # the NOOP reached Asterisk before it read() the WAIT FOR DIGIT line: both sit in the stdio
    # buffer, the wait times out (result=0) and the NOOP is never run until new bytes arrive
    f = holding_flow()
    assert sends(f.engine_event(offer())) == ["NOOP interrupt"]
    assert reply(f, "200 result=0") == []  # the wait ran to its end: the interrupt may be stranded
    assert f.needs_nudge
    acts = f.nudge()
    assert sends(acts) == ["NOOP nudge"]
    assert reply(f, "200 result=0") == []  # the stranded NOOP, run when the nudge woke poll()
    acts = reply(f, "200 result=0")  # the nudge itself; now the offer goes ahead
    assert sends(acts) == ["EXEC StopMusicOnHold"] and not f.needs_nudge


def test_interrupt_never_answered_gives_up_after_a_bounded_number_of_nudges():
    f = holding_flow()
    f.engine_event(offer())
    reply(f, "200 result=0")
    for _ in range(4):
        assert sends(f.nudge()) == ["NOOP nudge"]
    acts = f.nudge()
    assert [a.input for a in acts if isinstance(a, Report)] == ["call_dropped"]
    assert sends(acts) == ["SET VARIABLE CC_RESULT fallback"]
    assert any(isinstance(a, Finish) for a in acts) and f.finished


def test_minus_one_to_every_command_ends_the_call_after_a_few_tries():
    f = InboundCall(FlowOptions(), call_id="c1", caller_masked="138****5678")
    written = sends(f.start())
    reports: list = []
    for _ in range(200):
        if f.finished:
            break
        acts = f.reply_received(parse_reply_line("200 result=-1"))
        written += sends(acts)
        reports += [a for a in acts if isinstance(a, Report)]
    assert f.finished and f.gave_up, written
    assert len(written) < 30, written
    assert [r.input for r in reports] == ["call_arrived", "call_dropped"]
    assert written[-1] == "SET VARIABLE CC_RESULT fallback"


def test_an_extra_reply_that_puts_replies_out_of_step_ends_the_call():
    f = holding_flow()
    # an extra "200 result=0" arrives: taken for the wait's timeout, so a new wait is written while
    # the real one still runs; Asterisk then answers each wait with result=1 (01b), and so on
    acts = reply(f, "200 result=0")
    assert sends(acts) == ["WAIT FOR DIGIT 2000"]
    n = 0
    while not f.finished and n < 50:
        acts = reply(f, "200 result=1")
        n += 1
    assert f.finished and n <= 4
    assert [a.input for a in acts if isinstance(a, Report)] == ["call_dropped"]


def test_a_missing_prompt_file_is_not_held_against_the_call():
    f = InboundCall(FlowOptions(greeting="cc-welcome"), call_id="c1")
    f.start()
    while f.in_flight[0] != "prompt":
        reply(f, "200 result=1")
    acts = reply(f, "200 result=-1 endpos=0")  # 01b: a missing file, the caller still there
    assert sends(acts) == ["CHANNEL STATUS"]
    acts = reply(f, "200 result=6")
    assert f.strikes == 0 and not f.finished
    assert [a.input for a in acts if isinstance(a, Report)] == ["call_arrived"]


def test_minus_one_with_the_caller_still_up_is_a_strike():
    f = holding_flow()
    reply(f, "200 result=-1")
    reply(f, "200 result=6")
    assert f.strikes == 1
    reply(f, "200 result=0")  # a clean wait resets the count
    assert f.strikes == 0
