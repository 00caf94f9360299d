"""Behaviour of the routing engine, driven by task.Clock."""

import pytest

from callcenter.engine import CallNotWaiting, EngineError, IllegalTransition, UnknownCall

from .conftest import Harness, small_config


def offers(h):
    return [(e.call_id, e.agent_id, e.tier) for e in h.of("CallOffered")]


def test_call_goes_to_ready_own_agent_at_once(h):
    h.agent("a1")
    h.engine.call_arrived("c1", "hotline", caller_masked="138****5678")
    assert offers(h) == [("c1", "a1", 0)]
    offered = h.of("CallOffered")[0]
    assert offered.endpoint == "PJSIP/a1" and offered.ring_timeout_s == 10
    h.engine.offer_answered("c1", "a1")
    assert h.engine.agent_info("a1")["state"] == "on-call"
    h.clock.advance(100)
    h.engine.call_completed("c1", by="agent")
    ended = h.of("CallEnded")
    assert [(e.outcome, e.talk_s, e.wait_s) for e in ended] == [("answered", 100, 0)]
    assert h.engine.agent_info("a1")["state"] == "wrap-up"
    h.clock.advance(5)
    assert h.engine.agent_info("a1")["state"] == "ready"


def test_longest_idle_agent_is_chosen():
    h = Harness()
    h.agent("a1")
    h.clock.advance(1)
    h.agent("a2")
    h.engine.call_arrived("c1", "hotline")
    assert offers(h) == [("c1", "a1", 0)]


def test_fifo_within_priority_and_priority_first(h):
    h.engine.call_arrived("c1", "hotline", category="other")
    h.clock.advance(1)
    h.engine.call_arrived("c2", "hotline", category="other")
    h.engine.call_arrived("c3", "hotline", category="policy")  # priority 5
    assert h.engine.position("c3")[0] == 1
    assert h.engine.position("c1")[0] == 2
    assert h.engine.position("c2")[0] == 3
    h.agent("a1")
    assert offers(h) == [("c3", "a1", 0)]


def test_overflow_to_remote_tier_after_wait_keeps_place():
    h = Harness()
    h.agent("own1")
    h.engine.call_arrived("c0", "hotline")  # takes own1
    h.engine.offer_answered("c0", "own1")
    h.engine.call_arrived("c1", "hotline")
    h.agent("r1", pool="remote")
    assert offers(h) == [("c0", "own1", 0)]  # remote may not take c1 yet
    h.clock.advance(19.9)
    assert len(offers(h)) == 1
    h.clock.advance(0.1)
    assert offers(h)[-1] == ("c1", "r1", 1)
    unlocked = h.of("TierUnlocked")
    assert unlocked[-1].tier == 1 and unlocked[-1].cause == "after"


def test_urgent_unlocks_tiers_at_once():
    h = Harness()
    h.agent("r1", pool="remote")
    h.engine.call_arrived("c1", "hotline", category="urgent")
    assert offers(h) == [("c1", "r1", 1)]


def test_no_answer_returns_call_to_its_place_and_next_agent_rings():
    h = Harness()
    h.agent("a1")
    h.engine.call_arrived("c1", "hotline")
    h.engine.call_arrived("c2", "hotline")
    h.clock.advance(1)
    h.agent("a2")  # takes c2
    h.clock.advance(9)  # a1's ring timeout
    ended = h.of("OfferEnded")
    assert ended[0].result == "no-answer" and ended[0].agent_id == "a1"
    # c1 keeps its place ahead of c2: a1, ready again, is re-offered c1
    assert offers(h)[-1] == ("c1", "a1", 0)
    assert h.engine.call_info("c1")["attempt"] == 2


def test_max_no_answer_makes_agent_not_ready(h):
    h.agent("a1")
    h.engine.call_arrived("c1", "hotline")
    h.clock.advance(10)
    h.clock.advance(10)
    info = h.engine.agent_info("a1")
    assert info["state"] == "not-ready" and info["reason"] == "no-answer"
    assert h.engine.call_info("c1")["state"] == "waiting"


def test_rejected_call_goes_to_next_agent_not_back_to_rejecter():
    h = Harness()
    h.agent("a1")
    h.engine.call_arrived("c1", "hotline")
    h.engine.offer_failed("c1", "a1", "rejected")
    assert h.engine.agent_info("a1")["state"] == "ready"
    assert h.engine.call_info("c1")["state"] == "waiting"
    h.agent("a2")
    assert offers(h)[-1] == ("c1", "a2", 0)


def test_required_skill_only_goes_to_skilled_agents():
    h = Harness()
    h.agent("plain")
    h.engine.call_arrived("c1", "hotline", category="labour")
    assert offers(h) == []
    h.agent("lab", skills={"labour": 2})
    assert offers(h) == [("c1", "lab", 0)]


def test_preferred_skill_and_higher_level_first():
    h = Harness()
    h.agent("plain")
    h.agent("epi1", skills={"epi": 1})
    h.agent("epi4", skills={"epi": 4})
    h.engine.call_arrived("c1", "hotline", category="policy")
    assert offers(h) == [("c1", "epi4", 0)]
    h.engine.call_arrived("c2", "hotline", category="other")
    assert offers(h)[-1] == ("c2", "plain", 0)


def test_preferred_skill_falls_back_to_any_agent():
    h = Harness()
    h.agent("plain")
    h.engine.call_arrived("c1", "hotline", category="policy")
    assert offers(h) == [("c1", "plain", 0)]


def test_lender_gate_and_cap():
    h = Harness()
    for i in range(4):
        h.agent(f"l{i}", pool="lend")
    h.engine.call_arrived("c1", "hotline", category="urgent")
    assert offers(h) == []  # no home-load report yet: protect the lender
    h.engine.home_load_reported("lend", 5, h.clock.seconds())
    assert offers(h) == []  # lender's own line too busy (5 > 3)
    h.engine.home_load_reported("lend", 1, h.clock.seconds())
    assert offers(h) == [("c1", "l0", 2)]
    for i in range(2, 5):
        h.engine.call_arrived(f"c{i}", "hotline", category="urgent")
    # cap: floor(0.5 * 4) = 2 of the lender's agents at once
    assert len(offers(h)) == 2
    assert h.engine.status()["pools"][2]["busy"] == 2
    h.engine.offer_answered("c1", "l0")
    h.engine.call_completed("c1")
    h.clock.advance(5)  # wrap-up over: a slot is free again
    assert len(offers(h)) == 3
    # a report older than the TTL closes the gate
    h.clock.advance(61)
    h.engine.call_arrived("c9", "hotline", category="urgent")
    assert h.engine.call_info("c9")["state"] == "waiting"


def test_caller_hangup_while_waiting_is_one_abandon(h):
    h.engine.call_arrived("c1", "hotline")
    h.clock.advance(3)
    h.engine.caller_hung_up("c1")
    (ended,) = h.of("CallEnded")
    assert ended.outcome == "abandoned" and ended.short_abandon and ended.wait_s == 3
    with pytest.raises(UnknownCall):
        h.engine.caller_hung_up("c1")


def test_caller_hangup_while_ringing_frees_agent(h):
    h.agent("a1")
    h.engine.call_arrived("c1", "hotline")
    h.engine.caller_hung_up("c1")
    assert [e.result for e in h.of("OfferEnded")] == ["caller-hung-up"]
    assert h.engine.agent_info("a1")["state"] == "ready"
    with pytest.raises(UnknownCall):
        h.engine.offer_accepted("c1", "a1")
    assert len(h.of("CallEnded")) == 1


def test_callback_keeps_place_and_calls_back():
    h = Harness()
    h.engine.call_arrived("c1", "hotline")
    h.engine.call_arrived("c2", "hotline")
    h.engine.callback_requested("c1")
    h.engine.caller_hung_up("c1")  # the line ends by design: place kept
    assert h.engine.position("c1")[0] == 1
    with pytest.raises(CallNotWaiting):
        h.engine.callback_requested("c1")
    h.agent("a1")
    off = h.of("CallOffered")[-1]
    assert off.call_id == "c1" and off.callback
    h.engine.offer_answered("c1", "a1")
    h.engine.call_completed("c1")
    assert h.of("CallEnded")[-1].outcome == "called-back"


def test_abandoned_calls_go_to_callback_list_by_policy():
    h = Harness(small_config(callback={"abandoned_to_callback": True, "min_wait_for_abandoned_s": 5}))
    h.engine.call_arrived("c1", "hotline")
    h.clock.advance(10)
    h.engine.caller_hung_up("c1")
    queued = h.of("CallQueued")[-1]
    assert queued.callback and queued.origin_call_id == "c1"
    assert h.of("CallEnded")[-1].outcome == "abandoned"


def test_max_wait_sends_to_fallback(h):
    h.engine.call_arrived("c1", "hotline")
    h.clock.advance(300)
    (ended,) = h.of("CallEnded")
    assert ended.outcome == "fallback" and ended.reason == "max-wait"


def test_position_announcements(h):
    h.engine.call_arrived("c1", "hotline")
    h.engine.call_arrived("c2", "hotline")
    h.clock.advance(30)
    ann = {e.call_id: e.position for e in h.of("PositionAnnounced")}
    assert ann == {"c1": 1, "c2": 2}


def test_emergency_plan_opens_all_tiers_for_waiting_callers(h):
    h.agent("own1")
    h.engine.call_arrived("c0", "hotline")
    h.engine.offer_answered("c0", "own1")
    h.agent("r1", pool="remote")
    h.engine.call_arrived("c1", "hotline")
    assert offers(h) == [("c0", "own1", 0)]
    h.engine.emergency_set("hotline", "surge", by="duty-supervisor")
    assert offers(h)[-1] == ("c1", "r1", 1)
    assert h.of("EmergencyChanged")[0].by == "duty-supervisor"
    with pytest.raises(EngineError):
        h.engine.emergency_set("hotline", "nonexistent")


def test_ewt_overflow_opens_tier_for_the_whole_queue():
    h = Harness(small_config(tiers=[{"tier": 1, "ewt_over_s": 100}, {"tier": 2, "after_s": 40}]))
    h.agent("own1")
    h.agent("r1", pool="remote", ready=False)
    h.engine.call_arrived("c0", "hotline")  # own1 rings
    h.engine.call_arrived("c1", "hotline")  # ewt = 1 * 240 / 1 > 100
    h.engine.agent_ready("r1")
    assert offers(h)[-1] == ("c1", "r1", 1)
    assert h.of("QueueOverflowChanged")[0].tier == 1


def test_illegal_transition_changes_nothing(h):
    h.agent("a1", ready=False)
    before = h.engine.snapshot()
    with pytest.raises(IllegalTransition):
        h.engine.wrapup_ended("a1")
    assert h.engine.snapshot() == before


def test_logout_while_ringing_reoffers(h):
    h.agent("a1")
    h.agent("a2", ready=False)
    h.engine.call_arrived("c1", "hotline")
    h.engine.agent_ready("a2")
    h.engine.agent_logged_out("a1", "supervisor")
    assert [e.result for e in h.of("OfferEnded")] == ["agent-logged-out"]
    assert offers(h)[-1] == ("c1", "a2", 0)
    assert h.engine.agent_info("a1") is None


def test_logout_on_call_happens_after_the_call(h):
    h.agent("a1")
    h.engine.call_arrived("c1", "hotline")
    h.engine.offer_answered("c1", "a1")
    h.engine.agent_logged_out("a1")
    assert h.engine.agent_info("a1")["logout_pending"]
    h.engine.call_completed("c1")
    assert h.engine.agent_info("a1") is None


def test_capacity_limit_sends_new_calls_to_fallback():
    cfg = small_config()
    cfg = cfg.model_copy(update={"acd": cfg.acd.model_copy(update={"max_calls": 2})})
    h = Harness(cfg)
    for i in range(3):
        h.engine.call_arrived(f"c{i}", "hotline")
    (ended,) = h.of("CallEnded")
    assert ended.call_id == "c2" and ended.outcome == "fallback" and ended.reason == "capacity"


def test_listener_reentrancy_keeps_event_order(h):
    seen = []

    def auto_answer(event):
        seen.append(event.kind)
        if event.kind == "CallOffered":
            h.engine.offer_answered(event.call_id, event.agent_id)

    h.engine.subscribe(auto_answer)
    h.agent("a1")
    h.engine.call_arrived("c1", "hotline")
    assert seen[-4:] == ["CallOffered", "OfferEnded", "AgentStateChanged", "CallAnswered"]
    assert h.kinds() == seen


def test_replace_config_keeps_calls_and_refuses_stranding(h):
    h.engine.call_arrived("c1", "hotline")
    h.agent("a1", ready=False)
    new = small_config(max_wait_s=900)
    h.engine.replace_config(new)
    assert h.engine.call_info("c1")["state"] == "waiting"
    h.engine.agent_ready("a1")
    assert offers(h) == [("c1", "a1", 0)]
    from callcenter.config import parse_config

    stripped = parse_config(
        {"categories": [{"name": "other"}], "pools": [{"name": "x", "kind": "own"}],
         "queues": [{"name": "q", "pools": ["x"]}]}, env={})
    before = h.engine.snapshot()
    with pytest.raises(EngineError):
        h.engine.replace_config(stripped)
    assert h.engine.snapshot() == before


def test_cancelled_offer_is_no_fault_of_the_agent():
    h = Harness()  # max_no_answer is 2 for the own pool
    h.agent("a1")
    h.engine.call_arrived("c1", "hotline")
    h.engine.offer_failed("c1", "a1", "cancelled")
    h.engine.offer_failed("c1", "a1", "cancelled")
    info = h.engine.agent_info("a1")
    assert info["state"] == "offered" and info["misses"] == 0  # re-offered, never made not-ready
    assert [e.result for e in h.of("OfferEnded")] == ["cancelled", "cancelled"]


def test_callbacks_hold_no_line_and_do_not_count_toward_capacity():
    cfg = small_config()
    cfg = cfg.model_copy(update={"acd": cfg.acd.model_copy(update={"max_calls": 2})})
    h = Harness(cfg)
    h.engine.call_arrived("c1", "hotline")
    h.engine.call_arrived("c2", "hotline")
    h.engine.callback_requested("c1")
    h.engine.call_arrived("c3", "hotline")  # c1 is virtual now: room for c3
    assert h.engine.call_info("c3")["state"] == "waiting"
    h.engine.call_arrived("c4", "hotline")
    assert h.of("CallEnded")[-1].call_id == "c4" and h.of("CallEnded")[-1].reason == "capacity"


def test_a_restored_engine_adopts_the_old_engines_listeners():
    from callcenter.engine import Engine

    h = Harness()
    journal = []
    h.engine.subscribe_inputs(journal.append)
    h.engine.call_arrived("c1", "hotline")
    new = Engine.restore(h.config, h.clock, h.engine.snapshot())
    new.adopt_listeners(h.engine)
    before = len(h.events)
    h.engine.call_arrived("c-old", "hotline")  # the old engine no longer reaches anyone
    assert len(h.events) == before and len(journal) == 1
    new.agent_logged_in("a1", "own")
    new.agent_ready("a1")
    assert [(e.call_id, e.agent_id) for e in h.of("CallOffered")] == [("c1", "a1")]
    assert [r["input"] for r in journal] == ["call_arrived", "agent_logged_in", "agent_ready"]
