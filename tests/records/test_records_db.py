"""Records against real databases: every test here runs on SQLite and on PostgreSQL (``db`` fixture)."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from records_helpers import HASH_KEY, CallRun, wait_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.engine import events as ev
from callcenter.masking import caller_hash
from callcenter.records import models as m
from callcenter.records.db import current_revision, head_revision, utc
from callcenter.records.queries import audit_entries, recent_contacts
from callcenter.records.queue_log import parse_line


def count(db, model) -> int:
    with Session(db.engine) as s:
        return s.scalar(select(func.count()).select_from(model))


def file_lines(writer) -> list[str]:
    return writer.queue_log_path.read_text().splitlines() if writer.queue_log_path.exists() else []


def test_migrate_creates_the_schema_the_models_describe(db):
    db.migrate()
    db.migrate()  # idempotent
    assert current_revision(db.url) == head_revision()
    from callcenter.kb.store import is_index_table

    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), m.metadata)
    diff = [d for d in diff if not (d[0] in ("remove_table", "remove_index")  # unmodelled, by design
                                    and is_index_table(getattr(d[1], "table", d[1]).name))]
    assert diff == [], f"models and migrations differ: {diff}"


def test_a_run_of_calls_is_recorded_in_every_table_and_the_queue_log_file(migrated_db, make_writer, clock):
    db = migrated_db
    w = make_writer()
    run = CallRun(clock, writer=w)
    ids = run.run(10)
    run.engine.home_load_reported("lend", 2, clock.seconds())
    run.engine.emergency_set("hotline", "surge", by="duty-manager")
    w.audit_logged("admin-1", "emergency.set", {"queue": "hotline", "plan": "surge"}, at=clock.seconds())
    w.call_registered("call-0", caller_hash(run.number(0), HASH_KEY))  # again, after the end: harmless
    assert w.wait_written(20)

    queued_at = {e.call_id: e.t for e in run.events if isinstance(e, ev.CallQueued)}
    with Session(db.engine) as s:
        cdrs = {c.call_id: c for c in s.scalars(select(m.CallRecord))}
        assert sorted(cdrs) == sorted(ids)
        for i, cid in enumerate(ids):
            c = cdrs[cid]
            assert c.outcome == run.outcomes[cid]
            assert c.caller_hash == caller_hash(run.number(i), HASH_KEY)
            assert c.caller_masked.startswith("138****")
            assert c.queue == "hotline" and c.category == "other"
            assert c.arrival == utc(queued_at[cid])
            if c.outcome == "answered":
                assert (c.agent_id, c.pool, c.tier, c.wait_s, c.talk_s, c.wrapup_s) == ("a1", "own", 0, 2.0, 30.0, 5.0)
                assert c.answered_at == c.arrival + timedelta(seconds=2)
                assert [(o.agent_id, o.result, o.ring_s) for o in c.offers] == [("a1", "answered", 2.0)]
            else:
                assert c.agent_id is None and c.answered_at is None and c.short_abandon
                assert [o.result for o in c.offers] == ["caller-hung-up"]
        states = s.scalars(select(m.AgentStateLog).order_by(m.AgentStateLog.id)).all()
        assert {x.state for x in states} >= {"not-ready", "ready", "offered", "on-call", "wrap-up"}
        assert all(x.to_ is not None and x.to_ >= x.from_ for x in states)
        sw = s.scalars(select(m.EmergencySwitch)).one()
        assert (sw.queue, sw.plan, sw.previous, sw.by) == ("hotline", "surge", None, "duty-manager")
        hl = s.scalars(select(m.HomeLoadReport)).one()
        assert (hl.pool, hl.waiting) == ("lend", 2)
        audit = audit_entries(s, who="admin-1")
        assert [(a["who"], a["what"], a["details"]) for a in audit] == [
            ("admin-1", "emergency.set", {"queue": "hotline", "plan": "surge"})]
        qrows = s.scalars(select(m.QueueLogEntry).order_by(m.QueueLogEntry.id)).all()

    lines = file_lines(w)
    assert len(lines) == len(qrows) > 0
    assert [parse_line(x).event for x in lines] == [r.event for r in qrows]
    events = [r.event for r in qrows]
    assert events.count("ENTERQUEUE") == 10 and events.count("CONNECT") == 8 and events.count("ABANDON") == 2
    assert events.count("COMPLETEAGENT") + events.count("COMPLETECALLER") == 8
    with Session(db.engine) as s:
        recent = recent_contacts(s, caller_hash(run.number(4), HASH_KEY), now=utc(clock.seconds()))
        assert [(r["call_id"], r["outcome"]) for r in recent] == [("call-4", "abandoned")]
        assert recent_contacts(s, caller_hash(run.number(4), HASH_KEY), now=utc(clock.seconds() + 8 * 86400)) == []
    assert w.dropped == 0 and w.capture.errors() == []


def test_database_outage_in_the_middle_of_a_run_loses_nothing(migrated_db, make_writer, clock, metrics):
    db = migrated_db
    w = make_writer()
    run = CallRun(clock, writer=w)
    run.run(10)
    assert w.wait_written(20)
    assert count(db, m.CallRecord) == 10

    with db.outage():
        run.run(20)  # the engine keeps going; the writer cannot write
        wait_for(lambda: not w.db_up, what="the writer to notice the outage")
        assert w.buffered > 0
        wait_for(lambda: metrics.value("callcenter_records_buffered_events") > 0, what="the gauge")
        assert metrics.value("callcenter_database_up") == 0
        assert any("DATABASE UNAVAILABLE" in e for e in w.capture.errors())
        run.run(5)
    assert w.wait_written(60), f"{w.buffered} events still buffered after the database came back"

    assert count(db, m.CallRecord) == 35
    assert count(db, m.Offer) == 35
    assert count(db, m.QueueLogEntry) == len(file_lines(w))
    with Session(db.engine) as s:
        answered = s.scalars(select(m.CallRecord).where(m.CallRecord.outcome == "answered")).all()
        assert len(answered) == 28 and all(c.wrapup_s == 5.0 for c in answered)
    assert w.dropped == 0 and metrics.value("callcenter_records_dropped_events_total") == 0
    wait_for(lambda: metrics.value("callcenter_records_buffered_events") == 0, what="the gauge back at 0")
    assert metrics.value("callcenter_database_up") == 1
    assert any("database is back" in e for e in w.capture.at(__import__("twisted.logger").logger.LogLevel.info))


def test_stop_flushes_everything_buffered(migrated_db, make_writer, clock):
    db = migrated_db
    w = make_writer(linger_s=2.0)  # the thread would sit on these events for 2 s
    run = CallRun(clock, writer=w)
    run.run(15)
    assert w.buffered > 0
    w.stop()
    assert w.buffered == 0
    assert count(db, m.CallRecord) == 15
    with Session(db.engine) as s:
        still = s.scalars(select(m.AgentStateLog).where(m.AgentStateLog.to_.is_(None))).all()
    assert [(x.agent_id, x.state) for x in still] == [("a1", "ready")]  # open interval at shutdown
    w.event_emitted(ev.HomeLoadReported(clock.seconds(), "lend", 1, clock.seconds()))  # after stop: counted
    assert w.dropped == 1 and any("DROPPED" in e for e in w.capture.errors())


def test_stop_while_the_database_is_down_saves_the_rest_to_a_file(migrated_db, make_writer, clock, metrics):
    db = migrated_db
    w = make_writer(flush_timeout_s=0.5)
    run = CallRun(clock, writer=w)
    with db.outage():
        run.run(3)
        wait_for(lambda: not w.db_up, what="the writer to notice the outage")
        n = w.buffered
        w.stop(timeout=20)
    assert any("SHUTDOWN WITH" in e for e in w.capture.errors())
    saved = [json.loads(x) for x in w.rejected_path.read_text().splitlines()]
    assert len(saved) >= n  # every event plus the open agent interval
    kinds = [x["input"]["kind"] for x in saved if isinstance(x["input"], dict)]
    assert kinds.count("CallEnded") == 3
    assert metrics.value("callcenter_records_dropped_events_total") == len(saved)


def test_buffer_overflow_is_loud_and_counted(migrated_db, make_writer, clock, metrics):
    db = migrated_db
    w = make_writer(max_buffered=40)
    run = CallRun(clock, writer=w)
    with db.outage():
        run.run(1)
        wait_for(lambda: not w.db_up, what="the writer to notice the outage")
        run.run(10)  # ~10 events a call: far more than 40
        assert w.buffered == 40
        wait_for(lambda: metrics.value("callcenter_records_buffered_events") == 40, what="the gauge at 40")
        dropped = w.dropped
        assert dropped > 0
        assert metrics.value("callcenter_records_dropped_events_total") == dropped
        assert any("DROPPED" in e and "buffer full" in e for e in w.capture.errors())
    assert w.wait_written(60)
    assert w.items_written == w.events_in - dropped
    assert count(db, m.CallRecord) >= 1


def test_rows_the_database_refuses_are_set_aside_and_the_rest_written(migrated_db, make_writer, clock, metrics):
    db = migrated_db
    w = make_writer()
    run = CallRun(clock, writer=w)
    run.run(2)
    w.audit_logged("someone", "odd", {"not json": object()})  # rows the database cannot take
    run.run(2)
    assert w.wait_written(20)
    assert count(db, m.CallRecord) == 4
    saved = [json.loads(x) for x in w.rejected_path.read_text().splitlines()]
    assert len(saved) == 1 and saved[0]["ops"][0][2]["who"] == "someone"
    assert w.dropped == 1 and metrics.value("callcenter_records_dropped_events_total") == 1
    assert any("refused" in e for e in w.capture.errors())


def test_a_second_end_of_a_call_keeps_the_first(migrated_db, make_writer, clock):
    """A call ends once: a repeated CallEnded (a ghost restored from an old snapshot, a late
    hang-up report) adds no CDR and no terminal queue_log line, in this run or after a restart."""
    db = migrated_db
    w = make_writer()
    run = CallRun(clock, writer=w)
    run.run(2)
    first = next(e for e in run.events if isinstance(e, ev.CallEnded))
    w.event_emitted(first)
    w.event_emitted(ev.CallEnded(clock.seconds() + 9, first.call_id, first.queue, first.category, first.priority,
                                 ev.OUTCOME_LOST, 1.0, reason="ghost"))
    assert w.wait_written(20)
    w.stop()
    again = make_writer()  # a restart: the first end is in the database only
    again.event_emitted(ev.CallEnded(clock.seconds() + 10, first.call_id, first.queue, first.category,
                                     first.priority, ev.OUTCOME_LOST, 1.0, reason="ghost"))
    assert again.wait_written(20)
    assert count(db, m.CallRecord) == 2 and again.dropped == 0 and w.dropped == 0
    with Session(db.engine) as s:
        assert s.get(m.CallRecord, first.call_id).outcome == first.outcome
    assert again.queue_log_path == w.queue_log_path
    lines = [x for x in w.queue_log_path.read_text().splitlines()
             if f"|{first.call_id}|" in x and x.split("|")[4] in ("COMPLETECALLER", "COMPLETEAGENT", "ABANDON")]
    assert len(lines) == 1, lines


def test_writer_never_raises_into_the_engine(migrated_db, make_writer, clock):
    w = make_writer()
    w.event_emitted(object())  # not an event at all: set aside, logged
    w.event_emitted(ev.ChoiceMade(clock.seconds(), "nobody", "1"))
    assert w.wait_written(20)
    assert w.dropped == 0 and w.capture.errors() == []


def test_writer_thread_does_the_io(migrated_db, make_writer, clock, monkeypatch):
    w = make_writer()
    seen = []
    real = w._write_db

    def spy(items):
        seen.append(threading.current_thread().name)
        return real(items)

    monkeypatch.setattr(w, "_write_db", spy)
    CallRun(clock, writer=w).run(2)
    assert w.wait_written(20)
    assert seen and set(seen) == {"records-writer"}
