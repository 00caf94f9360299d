"""The supervisor's CDR row: pure formatting, no database."""

from __future__ import annotations

from datetime import datetime

import pytest

from callcenter.records.export import SUPERVISOR_COLUMNS, UnknownZone, display_zone, supervisor_row, ticket_reference

ZONE = display_zone("Asia/Shanghai")


def row(**kw):
    base = {"call_id": "c1", "queue": "hotline", "arrival": datetime(2026, 11, 28, 0, 0, 0),
            "answered_at": datetime(2026, 11, 28, 0, 0, 15), "ended_at": datetime(2026, 11, 28, 0, 5, 0),
            "outcome": "answered", "wait_s": 15.0, "talk_s": 284.5, "wrapup_s": 0.25, "agent_id": "1001",
            "caller_hash": "abc", "caller_masked": "138****0000", "ticket": {"title": "路灯坏了"}}
    base.update(kw)
    return base


def test_times_carry_their_offset_and_seconds_round_half_up():
    out = supervisor_row(row(), ZONE, {"1001": "张三"})
    assert list(out) == SUPERVISOR_COLUMNS and "caller_hash" not in out
    assert out["arrival"] == "2026-11-28T08:00:00+08:00"
    assert out["ended_at"] == "2026-11-28T08:05:00+08:00"
    assert (out["wait_s"], out["talk_s"], out["wrapup_s"]) == ("15", "285", "0")
    assert (out["agent_name"], out["ticket"]) == ("张三", "路灯坏了")


@pytest.mark.parametrize(("wait", "answered", "flag"), [
    (15.0, True, "yes"),      # "within" is <= 15 s, as in the recording rules
    (15.25, True, "no"),
    (3.0, False, "no"),       # abandoned early is not answered within 15 s
])
def test_within_15s_flag(wait, answered, flag):
    r = row(wait_s=wait, answered_at=datetime(2026, 11, 28) if answered else None)
    assert supervisor_row(r, ZONE, {})["within_15s"] == flag


def test_ticket_reference_prefers_a_named_reference_over_the_title():
    assert ticket_reference({"title": "路灯", "ref": "GD-2026-0042"}) == "GD-2026-0042"
    assert ticket_reference({"district": "A"}) == ""
    assert ticket_reference(None) == ""


def test_unknown_zone_is_a_clear_error():
    with pytest.raises(UnknownZone, match="time zone"):
        display_zone("Mars/Olympus")
