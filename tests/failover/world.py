"""A deterministic robot world that drives an engine: callers and agents whose every
action depends only on the engine's state and a seeded random.Random.

Two engines with equal state, driven by two worlds with equal random state,
must make the same decisions; the round-trip tests rely on that.
"""

from __future__ import annotations

import random

from callcenter.engine import EngineError

CATEGORIES = ["epidemic-urgent", "epidemic-policy", "medical", "supplies", "labour", "consumer", "other"]
AGENTS = [(f"own-{i}", "own-12345") for i in range(6)] + [(f"rem-{i}", "remote-cities") for i in range(3)]


class World:
    def __init__(self, engine, clock, seed: int = 7, queue: str = "hotline-12345"):
        self.engine = engine
        self.clock = clock
        self.rng = random.Random(seed)
        self.queue = queue
        self.events: list[dict] = []
        self.next_call = 0
        engine.subscribe(lambda e: self.events.append(e.to_dict()))

    def clone_for(self, engine, clock) -> World:
        w = World.__new__(World)
        w.engine, w.clock, w.queue = engine, clock, self.queue
        w.rng = random.Random()
        w.rng.setstate(self.rng.getstate())
        w.events = []
        w.next_call = self.next_call
        engine.subscribe(lambda e: w.events.append(e.to_dict()))
        return w

    def _try(self, fn, *args, **kw):
        try:
            fn(*args, **kw)
        except EngineError:
            pass

    def setup(self) -> None:
        for agent_id, pool in AGENTS:
            self.engine.agent_logged_in(
                agent_id, pool, skills={"epidemic": 3, "medical": 2}, endpoint=f"PJSIP/{agent_id}"
            )
        for agent_id, _ in AGENTS[:5]:
            self.engine.agent_ready(agent_id)

    def step(self) -> None:
        rng, e = self.rng, self.engine
        self.clock.advance(rng.choice([0.0, 0.5, 1.0, 2.0, 3.0, 7.0]))
        for _ in range(rng.choice([0, 1, 1, 2])):
            self.next_call += 1
            self._try(
                e.call_arrived,
                f"call-{self.next_call}",
                self.queue,
                caller_masked="138****5678",
                category=rng.choice(CATEGORIES),
            )
        for agent_id in sorted(e.agents()):
            info = e.agent_info(agent_id)
            roll = rng.random()
            state = info["state"]
            if state == "offered":
                if roll < 0.5:
                    self._try(e.offer_answered, info["call_id"], agent_id)
                elif roll < 0.6:
                    self._try(e.offer_failed, info["call_id"], agent_id, rng.choice(["rejected", "busy"]))
            elif state == "on-call" and roll < 0.25:
                self._try(e.call_completed, info["call_id"], by=rng.choice(["caller", "agent"]))
            elif state == "wrap-up" and roll < 0.2:
                self._try(e.wrapup_ended, agent_id)
            elif state == "not-ready" and roll < 0.3:
                self._try(e.agent_ready, agent_id)
            elif state == "ready" and roll < 0.03:
                self._try(e.agent_not_ready, agent_id, "break")
        for call_id in sorted(e.calls()):
            info = e.call_info(call_id)
            if info is None or info["state"] != "waiting":
                continue
            roll = rng.random()
            if roll < 0.04:
                self._try(e.caller_hung_up, call_id)
            elif roll < 0.05:
                self._try(e.choice_made, call_id, "1")
            elif roll < 0.06:
                self._try(e.callback_requested, call_id)
        if rng.random() < 0.05:
            self._try(e.home_load_reported, "lender-12333", rng.randint(0, 8), self.clock.seconds())
        if rng.random() < 0.02:
            self._try(e.emergency_set, self.queue, rng.choice(["surge", None]))
