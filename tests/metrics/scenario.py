"""A short, realistic hotline morning driven through the real engine.

It touches every outcome the metrics distinguish: answered by own, remote and
borrowed seats, a ring-no-answer, a short and a long abandon (the long one gets
an abandoned-to-callback call), a caller-requested callback, an emergency plan
and a max-wait fallback.  Time moves only through the injected task.Clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet import task

from callcenter.engine import Engine

QUEUE = "hotline-12345"


@dataclass
class Driven:
    engine: Engine
    clock: task.Clock
    events: list = field(default_factory=list)


def _ringing_agent(engine: Engine, call_id: str) -> str | None:
    info = engine.call_info(call_id)
    if info and info.get("state") == "offered":
        return info.get("agent_id")
    return None


def wait_offered(d: Driven, call_id: str, within_s: float = 120.0) -> str:
    """Advance the clock 1 s at a time until the call rings at an agent; return the agent."""
    for _ in range(int(within_s)):
        agent = _ringing_agent(d.engine, call_id)
        if agent is not None:
            return agent
        d.clock.advance(1.0)
    raise AssertionError(f"{call_id} was not offered within {within_s} s: {d.engine.call_info(call_id)}")


def answer(d: Driven, call_id: str, ring_s: float = 2.0) -> str:
    """Wait until the call rings, let it ring ``ring_s``, answer it; return the agent."""
    for _ in range(5):
        agent = wait_offered(d, call_id)
        d.clock.advance(ring_s)
        if _ringing_agent(d.engine, call_id) == agent:
            d.engine.offer_answered(call_id, agent)
            return agent
    raise AssertionError(f"{call_id} kept ringing out: {d.engine.call_info(call_id)}")


def drive_calls(d: Driven) -> None:
    """Run the morning; afterwards `d.events` holds every event in order."""
    e, clock = d.engine, d.clock
    e.subscribe(d.events.append)
    for agent, pool in (("a1", "own-12345"), ("a2", "own-12345"), ("r1", "remote-cities"),
                        ("b1", "lender-12333"), ("b2", "lender-12333"), ("x1", "lender-12315")):
        e.agent_logged_in(agent, pool, endpoint=f"PJSIP/{agent}")
    e.home_load_reported("lender-12333", 0, clock.seconds())
    for agent in ("a1", "a2", "r1", "b1", "b2"):
        e.agent_ready(agent)

    # c1: answered by an own seat.
    e.call_arrived("c1", QUEUE, caller_masked="138****5678", category="medical")
    answer(d, "c1", 3.0)
    # c2: the first agent does not answer (ring-no-answer), then it is answered.
    e.call_arrived("c2", QUEUE, caller_masked="139****0001", category="epidemic-policy")
    first = wait_offered(d, "c2")
    clock.advance(15.0)
    if _ringing_agent(e, "c2") == first:
        e.offer_failed("c2", first, "no-answer")
    answer(d, "c2", 1.0)
    # c3, c4: own seats are busy; remote (tier 1) and borrowed (tier 2) seats answer.
    e.call_arrived("c3", QUEUE, category="labour")
    e.call_arrived("c4", QUEUE, category="consumer")
    answer(d, "c3", 1.0)
    e.home_load_reported("lender-12333", 1, clock.seconds())
    answer(d, "c4", 2.0)
    # c5: short abandon; c6: asks for a callback; c7: long abandon -> abandoned-to-callback call.
    e.call_arrived("c5", QUEUE, category="other")
    clock.advance(2)
    e.caller_hung_up("c5")
    e.call_arrived("c6", QUEUE, category="supplies")
    clock.advance(8)
    e.callback_requested("c6")
    e.caller_hung_up("c6")  # the line ends; the place is kept
    e.call_arrived("c7", QUEUE, category="other")
    clock.advance(30)
    e.caller_hung_up("c7")

    # Conversations end; agents wrap up and call back.  (In a running ACD
    # without a call-file spool the callbacks cannot be placed: that is fine.)
    for call_id in ("c1", "c2", "c3", "c4"):
        clock.advance(40)
        if e.call_info(call_id):
            e.call_completed(call_id)
    for _ in range(30):
        clock.advance(10)
        for call_id in ("c6", "c7:cb"):
            info = e.call_info(call_id)
            if info and info.get("state") == "offered":
                e.offer_answered(call_id, info["agent_id"])
            elif info and info.get("state") == "talking":
                e.call_completed(call_id, by="agent")

    # An emergency; nobody is ready; c8 waits until max_wait_s and falls back to the dialplan.
    e.emergency_set(QUEUE, "surge", by="admin")
    clock.advance(30)
    for agent in ("a1", "a2", "r1", "b1", "b2"):
        if (e.agent_info(agent) or {}).get("state") in ("ready", "wrap-up", "not-ready"):
            e.agent_not_ready(agent, reason="meeting")
    e.agent_logged_out("x1")
    e.call_arrived("c8", QUEUE, category="other")
    clock.advance(601)
    assert e.call_info("c8") is None, e.call_info("c8")
    # At scrape time: c10 is on a call, c9 waits or rings, some agents are ready again.
    for agent in ("a1", "a2", "b1"):
        if (e.agent_info(agent) or {}).get("state") == "not-ready":
            e.agent_ready(agent)
    e.call_arrived("c10", QUEUE, category="medical")
    answer(d, "c10", 5.0)
    e.call_arrived("c9", QUEUE, category="other")
    clock.advance(12)
    e.agent_ready("r1")
