"""Property-based tests: random event sequences against the engine's promises.

A shadow model rebuilt only from the engine's *events* (plus the config)
checks, at every offer and after every input: one call per agent, one agent
per call, one outcome per call, work conservation, FIFO within a priority,
no tier before its rule, lender caps, and that a refused input changes nothing.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from callcenter.engine import EngineError, routing

from .conftest import Harness

POOLS = {"own": 0, "remote": 1, "lend": 2}
AGENTS = [("o1", "own", {}), ("o2", "own", {"epi": 2}), ("o3", "own", {"labour": 1}),
          ("r1", "remote", {"epi": 4}), ("r2", "remote", {}),
          ("l1", "lend", {"labour": 3}), ("l2", "lend", {}), ("l3", "lend", {}), ("l4", "lend", {"epi": 1})]
CATEGORIES = ["urgent", "policy", "labour", "other"]
RESULTS = ["no-answer", "rejected", "busy", "unavailable", "cancelled"]

op = hs.one_of(
    hs.tuples(hs.just("arrive"), hs.sampled_from(["hotline", "hotline", "second"]), hs.sampled_from(CATEGORIES)),
    hs.tuples(hs.just("hangup"), hs.integers(0, 30)),
    hs.tuples(hs.just("callback"), hs.integers(0, 30)),
    hs.tuples(hs.just("login"), hs.integers(0, len(AGENTS) - 1)),
    hs.tuples(hs.just("ready"), hs.integers(0, len(AGENTS) - 1)),
    hs.tuples(hs.just("notready"), hs.integers(0, len(AGENTS) - 1)),
    hs.tuples(hs.just("logout"), hs.integers(0, len(AGENTS) - 1)),
    hs.tuples(hs.just("answer"), hs.integers(0, 30)),
    hs.tuples(hs.just("fail"), hs.integers(0, 30), hs.sampled_from(RESULTS)),
    hs.tuples(hs.just("complete"), hs.integers(0, 30)),
    hs.tuples(hs.just("endwrap"), hs.integers(0, len(AGENTS) - 1)),
    hs.tuples(hs.just("home"), hs.integers(0, 6)),
    hs.tuples(hs.just("emergency"), hs.sampled_from([None, "surge"])),
    hs.tuples(hs.just("advance"), hs.sampled_from([0.5, 1, 3, 7, 11, 21, 45])),
    hs.tuples(hs.just("bogus"), hs.integers(0, 5)),
)


class Shadow:
    """What the events say, checked against what the rules allow."""

    def __init__(self, h: Harness):
        self.h = h
        self.cfg = h.config
        self.cats = {c.name: c for c in self.cfg.categories}
        self.pools = {p.name: p for p in self.cfg.pools}
        self.queues = {q.name: q for q in self.cfg.queues}
        self.waiting: dict[str, dict] = {}  # call id -> info
        self.calls: dict[str, dict] = {}  # every live call
        self.agent_state: dict[str, str] = {}
        self.agent_pool: dict[str, str] = {}
        self.agent_call: dict[str, str] = {}
        self.offer_of_call: dict[str, str] = {}
        self.outcomes: dict[str, int] = {}
        self.queued_ids: set[str] = set()
        self.home: dict[str, tuple[int, float]] = {}
        self.plan: dict[str, str | None] = {q: None for q in self.queues}
        self.qlevel: dict[str, int] = {q: 0 for q in self.queues}
        self.excluded: dict[str, set] = {}
        self.just_missed: dict[str, str] = {}
        self.seq = 0
        self.skills = {a: s for a, _, s in AGENTS}

    # ---- rules, independently
    def allowed_level(self, info, t) -> int:
        q = self.queues[info["queue"]]
        plan = q.emergency_plans.get(self.plan[q.name]) if self.plan[q.name] else None
        rules = routing.tier_rules(q, plan)
        top = max(self.pools[p].tier for p in q.pools)
        level = self.qlevel[q.name]
        if plan is not None and plan.all_tiers_at_once:
            level = top
        cat = self.cats[info["category"]]
        for r in rules:
            if (cat.urgent and r.urgent_at_once) or (r.after_s is not None and t - info["arrived"] >= r.after_s - 1e-6):
                level = max(level, r.tier)
        return level

    def pool_open(self, pool, t) -> bool:
        p = self.pools[pool]
        if p.max_share is not None:
            logged = sum(1 for a, s in self.agent_state.items() if self.agent_pool[a] == pool and s != "logged-out")
            busy = sum(1 for a, s in self.agent_state.items()
                       if self.agent_pool[a] == pool and s in ("offered", "on-call", "wrap-up"))
            if busy >= math.floor(p.max_share * logged + 1e-9):
                return False
        if p.home_waiting_max is not None:
            rep = self.home.get(pool)
            if rep is None or t - rep[1] > p.home_report_ttl_s or rep[0] > p.home_waiting_max:
                return False
        return True

    def may_take(self, agent, info, t) -> bool:
        pool = self.agent_pool[agent]
        q = self.queues[info["queue"]]
        if pool not in q.pools:
            return False
        if self.pools[pool].tier > self.allowed_level(info, t):
            return False
        cat = self.cats[info["category"]]
        if cat.skill and cat.skill_mode == "required" and cat.skill not in self.skills[agent]:
            return False
        if agent in self.excluded.get(info["id"], ()):
            return False
        return self.pool_open(pool, t)

    # ---- events
    error: BaseException | None = None

    def saw(self, e) -> None:
        try:
            self._saw(e)
        except BaseException as exc:  # the engine logs listener errors; keep the first for the test
            if self.error is None:
                self.error = exc

    def _saw(self, e) -> None:
        k = e.kind
        if k == "CallQueued":
            assert e.call_id not in self.queued_ids, "call queued twice"
            self.queued_ids.add(e.call_id)
            self.seq += 1
            info = {"id": e.call_id, "queue": e.queue, "category": e.category, "priority": e.priority,
                    "arrived": e.t, "seq": self.seq}
            self.calls[e.call_id] = info
            self.waiting[e.call_id] = info
        elif k == "QueueOverflowChanged":
            q = self.queues[e.queue]
            plan = q.emergency_plans.get(self.plan[q.name]) if self.plan[q.name] else None
            if e.cause == "ewt":
                ewt = math.inf if e.ewt_s < 0 else e.ewt_s
                assert e.tier == routing.ewt_level(routing.tier_rules(q, plan), ewt)
            self.qlevel[e.queue] = e.tier
        elif k == "EmergencyChanged":
            self.plan[e.queue] = e.plan
        elif k == "HomeLoadReported":
            self.home[e.pool] = (e.waiting, e.reported_at)
        elif k == "AgentStateChanged":
            self.agent_state[e.agent_id] = e.new
            self.agent_pool[e.agent_id] = e.pool
            if e.new == "logged-out":
                assert e.agent_id not in self.agent_call, "agent logged out holding a call"
        elif k == "CallOffered":
            info = self.waiting.pop(e.call_id, None)
            assert info is not None, f"offered a call that is not waiting: {e.call_id}"
            assert e.agent_id not in self.agent_call, f"agent {e.agent_id} got a second call"
            assert e.call_id not in self.offer_of_call, "call offered to two agents"
            # the agent state change to 'offered' came just before: judge eligibility as of before it
            self.agent_state[e.agent_id] = "ready"
            assert self.may_take(e.agent_id, info, e.t), f"{e.agent_id} may not take {info} at {e.t}"
            # FIFO within priority: no better waiting call this agent could take
            skipped = self.just_missed.pop(e.agent_id, None)  # "to the next agent" after a miss
            for other in self.waiting.values():
                if other["id"] == skipped:
                    continue
                if (-other["priority"], other["seq"]) < (-info["priority"], info["seq"]):
                    assert not self.may_take(e.agent_id, other, e.t), \
                        f"{e.agent_id} got {info['id']} while {other['id']} was ahead"
            self.agent_state[e.agent_id] = "offered"
            assert self.pools[e.pool].tier == e.tier
            self.agent_call[e.agent_id] = e.call_id
            self.offer_of_call[e.call_id] = e.agent_id
            self.calls[e.call_id]["agent"] = e.agent_id
            p = self.pools[e.pool]
            if p.max_share is not None:
                logged = sum(1 for a, s in self.agent_state.items() if self.agent_pool[a] == e.pool
                             and s != "logged-out")
                busy = sum(1 for a, s in self.agent_state.items()
                           if self.agent_pool[a] == e.pool and s in ("offered", "on-call", "wrap-up"))
                assert busy <= math.floor(p.max_share * logged + 1e-9), "lender cap exceeded"
        elif k == "OfferEnded":
            assert self.offer_of_call.get(e.call_id) == e.agent_id, "offer ended twice or never made"
            del self.offer_of_call[e.call_id]
            if e.result != "answered":
                del self.agent_call[e.agent_id]
                self.just_missed[e.agent_id] = e.call_id
                self.waiting[e.call_id] = self.calls[e.call_id]
                if e.result == "rejected":
                    self.excluded.setdefault(e.call_id, set()).add(e.agent_id)
        elif k == "TierUnlocked":
            assert e.tier <= self.allowed_level(self.calls[e.call_id], e.t), "tier unlocked before its rule"
        elif k == "CallEnded":
            self.outcomes[e.call_id] = self.outcomes.get(e.call_id, 0) + 1
            assert self.outcomes[e.call_id] == 1, f"call {e.call_id} ended twice"
            self.waiting.pop(e.call_id, None)
            self.calls.pop(e.call_id, None)
            agent = next((a for a, c in self.agent_call.items() if c == e.call_id), None)
            if agent is not None:
                del self.agent_call[agent]

    def check_settled(self) -> None:
        t = self.h.clock.seconds()
        for agent, state in self.agent_state.items():
            if state != "ready":
                continue
            for info in self.waiting.values():
                assert not self.may_take(agent, info, t), \
                    f"not work-conserving: ready {agent} could take waiting {info['id']}"


def run(ops):
    h = Harness()
    shadow = Shadow(h)
    h.engine.subscribe(shadow.saw)
    eng = h.engine
    n = 0

    def live_calls():
        return sorted(eng.calls())

    def pick(seq, i):
        return seq[i % len(seq)] if seq else None

    for o in ops:
        kind = o[0]
        try:
            if kind == "arrive":
                n += 1
                eng.call_arrived(f"c{n}", o[1], caller_masked="138****0000", category=o[2])
            elif kind == "hangup":
                c = pick(live_calls(), o[1])
                if c:
                    eng.caller_hung_up(c)
            elif kind == "callback":
                c = pick(live_calls(), o[1])
                if c:
                    before = eng.snapshot()
                    try:
                        eng.callback_requested(c)
                    except EngineError:
                        assert eng.snapshot() == before
            elif kind in ("login", "ready", "notready", "logout", "endwrap"):
                aid, pool, skills = AGENTS[o[1]]
                before = eng.snapshot()
                nev = len(h.events)
                try:
                    if kind == "login":
                        eng.agent_logged_in(aid, pool, skills=skills)
                    elif kind == "ready":
                        eng.agent_ready(aid)
                    elif kind == "notready":
                        eng.agent_not_ready(aid, "break")
                    elif kind == "logout":
                        eng.agent_logged_out(aid, "end of shift")
                    else:
                        eng.wrapup_ended(aid)
                except EngineError:
                    assert eng.snapshot() == before and len(h.events) == nev, "a refused input changed state"
            elif kind in ("answer", "fail", "complete"):
                c = pick(live_calls(), o[1])
                if c:
                    info = eng.call_info(c)
                    before = eng.snapshot()
                    try:
                        if kind == "answer":
                            eng.offer_answered(c, info["agent_id"] or "o1")
                        elif kind == "fail":
                            eng.offer_failed(c, info["agent_id"] or "o1", o[2])
                        else:
                            eng.call_completed(c, by="agent")
                    except EngineError:
                        assert eng.snapshot() == before, "a refused input changed state"
            elif kind == "home":
                eng.home_load_reported("lend", o[1], h.clock.seconds())
            elif kind == "emergency":
                eng.emergency_set("hotline", o[1], by="test")
            elif kind == "advance":
                h.clock.advance(o[1])
            elif kind == "bogus":
                before = eng.snapshot()
                nev = len(h.events)
                bad = [
                    lambda: eng.call_arrived("x", "no-such-queue"),
                    lambda: eng.offer_answered("nope", "o1"),
                    lambda: eng.agent_logged_in("zz", "no-pool"),
                    lambda: eng.home_load_reported("lend", -1, 0),
                    lambda: eng.emergency_set("hotline", "no-plan"),
                    lambda: eng.offer_failed(pick(live_calls(), 0) or "nope", "o1", "exploded"),
                ][o[1]]
                try:
                    bad()
                except EngineError:
                    pass
                else:
                    raise AssertionError("a bogus input was accepted")
                assert eng.snapshot() == before and len(h.events) == nev
        except EngineError:
            pass
        if shadow.error is not None:
            raise shadow.error
        shadow.check_settled()
        shadow.just_missed.clear()  # only within the input that ended the offer
    # drain: every call reaches exactly one outcome (a callback still waiting for an agent keeps its place)
    for c in live_calls():
        info = eng.call_info(c)
        if info["state"] == "offered":
            eng.offer_answered(c, info["agent_id"])
            info = eng.call_info(c)
        if info["state"] == "talking":
            eng.call_completed(c)
        elif not info["callback"]:
            eng.caller_hung_up(c)
    shadow.check_settled()
    live = set(eng.calls())
    for cid in shadow.queued_ids:
        if cid in live:
            assert eng.call_info(cid)["callback"] and shadow.outcomes.get(cid) is None
        else:
            assert shadow.outcomes.get(cid) == 1, f"call {cid} has {shadow.outcomes.get(cid)} outcomes"


@settings(max_examples=int(__import__("os").environ.get("ENGINE_EXAMPLES", "300")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hs.lists(op, min_size=1, max_size=80))
def test_random_event_sequences_keep_every_promise(ops):
    run(ops)


def test_a_long_busy_sequence():
    """A deterministic long run through the same checker (many agents and calls at once)."""
    import random

    rnd = random.Random(7)
    ops = []
    for i in range(len(AGENTS)):
        ops += [("login", i), ("ready", i)]
    ops.append(("home", 0))
    for _ in range(1200):
        r = rnd.random()
        if r < 0.25:
            ops.append(("arrive", rnd.choice(["hotline", "second"]), rnd.choice(CATEGORIES)))
        elif r < 0.45:
            ops.append(("answer", rnd.randrange(30)))
        elif r < 0.6:
            ops.append(("complete", rnd.randrange(30)))
        elif r < 0.7:
            ops.append(("advance", rnd.choice([1, 3, 7, 11])))
        elif r < 0.75:
            ops.append(("fail", rnd.randrange(30), rnd.choice(RESULTS)))
        elif r < 0.8:
            ops.append(("hangup", rnd.randrange(30)))
        elif r < 0.85:
            ops.append(("ready", rnd.randrange(len(AGENTS))))
        elif r < 0.88:
            ops.append(("home", rnd.randrange(5)))
        elif r < 0.9:
            ops.append(("emergency", rnd.choice([None, "surge"])))
        elif r < 0.93:
            ops.append(("callback", rnd.randrange(30)))
        elif r < 0.96:
            ops.append(("login", rnd.randrange(len(AGENTS))))
        else:
            ops.append(("logout", rnd.randrange(len(AGENTS))))
    run(ops)
