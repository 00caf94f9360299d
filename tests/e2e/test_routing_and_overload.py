"""Tiers, the lender cap, announcements, DTMF, callbacks and admission shedding behind a real
Asterisk 22 (tests/support/e2e.py); every test reconciles both sides' CDRs."""

from __future__ import annotations

import pytest

from callcenter.testing.polling import wait_until
from tests.support.e2e import AgentSpec

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]


def settle(world, calls: int, **kw):
    cdrs = world.wait_done(calls)
    assert world.reconcile(**kw) == []
    assert world.asterisk.active_channels() == 0
    return cdrs


def waiting(world) -> int:
    return sum(q["waiting"] for q in world.acd.status()["queues"])


def test_tier_1_is_offered_only_after_its_overflow_delay(make_world):
    w = make_world([AgentSpec("8001", "remote-cities")], acd_kwargs={"tier_after_s": (3, 60)})
    w.set_agent("8001", "answer:0:2")
    w.call()
    (cdr,) = settle(w, 1).values()
    assert (cdr.outcome, cdr.agent_id) == ("answered", "8001")
    # tiers[0].after_s = 3: not before (the engine's own clock, both stamps from the ACD)
    assert cdr.offered_at[0] - cdr.arrival >= 3.0 - 0.05


def test_lender_cap_keeps_half_the_lenders_agents(make_world):
    lenders = [AgentSpec("7001", "lender-12333"), AgentSpec("7002", "lender-12333")]
    w = make_world(lenders, acd_kwargs={"tier_after_s": (0, 0)})
    w.acd.post("/api/v1/lenders/lender-12333/home-load", {"waiting": 0})
    for a in ("7001", "7002"):
        w.set_agent(a, "answer:0:3")
    w.call("13800000001")
    w.call("13800000002")
    cdrs = settle(w, 2)
    first, second = sorted(cdrs.values(), key=lambda c: c.offered_at[0])
    assert first.outcome == second.outcome == "answered"
    # max_share 0.5 of 2 logged-in lender agents: one on our calls at a time, so the second
    # call is offered only once the first conversation ended
    assert second.offered_at[0] >= first.ended - 0.05


def test_caller_hangs_up_during_a_position_announcement(make_world):
    w = make_world([], acd_kwargs={"announce_every_s": 1})
    w.call(hangup_after=2.5)
    (cdr,) = settle(w, 1).values()
    assert cdr.outcome == "abandoned"


def test_caller_presses_1_and_hangs_up_during_the_notice(make_world):
    w = make_world([])
    w.call(dtmf="1", dtmf_after=1, hangup_after=1.5)
    (cdr,) = settle(w, 1).values()
    assert cdr.outcome == "abandoned"


def test_press_2_for_a_callback_rings_an_agent_then_the_caller(make_world):
    w = make_world([AgentSpec("1001")], start_robots=False)
    w.set_agent("1001", "answer:0:30")
    w.call("13912345678", dtmf="2", dtmf_after=1)
    wait_until(lambda: sum(q["callbacks_waiting"] for q in w.acd.status()["queues"]) == 1, 30,
               "the callback request waiting in the queue")
    w.robots.start(["1001"])  # now an agent: the ACD places the callback through a call file
    (cdr,) = settle(w, 1).values()  # one call, one CDR: the callback completes the original call
    assert (cdr.outcome, cdr.agent_id, cdr.callback) == ("called-back", "1001", True)
    assert cdr.offers == [("1001", "answered")]
    # the call file rang the agent, then [cc-callback] dialled the caller's number: both answered
    rows = w.asterisk.cdrs()
    assert any(r.channel.startswith("Local/1001@e2e-agents-") and r.disposition == "ANSWERED" for r in rows)
    assert any(r.channel.startswith("Local/13912345678@e2e-pstn-") and r.disposition == "ANSWERED" for r in rows)


def test_a_call_over_max_calls_is_shed_to_the_dialplan_fallback(make_world):
    w = make_world([], acd_kwargs={"max_calls": 1})
    w.call("13800000001", hangup_after=8)
    wait_until(lambda: waiting(w) == 1, 20, "the first caller waiting")
    w.call("13800000002", hangup_after=20)
    wait_until(lambda: w.acd.metric("callcenter_agi_shed_total") >= 1, 20, "the second call shed")
    cdrs = settle(w, 2, shed_expected=1)  # the shed call has its CDR too (outcome "shed")
    assert sorted(c.outcome for c in cdrs.values()) == ["abandoned", "shed"]
    # the shed caller went to CC_FALLBACK_DIAL (the fallback ring group) and was answered there
    fallback = [r for r in w.asterisk.cdrs() if r.channel.startswith("Local/fallback@e2e-fallback-")]
    assert [r.disposition for r in fallback] == ["ANSWERED"]
