"""Reconciliation rules of the engine (docs/routing.md, *Reconciliation*), on task.Clock.

Restored calls are provisional until confirmed; the ACD's own ends (lost-on-restart,
acd-shutdown, admin-ended) free the agent; a call never ends twice.
"""

import pytest
from twisted.internet.task import Clock

from callcenter.engine import Engine
from callcenter.engine.errors import DuplicateCall, EngineError, UnknownCall

from .conftest import Harness

GRACE = 30.0


def restored(h: Harness) -> Harness:
    """The same state on a new engine (a takeover or a restart), reconciled with GRACE."""
    clock = Clock()
    clock.advance(h.clock.seconds())
    out = Harness.__new__(Harness)
    out.config, out.clock = h.config, clock
    out.engine = Engine.restore(h.config, clock, h.engine.snapshot())
    out.events = []
    out.engine.subscribe(out.events.append)
    out.engine.reconcile_restored(GRACE)
    return out


def ended(h: Harness) -> dict[str, str]:
    return {e.call_id: e.outcome for e in h.of("CallEnded")}


def busy_world(h: Harness) -> None:
    """a1 talking on c1, a2 ringing with c2, c3 waiting, a callback c4 waiting."""
    h.agent("a1")
    h.agent("a2")
    h.engine.call_arrived("c1", "hotline")
    h.engine.offer_answered("c1", "a1")
    h.engine.call_arrived("c2", "hotline")
    h.engine.call_arrived("c3", "hotline")
    h.engine.call_arrived("c4", "hotline")
    h.engine.callback_requested("c4")
    h.clock.advance(1)


def test_unconfirmed_restored_calls_end_lost_on_restart_once(h):
    busy_world(h)
    r = restored(h)
    assert sorted(r.engine.provisional_calls()) == ["c1", "c2", "c3"]  # the waiting callback holds no line
    r.clock.advance(GRACE - 0.01)
    assert r.of("CallEnded") == []
    r.clock.advance(0.02)
    assert ended(r) == {"c1": "lost-on-restart", "c2": "lost-on-restart", "c3": "lost-on-restart"}
    assert len(r.of("CallEnded")) == 3
    # the agents converge: the talker to wrap-up then ready, the ringing one back to ready
    assert r.engine.agent_info("a1")["state"] == "wrap-up"
    r.clock.advance(10)
    assert {r.engine.agent_info(a)["state"] for a in ("a1", "a2")} <= {"ready", "offered"}
    # the callback was offered to a freed agent, not ended
    assert "c4" in r.engine.calls()
    # nothing ends twice, whatever comes late from the switch
    with pytest.raises(UnknownCall):
        r.engine.caller_hung_up("c1")
    with pytest.raises(DuplicateCall):
        r.engine.call_arrived("c3", "hotline")
    r.clock.advance(1000)
    assert len([e for e in r.of("CallEnded") if e.call_id in ("c1", "c2", "c3")]) == 3


def test_confirmed_calls_stay_and_end_normally(h):
    busy_world(h)
    r = restored(h)
    r.engine.call_confirmed("c3")  # its AGI session resumed
    r.engine.agent_confirmed("a1")  # the seat of the agent talking on c1 resumed
    r.engine.call_confirmed("nope")  # unknown: nothing to do
    r.clock.advance(GRACE + 1)
    assert ended(r) == {"c2": "lost-on-restart"}
    assert r.engine.call_info("c1")["state"] == "talking"
    r.engine.call_completed("c1")
    assert ended(r)["c1"] == "answered"


def test_offer_answered_after_restore_keeps_call(h):
    busy_world(h)
    r = restored(h)
    r.engine.call_confirmed("c2")
    r.engine.offer_answered("c2", "a2")
    r.clock.advance(GRACE + 1)
    assert r.engine.call_info("c2")["state"] == "talking"


def test_end_call_in_every_state_frees_the_agent(h):
    busy_world(h)
    h.events.clear()
    h.engine.end_call("c2", "admin-ended", "stuck")  # ringing: offer withdrawn, no miss
    assert ended(h) == {"c2": "admin-ended"}
    assert h.engine.agent_info("a2")["misses"] == 0
    # a2 was free and took the next waiting call
    assert h.engine.agent_info("a2")["call_id"] == "c3"
    h.engine.end_call("c1", "admin-ended", "stuck")
    assert h.engine.agent_info("a1")["state"] == "wrap-up"
    with pytest.raises(UnknownCall):
        h.engine.end_call("c1")
    with pytest.raises(EngineError):
        h.engine.end_call("c3", "answered")


def test_end_all_calls_at_shutdown_offers_nothing(h):
    busy_world(h)
    h.events.clear()
    h.engine.end_all_calls("acd-shutdown", "clean stop")
    # c1 was talking: its caller was connected (接通) and talks on in the switch, so it counts as
    # answered, with the stop as its reason; the others end acd-shutdown
    assert ended(h) == {"c1": "answered", **{c: "acd-shutdown" for c in ("c2", "c3", "c4")}}
    (c1_end,) = [e for e in h.of("CallEnded") if e.call_id == "c1"]
    assert c1_end.reason == "clean stop" and c1_end.agent_id == "a1"
    assert h.of("CallOffered") == []
    assert h.engine.calls() == []


def test_forced_logout_on_call_converges(h):
    busy_world(h)
    h.engine.agent_logged_out("a1", "seat gone")  # not forced: waits for the call
    assert h.engine.agent_info("a1")["logout_pending"]
    h.engine.agent_logged_out("a1", "supervisor", force=True)
    assert h.engine.agent_info("a1") is None
    assert ended(h)["c1"] == "admin-ended"


def test_seat_grace_logout_then_lost_call_converges(h):
    """The seat layer's grace logs out an agent on a restored call nobody confirms: both converge."""
    busy_world(h)
    r = restored(h)
    r.engine.agent_logged_out("a1", "grace-expired")
    r.clock.advance(GRACE + 0.1)
    assert r.engine.agent_info("a1") is None
    assert ended(r)["c1"] == "lost-on-restart"


def test_call_not_queued_gives_one_end(h):
    h.engine.call_not_queued("s1", "hotline", "shed", reason="admission")
    h.engine.call_not_queued("e1", "hotline", "abandoned", reason="before-queue", wait_s=2.0)
    assert ended(h) == {"s1": "shed", "e1": "abandoned"}
    assert h.of("CallEnded")[1].short_abandon
    with pytest.raises(DuplicateCall):
        h.engine.call_not_queued("s1", "hotline", "shed")
    with pytest.raises(DuplicateCall):
        h.engine.call_arrived("s1", "hotline")
    with pytest.raises(EngineError):
        h.engine.call_not_queued("x", "hotline", "answered")


def test_ended_ids_survive_a_snapshot(h):
    h.agent("a1")
    h.engine.call_arrived("c1", "hotline")
    h.engine.caller_hung_up("c1")
    r = restored(h)
    with pytest.raises(DuplicateCall):
        r.engine.call_arrived("c1", "hotline")


def test_journal_replays_new_inputs(h):
    records = []
    h.engine.subscribe_inputs(records.append)
    busy_world(h)
    h.engine.end_call("c3", "admin-ended", "x")
    h.engine.call_not_queued("s1", "hotline", "shed")
    h.engine.agent_logged_out("a1", "x", force=True)
    other = Harness()
    for rec in records:
        other.engine.apply_input(rec)
    assert sorted(other.engine.calls()) == sorted(h.engine.calls())
    assert ended(other) == ended(h)


def test_a_clean_start_carries_only_the_emergency_plans_and_ended_ids(h):
    busy_world(h)
    h.engine.emergency_set("hotline", "surge", by="night-supervisor")
    switched_at = h.clock.seconds()
    h.engine.end_all_calls("acd-shutdown", "clean stop")
    clock = Clock()
    clock.advance(h.clock.seconds() + 60)
    fresh = Engine.carry_over(h.config, clock, h.engine.snapshot())
    assert fresh.calls() == [] and fresh.agents() == []
    assert fresh.carried_over() == {"hotline": {"plan": "surge", "by": "night-supervisor", "since": switched_at}}
    q = next(q for q in fresh.status()["queues"] if q["name"] == "hotline")
    assert (q["emergency"], q["emergency_by"], q["emergency_since"]) == ("surge", "night-supervisor", switched_at)
    with pytest.raises(DuplicateCall):  # a caller resuming a call that ended at the stop
        fresh.call_arrived("c3", "hotline")
