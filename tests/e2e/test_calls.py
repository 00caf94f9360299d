"""Whole calls through a real Asterisk 22: the project's unchanged dialplan, a real ACD, robot
seats, Local-channel callers and agent phones (tests/support/e2e.py).  Every test ends by
reconciling Asterisk's own CDRs (Master.csv) with the ACD's (SQL) and by checking that no
channel is left behind.  Each world costs ~20-30 s to start on a loaded 2-core machine, so a
test plays several independent calls in one world where it can.
"""

from __future__ import annotations

import pytest

from callcenter.masking import mask_number
from tests.support.e2e import AgentSpec

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]


def agents(*ids: str, pool: str = "own-12345") -> list[AgentSpec]:
    return [AgentSpec(i, pool) for i in ids]


def settle(world, calls: int, **kw):
    """Wait for every call to end on both sides, then reconcile: 0 mismatches, 0 channels."""
    cdrs = world.wait_done(calls)
    assert world.reconcile(**kw) == []
    assert world.asterisk.active_channels() == 0
    return cdrs


def test_connect_agent_hangs_up_then_caller_hangs_up_while_talking(make_world):
    w = make_world(agents("1001"))
    w.set_agent("1001", "answer:1:3")  # the agent ends the conversation after 3 s
    w.call("13812345678")
    (first,) = settle(w, 1).values()
    assert (first.outcome, first.agent_id, first.caller_masked) == ("answered", "1001", mask_number("13812345678"))
    assert first.offers == [("1001", "answered")]
    assert 2.0 <= first.talk_s <= 4.5
    w.wait_ready(1)  # wrap-up filed by the robot
    w.set_agent("1001", "answer:0:600")  # now the caller ends it, about 4 s after being answered
    w.call("13900001111", hangup_after=4)
    cdrs = settle(w, 2)
    (second,) = [c for c in cdrs.values() if c.call_id != first.call_id]
    assert (second.outcome, second.agent_id, second.caller_masked) == ("answered", "1001", mask_number("13900001111"))
    assert 1.0 <= second.talk_s <= 5.0


def test_no_answer_busy_and_unreachable_agents_are_skipped_in_turn(make_world):
    w = make_world(agents("1001", "1002", "1003", "1004"), start_robots=False, acd_kwargs={"ring_timeout_s": 3})
    for agent, how in (("1001", "noanswer"), ("1002", "busy"), ("1003", "unreachable"), ("1004", "answer:0:2")):
        w.set_agent(agent, how)
    for n, agent in enumerate(("1001", "1002", "1003", "1004"), 1):
        w.robots.start([agent])  # logged in one after the other: longest idle first
        w.wait_ready(n)
    w.call()
    (cdr,) = settle(w, 1).values()
    assert cdr.offers == [("1001", "no-answer"), ("1002", "busy"), ("1003", "unavailable"), ("1004", "answered")]
    assert (cdr.outcome, cdr.agent_id) == ("answered", "1004")


def test_callers_hang_up_while_waiting_during_an_announcement_and_during_the_notice(make_world):
    w = make_world([], acd_kwargs={"announce_every_s": 1})  # nobody logged in: everyone waits
    w.call("13800000001", hangup_after=1)  # on hold (music)
    w.call("13800000002", hangup_after=2.5)  # position announcements every second by then
    w.call("13800000003", dtmf="1", dtmf_after=0.5, hangup_after=1.2)  # pressed 1: the policy notice
    cdrs = settle(w, 3)
    assert sorted(c.outcome for c in cdrs.values()) == ["abandoned"] * 3
    assert all(c.offers == [] for c in cdrs.values())


def test_caller_hangs_up_while_an_agent_rings(make_world):
    w = make_world(agents("1001"), acd_kwargs={"ring_timeout_s": 20})
    w.set_agent("1001", "noanswer")
    w.call(hangup_after=3)
    (cdr,) = settle(w, 1).values()
    assert cdr.outcome == "abandoned"
    assert [a for a, _ in cdr.offers] == ["1001"]


def test_more_callers_than_agents_all_connect_and_reconcile(make_world):
    ids = [f"10{i:02d}" for i in range(1, 5)]
    w = make_world(agents(*ids))
    for i, a in enumerate(ids):
        w.set_agent(a, f"answer:{i % 2}:{2 + i % 2}")
    for n in range(6):  # two callers wait for the first conversations to end
        w.call(f"1390000{n:04d}")
    cdrs = settle(w, 6)
    assert sorted(c.outcome for c in cdrs.values()) == ["answered"] * 6


def test_classic_agi_scripts_through_the_relay(make_world):
    """CC_TRANSPORT=classic (a channel variable overrides the dialplan's global): the pyst2
    scripts in agi_scripts/ run under the interpreter docs/agi.md names, relay to the ACD."""
    w = make_world(agents("1001"))
    w.set_agent("1001", "answer:0:2")
    w.call("13812340000", variables={"CC_TRANSPORT": "classic"})
    (cdr,) = settle(w, 1).values()
    assert (cdr.outcome, cdr.agent_id) == ("answered", "1001")
    rows = w.asterisk.cdrs()
    assert any(r.lastapp == "AGI" and "hotline_inbound.py" in r.lastdata for r in rows) or \
        "hotline_inbound.py" in w.asterisk.messages() or any("cc-agent-answered" in r.lastdata for r in rows)
