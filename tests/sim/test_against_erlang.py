"""The simulator, driving the real engine, reproduces the closed forms.

One queue, one pool, Poisson arrivals, exponential talk times (and exponential
patience for Erlang A), no wrap-up, agents answering at once: exactly the
M/M/N (Erlang C) and M/M/N+M (Erlang A) models.  Each run is a simulated day
with a fixed seed; the first hour is a warm-up and is dropped.

Tolerances come from the run itself: the 23 remaining hours of a run are
batches, and the standard error of a figure is the standard deviation of its
hourly values over sqrt(number of batches).  One hour is many relaxation times
of these queues (for M/M/10 at 80% load the relaxation time is about
1 / (mu (sqrt(N) - sqrt(a))^2) = 60 / (3.162 - 2.828)^2 ~ 540 s, so an hour
holds ~7 of them; with abandonment the queue relaxes faster still), so the
batches are close to independent.  We accept |simulated - formula| <= 4 SE: for
a correct engine a normal deviate beyond 4 happens with probability ~6e-5 per
check (the seeds are fixed, so the test is deterministic anyway), while the
SE bound asserted alongside keeps the check sharp enough to notice an engine
that loses an agent (one agent fewer moves P(wait) from 0.41 to 0.67 here).
Measured on these seeds: Erlang C, 3 days (~33,200 calls, 69 batches):
SE 0.016 for P(wait) (0.419 simulated vs 0.409), 0.015 for P(wait > 20 s),
1.1 s for the mean wait (12.6 s vs 12.3 s); Erlang A, 2 days (~30,300 calls,
46 batches): SE 0.011 for P(wait) (0.665 vs 0.659), 0.005 for P(abandon)
(0.169 vs 0.168), 0.3 s for the mean wait.  Every figure lands within 1.6 SE.
"""

from __future__ import annotations

import math
import statistics

import pytest

from callcenter.config import parse_config
from callcenter.sim.erlang import ErlangA, ErlangC
from callcenter.sim.scenario import parse_scenario
from callcenter.sim.simulator import simulate


def one_queue(agents: int, calls_per_hour: float, aht_s: float, patience_s: float | None):
    config = parse_config({
        "categories": [{"name": "other"}],
        "pools": [{"name": "p", "kind": "own", "tier": 0, "wrapup_s": 0, "ring_timeout_s": 15}],
        "queues": [{"name": "q", "pools": ["p"], "announce_every_s": 86400, "max_wait_s": 86400, "aht_s": aht_s,
                    "callback": {"offer": False, "abandoned_to_callback": False}}],
    }, env={})
    patience = {"dist": "infinite"} if patience_s is None else {"dist": "exponential", "mean_s": patience_s}
    scenario = parse_scenario({
        "queues": {"q": {"calls_per_hour": [calls_per_hour] * 24, "patience": patience,
                         "talk": {"dist": "exponential", "mean_s": aht_s}}},
        "pools": {"p": {"agents_per_hour": [agents] * 24, "ring": {"dist": "constant", "value_s": 0}}},
    })
    return config, scenario


def hourly_batches(config, scenario, seeds):
    batches = []
    for seed in seeds:
        result = simulate(config, scenario, seed)
        assert not result.errors
        hours = [[] for _ in range(24)]
        for call in result.calls:
            hours[int(call.arrived // 3600)].append(call)
        batches.extend(hours[1:])  # hour 0 is the warm-up from an empty system
    return batches


def estimate(batches, fn):
    values = [fn(b) for b in batches]
    return statistics.mean(values), statistics.stdev(values) / math.sqrt(len(values))


def share(pred):
    return lambda calls: sum(1 for c in calls if pred(c)) / len(calls)


def check(name, sim, se, formula, se_max):
    assert se <= se_max, f"{name}: standard error {se:.4f} too large for a sharp check"
    assert abs(sim - formula) <= 4 * se, f"{name}: simulated {sim:.4f} vs formula {formula:.4f} (SE {se:.4f})"


@pytest.fixture(scope="module")
def erlang_c_run():
    # 10 agents, 480 calls/h, 60 s talk: 8 Erlangs, 80% load; infinitely patient callers
    return hourly_batches(*one_queue(10, 480, 60.0, None), seeds=(11, 12, 13))


@pytest.fixture(scope="module")
def erlang_a_run():
    # 10 agents, 660 calls/h, 60 s talk, mean patience 60 s: 11 Erlangs, overloaded
    return hourly_batches(*one_queue(10, 660, 60.0, 60.0), seeds=(21, 22))


def test_erlang_c_probability_of_waiting(erlang_c_run):
    m = ErlangC(10, 480 / 3600, 60.0)
    sim, se = estimate(erlang_c_run, share(lambda c: c.wait_s > 0))
    check("P(wait)", sim, se, m.p_wait, se_max=0.025)


def test_erlang_c_probability_of_waiting_over_t(erlang_c_run):
    m = ErlangC(10, 480 / 3600, 60.0)
    for t in (10.0, 20.0, 40.0):
        sim, se = estimate(erlang_c_run, share(lambda c, t=t: c.wait_s > t))
        check(f"P(wait > {t})", sim, se, m.p_wait_gt(t), se_max=0.025)


def test_erlang_c_mean_wait_and_nobody_abandons(erlang_c_run):
    m = ErlangC(10, 480 / 3600, 60.0)
    sim, se = estimate(erlang_c_run, lambda calls: sum(c.wait_s for c in calls) / len(calls))
    check("mean wait", sim, se, m.mean_wait, se_max=2.0)
    assert all(c.outcome == "answered" for b in erlang_c_run for c in b)


def test_erlang_a_abandonment(erlang_a_run):
    m = ErlangA(10, 660 / 3600, 60.0, 60.0)
    sim, se = estimate(erlang_a_run, share(lambda c: c.outcome == "abandoned"))
    check("P(abandon)", sim, se, m.p_abandon, se_max=0.008)


def test_erlang_a_probability_of_waiting(erlang_a_run):
    m = ErlangA(10, 660 / 3600, 60.0, 60.0)
    sim, se = estimate(erlang_a_run, share(lambda c: c.wait_s > 0))
    check("P(wait)", sim, se, m.p_wait, se_max=0.02)


def test_erlang_a_wait_tail_answered_within_and_mean_wait(erlang_a_run):
    m = ErlangA(10, 660 / 3600, 60.0, 60.0)
    sim, se = estimate(erlang_a_run, share(lambda c: c.wait_s > 20))
    check("P(W > 20)", sim, se, m.p_wait_gt(20), se_max=0.015)
    sim, se = estimate(erlang_a_run, share(lambda c: c.outcome == "answered" and c.wait_s <= 10))
    check("answered within 10 s", sim, se, m.answered_within(10), se_max=0.02)
    sim, se = estimate(erlang_a_run, lambda calls: sum(c.wait_s for c in calls) / len(calls))
    check("mean wait", sim, se, m.mean_wait, se_max=0.6)
