"""Simulated calls per wall-clock second on a Shanghai-spring-2022-like peak day.

80,000 calls over the day (peaks 09-11 and 14-16), about 1,500 agents over
shifts: own 12345 seats, remote seats of other cities, and borrowed 12333 and
12315 agents, on deploy/callcenter.yaml with its emergency plan on from 07:00
to 23:00.  The simulator drives the real routing engine on its heap clock.

Goal: >= 10,000 simulated calls per second on one core.

Prints a readable report -- the rate, and where the time goes (a cProfile run
over the 09:00-11:00 peak, grouped by component, and the top functions) --
and, as its last line, one JSON object with the figures.

    .venv/bin/python benchmarks/simulate.py [--seed N] [--no-profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import platform
import pstats
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from callcenter.config import load_config  # noqa: E402
from callcenter.sim.scenario import parse_scenario  # noqa: E402
from callcenter.sim.simulator import simulate  # noqa: E402

GOAL = 10_000

PROFILE = [0.6, 0.4, 0.3, 0.25, 0.25, 0.4, 1.0, 2.5, 5.5, 8.0, 8.5, 7.5,
           5.5, 6.0, 7.5, 7.8, 7.2, 5.5, 4.0, 3.6, 3.3, 2.8, 2.0, 1.2]

SCENARIO = {
    "name": "shanghai-spring-2022-peak",
    "description": "80,000 calls, ~1,500 agents over shifts (benchmark)",
    "queues": {
        "hotline-12345": {
            "daily_calls": 80000,
            "profile": PROFILE,
            "category_mix": {"epidemic-urgent": 0.06, "epidemic-policy": 0.34, "medical": 0.16, "supplies": 0.20,
                             "labour": 0.08, "consumer": 0.06, "other": 0.10},
            "patience": {"dist": "exponential", "mean_s": 120},
            "talk": {"dist": "lognormal", "mean_s": 240, "cv": 0.8},
            "callback_accept": 0.1,
        }
    },
    "pools": {
        "own-12345": {
            "shifts": [
                {"start": "07:00", "end": "15:00", "agents": 330},
                {"start": "11:00", "end": "19:00", "agents": 330},
                {"start": "15:00", "end": "23:00", "agents": 240},
                {"start": "23:00", "end": "24:00", "agents": 60},
                {"start": "00:00", "end": "07:00", "agents": 60},
            ],
            "skills": {"epidemic": 3, "medical": 3, "supplies": 3, "labour": 2, "consumer": 2},
            "ring": {"dist": "uniform", "low_s": 2, "high_s": 6},
            "no_answer": 0.01,
            "wrapup": {"dist": "lognormal", "mean_s": 12, "cv": 0.5},
        },
        "remote-cities": {
            "shifts": [{"start": "08:00", "end": "16:00", "agents": 150},
                       {"start": "14:00", "end": "22:00", "agents": 150}],
            "skills": {"epidemic": 2, "medical": 1, "supplies": 1},
            "ring": {"dist": "uniform", "low_s": 2, "high_s": 8},
            "no_answer": 0.03,
        },
        "lender-12333": {
            "shifts": [{"start": "08:00", "end": "20:00", "agents": 100}],
            "skills": {"labour": 5},
            "ring": {"dist": "uniform", "low_s": 2, "high_s": 8},
            "no_answer": 0.03,
            "home_waiting": [0] * 7 + [2, 4, 6, 6, 4, 3, 3, 4, 4, 3, 2, 1, 1] + [0] * 4,
        },
        "lender-12315": {
            "shifts": [{"start": "08:00", "end": "20:00", "agents": 90}],
            "skills": {"consumer": 5, "supplies": 3},
            "ring": {"dist": "uniform", "low_s": 2, "high_s": 8},
            "no_answer": 0.03,
            "home_waiting": [0] * 7 + [1, 2, 3, 4, 3, 2, 2, 3, 3, 3, 2, 1, 1] + [0] * 4,
        },
    },
    "emergency": [{"at": "07:00", "queue": "hotline-12345", "plan": "surge"},
                  {"at": "23:00", "queue": "hotline-12345", "plan": None}],
}


def component(filename: str) -> str:
    f = filename.replace("\\", "/")
    if "/callcenter/engine/" in f:
        return "engine (callcenter/engine)"
    if "/callcenter/sim/clock.py" in f:
        return "sim clock (heap)"
    if "/callcenter/sim/" in f:
        return "simulator (callers, agents, listener)"
    if "sortedcontainers" in f:
        return "sortedcontainers (engine indexes)"
    if "<string>" in f:
        return "event dataclass __init__ (engine)"
    if "random.py" in f:
        return "random (distributions)"
    return "builtins and other"


def profile(config, scenario, seed: int) -> tuple[list[tuple[str, float]], list[tuple[str, int, float, float]], float]:
    peak = parse_scenario({**SCENARIO, "start_hour": 9, "end_hour": 11})
    prof = cProfile.Profile(time.process_time)  # CPU time: robust when other processes share the machine
    prof.enable()
    result = simulate(config, peak, seed)
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    by_comp: dict[str, float] = defaultdict(float)
    rows = []
    total = 0.0
    for (filename, line, name), (_cc, nc, tt, ct, callers) in stats.stats.items():
        if filename == "~":  # a C builtin (dict.get, len, heappop...): charge each caller its share
            for (cfile, _cline, _cname), edge in callers.items():
                by_comp[component(cfile)] += edge[2]
        else:
            by_comp[component(filename)] += tt
        total += tt
        short = f"{Path(filename).name}:{line}({name})" if filename != "~" else name
        rows.append((short, nc, tt, ct))
    rows.sort(key=lambda r: -r[2])
    shares = sorted(((k, v / total) for k, v in by_comp.items()), key=lambda kv: -kv[1])
    return shares, rows[:15], len(result.calls)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-profile", action="store_true")
    args = ap.parse_args()

    config = load_config(ROOT / "deploy" / "callcenter.yaml", env={})
    scenario = parse_scenario(SCENARIO)
    agents = sum(s.agents for p in scenario.pools.values() for s in (p.shifts or []))

    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = simulate(config, scenario, args.seed)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    calls = len(result.calls)
    answered = sum(1 for c in result.calls if c.outcome == "answered" and c.origin is None)
    offered = sum(1 for c in result.calls if c.origin is None)
    rate = calls / wall
    cpu_rate = calls / cpu

    print(f"Simulated peak day: {calls} calls ({offered} offered + {calls - offered} callbacks), {agents} agents "
          f"over shifts, {result.events} engine events, {result.inputs} engine inputs")
    print(f"  connection rate {100 * answered / offered:.1f}%, refused inputs {len(result.errors)}")
    print(f"  wall {wall:.2f} s, CPU {cpu:.2f} s (python {platform.python_version()}, {platform.machine()})")
    print(f"  => {rate:,.0f} simulated calls per wall-clock second ({cpu_rate:,.0f} per CPU second); "
          f"goal {GOAL:,}: {'met' if rate >= GOAL else 'NOT met'}")
    print(f"  per call: {1e6 / cpu_rate:.0f} us CPU, {result.events / calls:.1f} engine events, "
          f"{result.inputs / calls:.1f} engine inputs")

    figures = {
        "benchmark": "simulate",
        "calls": calls,
        "agents": agents,
        "engine_events": result.events,
        "engine_inputs": result.inputs,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "calls_per_s": round(rate, 1),
        "calls_per_cpu_s": round(cpu_rate, 1),
        "us_per_call_cpu": round(1e6 / cpu_rate, 1),
        "goal_calls_per_s": GOAL,
        "goal_met": rate >= GOAL,
        "connection_rate": round(answered / offered, 4),
    }
    if not args.no_profile:
        shares, top, pcalls = profile(config, scenario, args.seed)
        print(f"\nWhere the time goes (cProfile, 09:00-11:00 peak, {pcalls} calls; share of profiled time):")
        for comp, share in shares:
            print(f"  {100 * share:5.1f}%  {comp}")
        print("\nTop functions by own time:")
        print(f"  {'own s':>7} {'cum s':>7} {'calls':>9}  function")
        for name, nc, tt, ct in top:
            print(f"  {tt:7.3f} {ct:7.3f} {nc:9d}  {name}")
        figures["time_share"] = {comp: round(share, 4) for comp, share in shares}
        figures["top_functions"] = [name for name, *_ in top[:8]]
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
