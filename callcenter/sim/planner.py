"""Staffing planner: agents needed per hour, and how many must come from elsewhere.

Given a forecast (arrivals per hour, average handle time, mean patience) and a
target (for example at least 95% of callers connected and 80% of all callers
answered within 15 s), compute per hour:

* agents by **Erlang C** -- the classic sizing for "answered within t"
  assuming nobody hangs up (it over-staffs when callers are impatient, and
  says nothing about the connection rate);
* agents by **Erlang A** (M/M/N+M) -- with exponential patience, sizing for
  both the connection rate and answered-within-t (Garnett, Mandelbaum &
  Reiman 2002);
* given the own (tier-0) seats on shift, the shortfall, covered first by the
  remote pools on shift (tier 1) and then by borrowed pools up to each
  lender's ``max_share`` cap; what is left is "to find".

The forecast comes from a scenario (its arrivals x surge, talk + ring +
wrap-up as handle time, its patience mean, its rosters) and/or from explicit
numbers.  ``verify`` staffs the scenario as planned and runs it through the
simulator on the real engine: overflow tiers only receive calls after their
``after_s``/``ewt_over_s`` rules, so the simulated 15-s figure is the honest
check of a plan that leans on remote or borrowed seats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from callcenter.config import Config

from .erlang import ErlangA, ErlangC, agents_erlang_a, agents_erlang_c
from .scenario import HOURS, Scenario

__all__ = ["Forecast", "Target", "HourPlan", "forecast_from_scenario", "make_plan", "verify_plan", "staffed_scenario"]


@dataclass(frozen=True)
class Target:
    connected: float = 0.95  # answered / offered
    within: float = 0.80  # answered within `within_s` / offered
    within_s: float = 15.0


@dataclass
class Forecast:
    calls_per_hour: list[float]
    aht_s: float
    patience_s: float
    own: list[int] = field(default_factory=lambda: [0] * HOURS)
    remote: list[int] = field(default_factory=lambda: [0] * HOURS)
    # per borrowed pool: (name, max_share, logged-in agents per hour; 0 while the lender's gate is closed)
    borrowed: list[tuple[str, float, list[int]]] = field(default_factory=list)


@dataclass
class HourPlan:
    hour: int
    calls: float
    load_erlangs: float
    erlang_c: int
    erlang_a: int
    predicted_connected: float | None
    predicted_within: float | None
    own: int
    shortfall: int
    remote_used: int
    borrowed_used: dict[str, int]
    missing: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def forecast_from_scenario(scenario: Scenario, config: Config) -> Forecast:
    """Arrivals, handle time, patience and rosters as the scenario describes them."""
    calls = [0.0] * HOURS
    talk_w = patience_w = weight = 0.0
    for _qname, load in scenario.queues.items():
        hourly = load.hourly()
        vol = sum(hourly)
        for h in range(HOURS):
            calls[h] += hourly[h] * scenario.surge
        talk_w += load.talk.mean * vol
        patience_w += (load.patience.mean if math.isfinite(load.patience.mean) else 1e9) * vol
        weight += vol
    own = [0] * HOURS
    remote = [0] * HOURS
    borrowed = []
    wrap_s = ring_s = 0.0
    tier0 = [p for p in config.pools if p.tier == 0]
    for p in config.pools:
        staff = scenario.pools.get(p.name)
        counts = [staff.on_shift(h) for h in range(HOURS)] if staff is not None else [0] * HOURS
        if p.tier == 0:
            own = [a + b for a, b in zip(own, counts, strict=True)]
        elif p.kind == "borrowed":
            # hours in which the lender's own line is over home_waiting_max lend nobody
            if staff is not None and staff.home_waiting is not None and p.home_waiting_max is not None:
                counts = [0 if staff.home_waiting[h] > p.home_waiting_max else c for h, c in enumerate(counts)]
            borrowed.append((p.name, p.max_share if p.max_share is not None else 1.0, counts))
        else:
            remote = [a + b for a, b in zip(remote, counts, strict=True)]
    for p in tier0[:1]:
        staff = scenario.pools.get(p.name)
        wrap_s = p.wrapup_s
        if staff is not None:
            if staff.wrapup is not None:
                wrap_s = min(staff.wrapup.mean, p.wrapup_s)
            ring_s = staff.ring.mean
    talk = talk_w / weight if weight else 240.0
    return Forecast(calls, talk + wrap_s + ring_s, patience_w / weight if weight else 90.0, own, remote, borrowed)


def make_plan(forecast: Forecast, target: Target) -> list[HourPlan]:
    out = []
    for h in range(HOURS):
        calls = forecast.calls_per_hour[h]
        lam = calls / 3600.0
        load = lam * forecast.aht_s
        if lam <= 0:
            out.append(HourPlan(h, calls, 0.0, 0, 0, None, None, forecast.own[h], 0, 0, {}, 0))
            continue
        n_c = agents_erlang_c(lam, forecast.aht_s, service_level=target.within, within_s=target.within_s)
        n_a = agents_erlang_a(lam, forecast.aht_s, forecast.patience_s, answered=target.connected,
                              answered_within=target.within, within_s=target.within_s)
        m = ErlangA(n_a, lam, forecast.aht_s, forecast.patience_s)
        own = forecast.own[h]
        short = max(0, n_a - own)
        remote_used = min(short, forecast.remote[h])
        left = short - remote_used
        used: dict[str, int] = {}
        for name, share, counts in forecast.borrowed:
            cap = int(math.floor(share * counts[h] + 1e-9))
            take = min(left, cap)
            used[name] = take
            left -= take
        out.append(HourPlan(h, calls, load, n_c, n_a, m.p_answered, m.answered_within(target.within_s), own, short,
                            remote_used, used, left))
    return out


def staffed_scenario(scenario: Scenario, config: Config, plan: list[HourPlan]) -> Scenario:
    """The scenario with rosters as planned: own seats as scheduled, remote seats as used
    (plus anything still missing, as if recruited), borrowed pools logged in so that the
    planned number fits under each lender's cap."""
    pools = {name: staff.model_dump() for name, staff in scenario.pools.items()}
    remote_pools = [p for p in config.pools if p.tier > 0 and p.kind != "borrowed"]
    if not remote_pools:
        remote_pools = [p for p in config.pools if p.tier > 0]
    base = {"ring": {"dist": "uniform", "low_s": 2.0, "high_s": 6.0}}
    for p in config.pools:
        if p.tier == 0:
            continue
        entry = pools.get(p.name, dict(base))
        entry.pop("shifts", None)
        counts = []
        for hp in plan:
            if p.kind == "borrowed":
                need = hp.borrowed_used.get(p.name, 0)
                share = p.max_share or 1.0
                logged = int(math.ceil(need / share - 1e-9)) if need else 0
                # keep the lender's real roster if it is larger (the cap is a share of it)
                staff = scenario.pools.get(p.name)
                real = staff.on_shift(hp.hour) if staff is not None else 0
                counts.append(max(logged, real) if need else 0)
            elif remote_pools and p.name == remote_pools[0].name:
                counts.append(hp.remote_used + hp.missing)
            else:
                counts.append(0)
        entry["agents_per_hour"] = counts
        pools[p.name] = entry
    raw = scenario.model_dump()
    raw["pools"] = pools
    return Scenario.model_validate(raw)


# two-sided 95% Student t quantiles by degrees of freedom (seeds - 1); 1.96 beyond the table
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 19: 2.093, 24: 2.064, 29: 2.045}


def _t95(df: int) -> float:
    if df >= 30:
        return 1.96
    return _T95[max(k for k in _T95 if k <= df)]


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval across independent seeds
    (0 for a single seed: no interval, the point value is all there is)."""
    n = len(values)
    m = math.fsum(values) / n
    if n < 2:
        return m, 0.0
    var = math.fsum((v - m) ** 2 for v in values) / (n - 1)
    return m, _t95(n - 1) * math.sqrt(var / n)


def verdict(mean: float, half: float, goal: float) -> str:
    """``yes`` when the whole interval meets the goal, ``NO`` only when the whole interval misses
    it, ``~`` when the goal lies inside the interval (the seeds cannot tell)."""
    if mean - half >= goal:
        return "yes"
    if mean + half < goal:
        return "NO"
    return "~"


def verify_plan(scenario: Scenario, config: Config, plan: list[HourPlan], target: Target, seed: int = 1,
                seeds: int = 1, warmup_h: float = 0.0, progress=None) -> dict[str, Any]:
    """Simulate the planned staffing with ``seeds`` seeds (``seed``, ``seed + 1``, ...); per hour the
    mean connection and answered-within rates with 95% confidence intervals across seeds, and a
    verdict per hour.  Callers who arrive in the first ``warmup_h`` hours of the window (the system
    starts empty, which flatters them) are reported but neither judged nor counted in the totals."""
    from .report import summarize
    from .simulator import simulate

    staffed = staffed_scenario(scenario, config, plan)
    warm_end = scenario.start_hour * 3600 + warmup_h * 3600
    per_seed: list[dict[int, tuple[int, int, int, float]]] = []
    totals_seed: list[tuple[int, int, int]] = []
    summary = None
    for k in range(seeds):
        result = simulate(config, staffed, seed + k, progress=progress)
        if summary is None:
            summary = summarize(result)
        offered = [0] * HOURS
        answered = [0] * HOURS
        within = [0] * HOURS
        wait = [0.0] * HOURS
        tot = [0, 0, 0]
        for r in result.calls:
            if r.origin is not None:
                continue
            h = min(int(r.arrived // 3600), HOURS - 1)
            judged = r.arrived >= warm_end
            offered[h] += 1
            tot[0] += judged
            if r.outcome == "answered":
                answered[h] += 1
                wait[h] += r.wait_s
                tot[1] += judged
                if r.wait_s <= target.within_s:
                    within[h] += 1
                    tot[2] += judged
        per_seed.append({h: (offered[h], answered[h], within[h], wait[h]) for h in range(HOURS) if offered[h]})
        totals_seed.append((tot[0], tot[1], tot[2]))
    rows = []
    for h in sorted(set().union(*per_seed)):
        runs = [d[h] for d in per_seed if h in d]
        conn, conn_ci = mean_ci([a / o for o, a, _, _ in runs])
        win, win_ci = mean_ci([w / o for o, _, w, _ in runs])
        n_ans = sum(a for _, a, _, _ in runs)
        warm = (h + 1) * 3600 <= warm_end + 1e-9
        row = {"hour": h, "offered": round(math.fsum(o for o, _, _, _ in runs) / len(runs), 1),
               "connected": conn, "connected_ci": conn_ci, "within": win, "within_ci": win_ci,
               "asa_s": math.fsum(w for _, _, _, w in runs) / n_ans if n_ans else None,
               "warmup": warm, "seeds": len(runs)}
        if warm:
            row["meets"] = "warm-up"
        else:
            verdicts = {verdict(conn, conn_ci, target.connected), verdict(win, win_ci, target.within)}
            row["meets"] = "NO" if "NO" in verdicts else "~" if "~" in verdicts else "yes"
        rows.append(row)
    judged = [t for t in totals_seed if t[0]]
    if judged:
        conn, conn_ci = mean_ci([a / o for o, a, _ in judged])
        win, win_ci = mean_ci([w / o for o, _, w in judged])
        totals = {"offered": round(math.fsum(t[0] for t in judged) / len(judged), 1), "connected": conn,
                  "connected_ci": conn_ci, "within": win, "within_ci": win_ci}
    else:
        totals = {"offered": 0, "connected": None, "connected_ci": None, "within": None, "within_ci": None}
    totals["seeds"] = seeds
    totals["warmup_h"] = warmup_h
    return {"hours": rows, "totals": totals, "summary": summary}


def erlang_c_check(n: int, calls_per_hour: float, aht_s: float, within_s: float) -> dict[str, float]:
    """Figures for one staffing level, for the CLI's --agents mode."""
    lam = calls_per_hour / 3600
    m = ErlangC(n, lam, aht_s)
    return {"p_wait": m.p_wait, "service_level": m.service_level(within_s), "asa_s": m.mean_wait}
