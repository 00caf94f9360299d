"""The queueing formulas against published values and independent computations."""

from __future__ import annotations

import math

import pytest

from callcenter.sim.erlang import (
    ErlangA,
    ErlangC,
    agents_erlang_a,
    agents_erlang_c,
    erlang_a_by_states,
    erlang_b,
    erlang_c,
)


# -- Erlang C: published values -------------------------------------------------
def test_erlang_c_250_calls_330s_28_agents_answers_857_percent_within_30s():
    # The textbook staffing example: 250 calls/h, AHT 330 s (22.92 Erlangs),
    # 28 agents -> 85.7% answered within 30 s.
    m = ErlangC(28, 250 / 3600, 330)
    assert m.service_level(30) == pytest.approx(0.857, abs=0.0005)
    # and 28 is the smallest staff meeting "80% within 30 s" (27 agents give 78.2%)
    assert agents_erlang_c(250 / 3600, 330, service_level=0.80, within_s=30) == 28
    assert ErlangC(27, 250 / 3600, 330).service_level(30) < 0.80


def test_erlang_c_m_m_5_textbook_value():
    # M/M/5 with offered load 3 Erlangs (one call a minute, 3-minute service):
    # probability of waiting C(5, 3) = 0.2362 (standard queueing-course exercise).
    assert erlang_c(5, 3.0) == pytest.approx(0.2362, abs=0.00005)


@pytest.mark.parametrize(
    ("servers", "erlangs"),
    # Erlang B table, grade of service 1%: the traffic each trunk group carries at B = 0.01.
    # The table rounds the load to 0.01 Erlang, which moves B by < 0.0001 here.
    [(10, 4.46), (20, 12.03), (50, 37.90), (100, 84.06)],
)
def test_erlang_b_table_one_percent(servers, erlangs):
    assert erlang_b(servers, erlangs) == pytest.approx(0.01, abs=0.0002)


def test_erlang_b_small_case_by_hand():
    # B(3, 2) = (2^3/3!) / (1 + 2 + 2^2/2 + 2^3/3!) = (4/3) / (19/3) = 4/19
    assert erlang_b(3, 2.0) == pytest.approx(4 / 19, rel=1e-12)


def test_erlang_c_forms_are_consistent():
    m = ErlangC(10, 8 / 60, 60)
    assert m.p_wait_gt(0) == pytest.approx(m.p_wait)
    # mean wait = integral of P(W > t)
    rate = 10 / 60 - 8 / 60
    assert m.mean_wait == pytest.approx(m.p_wait / rate)
    assert ErlangC(10, 11 / 60, 60).p_wait == 1.0  # overloaded: everybody waits
    assert ErlangC(10, 11 / 60, 60).mean_wait == math.inf


def test_large_staff_is_numerically_stable():
    # thousands of agents: no factorial overflow, sensible answers
    b = erlang_b(5000, 4900.0)
    assert 0 < b < 0.05
    c = ErlangC(5000, 4900 / 60, 60)
    assert 0 < c.p_wait < 1
    a = ErlangA(5000, 4900 / 60, 60, 30)
    assert 0 < a.p_abandon < a.p_wait < 1
    assert a.answered_within(5) > 0.99


# -- Erlang A: against the birth-death chain summed directly --------------------
CASES = [
    # (agents, calls per s, AHT s, mean patience s)
    (10, 8 / 60, 60, 120),
    (10, 11 / 60, 60, 60),  # overloaded: only abandonment keeps the queue finite
    (50, 45 / 60, 60, 30),
    (100, 1.5, 100, 50),  # heavily overloaded
    (500, 480 / 300, 300, 60),
    (3, 0.01, 240, 90),
]


@pytest.mark.parametrize(("n", "lam", "aht", "patience"), CASES)
def test_erlang_a_matches_state_summation(n, lam, aht, patience):
    m = ErlangA(n, lam, aht, patience)
    s = erlang_a_by_states(n, lam, aht, patience)
    assert m.p_wait == pytest.approx(s["p_wait"], rel=1e-9, abs=1e-12)
    assert m.p_abandon == pytest.approx(s["p_abandon"], rel=1e-9, abs=1e-12)
    # Little's law on the queue: E[W] = E[Q] / lambda
    assert m.mean_wait == pytest.approx(s["mean_queue"] / lam, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("n", "lam", "aht", "patience"), CASES[:3])
def test_erlang_a_identities(n, lam, aht, patience):
    m = ErlangA(n, lam, aht, patience)
    # answered within 0 s = answered without waiting
    assert m.answered_within(0) == pytest.approx(1 - m.p_wait, abs=1e-12)
    # answered within a very long time = answered at all
    assert m.answered_within(1e5) == pytest.approx(m.p_answered, abs=1e-9)
    assert m.p_wait_gt(0) == pytest.approx(m.p_wait)
    # monotone in t
    vals = [m.answered_within(t) for t in (0, 5, 15, 30, 60, 300)]
    assert vals == sorted(vals)


def _p_wait_gt_by_ode(n: int, lam: float, aht: float, patience: float, t: float) -> float:
    """P(W > t) from the stationary queue and the pure-death process ahead of a caller,
    integrated numerically (RK4) -- independent of the incomplete-gamma closed form."""
    mu, theta = 1 / aht, 1 / patience
    a = lam * aht
    rel = [1.0]  # pi_j / pi_n for j = n, n-1, ..., 0
    for j in range(n, 0, -1):
        rel.append(rel[-1] * j / a)
    below = sum(rel[1:])
    q = [1.0]  # pi_(n+k) / pi_n
    while q[-1] > 1e-14 or len(q) < 10:
        q.append(q[-1] * lam / (n * mu + len(q) * theta))
    total = below + sum(q)
    rates = [n * mu + k * theta for k in range(len(q))]
    surv = [1.0] * len(q)  # P(offered wait V_k > s) with k callers ahead

    def deriv(y):
        return [rates[k] * ((y[k - 1] if k else 0.0) - y[k]) for k in range(len(y))]

    h = 0.02
    steps = int(round(t / h))
    for _ in range(steps):
        k1 = deriv(surv)
        k2 = deriv([y + h / 2 * d for y, d in zip(surv, k1, strict=True)])
        k3 = deriv([y + h / 2 * d for y, d in zip(surv, k2, strict=True)])
        k4 = deriv([y + h * d for y, d in zip(surv, k3, strict=True)])
        surv = [y + h / 6 * (d1 + 2 * d2 + 2 * d3 + d4) for y, d1, d2, d3, d4 in zip(surv, k1, k2, k3, k4, strict=True)]
    # still waiting at t: the offered wait exceeds t and so does the caller's own patience
    return math.exp(-theta * t) * sum(p * s for p, s in zip(q, surv, strict=True)) / total


@pytest.mark.parametrize(("n", "lam", "aht", "patience", "t"), [(10, 8 / 60, 60, 120, 10.0), (10, 11 / 60, 60, 60, 20.0)])
def test_erlang_a_wait_tail_matches_numerical_integration(n, lam, aht, patience, t):
    m = ErlangA(n, lam, aht, patience)
    assert m.p_wait_gt(t) == pytest.approx(_p_wait_gt_by_ode(n, lam, aht, patience, t), rel=1e-6)


def test_erlang_a_limits():
    # very patient callers: Erlang C
    a = ErlangA(20, 0.3, 60, 1e7)
    c = ErlangC(20, 0.3, 60)
    assert a.p_wait == pytest.approx(c.p_wait, rel=1e-4)
    assert a.p_wait_gt(10) == pytest.approx(c.p_wait_gt(10), rel=1e-4)
    assert a.answered_within(15) == pytest.approx(c.service_level(15), rel=1e-4)
    assert a.mean_wait == pytest.approx(c.mean_wait, rel=1e-3)
    # infinite patience is exactly Erlang C
    assert ErlangA(20, 0.3, 60, math.inf).p_wait == c.p_wait
    # callers who cannot wait at all: Erlang B (blocked calls lost)
    assert ErlangA(20, 0.3, 60, 1e-5).p_abandon == pytest.approx(erlang_b(20, 18.0), rel=1e-3)


def test_erlang_a_overload_tends_to_fluid_limit():
    # 1800 Erlangs offered to 1500 agents: served at most 25/s of 30/s -> 1/6 abandon
    m = ErlangA(1500, 30.0, 60, 60)
    assert m.p_abandon == pytest.approx(1 / 6, rel=1e-3)
    assert m.occupancy == pytest.approx(1.0, abs=1e-3)


def test_staffing_erlang_a_is_minimal_and_below_erlang_c():
    lam, aht, patience = 2000 / 3600, 259, 90
    n = agents_erlang_a(lam, aht, patience, answered=0.95, answered_within=0.80, within_s=15)
    m = ErlangA(n, lam, aht, patience)
    assert m.p_answered >= 0.95 and m.answered_within(15) >= 0.80
    less = ErlangA(n - 1, lam, aht, patience)
    assert less.p_answered < 0.95 or less.answered_within(15) < 0.80
    # impatient callers leave, so Erlang C (which keeps them all) asks for more agents
    assert n <= agents_erlang_c(lam, aht, service_level=0.80, within_s=15)
