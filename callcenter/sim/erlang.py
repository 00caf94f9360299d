"""Queueing formulas for staffing: Erlang B, Erlang C and Erlang A (M/M/N+M).

All the closed forms the simulator and planner use live here, one place.
Units: arrival rate ``lam`` in calls per second, ``aht`` (average handle time,
talk + wrap-up) and ``patience`` in seconds, so offered load ``a = lam * aht``
in Erlangs and the service rate is ``mu = 1 / aht``.

Erlang B (M/M/N/N, blocked calls lost)
    Computed with the standard recursion B(0) = 1,
    B(n) = a B(n-1) / (n + a B(n-1)), carried in log space so that thousands
    of servers neither overflow nor lose precision (no factorials, no powers).

Erlang C (M/M/N, infinitely patient callers)
    P(wait > 0)  C = N B / (N - a (1 - B))                       (a < N)
    P(wait > t)  = C exp(-(N mu - lam) t)
    mean wait    = C / (N mu - lam)
    service level SL(t) = 1 - P(wait > t)  (answered within t)
    Reference: A. K. Erlang (1917); e.g. Gans, Koole & Mandelbaum,
    "Telephone call centers: tutorial, review and research prospects",
    MSOM 5(2), 2003, section 4.1.

Erlang A (M/M/N+M, exponential patience with mean 1/theta)
    Garnett, Mandelbaum & Reiman, "Designing a call center with impatient
    customers", MSOM 4(3), 2002; Mandelbaum & Zeltyn, "The Palm/Erlang-A
    queue, with applications to call centers" (Technion report, 2005).
    With x = N mu / theta, y = lam / theta, the lower incomplete gamma
    gamma(x, y) = int_0^y t^(x-1) e^-t dt, and
    A(x, y) = x e^y y^-x gamma(x, y) = sum_k y^k / ((x+1)...(x+k)):

    P(W > 0)            = A E / (1 + (A - 1) E),   E = ErlangB(N, a)
    P(Ab | W > 0)       = 1 / (rho A) + 1 - 1 / rho,   rho = lam / (N mu)
    P(W > t | W > 0)    = e^(-theta t) gamma(x, y e^(-theta t)) / gamma(x, y)
    P(Sr, W > t | W > 0)= gamma(x + 1, y e^(-theta t)) / (y gamma(x, y))
    E[W]                = P(Ab) / theta          (Little's law on the queue)

    W is the time a caller spends waiting (until answered or until hanging
    up); "answered within t" is P(Sr) - P(Sr, W > t).  The last two forms are
    derived in docs/simulator.md ("Erlang A formulas") from the queue's
    stationary distribution pi_(N+k) = pi_N y^k / ((x+1)...(x+k)) and the
    pure-death process a waiting caller sees ahead of them (rate N mu + m
    theta with m callers ahead); they reduce to the Erlang C forms as
    theta -> 0 and P(Ab) tends to Erlang B as theta -> infinity.  The module
    also has a direct birth-death summation (:func:`erlang_a_by_states`) that
    the tests use as an independent check.

Numerics: incomplete gamma values are kept as logarithms (series below the
transition point, Lentz continued fraction above), and in the underloaded
regime P(Ab | W > 0) is summed term by term instead of with the cancelling
1/(rho A) + 1 - 1/rho.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

__all__ = [
    "erlang_b",
    "erlang_c",
    "ErlangC",
    "ErlangA",
    "erlang_a_by_states",
    "agents_erlang_c",
    "agents_erlang_a",
]

_EPS = 1e-16
_MAX_ITER = 10_000_000


# -- Erlang B -----------------------------------------------------------------
def log_erlang_b(n: int, a: float) -> float:
    """log of the Erlang B blocking probability B(n, a)."""
    if n < 0:
        raise ValueError("number of servers must be >= 0")
    if a < 0:
        raise ValueError("offered load must be >= 0")
    if n == 0:
        return 0.0
    if a == 0:
        return -math.inf
    # 1/B(k) = 1 + (k/a) / B(k-1); in logs: r_k = log1p(exp(log(k/a) + r_{k-1}))
    r = 0.0  # log(1/B(0))
    log_a = math.log(a)
    for k in range(1, n + 1):
        z = math.log(k) - log_a + r
        r = z + math.log1p(math.exp(-z)) if z > 0 else math.log1p(math.exp(z))
    return -r


def erlang_b(n: int, a: float) -> float:
    """Erlang B: probability that a call finds all ``n`` servers busy and is lost."""
    return math.exp(log_erlang_b(n, a))


# -- Erlang C -----------------------------------------------------------------
def erlang_c(n: int, a: float) -> float:
    """Erlang C: probability that a call must wait (M/M/n, offered load ``a`` Erlangs)."""
    if n <= 0 or a >= n:
        return 1.0
    if a <= 0:
        return 0.0
    b = erlang_b(n, a)
    return n * b / (n - a * (1.0 - b))


@dataclass(frozen=True)
class ErlangC:
    """M/M/N with infinitely patient callers.  ``lam`` per second, ``aht`` seconds."""

    n: int
    lam: float
    aht: float

    @property
    def load(self) -> float:
        return self.lam * self.aht

    @property
    def stable(self) -> bool:
        return self.load < self.n

    @cached_property
    def p_wait(self) -> float:
        """Probability that a call waits at all."""
        return erlang_c(self.n, self.load)

    def p_wait_gt(self, t: float) -> float:
        """Probability that a call waits longer than ``t`` seconds."""
        if not self.stable:
            return 1.0
        return self.p_wait * math.exp(-(self.n / self.aht - self.lam) * t)

    def service_level(self, t: float) -> float:
        """Share of calls answered within ``t`` seconds."""
        return 1.0 - self.p_wait_gt(t)

    @cached_property
    def mean_wait(self) -> float:
        """Average speed of answer (all calls), seconds."""
        if not self.stable:
            return math.inf
        return self.p_wait / (self.n / self.aht - self.lam)

    @property
    def occupancy(self) -> float:
        return min(1.0, self.load / self.n) if self.n else 1.0


# -- incomplete gamma in log space ------------------------------------------
def _log_lower_gamma(x: float, y: float) -> float:
    """log of gamma(x, y) = int_0^y t^(x-1) e^-t dt, for x > 0, y >= 0."""
    if y <= 0:
        return -math.inf
    if y < x + 1.0:
        term = total = 1.0 / x
        k = 0
        while True:
            k += 1
            term *= y / (x + k)
            total += term
            if term < total * _EPS or k > _MAX_ITER:
                break
        return x * math.log(y) - y + math.log(total)
    log_upper = _log_upper_gamma_cf(x, y)
    lg = math.lgamma(x)
    q = math.exp(log_upper - lg)  # regularized upper, < ~0.5 here
    return lg + math.log1p(-q)


def _log_upper_gamma_cf(x: float, y: float) -> float:
    """log Gamma(x, y) by the modified Lentz continued fraction (y >= x + 1)."""
    tiny = 1e-300
    b = y + 1.0 - x
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    i = 0
    while True:
        i += 1
        an = -i * (i - x)
        b += 2.0
        d = an * d + b
        if abs(d) < tiny:
            d = tiny
        c = b + an / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS or i > _MAX_ITER:
            break
    return x * math.log(y) - y + math.log(h)


def _series_sums(x: float, y: float) -> tuple[float, float]:
    """S0 = sum_k c_k and S1 = sum_k k c_k with c_k = y^k / ((x+1)...(x+k)).

    S0 = A(x, y).  Converges fast when y < x + 1 (the underloaded regime).
    """
    term = 1.0
    s0 = 1.0
    s1 = 0.0
    k = 0
    while True:
        k += 1
        term *= y / (x + k)
        s0 += term
        s1 += k * term
        if (k * term < s1 * _EPS and term < s0 * _EPS) or k > _MAX_ITER:
            break
    return s0, s1


# -- Erlang A -----------------------------------------------------------------
@dataclass(frozen=True)
class ErlangA:
    """M/M/N+M (Palm/Erlang-A): exponential patience with mean ``patience`` seconds.

    ``patience = math.inf`` gives Erlang C (where the queue is stable).
    """

    n: int
    lam: float
    aht: float
    patience: float

    def __post_init__(self) -> None:
        if self.n < 0 or self.lam < 0 or self.aht <= 0 or self.patience <= 0:
            raise ValueError("need n >= 0, lam >= 0, aht > 0, patience > 0")

    @property
    def load(self) -> float:
        return self.lam * self.aht

    @property
    def _theta(self) -> float:
        return 0.0 if math.isinf(self.patience) else 1.0 / self.patience

    @cached_property
    def _erlang_c(self) -> ErlangC | None:
        return ErlangC(self.n, self.lam, self.aht) if self._theta == 0.0 else None

    @cached_property
    def _core(self) -> tuple[float, float, float, float, float]:
        """(P(W>0), P(Ab|W>0), x, y, log gamma(x, y))."""
        n, lam, theta = self.n, self.lam, self._theta
        mu = 1.0 / self.aht
        if lam == 0:
            return 0.0, 0.0, 0.0, 0.0, 0.0
        x = n * mu / theta
        y = lam / theta
        log_e = log_erlang_b(n, self.load)
        if n == 0:
            # every caller waits and every caller abandons
            return 1.0, 1.0, 0.0, y, 0.0
        log_g = _log_lower_gamma(x, y)
        if y < x + 1.0:
            s0, s1 = _series_sums(x, y)
            log_a = math.log(s0)
            p_ab_given_wait = s1 / (y * s0)
        else:
            log_a = math.log(x) + y - x * math.log(y) + log_g
            rho = lam / (n * mu)
            p_ab_given_wait = math.exp(-log_a) / rho + 1.0 - 1.0 / rho
        # P(W>0) = A E / (1 + (A-1) E) = 1 / (1 + (1/E - 1) / A)
        inv = math.exp(-log_e) - 1.0
        p_wait = 1.0 / (1.0 + inv * math.exp(-log_a)) if inv > 0 else 1.0
        return p_wait, min(1.0, max(0.0, p_ab_given_wait)), x, y, log_g

    @property
    def p_wait(self) -> float:
        """Probability that a caller waits at all (finds every agent busy)."""
        if self._erlang_c is not None:
            return self._erlang_c.p_wait
        return self._core[0]

    @property
    def p_abandon(self) -> float:
        """Probability that a caller hangs up before being answered."""
        if self._erlang_c is not None:
            return 0.0 if self._erlang_c.stable else math.nan
        p_wait, p_ab_w, *_ = self._core
        return p_wait * p_ab_w

    @property
    def p_answered(self) -> float:
        """Connection rate: share of callers answered (1 - P(Ab))."""
        return 1.0 - self.p_abandon

    def p_wait_gt(self, t: float) -> float:
        """P(W > t): the caller is still waiting (neither answered nor gone) at ``t``."""
        if self._erlang_c is not None:
            return self._erlang_c.p_wait_gt(t)
        p_wait, _p, x, y, log_g = self._core
        if p_wait == 0.0:
            return 0.0
        if t <= 0:
            return p_wait
        if self.n == 0:
            return math.exp(-self._theta * t)
        s = self._theta * t
        return p_wait * math.exp(-s + _log_lower_gamma(x, y * math.exp(-s)) - log_g)

    def p_answered_after(self, t: float) -> float:
        """P(answered and W > t)."""
        if self._erlang_c is not None:
            return self._erlang_c.p_wait_gt(t)
        p_wait, _p, x, y, log_g = self._core
        if p_wait == 0.0 or self.n == 0:
            return 0.0
        s = self._theta * max(t, 0.0)
        return p_wait * math.exp(_log_lower_gamma(x + 1.0, y * math.exp(-s)) - math.log(y) - log_g)

    def answered_within(self, t: float) -> float:
        """Share of all offered callers answered within ``t`` seconds (e.g. the 15-s connection rate)."""
        if self._erlang_c is not None:
            return self._erlang_c.service_level(t)
        return max(0.0, self.p_answered - self.p_answered_after(t))

    @property
    def mean_wait(self) -> float:
        """Mean time in queue over all callers (answered or not), seconds."""
        if self._erlang_c is not None:
            return self._erlang_c.mean_wait
        return self.p_abandon * self.patience

    @property
    def occupancy(self) -> float:
        """Agent utilisation: carried load / agents."""
        if self.n == 0:
            return 0.0
        if self._erlang_c is not None:
            return self._erlang_c.occupancy
        return min(1.0, self.load * self.p_answered / self.n)


def erlang_a_by_states(n: int, lam: float, aht: float, patience: float, t: float = 0.0, tol: float = 1e-15) -> dict:
    """Erlang A by direct summation over the birth-death chain (an independent check).

    Returns ``p_wait``, ``p_abandon`` and ``mean_queue``.  Linear in the number
    of states, so only for tests and moderate sizes.
    """
    mu, theta = 1.0 / aht, 1.0 / patience
    a = lam * aht
    # pi_j for j <= n relative to pi_n (computed backwards to avoid overflow)
    rel = [1.0]
    for j in range(n, 0, -1):
        rel.append(rel[-1] * j / a)  # pi_{j-1} / pi_n
    below = sum(rel[1:])  # states 0..n-1
    # queue states k >= 0 (j = n + k); abandonment per state: P(Ab | k ahead)
    q_terms = []
    term = 1.0
    k = 0
    while True:
        q_terms.append(term)
        k += 1
        term *= lam / (n * mu + k * theta)
        if term < tol * sum(q_terms[-50:]) and k > 10:
            break
    total = below + sum(q_terms)
    p_wait = sum(q_terms) / total
    mean_queue = sum(k * v for k, v in enumerate(q_terms)) / total
    # P(Ab | arriving with k ahead) = 1 - prod_{m=0..k} (n mu + m theta) / (n mu + (m+1) theta)
    p_ab = 0.0
    served = 1.0
    for k, v in enumerate(q_terms):
        served *= (n * mu + k * theta) / (n * mu + (k + 1) * theta)
        p_ab += v / total * (1.0 - served)
    return {"p_wait": p_wait, "p_abandon": p_ab, "mean_queue": mean_queue}


# -- staffing -----------------------------------------------------------------
def agents_erlang_c(lam: float, aht: float, *, service_level: float, within_s: float, max_occupancy: float = 1.0, limit: int = 1_000_000) -> int:
    """Fewest agents so that Erlang C answers ``service_level`` of calls within ``within_s``."""
    if lam <= 0:
        return 0
    load = lam * aht
    n = max(1, int(math.floor(load)) + 1)
    while n < limit:
        m = ErlangC(n, lam, aht)
        if m.service_level(within_s) >= service_level and load / n <= max_occupancy:
            return n
        n += 1
    raise ValueError("no staffing level meets the target")


def agents_erlang_a(
    lam: float,
    aht: float,
    patience: float,
    *,
    answered: float = 0.0,
    answered_within: float = 0.0,
    within_s: float = 15.0,
    limit: int = 1_000_000,
) -> int:
    """Fewest agents so that Erlang A connects ``answered`` of callers and
    answers ``answered_within`` of all callers within ``within_s`` seconds."""
    if lam <= 0:
        return 0

    def ok(n: int) -> bool:
        m = ErlangA(n, lam, aht, patience)
        return m.p_answered >= answered and m.answered_within(within_s) >= answered_within

    # both measures increase with n: exponential then binary search
    lo, hi = 0, max(1, int(lam * aht))
    while not ok(hi):
        lo, hi = hi, hi * 2
        if hi > limit:
            raise ValueError("no staffing level meets the target")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi
