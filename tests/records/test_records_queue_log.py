"""The pure mappings: engine events -> queue_log lines and -> CDR rows (no database)."""

from __future__ import annotations

from records_helpers import CallRun, small_config

from callcenter.engine import events as ev
from callcenter.records.cdr import INSERT, QUEUE_LOG, UPDATE_CDR, RecordBuilder
from callcenter.records.db import utc
from callcenter.records.queue_log import QueueLogLine, QueueLogMapper, parse_line, queue_log_lines, queues_by_pool

T = 1_764_300_000.0


def lines(mapper, *events):
    return [line.format() for e in events for line in mapper.lines(e)]


def queued(call="c1", position=1, t=T):
    return ev.CallQueued(t, call, "hotline", "other", 0, "138****5678", position)


def test_call_answered_and_completed_by_caller():
    m = QueueLogMapper()
    out = lines(
        m,
        queued(),
        ev.CallOffered(T + 1, "c1", "hotline", "a1", "own", 0, 10.0, "PJSIP/1001", "other", 0, "138****5678", 1.0),
        ev.OfferEnded(T + 4, "c1", "a1", "own", 0, ev.ANSWERED, 3.0),
        ev.CallAnswered(T + 4, "c1", "hotline", "a1", "own", 0, 4.0, "other"),
        ev.CallEnded(T + 64, "c1", "hotline", "other", 0, ev.OUTCOME_ANSWERED, 4.0, "a1", "own", 0, 60.0,
                     reason="caller-ended"),
    )
    assert out == [
        f"{int(T)}|c1|hotline|NONE|ENTERQUEUE||138****5678|1",
        f"{int(T) + 4}|c1|hotline|a1|CONNECT|4|c1-a1|3",
        f"{int(T) + 64}|c1|hotline|a1|COMPLETECALLER|4|60|1",
    ]


def test_completed_by_agent_ring_no_answer_and_abandon_positions():
    m = QueueLogMapper()
    out = lines(
        m,
        queued("c1", position=3),
        ev.PositionAnnounced(T + 30, "c1", "hotline", 2, 40.0),
        ev.OfferEnded(T + 40, "c1", "a2", "own", 0, ev.NO_ANSWER, 10.0),
        ev.OfferEnded(T + 41, "c1", "a3", "own", 0, ev.CALLER_HUNG_UP, 1.25),
        ev.CallEnded(T + 41, "c1", "hotline", "other", 0, ev.OUTCOME_ABANDONED, 41.0),
        queued("c2", position=1),
        ev.CallEnded(T + 300, "c2", "hotline", "other", 0, ev.OUTCOME_FALLBACK, 300.0, reason="max-wait"),
        queued("c3"),
        ev.CallEnded(T + 9, "c3", "hotline", "other", 0, ev.OUTCOME_ANSWERED, 1.0, "a1", "own", 0, 8.0,
                     reason="agent-ended"),
    )
    assert out[1:] == [
        f"{int(T) + 40}|c1|hotline|a2|RINGNOANSWER|10000",
        f"{int(T) + 41}|c1|hotline|a3|RINGCANCELED|1250",
        f"{int(T) + 41}|c1|hotline|NONE|ABANDON|2|3|41",  # position at hangup | original | wait
        f"{int(T)}|c2|hotline|NONE|ENTERQUEUE||138****5678|1",
        f"{int(T) + 300}|c2|hotline|NONE|EXITWITHTIMEOUT|1|1|300",
        f"{int(T)}|c3|hotline|NONE|ENTERQUEUE||138****5678|1",
        f"{int(T) + 9}|c3|hotline|a1|COMPLETEAGENT|1|8|1",
    ]


def test_member_events_per_queue_and_hostile_reason_cannot_break_the_line():
    m = QueueLogMapper({"own": ["hotline", "second"]})
    out = lines(
        m,
        ev.AgentStateChanged(T, "a1", "own", ev.LOGGED_OUT, ev.NOT_READY, "login"),
        ev.AgentStateChanged(T + 1, "a1", "own", ev.NOT_READY, ev.READY),
        ev.AgentStateChanged(T + 2, "a1", "own", ev.READY, ev.OFFERED),  # no line: ringing is not a pause
        ev.AgentStateChanged(T + 3, "a1", "own", ev.READY, ev.NOT_READY, "lunch|x\nEVIL|1"),
        ev.AgentStateChanged(T + 4, "a1", "own", ev.NOT_READY, ev.LOGGED_OUT, "bye"),
    )
    assert out == [
        f"{int(T)}|NONE|hotline|a1|ADDMEMBER|PAUSED",
        f"{int(T)}|NONE|second|a1|ADDMEMBER|PAUSED",
        f"{int(T) + 1}|NONE|hotline|a1|UNPAUSE|",
        f"{int(T) + 1}|NONE|second|a1|UNPAUSE|",
        f"{int(T) + 3}|NONE|hotline|a1|PAUSE|lunch/x EVIL/1",
        f"{int(T) + 3}|NONE|second|a1|PAUSE|lunch/x EVIL/1",
        f"{int(T) + 4}|NONE|hotline|a1|REMOVEMEMBER|",
        f"{int(T) + 4}|NONE|second|a1|REMOVEMEMBER|",
    ]
    for line in out:
        assert len(parse_line(line).data) == 1


def test_line_round_trip_and_table_row():
    line = QueueLogLine(int(T), "c1", "hotline", "a1", "CONNECT", ("4", "c1-a1", "3"))
    assert parse_line(line.format()) == line
    row = line.row()
    assert (row["event"], row["data"], row["data1"], row["data3"], row["data4"]) == ("CONNECT", "4|c1-a1|3", "4", "3", "")


def test_queues_by_pool_from_config():
    assert queues_by_pool(small_config()) == {"own": ["hotline"], "lend": ["hotline"]}


def test_builder_from_a_real_engine_run(clock):
    run = CallRun(clock)
    run.run(5)
    b = RecordBuilder()
    ops = [op for e in run.events for op in b.feed(e)]
    cdrs = [op[2] for op in ops if op[0] == INSERT and op[1] == "cdr"]
    assert [c["call_id"] for c in cdrs] == [f"call-{i}" for i in range(5)]
    assert [c["outcome"] for c in cdrs] == ["answered"] * 4 + ["abandoned"]
    first = cdrs[0]
    assert (first["agent_id"], first["pool"], first["tier"], first["wait_s"], first["talk_s"]) == ("a1", "own", 0, 2.0, 30.0)
    assert first["answered_at"] > first["arrival"] and first["ended_at"] > first["answered_at"]
    wrapups = [op for op in ops if op[0] == UPDATE_CDR]
    assert [(u[1], u[2]["wrapup_s"]) for u in wrapups] == [(f"call-{i}", 5.0) for i in range(4)]
    offers = [op[2] for op in ops if op[0] == INSERT and op[1] == "cdr_offers"]
    assert [o["result"] for o in offers] == ["answered"] * 4 + ["caller-hung-up"]
    assert [op[1].format() for op in ops if op[0] == QUEUE_LOG] == queue_log_lines(run.events)


def test_builder_is_robust_to_missing_and_late_events():
    b = RecordBuilder()
    # a CallEnded for a call never seen queueing (restart from a snapshot): a complete CDR anyway
    ops = b.feed(ev.CallEnded(T + 100, "x1", "hotline", "other", 0, ev.OUTCOME_ANSWERED, 20.0, "a1", "own", 0, 50.0))
    row = next(op[2] for op in ops if op[0] == INSERT and op[1] == "cdr")
    assert (row["arrival"], row["answered_at"], row["ended_at"]) == (utc(T + 30), utc(T + 50), utc(T + 100))
    # the hash registered after the end becomes an update; before the start, part of the row
    assert b.call_registered("x1", "h1") == [(UPDATE_CDR, "x1", {"caller_hash": "h1"})]
    assert b.call_registered("x2", "h2") == []
    b.feed(queued("x2"))
    b.feed(ev.CallOffered(T + 1, "x2", "hotline", "a1", "own", 0, 10.0, None, "other", 0, "", 1.0))
    ops = b.feed(ev.CallEnded(T + 2, "x2", "hotline", "other", 0, ev.OUTCOME_ABANDONED, 2.0))
    row = next(op[2] for op in ops if op[0] == INSERT and op[1] == "cdr")
    assert row["caller_hash"] == "h2"
    assert not [op for op in ops if op[0] == INSERT and op[1] == "cdr_offers"]  # still ringing
    late = b.feed(ev.OfferEnded(T + 2, "x2", "a1", "own", 0, ev.CALLER_HUNG_UP, 1.0))
    assert [(op[1], op[2]["result"]) for op in late if op[0] == INSERT] == [("cdr_offers", "caller-hung-up")]
    # events of unknown calls and odd transitions do not raise
    assert b.feed(ev.OfferEnded(T, "nope", "a9", "own", 0, ev.NO_ANSWER, 1.0)) == []
    b.feed(ev.AgentStateChanged(T, "a9", "own", ev.WRAPUP, ev.READY))


def test_a_call_resumed_here_gets_its_caller_facts_in_the_cdr():
    # issue 14: a standby never saw CallQueued; call control registers hash + masked number on resume

    b = RecordBuilder()
    assert b.call_registered("r1", "h1", "139****0005") == []
    ops = b.feed(ev.CallEnded(100.0, "r1", "q", "other", 0, ev.OUTCOME_ABANDONED, 12.0))
    row = next(op[2] for op in ops if op[0] == INSERT and op[1] == "cdr")
    assert row["caller_masked"] == "139****0005" and row["caller_hash"] == "h1"
    # registered only after the CDR was written: both are updated
    b.feed(ev.CallEnded(101.0, "r2", "q", "other", 0, ev.OUTCOME_ABANDONED, 3.0))
    assert b.call_registered("r2", "h2", "138****1234") == [
        (UPDATE_CDR, "r2", {"caller_hash": "h2", "caller_masked": "138****1234"})]


def test_calls_restored_from_a_snapshot_keep_their_cdr_facts():
    # issue 14: the standby's CDRs of calls that crossed the failover had no masked number, no offer
    snap = {
        "agents": [{"id": "a1", "pool": "remote"}],
        "calls": [
            {"id": "t1", "queue": "q", "category": "medical", "priority": 5, "caller_masked": "139****0005",
             "arrived": 50.0, "callback": False, "origin": None, "choices": ["1"], "state": "talking",
             "agent": "a1", "offer_at": 60.0, "attempt": 2, "answered_at": 61.5},
            {"id": "w1", "queue": "q", "category": "other", "priority": 0, "caller_masked": "138****1234",
             "arrived": 70.0, "state": "waiting", "agent": None, "offer_at": None, "attempt": 0,
             "answered_at": None},
        ],
    }
    b = RecordBuilder()
    assert b.calls_restored(snap, {"remote": 1}) == []
    ops = b.feed(ev.CallEnded(71.5, "t1", "q", "medical", 5, ev.OUTCOME_ANSWERED, 10.0, agent_id="a1",
                              pool="remote", tier=1, talk_s=10.0))
    cdr = next(op[2] for op in ops if op[0] == INSERT and op[1] == "cdr")
    offers = [op[2] for op in ops if op[0] == INSERT and op[1] == "cdr_offers"]
    assert cdr["caller_masked"] == "139****0005"
    assert cdr["arrival"] == utc(50.0) and cdr["answered_at"] == utc(61.5)
    assert [(o["seq"], o["agent_id"], o["pool"], o["tier"], o["result"], o["ring_s"]) for o in offers] == [
        (2, "a1", "remote", 1, "answered", 1.5)]
    ops = b.feed(ev.CallEnded(80.0, "w1", "q", "other", 0, ev.OUTCOME_ABANDONED, 10.0))
    cdr = next(op[2] for op in ops if op[0] == INSERT and op[1] == "cdr")
    assert cdr["caller_masked"] == "138****1234" and cdr["arrival"] == utc(70.0)
