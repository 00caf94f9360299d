"""The routing rules, in one place.

Everything that decides *who may take which call, in what order* lives here:
tier unlocking, lender protection, agent selection order and call selection
order.  engine.py keeps the state and the indexes; it asks this module.

Orders (documented in docs/routing.md):

* Calls: highest priority first, then longest waiting (arrival sequence).  A
  call keeps its sequence number for life, so a call that comes back from an
  unanswered offer returns to its place, never to the back.
* Agents for a call: agents having the category's skill first (when the
  category names one), then the lowest tier, then the higher skill level, then
  the queue's ``selection`` order (longest idle, fewest calls, round robin).
* Tiers widen: unlocking tier k opens every tier up to k (like app_queue's
  penalty rules raising QUEUE_MAX_PENALTY).
"""

from __future__ import annotations

import math

from ..config import EmergencyPlan, Pool, Queue, TierRule

INF = math.inf


def strategy_key(strategy: str, idle_since: float, calls: int, last_offer: int, seq: int) -> tuple:
    """Sort key of a ready agent under a queue's ``selection`` (smaller goes first)."""
    if strategy == "fewest-calls":
        return (calls, idle_since, seq)
    if strategy == "round-robin":
        return (last_offer, seq)
    return (idle_since, seq)  # longest-idle


def call_key(priority: int, seq: int) -> tuple[int, int]:
    """Sort key of a waiting call (smaller goes first)."""
    return (-priority, seq)


def tier_rules(queue: Queue, plan: EmergencyPlan | None) -> list[TierRule]:
    rules = plan.tiers if plan is not None and plan.tiers is not None else queue.tiers
    return sorted(rules, key=lambda r: r.tier)


def max_tier(rules: list[TierRule], pool_tiers: list[int]) -> int:
    return max([0, *pool_tiers])


def initial_level(rules: list[TierRule], urgent: bool, plan: EmergencyPlan | None, top_tier: int) -> tuple[int, str]:
    """The tier a new call may reach at once, and why."""
    if plan is not None and plan.all_tiers_at_once:
        return top_tier, "emergency"
    level = 0
    cause = ""
    for r in rules:
        if (urgent and r.urgent_at_once) or r.after_s == 0:
            if r.tier > level:
                level, cause = r.tier, ("urgent" if urgent and r.urgent_at_once else "after")
    return level, cause


def next_unlock(rules: list[TierRule], level: int, arrived: float) -> tuple[float, int] | None:
    """The earliest (deadline, tier) above ``level`` that waiting time alone will unlock."""
    best: tuple[float, int] | None = None
    for r in rules:
        if r.tier > level and r.after_s is not None:
            at = arrived + r.after_s
            if best is None or at < best[0] or (at == best[0] and r.tier > best[1]):
                best = (at, r.tier)
    return best


def level_after_wait(rules: list[TierRule], waited: float) -> int:
    level = 0
    for r in rules:
        if r.after_s is not None and waited >= r.after_s:
            level = max(level, r.tier)
    return level


def ewt_level(rules: list[TierRule], ewt_s: float) -> int:
    """Queue-wide overflow: the highest tier whose ``ewt_over_s`` the expected wait exceeds."""
    level = 0
    for r in rules:
        if r.ewt_over_s is not None and ewt_s > r.ewt_over_s:
            level = max(level, r.tier)
    return level


def expected_wait(position: int, aht_s: float, staffed: int) -> float:
    """Expected wait of the caller at ``position`` (1 = next) with ``staffed`` agents working.

    A plain M/M/N-style estimate: the callers ahead, plus this one, share the
    staffed agents, each busy for about one handle time.  With nobody staffed
    the wait is unbounded, which is exactly when overflow should open.
    """
    if position <= 0:
        return 0.0
    if staffed <= 0:
        return INF
    return position * aht_s / staffed


def lender_cap(pool: Pool, logged_in: int) -> int | None:
    """How many of a borrowed pool's agents may be on our calls at once (None: no cap)."""
    if pool.max_share is None:
        return None
    return int(math.floor(pool.max_share * logged_in + 1e-9))


def lender_gate_open(pool: Pool, home_waiting: int | None, reported_at: float | None, now: float) -> bool:
    """Lender protection: no calls from us when the lender's own line is busy, or silent too long."""
    if pool.home_waiting_max is None:
        return True
    if home_waiting is None or reported_at is None:
        return False
    if now - reported_at > pool.home_report_ttl_s:
        return False
    return home_waiting <= pool.home_waiting_max


def callback_offered(queue: Queue, plan: EmergencyPlan | None, position: int) -> bool:
    if queue.callback.offer:
        return True
    return bool(plan is not None and plan.callback_beyond_position is not None and position > plan.callback_beyond_position)


def announce_every(queue: Queue, plan: EmergencyPlan | None) -> float:
    if plan is not None and plan.announce_every_s is not None:
        return plan.announce_every_s
    return queue.announce_every_s
