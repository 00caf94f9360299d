"""The peer harness reads commands the way res_agi does, so it is never looser than Asterisk 22.

res/res_agi.c ``run_agi``: ``fdopen`` + ``setlinebuf`` on the AGI descriptor,
then one ``fgets`` each time ``poll()`` finds the raw descriptor readable.
Lines written together while no command runs are pulled into the stdio buffer
by the first ``fgets`` and never run (transcripts README point 14); a line
arriving while a media/wait command runs stops it (01b, point 7).  These tests
drive :class:`FakeChannel` byte by byte on a Clock, and check that the ACD's
flow, driven by hand, never writes a second command before a reply.
"""

from __future__ import annotations

from twisted.internet.task import Clock

from callcenter.agi.protocol import parse_reply_line
from callcenter.callflow import FlowOptions, InboundCall, Report, Send
from callcenter.engine.events import CallOffered, PositionAnnounced
from callcenter.testing.agi_peer import Agent, FakeChannel


def channel(**kw):
    clock = Clock()
    ch = FakeChannel(clock, speed=1.0, **kw)
    out: list[str] = []
    ch.write = out.append
    return clock, ch, out


def test_two_commands_in_one_write_at_idle_get_one_reply_and_the_session_stalls():
    clock, ch, out = channel()
    ch.data_received(b"SET VARIABLE A 1\nSET VARIABLE B 2\n")
    assert out == ["200 result=1\n"]
    clock.advance(3600)
    assert out == ["200 result=1\n"]  # silence for good: nobody reads B
    assert ch.vars == {"A": "1"}
    assert ch.unread == ["SET VARIABLE B 2"]
    assert ch.program_ended().unread == ["SET VARIABLE B 2"]


def test_the_same_commands_one_after_the_others_reply_both_run():
    _clock, ch, out = channel()
    ch.data_received(b"SET VARIABLE A 1\n")
    ch.data_received(b"SET VARIABLE B 2\n")
    assert out == ["200 result=1\n", "200 result=1\n"]
    assert ch.vars == {"A": "1", "B": "2"} and ch.unread == []


def test_a_stranded_line_runs_only_when_new_bytes_wake_poll_and_then_before_them():
    # stdio semantics: the next poll() wake-up makes fgets return the old buffered line first
    _clock, ch, out = channel()
    ch.data_received(b"SET VARIABLE A 1\nSET VARIABLE B 2\n")
    ch.data_received(b"GET VARIABLE B\n")
    assert [c for c in ch.record.commands] == ["SET VARIABLE A 1", "SET VARIABLE B 2", "GET VARIABLE B"]
    assert out == ["200 result=1\n", "200 result=1\n", "200 result=1 (2)\n"]


def test_a_line_split_across_writes_is_one_command():
    _clock, ch, out = channel()
    ch.data_received(b"SET VARI")
    assert out == []
    ch.data_received(b"ABLE A 1\n")
    assert out == ["200 result=1\n"] and ch.unread == []


def test_a_line_during_stream_file_aborts_it_without_a_reply():
    clock, ch, out = channel(file_seconds={"hello": 5.0})
    ch.data_received(b'STREAM FILE hello ""\n')
    clock.advance(1.0)
    assert out == []
    ch.data_received(b"NOOP x\n")
    assert out == ["200 result=0\n"]  # only the new command answers (01b)
    clock.advance(10)
    assert out == ["200 result=0\n"] and ch.record.interrupts == 1


def test_a_line_during_say_number_and_get_data_aborts_them_without_a_reply():
    clock, ch, out = channel()
    ch.data_received(b'SAY NUMBER 42 ""\n')
    ch.data_received(b"NOOP a\n")
    ch.data_received(b"GET DATA beep 5000 1\n")
    ch.data_received(b"NOOP b\n")
    clock.advance(10)
    assert out == ["200 result=0\n", "200 result=0\n"]
    assert ch.record.interrupts == 2


def test_a_line_during_wait_for_digit_answers_one_then_runs():
    clock, ch, out = channel()
    ch.data_received(b"WAIT FOR DIGIT 2000\n")
    ch.data_received(b"NOOP interrupt\n")
    assert out == ["200 result=1\n", "200 result=0\n"]  # 01b: numeric 1, not the digit '1' (49)
    clock.advance(5)
    assert len(out) == 2


def test_an_interrupt_carrying_two_lines_strands_the_second():
    _clock, ch, out = channel()
    ch.data_received(b"WAIT FOR DIGIT 2000\n")
    ch.data_received(b"NOOP interrupt\nSET VARIABLE X 1\n")
    assert out == ["200 result=1\n", "200 result=0\n"]
    assert ch.unread == ["SET VARIABLE X 1"]


def test_a_line_during_exec_dial_waits_until_dial_returns():
    clock, ch, out = channel(agents={"PJSIP/a": Agent(answer_after=None)})
    ch.data_received(b"EXEC Dial PJSIP/a,2\n")
    ch.data_received(b"GET VARIABLE DIALSTATUS\n")
    assert out == []  # Dial does not watch the AGI descriptor
    clock.advance(2.0)
    assert out == ["200 result=0\n", "200 result=1 (NOANSWER)\n"]


# ---------------------------------------------------------------- the flow never pipelines


def _drive(flow, ch, clock, acts, steps=400):
    """Carry the flow's Sends to the channel, replies back; assert one line at a time."""
    written: list[str] = []
    replies: list[str] = []
    ch.write = replies.append

    def carry(actions):
        sends = [a for a in actions if isinstance(a, Send)]
        assert len(sends) <= 1, f"the flow wrote {len(sends)} commands at once"
        for s in sends:
            # an interrupt only ever goes behind a running WAIT FOR DIGIT; anything else only when idle
            assert (ch._running is not None and ch._running[0] == "wfd") if s.interrupt else ch._running is None
            written.append(s.command.decode().rstrip("\n"))
            ch.data_received(s.command)

    carry(acts)
    for _ in range(steps):
        while replies:
            line = replies.pop(0)
            carry(flow.reply_received(parse_reply_line(line.rstrip("\n"))))
        if flow.finished:
            break
        clock.advance(0.5)
    assert ch.unread == []
    return written


def test_a_whole_call_with_announcements_and_an_offer_writes_one_command_at_a_time():
    clock = Clock()
    ch = FakeChannel(clock, speed=1.0, agents={"PJSIP/a1": Agent(answer_after=0.5, talk=1.0)})
    f = InboundCall(FlowOptions(store_number=True), call_id="c1", caller_masked="138****5678",
                    caller_number="13812345678")
    written = _drive(f, ch, clock, f.start(), steps=6)
    assert f.stage == "hold" and written[:4] == ["ANSWER", "SET VARIABLE CC_CALL_ID c1",
                                                  "SET VARIABLE CC_QUEUE hotline-12345",
                                                  'SET VARIABLE CDR(userfield) call=c1;queue=hotline-12345']
    f.engine_event(PositionAnnounced(0.0, "c1", "hotline-12345", 3, 120.0))
    _drive(f, ch, clock, [], steps=20)
    assert "SAY NUMBER 3 12" in ch.record.commands
    acts = f.engine_event(CallOffered(0.0, "c1", "q", "a1", "own", 0, 15.0, "PJSIP/a1", "other", 0, "", 1.0))
    written = _drive(f, ch, clock, acts, steps=40)
    assert written[0] == "NOOP interrupt"
    assert any(w.startswith("EXEC Dial PJSIP/a1,14.5,") for w in written)
    assert f.finished and f.result == "answered"
    assert ch.vars["CC_RESULT"] == "answered"
    assert not [a for a in acts if isinstance(a, Report) and a.input == "caller_hung_up"]
