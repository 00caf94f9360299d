"""Cost of one routing decision as the number of logged-in agents grows.

Two decisions are timed, each with 1,000 calls waiting over 3 queues and 5 pools:

* call-side: a call arrives while every logged-in agent is ready; the engine
  picks the agent (skills, tier, level, longest idle) and makes the offer.
* agent-side: an agent becomes ready while 1,000 calls wait; the engine picks
  the call (priority, then wait, among calls it may take) and makes the offer.

Each is timed alone (the undo that restores the state is not timed).  The
claim: the cost does not grow linearly with the number of agents.  Memory per
agent and per waiting call come from tracemalloc.

Run: .venv/bin/python benchmarks/routing.py [--sizes 100,1000,10000,100000]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from callcenter.config import parse_config  # noqa: E402
from callcenter.engine import Engine  # noqa: E402
from callcenter.sim.clock import SimClock as Clock  # noqa: E402  (heap clock: task.Clock re-sorts per timer)

POOLS = [("own", "own", 0), ("remote-a", "remote", 1), ("remote-b", "remote", 1),
         ("lend-12333", "borrowed", 2), ("lend-12315", "borrowed", 2)]
SKILLS = ["epidemic", "medical", "supplies", "labour", "consumer"]


def config():
    pools = []
    for name, kind, tier in POOLS:
        p = {"name": name, "kind": kind, "tier": tier, "wrapup_s": 10, "ring_timeout_s": 15}
        if kind == "borrowed":
            p.update(max_share=0.9)
        pools.append(p)
    tiers = [{"tier": 1, "after_s": 20}, {"tier": 2, "after_s": 40}]
    return parse_config({
        "acd": {"max_calls": 100000},
        "categories": [
            {"name": "epidemic", "priority": 5, "skill": "epidemic"},
            {"name": "medical", "priority": 5, "skill": "medical"},
            {"name": "supplies", "priority": 3, "skill": "supplies"},
            {"name": "labour", "priority": 0, "skill": "labour"},
            {"name": "consumer", "priority": 0, "skill": "consumer"},
            {"name": "rare", "priority": 0, "skill": "sign-language", "skill_mode": "required"},
            {"name": "other", "priority": 0},
        ],
        "pools": pools,
        "queues": [
            {"name": "hotline-12345", "pools": [p[0] for p in POOLS], "tiers": tiers},
            {"name": "epidemic-line", "pools": ["own", "remote-a", "lend-12333"],
             "tiers": [{"tier": 1, "after_s": 20}, {"tier": 2, "after_s": 40}], "selection": "fewest-calls"},
            {"name": "consumer-line", "pools": ["own", "remote-b", "lend-12315"], "tiers": tiers},
        ],
    }, env={})


QUEUES = ["hotline-12345", "epidemic-line", "consumer-line"]


def log_in(engine, n, rnd, ready):
    for i in range(n):
        pool = POOLS[i % len(POOLS)][0]
        skills = {s: rnd.randint(1, 5) for s in rnd.sample(SKILLS, 2)}
        engine.agent_logged_in(f"a{i}", pool, skills=skills, endpoint=f"PJSIP/{i}")
        if ready:
            engine.agent_ready(f"a{i}")


def add_waiting(engine, clock, n, rnd, category=None):
    for i in range(n):
        engine.call_arrived(f"w{i}", QUEUES[i % 3], caller_masked="138****0000",
                            category=category or rnd.choice(["epidemic", "medical", "labour", "other", "consumer"]))
        clock.advance(0.01)


def call_side(n_agents, reps, rnd):
    """1,000 waiting calls nobody ready may take (a required skill) and n ready agents."""
    clock = Clock()
    engine = Engine(config(), clock)
    add_waiting(engine, clock, 1000, rnd, category="rare")
    log_in(engine, n_agents, rnd, ready=True)
    clock.advance(60)  # every tier open for the waiting calls
    times = []
    cats = ["epidemic", "medical", "labour", "other", "consumer"]
    for i in range(reps):
        cid = f"x{i}"
        q = QUEUES[i % 3]
        cat = cats[i % 5]
        t0 = time.perf_counter()
        engine.call_arrived(cid, q, caller_masked="138****0000", category=cat)
        times.append(time.perf_counter() - t0)
        assert engine.call_info(cid)["state"] == "offered"
        engine.caller_hung_up(cid)  # undo: the agent is ready again (now the most recently idle)
    return times


def agent_side(n_agents, reps, rnd):
    """n agents logged in but not ready, 1,000 waiting calls; one agent at a time becomes ready."""
    clock = Clock()
    engine = Engine(config(), clock)
    log_in(engine, n_agents, rnd, ready=False)
    add_waiting(engine, clock, 1000, rnd)
    clock.advance(60)
    times = []
    for i in range(reps):
        aid = f"a{(i * 7919) % n_agents}"
        t0 = time.perf_counter()
        engine.agent_ready(aid)
        times.append(time.perf_counter() - t0)
        info = engine.agent_info(aid)
        assert info["state"] == "offered", info
        # undo: the agent logs out while ringing (the call goes back to its place) and in again
        engine.agent_logged_out(aid, "bench")
        engine.agent_logged_in(aid, info["pool"], skills=info["skills"], endpoint=info["endpoint"])
    return times


def memory(n_agents, rnd):
    gc.collect()
    clock = Clock()
    engine = Engine(config(), clock)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    log_in(engine, n_agents, rnd, ready=True)
    after_agents = tracemalloc.get_traced_memory()[0]
    # calls nobody may take, so they stay waiting
    add_waiting(engine, clock, 1000, rnd, category="rare")
    after_calls = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after_agents - base) / n_agents, (after_calls - after_agents) / 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,10000,100000")
    ap.add_argument("--reps", type=int, default=2000)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rnd = random.Random(42)
    rows = []
    for n in sizes:
        cs = call_side(n, args.reps, rnd)
        ag = agent_side(n, args.reps, rnd)
        rows.append({
            "agents": n,
            "call_side_us_median": statistics.median(cs) * 1e6,
            "call_side_us_p99": sorted(cs)[int(len(cs) * 0.99)] * 1e6,
            "agent_side_us_median": statistics.median(ag) * 1e6,
            "agent_side_us_p99": sorted(ag)[int(len(ag) * 0.99)] * 1e6,
        })
        print(f"{n:>7} agents: call-side {rows[-1]['call_side_us_median']:7.1f} us median "
              f"({rows[-1]['call_side_us_p99']:7.1f} p99); agent-side {rows[-1]['agent_side_us_median']:7.1f} us "
              f"median ({rows[-1]['agent_side_us_p99']:7.1f} p99)", flush=True)
    per_agent, per_call = memory(max(sizes), rnd)
    lo, hi = rows[0], rows[-1]
    ratio_call = hi["call_side_us_median"] / lo["call_side_us_median"]
    ratio_agent = hi["agent_side_us_median"] / lo["agent_side_us_median"]
    print(f"ratio {hi['agents']} / {lo['agents']} agents: call-side {ratio_call:.2f}x, agent-side {ratio_agent:.2f}x "
          f"(agents grew {hi['agents'] / lo['agents']:.0f}x)")
    print(f"memory: {per_agent:.0f} bytes per ready agent (with its skill indexes), "
          f"{per_call:.0f} bytes per waiting call (with its timers)")
    print(json.dumps({
        "benchmark": "routing", "rows": rows, "ratio_call_side": round(ratio_call, 3),
        "ratio_agent_side": round(ratio_agent, 3), "bytes_per_agent": round(per_agent),
        "bytes_per_waiting_call": round(per_call), "waiting_calls": 1000, "queues": 3, "pools": 5,
    }))


if __name__ == "__main__":
    main()
