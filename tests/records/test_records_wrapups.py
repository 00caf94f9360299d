"""The seat's two hooks into the records writer, on SQLite and PostgreSQL (``db`` fixture):
``caller_hash_of`` (recent contacts in an offer) and ``wrapup_submitted`` (table ``wrapups``,
revision 0002), plus the migration of an existing 0001 database."""

from __future__ import annotations

import csv
import io
from datetime import datetime

from records_helpers import HASH_KEY, CallRun
from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session
from twisted.internet.task import Clock

from callcenter.app import Acd
from callcenter.cli import main as callcenter_main
from callcenter.engine import events as ev
from callcenter.masking import caller_hash
from callcenter.records import models as m
from callcenter.records.db import current_revision, head_revision, migrate, utc
from callcenter.records.queries import cdr_rows, wrapups_of, write_csv


def test_caller_hash_is_known_while_the_call_goes_on_and_forgotten_once_its_cdr_is_written(
        migrated_db, make_writer, clock):
    w = make_writer()
    run = CallRun(clock, writer=w)
    h = caller_hash("13812345678", HASH_KEY)
    w.call_registered("live-1", h)
    assert w.caller_hash_of("live-1") == h  # at once, before the writer thread ran
    assert w.caller_hash_of("never-registered") is None
    run.engine.call_arrived("live-1", "hotline", caller_masked="138****5678", category="other")
    assert w.wait_written(20)
    assert w.caller_hash_of("live-1") == h  # still ringing: the seat asks now

    run.engine.caller_hung_up("live-1")
    assert w.wait_written(20)
    assert w.caller_hash_of("live-1") is None  # CallEnded written: the CDR holds the hash
    with Session(migrated_db.engine) as s:
        assert s.get(m.CallRecord, "live-1").caller_hash == h

    w.call_registered("live-1", h)  # late registration (after the end): CDR updated, then forgotten
    assert w.wait_written(20)
    assert w.caller_hash_of("live-1") is None
    ids = run.run(3)
    assert w.wait_written(20)
    assert [w.caller_hash_of(c) for c in ids] == [None, None, None]
    assert not w._caller_hashes  # nothing left behind for ended calls
    assert w.dropped == 0 and w.capture.errors() == []


def test_caller_hashes_are_capped(migrated_db, make_writer):
    w = make_writer(max_caller_hashes=3)
    for i in range(5):
        w.call_registered(f"c{i}", f"h{i}")
    assert [w.caller_hash_of(f"c{i}") for i in range(5)] == [None, None, "h2", "h3", "h4"]
    w.call_registered("c2", "h2")  # registering again makes it the newest
    w.call_registered("c5", "h5")
    assert [w.caller_hash_of(f"c{i}") for i in (2, 3, 5)] == ["h2", None, "h5"]


def test_wrapup_is_written_with_ticket_fields_and_exported(migrated_db, make_writer, clock):
    w = make_writer()
    run = CallRun(clock, writer=w)
    ids = run.run(2)  # call-0 answered, call-1 answered
    ticket = {"工单号": "GD-2026-0001", "区县": "雁塔区"}
    assert w.wrapup_submitted(call_id=ids[0], agent_id="a1", pool="own", disposition="transferred",
                              notes="转住建局处理", ticket=ticket, at=clock.seconds()) is True
    clock.advance(3)
    assert w.wrapup_submitted(ids[0], "a1", "own", "resolved", "", {}, clock.seconds()) is True  # resent
    assert w.wait_written(20)
    with Session(migrated_db.engine) as s:
        rows = wrapups_of(s, ids[0])
        assert [(r["disposition"], r["agent_id"], r["pool"], r["notes"], r["ticket"]) for r in rows] == [
            ("transferred", "a1", "own", "转住建局处理", ticket), ("resolved", "a1", "own", "", {})]
        assert rows[0]["at"] == utc(clock.seconds() - 3)
        export = {r["call_id"]: r for r in cdr_rows(s)}
    assert export[ids[0]]["disposition"] == "resolved"  # the newest wrap-up counts
    assert export[ids[1]]["disposition"] is None
    out = io.StringIO()
    assert write_csv(export.values(), out) == 2
    parsed = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["disposition"] for r in parsed] == ["resolved", ""]
    assert w.dropped == 0 and w.capture.errors() == []


def test_wrapup_during_an_outage_is_taken_and_written_when_the_database_is_back(migrated_db, make_writer, clock):
    w = make_writer()
    with migrated_db.outage():
        assert w.wrapup_submitted("c-out", "a1", "own", "resolved", "n", {"k": "v"}, clock.seconds()) is True
        w.audit_logged("x", "y", {}, at=clock.seconds())  # something else queued behind it
    assert w.wait_written(30)
    with Session(migrated_db.engine) as s:
        assert [r["disposition"] for r in wrapups_of(s, "c-out")] == ["resolved"]
    assert w.dropped == 0


def test_wrapup_refused_by_a_stopped_writer_says_so(migrated_db, make_writer, clock):
    w = make_writer()
    w.stop(timeout=30)
    assert w.wrapup_submitted("c1", "a1", "own", "resolved", "", {}, clock.seconds()) is False
    assert w.dropped == 1


def test_seat_service_uses_the_writer_for_contacts_and_wrapups(migrated_db, make_writer, tmp_path):
    """The names the seat subsystem looks up with getattr exist, and its calls fit their signatures."""
    import time

    from twisted.internet import reactor

    clock = Clock()
    clock.advance(time.time() - 3600)  # the seat service asks for the last 7 days of the wall clock

    from callcenter.config import parse_config
    from callcenter.seats import service

    w = make_writer()
    run = CallRun(clock, writer=w)
    run.run(1)  # call-0 from number 0
    h = caller_hash(run.number(0), HASH_KEY)
    w.call_registered("again", h)  # the same caller calls again
    run.engine.call_arrived("again", "hotline", caller_masked="138****0000", category="other")
    assert w.wait_written(20)
    config = parse_config({
        "acd": {"state_dir": str(tmp_path / "acd"), "listen": {"seat_port": 0, "admin_port": 0}},
        "categories": [{"name": "other"}], "pools": [{"name": "own", "kind": "own"}],
        "queues": [{"name": "hotline", "pools": ["own"]}],
    }, env={})
    acd = Acd(config, reactor)
    acd.database_url, acd.records = migrated_db.url, w
    sub = service.make_subsystem(acd)  # not started: only its blocking helpers are called here
    try:
        assert sub.server.contacts is not None and sub.server.save_wrapup is not None
        contacts = sub.db.contacts("again")  # what goes into the offer of "again"
        assert [(c["call_id"], c["outcome"]) for c in contacts] == [("call-0", ev.OUTCOME_ANSWERED)]
        record = {"call_id": "call-0", "agent_id": "a1", "pool": "own", "disposition": "resolved",
                  "notes": "ok", "ticket": {"no": "1"}, "at": clock.seconds()}  # as SeatServer builds it
        assert sub.server.save_wrapup(record) is True  # -> wrapup_saved {stored: true}
        assert w.wait_written(20)
        with Session(migrated_db.engine) as s:
            assert [r["disposition"] for r in wrapups_of(s, "call-0")] == ["resolved"]
    finally:
        sub.db.close()


def test_migrate_upgrades_an_existing_0001_database_keeping_its_rows(db, capsys):
    migrate(db.url, "0001")
    assert current_revision(db.url) == "0001"
    t = datetime(2026, 11, 28, 8, 0)
    with db.engine.begin() as conn:
        conn.execute(m.CallRecord.__table__.insert(), [{
            "call_id": "old-1", "caller_masked": "138****5678", "caller_hash": "h", "queue": "hotline",
            "category": "other", "priority": 0, "arrival": t, "ended_at": t, "outcome": "abandoned",
            "reason": "", "wait_s": 3.0, "talk_s": 0.0, "short_abandon": True, "callback": False, "choices": []}])
    db.dispose()
    assert "wrapups" not in inspect(db.engine).get_table_names()
    db.dispose()
    assert callcenter_main(["migrate", "--database", db.url]) == 0
    assert f"revision {head_revision()}" in capsys.readouterr().out
    assert current_revision(db.url) == head_revision()
    with Session(db.engine) as s:
        assert s.get(m.CallRecord, "old-1").wait_s == 3.0
        assert s.scalar(select(text("count(*)")).select_from(m.Wrapup)) == 0
        s.add(m.Wrapup(call_id="old-1", agent_id="a1", pool="own", disposition="resolved", notes="",
                       ticket={}, at=t))
        s.commit()
        assert [r["disposition"] for r in cdr_rows(s)] == ["resolved"]


def test_wrapup_row_builder_clips_to_the_columns():
    from callcenter.records.cdr import INSERT, RecordBuilder

    (op,) = RecordBuilder().wrapup_submitted("c" * 200, "a" * 100, None, "d" * 100, "n" * 5000,
                                             {"k": 1}, Clock().seconds())
    assert op[0] == INSERT and op[1] == "wrapups"
    row = op[2]
    assert (len(row["call_id"]), len(row["agent_id"]), row["pool"], len(row["disposition"])) == (128, 64, "", 64)
    assert len(row["notes"]) == 5000 and row["ticket"] == {"k": "1"}
