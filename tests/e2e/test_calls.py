"""Whole calls through a real Asterisk 22: the project's unchanged dialplan, a real ACD, robot
seats, Local-channel callers and agent phones (tests/support/e2e.py).  Every test ends by
reconciling Asterisk's own CDRs (Master.csv) with the ACD's (SQL) and by checking that no
channel is left behind.
"""

from __future__ import annotations

import pytest

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


def test_connect_and_the_agent_hangs_up(make_world):
    w = make_world(agents("1001"))
    w.set_agent("1001", "answer:1:3")
    w.call("13812345678")
    (cdr,) = settle(w, 1).values()
    assert (cdr.outcome, cdr.agent_id, cdr.caller_masked) == ("answered", "1001", "138****5678")
    assert cdr.offers == [("1001", "answered")]
    assert 2.0 <= cdr.talk_s <= 4.5


def test_ring_no_answer_goes_to_the_next_agent(make_world):
    w = make_world(agents("1001", "1002"), start_robots=False, acd_kwargs={"ring_timeout_s": 3})
    w.set_agent("1001", "noanswer")
    w.set_agent("1002", "answer:0:2")
    w.robots.start(["1001"])  # logged in first: the longest idle, offered first
    w.wait_ready(1)
    w.robots.start(["1002"])
    w.wait_ready(2)
    w.call()
    (cdr,) = settle(w, 1).values()
    assert cdr.offers == [("1001", "no-answer"), ("1002", "answered")]
    assert (cdr.outcome, cdr.agent_id) == ("answered", "1002")


def test_busy_and_unreachable_agents_are_skipped(make_world):
    w = make_world(agents("1001", "1002", "1003"), start_robots=False)
    w.set_agent("1001", "busy")
    w.set_agent("1002", "unreachable")
    w.set_agent("1003", "answer:0:2")
    for n, agent in enumerate(("1001", "1002", "1003"), 1):
        w.robots.start([agent])
        w.wait_ready(n)
    w.call()
    (cdr,) = settle(w, 1).values()
    assert cdr.offers == [("1001", "busy"), ("1002", "unavailable"), ("1003", "answered")]
    assert (cdr.outcome, cdr.agent_id) == ("answered", "1003")


def test_caller_hangs_up_while_waiting(make_world):
    w = make_world([])  # nobody logged in: the caller waits on hold
    w.call(hangup_after=2)
    (cdr,) = settle(w, 1).values()
    assert cdr.outcome == "abandoned"
    assert cdr.offers == []


def test_caller_hangs_up_while_ringing(make_world):
    w = make_world(agents("1001"), acd_kwargs={"ring_timeout_s": 20})
    w.set_agent("1001", "noanswer")
    w.call(hangup_after=3)
    (cdr,) = settle(w, 1).values()
    assert cdr.outcome == "abandoned"
    assert [a for a, _ in cdr.offers] == ["1001"]


def test_caller_hangs_up_while_talking(make_world):
    w = make_world(agents("1001"))
    w.set_agent("1001", "answer:0:600")
    w.call(hangup_after=4)
    (cdr,) = settle(w, 1).values()
    assert (cdr.outcome, cdr.agent_id) == ("answered", "1001")
    assert 1.5 <= cdr.talk_s <= 5.0


def test_several_calls_at_once_all_reconcile(make_world):
    ids = [f"10{i:02d}" for i in range(1, 7)]
    w = make_world(agents(*ids))
    for i, a in enumerate(ids):
        w.set_agent(a, f"answer:{i % 2}:{2 + i % 3}")
    for n in range(8):  # more callers than agents: two wait for the first to finish
        w.call(f"1390000{n:04d}")
    cdrs = settle(w, 8)
    assert sorted(c.outcome for c in cdrs.values()) == ["answered"] * 8
