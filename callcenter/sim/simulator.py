"""Drive the real routing engine through a simulated day.

The engine under test is the production :class:`callcenter.engine.Engine`,
unchanged: the simulator only feeds it inputs, as the FastAGI, seat and lender
shells do in production, and reads its events.  Time is a
:class:`~callcenter.sim.clock.SimClock`; randomness is one injected
``random.Random`` from which independent streams are derived:

* the *callers* stream draws arrivals (a Poisson process whose rate is
  constant within each hour: ``calls_per_hour x surge``), each caller's
  category, patience and talk time;
* the *agents* stream draws ring delays, unanswered rings (RONA) and wrap-ups.

Keeping the two apart gives common random numbers: two runs with the same
seed but different routing (``--compare-no-overflow``) see exactly the same
callers, so their difference is the routing, not the dice.

Synthetic callers arrive (``call_arrived``), hang up when their patience runs
out unless answered first (``caller_hung_up`` -- while waiting or ringing), and
may accept a callback when the engine offers one.  Synthetic agents log in and
out by shift, go ready, answer an offer after a ring delay (``offer_answered``)
or, with the pool's no-answer probability, let it ring out (the engine's own
ring timer then reports ``no-answer``), talk (``call_completed``), and wrap up:
the engine ends wrap-up after the pool's ``wrapup_s`` as in production; a
scenario ``wrapup`` distribution makes agents end it sooner (``wrapup_ended``).
An agent the engine sets not-ready after missed rings goes ready again after
``ready_again_s``.  Lending hotlines report their own waiting callers every
``home_report_every_s`` (``home_load_reported``).

The listener does a few dictionary operations per event, so the cost of a
simulated call is dominated by the engine itself (see benchmarks/simulate.py).
The per-call paths (an arrival, the ~10 events of a call, its 4 agent state
changes) are kept flat for that reason: agent state changes update the pool
counters from a table of per-transition deltas, the hot inputs call the
engine directly instead of through the generic ``_input`` wrapper, and the
garbage collector runs less often during a run (see ``_gc_tuned``).
"""

from __future__ import annotations

import gc
import math
import random
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from callcenter.config import Config, parse_config
from callcenter.engine import Engine, EngineError
from callcenter.engine.events import (
    AGENT_STATES,
    LOGGED_OUT,
    NOT_READY,
    OFFERED,
    ON_CALL,
    WRAPUP,
    AgentStateChanged,
    CallAnswered,
    CallbackRequested,
    CallEnded,
    CallOffered,
    CallQueued,
    OfferEnded,
    PositionAnnounced,
    QueueOverflowChanged,
    TierUnlocked,
)

from .clock import SimClock
from .scenario import HOURS, Scenario, check_against_config

__all__ = ["simulate", "SimResult", "CallRecord", "without_overflow", "SimulationBug"]


class SimulationBug(Exception):
    """The simulator's own event handling failed (our bug, not the engine's decision)."""

HOUR = 3600.0
SAMPLE_EVERY_S = 60.0

_BUSY = frozenset((OFFERED, ON_CALL, WRAPUP))  # an agent working on one of our calls


def _transition_deltas(old: str, new: str) -> tuple[int, int, int, int, bool]:
    """How an agent's move from ``old`` to ``new`` changes its pool's counters:
    (logged in, not-ready, busy, on-call, became busy)."""
    busy_old, busy_new = old in _BUSY, new in _BUSY
    return ((old == LOGGED_OUT) - (new == LOGGED_OUT), (new == NOT_READY) - (old == NOT_READY),
            busy_new - busy_old, (new == ON_CALL) - (old == ON_CALL), busy_new and not busy_old)


# every (old, new) pair: one dictionary lookup per state change instead of a dozen comparisons
_DELTAS = {(o, n): _transition_deltas(o, n) for o in AGENT_STATES for n in AGENT_STATES}

# per-call tracking states (our view, from the engine's events)
_WAITING, _RINGING, _TALKING = 0, 1, 2


@dataclass(slots=True)
class CallRecord:
    """One call's life as the simulation saw it."""

    call_id: str
    queue: str
    category: str
    arrived: float
    outcome: str = ""  # answered | abandoned | called-back | fallback
    wait_s: float = 0.0
    pool: str | None = None
    tier: int | None = None
    talk_s: float = 0.0
    callback: bool = False  # the caller chose callback while waiting
    origin: str | None = None  # for a callback the engine created from an abandoned call
    short_abandon: bool = False
    reason: str = ""


@dataclass
class PoolTally:
    """Time integrals of a pool's agents, per hour (agent-seconds)."""

    logged: list[float] = field(default_factory=lambda: [0.0] * HOURS)
    staffed: list[float] = field(default_factory=lambda: [0.0] * HOURS)  # logged in and not not-ready
    busy: list[float] = field(default_factory=lambda: [0.0] * HOURS)  # offered + on-call + wrap-up
    on_call: list[float] = field(default_factory=lambda: [0.0] * HOURS)
    max_busy_share: list[float] = field(default_factory=lambda: [0.0] * HOURS)
    # the drain after the scenario's end (no new callers, last calls finishing), booked apart so
    # that it does not inflate the last hour's agents and occupancy
    drain: dict[str, float] = field(default_factory=lambda: {"logged": 0.0, "staffed": 0.0, "busy": 0.0,
                                                             "on_call": 0.0, "seconds": 0.0})
    offers: int = 0
    no_answer: int = 0


@dataclass
class SimResult:
    """Everything a run produced; :mod:`callcenter.sim.report` turns it into figures."""

    scenario: Scenario
    config: Config
    seed: int | None
    calls: list[CallRecord]
    pools: dict[str, PoolTally]
    timeline: list[tuple[float, dict[str, list[int]]]]  # (t, {queue: waiting by reachable tier})
    pool_timeline: list[tuple[float, dict[str, tuple[int, int]]]]  # (t, {pool: (logged, busy)})
    events: int
    inputs: int
    wall_s: float
    sim_end: float
    overflow: bool = True
    errors: list[str] = field(default_factory=list)


class _Call:
    __slots__ = ("rec", "state", "agent", "patience_dc", "talk_s", "level", "hour")


class _Agent:
    __slots__ = ("id", "pool", "state", "wrap_token", "logout_at", "staff")


class _PoolRun:
    __slots__ = ("name", "tally", "staff", "n_logged", "n_notready", "n_busy", "n_oncall", "a_logged", "a_notready",
                 "a_busy", "a_oncall", "last", "flushed_at", "lender", "ring", "no_answer", "wrap",
                 "ready_again_s", "wrapup_s", "ring_timeout_s")


class _Run:
    """One simulation: engine, clock, callers and agents."""

    def __init__(self, config: Config, scenario: Scenario, rng: random.Random, progress: Callable[[float], None] | None):
        check_against_config(scenario, config)
        self.config = config
        self.scenario = scenario
        self.clock = clock = SimClock(scenario.start_hour * HOUR)
        self.engine = Engine(config, clock)
        self.callers_rng = random.Random(rng.getrandbits(64))
        self.agents_rng = random.Random(rng.getrandbits(64))
        self.progress = progress
        self.calls: dict[str, _Call] = {}
        self.records: list[CallRecord] = []
        self.agents: dict[str, _Agent] = {}
        self.inputs = 0
        self.errors: list[str] = []
        self.bugs: list[str] = []
        self.end_s = scenario.end_hour * HOUR
        self.timeline: list[tuple[float, dict[str, list[int]]]] = []
        self.pool_timeline: list[tuple[float, dict[str, tuple[int, int]]]] = []
        self.waiting_by_level: dict[str, list[int]] = {}
        self.queue_level: dict[str, int] = {q.name: 0 for q in config.queues}
        top = max((p.tier for p in config.pools), default=0)
        for q in config.queues:
            self.waiting_by_level[q.name] = [0] * (top + 1)
        self._next_id = 0
        self._build_pools()
        self._build_callers()
        self._dispatch = {
            CallQueued: self._call_queued,
            CallOffered: self._call_offered,
            OfferEnded: self._offer_ended,
            CallAnswered: self._call_answered,
            CallEnded: self._call_ended,
            AgentStateChanged: self._agent_state_changed,
            PositionAnnounced: self._position_announced,
            TierUnlocked: self._tier_unlocked,
            QueueOverflowChanged: self._overflow_changed,
            CallbackRequested: self._callback_requested,
        }
        self.engine.subscribe(self._make_listener())

    # ------------------------------------------------------------- set-up
    def _build_pools(self) -> None:
        self.pools: dict[str, _PoolRun] = {}
        for p in self.config.pools:
            pr = _PoolRun()
            pr.name = p.name
            pr.tally = PoolTally()
            pr.staff = self.scenario.pools.get(p.name)
            pr.n_logged = pr.n_notready = pr.n_busy = pr.n_oncall = 0
            pr.a_logged = pr.a_notready = pr.a_busy = pr.a_oncall = 0.0  # agent-seconds since flushed_at
            pr.last = pr.flushed_at = self.clock.now
            pr.lender = p.kind == "borrowed"
            pr.wrapup_s = p.wrapup_s
            pr.ring_timeout_s = p.ring_timeout_s
            if pr.staff is not None:
                pr.ring = pr.staff.ring.sampler(self.agents_rng)
                pr.no_answer = pr.staff.no_answer
                pr.wrap = pr.staff.wrapup.sampler(self.agents_rng) if pr.staff.wrapup is not None else None
                pr.ready_again_s = pr.staff.ready_again_s
            else:
                pr.ring, pr.no_answer, pr.wrap, pr.ready_again_s = (lambda: 0.0), 0.0, None, 60.0
            self.pools[p.name] = pr

    def _build_callers(self) -> None:
        rng = self.callers_rng
        self.queue_plans = []
        for qname, load in self.scenario.queues.items():
            qcfg = self.config.queue(qname)
            rates = [n * self.scenario.surge / HOUR for n in load.hourly()]
            mix = load.category_mix or {qcfg.default_category: 1.0}
            names = list(mix)
            cum = []
            acc = 0.0
            total = sum(mix.values())
            for n in names:
                acc += mix[n] / total
                cum.append(acc)
            self.queue_plans.append(
                (qname, rates, names, cum, load.patience.sampler(rng), load.talk.sampler(rng), load.callback_accept)
            )

    # ------------------------------------------------------------ driving
    def run(self) -> None:
        clock = self.clock
        start = clock.now
        for plan in self.queue_plans:
            self._schedule_arrival(plan, start)
        for pname, pr in self.pools.items():
            if pr.staff is None:
                continue
            for i, (login_h, logout_h) in enumerate(pr.staff.intervals()):
                agent_id = f"{pname}/{i}"
                login = max(login_h * HOUR, start)
                if logout_h * HOUR <= start or login >= self.end_s:
                    continue
                logout = logout_h * HOUR if logout_h * HOUR < self.end_s else None
                clock.callLater(login - start, self._log_in, agent_id, pname, logout)
        for pname, pr in self.pools.items():
            cfg = self.config.pool(pname)
            if cfg.kind == "borrowed" and cfg.home_waiting_max is not None:
                every = pr.staff.home_report_every_s if pr.staff is not None else 30.0
                clock.callLater(0.0, self._report_home, pname, every)
        for sw in sorted(self.scenario.emergency, key=lambda sw: sw.at):
            at = sw.at * HOUR
            if at < self.end_s:  # a switch before the window applies from its start
                clock.callLater(max(0.0, at - start), self._input, self.engine.emergency_set, sw.queue, sw.plan,
                                "scenario")
        h = math.floor(start / HOUR) + 1
        while h * HOUR < self.end_s:
            clock.callLater(h * HOUR - start, self._flush_pools)
            h += 1
        clock.callLater(0.0, self._sample)
        step = 600.0
        t = start
        while t < self.end_s:
            t = min(t + step, self.end_s)
            clock.run_until(t)
            if self.progress:
                self.progress(clock.now)
        self._flush_pools()  # the last (partial) hour of the window ends here
        # drain: no new callers; run until every call has an outcome
        deadline = self.end_s + self.scenario.drain_limit_s
        while self.calls and clock.now < deadline:
            clock.run_until(min(clock.now + step, deadline))
        self._flush_pools(drain=True)
        for c in list(self.calls.values()):  # still open at the drain limit
            if not c.rec.outcome:
                c.rec.outcome = "unfinished"
                c.rec.wait_s = clock.now - c.rec.arrived
                self.records.append(c.rec)
        self.calls.clear()

    def _input(self, fn, *args, **kw):
        """Feed one input to the engine; a refused input is a simulator bug worth recording.

        The per-call inputs (arrival, answer, hang-up, end of talk, end of wrap-up) inline
        this (count, call, ``_refused`` on an EngineError): it runs ~4 times per call."""
        self.inputs += 1
        try:
            fn(*args, **kw)
        except EngineError as exc:
            self._refused(fn, args, exc)

    def _refused(self, fn, args: tuple, exc: EngineError) -> None:
        if len(self.errors) < 100:
            self.errors.append(f"t={self.clock.now:.1f} {fn.__name__}{args}: {type(exc).__name__}: {exc}")

    # ----------------------------------------------------------- callers
    def _schedule_arrival(self, plan, t: float) -> None:
        rates = plan[1]
        end = self.end_s
        while t < end:
            h = int(t // HOUR)
            rate = rates[h] if h < HOURS else 0.0
            boundary = min((h + 1) * HOUR, end)
            if rate > 0:
                nxt = t + self.callers_rng.expovariate(rate)
                if nxt < boundary:
                    self.clock.callLater(nxt - self.clock.now, self._arrive, plan, nxt)
                    return
            t = boundary  # memoryless: restart at the hour with its own rate

    def _arrive(self, plan, t: float) -> None:
        qname, _rates, names, cum, patience, talk, _cb = plan
        rng = self.callers_rng
        cat = names[0] if len(names) == 1 else names[min(bisect_left(cum, rng.random()), len(names) - 1)]
        p = patience()
        talk_s = talk()
        self._next_id += 1
        cid = f"c{self._next_id}"
        c = _Call()
        c.rec = CallRecord(cid, qname, cat, t)
        c.state = None  # until the engine queues it
        c.agent = None
        c.talk_s = talk_s
        c.level = 0
        c.patience_dc = self.clock.callLater(p, self._abandon, cid) if p != math.inf else None
        self.calls[cid] = c
        self.inputs += 1
        try:
            self.engine.call_arrived(cid, qname, category=cat)
        except EngineError as exc:
            self._refused(self.engine.call_arrived, (cid, qname), exc)
        self._schedule_arrival(plan, t)

    def _abandon(self, cid: str) -> None:
        c = self.calls.get(cid)
        if c is None:
            return
        c.patience_dc = None
        if c.state != _TALKING:
            self.inputs += 1
            try:
                self.engine.caller_hung_up(cid)
            except EngineError as exc:
                self._refused(self.engine.caller_hung_up, (cid,), exc)

    # ------------------------------------------------------------ agents
    def _log_in(self, agent_id: str, pool: str, logout_at: float | None) -> None:
        a = _Agent()
        a.id, a.pool, a.state, a.wrap_token, a.logout_at = agent_id, pool, LOGGED_OUT, 0, logout_at
        self.agents[agent_id] = a
        staff = self.pools[pool].staff
        self._input(self.engine.agent_logged_in, agent_id, pool, skills=dict(staff.skills) if staff else None)
        self._input(self.engine.agent_ready, agent_id)
        if logout_at is not None:
            self.clock.callLater(logout_at - self.clock.now, self._log_out, agent_id)

    def _log_out(self, agent_id: str) -> None:
        if agent_id in self.agents:
            self._input(self.engine.agent_logged_out, agent_id, "shift-end")

    def _answer(self, cid: str, agent_id: str) -> None:
        c = self.calls.get(cid)
        if c is not None and c.state == _RINGING and c.agent == agent_id:
            self.inputs += 1
            try:
                self.engine.offer_answered(cid, agent_id)
            except EngineError as exc:
                self._refused(self.engine.offer_answered, (cid, agent_id), exc)

    def _talk_over(self, cid: str) -> None:
        if cid in self.calls:
            self.inputs += 1
            try:
                self.engine.call_completed(cid, "caller")
            except EngineError as exc:
                self._refused(self.engine.call_completed, (cid, "caller"), exc)

    def _wrap_over(self, agent_id: str, token: int) -> None:
        a = self.agents.get(agent_id)
        if a is not None and a.state == WRAPUP and a.wrap_token == token:
            self.inputs += 1
            try:
                self.engine.wrapup_ended(agent_id)
            except EngineError as exc:
                self._refused(self.engine.wrapup_ended, (agent_id,), exc)

    def _ready_again(self, agent_id: str) -> None:
        a = self.agents.get(agent_id)
        if a is not None and a.state == NOT_READY:
            self._input(self.engine.agent_ready, agent_id)

    def _report_home(self, pool: str, every: float) -> None:
        now = self.clock.now
        if now >= self.end_s and not self.calls:
            return
        staff = self.pools[pool].staff
        h = min(int(now // HOUR), HOURS - 1)
        waiting = int(round(staff.home_waiting[h])) if staff is not None and staff.home_waiting is not None else 0
        self._input(self.engine.home_load_reported, pool, waiting, now)
        self.clock.callLater(every, self._report_home, pool, every)

    # ---------------------------------------------------------- sampling
    def _sample(self) -> None:
        now = self.clock.now
        snap = {}
        for q, counts in self.waiting_by_level.items():
            ql = self.queue_level[q]
            eff = list(counts)
            if ql > 0:
                eff[ql] = sum(counts[: ql + 1])
                for k in range(ql):
                    eff[k] = 0
            snap[q] = eff
        self.timeline.append((now, snap))
        self.pool_timeline.append(
            (now, {n: (pr.n_logged, pr.n_busy) for n, pr in self.pools.items()})
        )
        if now < self.end_s or self.calls:
            self.clock.callLater(SAMPLE_EVERY_S, self._sample)

    @staticmethod
    def _accumulate(pr: _PoolRun, now: float) -> None:
        dt = now - pr.last
        if dt > 0:
            pr.a_logged += pr.n_logged * dt
            pr.a_notready += pr.n_notready * dt
            pr.a_busy += pr.n_busy * dt
            pr.a_oncall += pr.n_oncall * dt
            pr.last = now

    def _flush_pools(self, drain: bool = False) -> None:
        """At each hour boundary and at the window's end: book the agent-seconds into the hour they
        belong to; after the drain, into the pool's ``drain`` tally."""
        now = self.clock.now
        for pr in self.pools.values():
            self._accumulate(pr, now)
            t = pr.tally
            if drain:
                d = t.drain
                d["logged"] += pr.a_logged
                d["staffed"] += pr.a_logged - pr.a_notready
                d["busy"] += pr.a_busy
                d["on_call"] += pr.a_oncall
                d["seconds"] += now - pr.flushed_at
            else:
                h = min(int(pr.flushed_at // HOUR), HOURS - 1)
                t.logged[h] += pr.a_logged
                t.staffed[h] += pr.a_logged - pr.a_notready
                t.busy[h] += pr.a_busy
                t.on_call[h] += pr.a_oncall
            pr.a_logged = pr.a_notready = pr.a_busy = pr.a_oncall = 0.0
            pr.flushed_at = now

    # ------------------------------------------------------------ events
    def _make_listener(self):
        """The engine listener: one dictionary lookup per event (called ~10 times per call)."""
        get = self._dispatch.get
        counter = [0]
        self._event_counter = counter

        def listener(event) -> None:
            counter[0] += 1
            handler = get(event.__class__)
            if handler is not None:
                try:
                    handler(event)
                except Exception as exc:  # the engine would only log it; a simulation must not hide it
                    self.bugs.append(f"t={self.clock.now:.1f} handling {event.kind}: {type(exc).__name__}: {exc!r}")

        return listener

    def _call_queued(self, ev: CallQueued) -> None:
        c = self.calls.get(ev.call_id)
        if c is None:
            # a callback the engine created from an abandoned call
            c = _Call()
            c.rec = CallRecord(ev.call_id, ev.queue, ev.category, ev.t, origin=ev.origin_call_id)
            c.agent = None
            c.patience_dc = None
            c.talk_s = self.queue_talk(ev.queue)
            c.level = 0
            self.calls[ev.call_id] = c
        c.state = _WAITING
        self.waiting_by_level[ev.queue][0] += 1

    def queue_talk(self, queue: str) -> float:
        for plan in self.queue_plans:
            if plan[0] == queue:
                return plan[5]()
        return 0.0

    def _tier_unlocked(self, ev: TierUnlocked) -> None:
        c = self.calls.get(ev.call_id)
        if c is not None:
            if c.state == _WAITING:
                counts = self.waiting_by_level[ev.queue]
                counts[c.level] -= 1
                counts[ev.tier] += 1
            c.level = ev.tier

    def _overflow_changed(self, ev: QueueOverflowChanged) -> None:
        self.queue_level[ev.queue] = ev.tier

    def _call_offered(self, ev: CallOffered) -> None:
        c = self.calls[ev.call_id]
        if c.state == _WAITING:
            self.waiting_by_level[ev.queue][c.level] -= 1
        c.state = _RINGING
        c.agent = ev.agent_id
        pr = self.pools[ev.pool]
        pr.tally.offers += 1
        rng = self.agents_rng
        if pr.no_answer and rng.random() < pr.no_answer:
            return  # rings out: the engine's ring timer reports no-answer
        delay = pr.ring()
        if delay < pr.ring_timeout_s:
            self.clock.callLater(delay, self._answer, ev.call_id, ev.agent_id)

    def _offer_ended(self, ev: OfferEnded) -> None:
        if ev.result == "answered":
            return
        if ev.result == "no-answer":
            self.pools[ev.pool].tally.no_answer += 1
        c = self.calls.get(ev.call_id)
        if c is not None and c.state == _RINGING:
            c.state = _WAITING
            c.agent = None
            self.waiting_by_level[c.rec.queue][c.level] += 1

    def _call_answered(self, ev: CallAnswered) -> None:
        c = self.calls[ev.call_id]
        c.state = _TALKING
        if c.patience_dc is not None:
            c.patience_dc.cancel()
            c.patience_dc = None
        self.clock.callLater(c.talk_s, self._talk_over, ev.call_id)

    def _callback_requested(self, ev: CallbackRequested) -> None:
        c = self.calls.get(ev.call_id)
        if c is not None:
            c.rec.callback = True
            if c.patience_dc is not None:
                c.patience_dc.cancel()
                c.patience_dc = None

    def _position_announced(self, ev: PositionAnnounced) -> None:
        if not ev.callback_offered:
            return
        c = self.calls.get(ev.call_id)
        if c is None or c.rec.callback:
            return
        accept = self.scenario.queues[ev.queue].callback_accept if ev.queue in self.scenario.queues else 0.0
        if accept and self.callers_rng.random() < accept:
            self._input(self.engine.callback_requested, ev.call_id)

    def _call_ended(self, ev: CallEnded) -> None:
        c = self.calls.pop(ev.call_id, None)
        if c is None:
            return
        if c.state == _WAITING:
            self.waiting_by_level[ev.queue][c.level] -= 1
        if c.patience_dc is not None:
            c.patience_dc.cancel()
        r = c.rec
        r.outcome = ev.outcome
        r.wait_s = ev.wait_s
        r.pool = ev.pool
        r.tier = ev.tier
        r.talk_s = ev.talk_s
        r.short_abandon = ev.short_abandon
        r.reason = ev.reason
        self.records.append(r)

    def _agent_state_changed(self, ev: AgentStateChanged) -> None:
        pr = self.pools[ev.pool]
        now = ev.t
        dt = now - pr.last
        if dt > 0:  # _accumulate, inlined: 4 state changes per call
            pr.a_logged += pr.n_logged * dt
            pr.a_notready += pr.n_notready * dt
            pr.a_busy += pr.n_busy * dt
            pr.a_oncall += pr.n_oncall * dt
            pr.last = now
        d_logged, d_notready, d_busy, d_oncall, became_busy = _DELTAS[ev.old, ev.new]
        if d_logged:
            pr.n_logged += d_logged
        if d_notready:
            pr.n_notready += d_notready
        if d_busy:
            pr.n_busy += d_busy
        if d_oncall:
            pr.n_oncall += d_oncall
        if became_busy and pr.lender and pr.n_logged:  # the engine just offered a call
            share = pr.n_busy / pr.n_logged
            h = min(int(now // HOUR), HOURS - 1)
            if share > pr.tally.max_busy_share[h]:
                pr.tally.max_busy_share[h] = share
        a = self.agents.get(ev.agent_id)
        if a is None:
            return
        a.state = ev.new
        new = ev.new
        if new == WRAPUP:
            if pr.wrap is not None:
                w = pr.wrap()
                if w < pr.wrapup_s:
                    a.wrap_token += 1
                    self.clock.callLater(w, self._wrap_over, a.id, a.wrap_token)
        elif new == NOT_READY:
            if ev.old != LOGGED_OUT:  # the engine set it not-ready (missed rings, unreachable)
                self.clock.callLater(pr.ready_again_s, self._ready_again, a.id)
        elif new == LOGGED_OUT:
            del self.agents[ev.agent_id]


def without_overflow(config: Config) -> Config:
    """The same config with every queue reduced to its tier-0 pools (no overflow)."""
    raw = config.model_dump(mode="python")
    tiers = {p["name"]: p["tier"] for p in raw["pools"]}
    for q in raw["queues"]:
        q["pools"] = [p for p in q["pools"] if tiers[p] == 0]
        q["tiers"] = []
        for plan in q.get("emergency_plans", {}).values():
            plan["tiers"] = None
    return parse_config(raw, "config without overflow", env={})


@contextmanager
def _gc_tuned(gen0: int = 50_000) -> Iterator[None]:
    """Run the garbage collector rarely during a simulation, then restore its settings.

    A run allocates millions of short-lived acyclic objects (events, tuples, heap
    entries) that reference counting frees; with the default gen-0 threshold (700)
    the collector still runs every few hundred allocations and re-scans the growing
    call records in the older generations, about 5% of a run.  Objects built before
    the run (config, engine, agents) are frozen out of the scans as well, unless
    the process froze objects itself (then its freeze is left alone).
    """
    old = gc.get_threshold()
    froze = gc.isenabled() and gc.get_freeze_count() == 0
    if froze:
        gc.freeze()
    gc.set_threshold(max(old[0], gen0), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        if froze:
            gc.unfreeze()


def simulate(
    config: Config,
    scenario: Scenario,
    rng: random.Random | int | None = None,
    *,
    progress: Callable[[float], None] | None = None,
) -> SimResult:
    """Run one simulated day; ``rng`` is a ``random.Random`` (or a seed).  Same seed, same result."""
    seed = rng if isinstance(rng, int) else None
    if not isinstance(rng, random.Random):
        rng = random.Random(rng)
    t0 = time.perf_counter()
    run = _Run(config, scenario, rng, progress)
    with _gc_tuned():
        run.run()
    if run.bugs:
        raise SimulationBug("the simulator failed on engine events:\n" + "\n".join(run.bugs[:20]))
    wall = time.perf_counter() - t0
    records = sorted(run.records, key=lambda r: (r.arrived, r.call_id))
    return SimResult(
        scenario=scenario,
        config=config,
        seed=seed,
        calls=records,
        pools={n: pr.tally for n, pr in run.pools.items()},
        timeline=run.timeline,
        pool_timeline=run.pool_timeline,
        events=run._event_counter[0],
        inputs=run.inputs,
        wall_s=wall,
        sim_end=run.clock.now,
        errors=run.errors,
    )
