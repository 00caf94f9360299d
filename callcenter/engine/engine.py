"""The routing engine: state, indexes and the handling of every input.

Pure and deterministic: no sockets, no Redis, no database, no global reactor.
Timers go through the injected ``clock`` (any ``IReactorTime``), so tests
drive it with ``task.Clock`` and the simulator with its own heap clock.

Indexes keep every decision sub-linear in the number of agents: per pool and
selection order a sorted list of ready agents (and one per skill), per queue a
sorted list of waiting calls by (priority, arrival) and buckets of them by
unlocked tier and required skill.  Nothing scans all agents.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import OrderedDict, deque
from collections.abc import Callable
from itertools import islice
from typing import Any

from sortedcontainers import SortedList
from twisted.logger import Logger

from ..config import Config
from . import routing
from . import states as st
from .errors import (
    CallNotWaiting,
    DuplicateCall,
    EngineError,
    IllegalTransition,
    StaleOffer,
    UnknownAgent,
    UnknownCall,
    UnknownPool,
    UnknownQueue,
)
from .events import (
    AGENT_LOGGED_OUT,
    ANSWERED,
    BUSY,
    CALLER_HUNG_UP,
    CANCELLED,
    LOGGED_OUT,
    NO_ANSWER,
    NOT_READY,
    OFFERED,
    ON_CALL,
    OUTCOME_ABANDONED,
    OUTCOME_ADMIN,
    OUTCOME_ANSWERED,
    OUTCOME_CALLBACK_FAILED,
    OUTCOME_CALLED_BACK,
    OUTCOME_FALLBACK,
    OUTCOME_LOST,
    OUTCOME_SHED,
    OUTCOME_SHUTDOWN,
    READY,
    REJECTED,
    SHORT_ABANDON_S,
    UNAVAILABLE,
    WRAPUP,
    AgentStateChanged,
    CallAnswered,
    CallbackRequested,
    CallEnded,
    CallOffered,
    CallQueued,
    ChoiceMade,
    ConfigReplaced,
    EmergencyChanged,
    Event,
    HomeLoadReported,
    OfferEnded,
    PositionAnnounced,
    QueueOverflowChanged,
    TierUnlocked,
)

log = Logger()

# call states
WAITING = "waiting"
RINGING = "offered"
TALKING = "talking"

MAX_CHOICES = 20
MAX_CALLBACK_ATTEMPTS = 3
AHT_ALPHA = 0.1  # weight of the newest handle time in the queue's moving average
SNAPSHOT_VERSION = 1
ENDED_REMEMBERED = 50_000
SNAPSHOT_ENDED = 2_000  # of them carried in a snapshot  # ended call ids kept so that none can arrive (and end) a second time
# outcomes end_call may give: the ACD's own verdicts, never the switch's (see docs/routing.md)
END_OUTCOMES = frozenset((OUTCOME_LOST, OUTCOME_SHUTDOWN, OUTCOME_ADMIN))
NOT_QUEUED_OUTCOMES = frozenset((OUTCOME_SHED, OUTCOME_ABANDONED))

# agent states that matter for the counts kept per pool (hot path: set lookups, not tuple scans)
_BUSY = frozenset((OFFERED, ON_CALL, WRAPUP))  # working on one of our calls: the lender cap counts them
_UNSTAFFED = frozenset((LOGGED_OUT, NOT_READY))  # not counted as staff by the expected wait
_TRANSITIONS = st.TRANSITIONS


class _SortedKeys:
    """Unique keys (tuples) kept sorted: the ready-agent indexes and the waiting-call lists.

    Small lists -- nearly all of them: a pool's ready agents, a queue's waiting calls -- are a
    plain list with C bisect/insort, several times cheaper per add/remove than a SortedList.
    Past ``LIMIT`` keys it becomes a SortedList for good, so a decision stays sub-linear with
    100,000 agents (benchmarks/routing.py).  Same keys, same order either way.
    """

    __slots__ = ("_keys", "_big")
    LIMIT = 2048

    def __init__(self) -> None:
        self._keys: list[tuple] = []
        self._big: SortedList | None = None

    def add(self, key: tuple) -> None:
        if self._big is None:
            keys = self._keys
            insort(keys, key)
            if len(keys) > self.LIMIT:
                self._big = SortedList(keys)
                self._keys = []
        else:
            self._big.add(key)

    def remove(self, key: tuple) -> None:
        if self._big is None:
            keys = self._keys
            i = bisect_left(keys, key)
            if i == len(keys) or keys[i] != key:
                raise ValueError(f"{key!r} not in list")
            del keys[i]
        else:
            self._big.remove(key)

    def bisect_left(self, key: tuple) -> int:
        return bisect_left(self._keys, key) if self._big is None else self._big.bisect_left(key)

    def __getitem__(self, i: int) -> tuple:
        return self._keys[i] if self._big is None else self._big[i]

    def __iter__(self):
        return iter(self._keys if self._big is None else self._big)

    def __len__(self) -> int:
        return len(self._keys if self._big is None else self._big)

    def __bool__(self) -> bool:
        return bool(self._keys if self._big is None else self._big)


class _Timer:
    """A scheduled call plus its creation number: equal deadlines fire in creation order,
    and a restored engine re-arms its timers in that order, so it decides exactly as before."""

    __slots__ = ("dc", "seq")

    def __init__(self, dc, seq: int) -> None:
        self.dc, self.seq = dc, seq

    def active(self) -> bool:
        return self.dc.active()

    def cancel(self) -> None:
        self.dc.cancel()

    def stop(self) -> None:
        """Cancel unless it already ran or was cancelled (one call on the hot path)."""
        dc = self.dc
        if dc.active():
            dc.cancel()

    def getTime(self) -> float:
        return self.dc.getTime()


class _Call:
    __slots__ = (
        "id", "queue", "category", "priority", "caller_masked", "arrived", "seq", "level", "callback",
        "origin", "choices", "state", "agent", "offer_at", "attempt", "answered_at", "skill", "required",
        "urgent", "plan", "bucket", "excluded", "overdue", "cb_attempts", "timers", "key",
    )

    def __init__(self) -> None:
        self.timers: dict[str, Any] = {}
        self.excluded: set[str] = set()
        self.choices: list[str] = []
        # self.key = (-priority, seq, id): the call's place in its queue's sorted lists, fixed for life


class _Agent:
    __slots__ = (
        "id", "pool", "skills", "endpoint", "state", "reason", "since", "idle_since", "calls", "last_offer",
        "misses", "call", "seq", "logout_pending", "timer", "entries", "wrap_deadline", "lists", "session",
    )

    def __init__(self) -> None:
        self.session = ""  # the seat session id its seat token must carry (seats/session.py)
        self.entries: list[tuple[_SortedKeys, tuple]] = []
        self.lists = None  # see Engine._ready_lists
        self.timer = None
        self.wrap_deadline: float | None = None


class _PoolState:
    __slots__ = ("cfg", "queues", "qstates", "strategies", "general", "by_skill", "counts", "logged_in", "busy",
                 "home_waiting", "home_at", "unguarded", "staffed", "ready_lists")

    def __init__(self, cfg, queues: list[str], strategies: set[str]) -> None:
        self.cfg = cfg
        self.queues = queues
        self.qstates: list[_QueueState] = []  # the same queues as objects, filled in by Engine._setup
        self.strategies = strategies
        # neither a lender cap nor a home-load gate: always open, no need to ask routing.py
        self.unguarded = cfg.max_share is None and cfg.home_waiting_max is None
        self.general: dict[str, _SortedKeys] = {s: _SortedKeys() for s in strategies}
        self.by_skill: dict[str, dict[str, _SortedKeys]] = {}
        self.ready_lists: dict[tuple, list] = {}  # skills -> index lists (Engine._ready_lists)
        self.counts: dict[str, int] = {s: 0 for s in (READY, NOT_READY, OFFERED, ON_CALL, WRAPUP)}
        self.logged_in = 0
        self.busy = 0  # offered + on-call + wrap-up: agents working on our calls
        self.staffed = 0  # ready + offered + on-call + wrap-up: the expected wait's staff (kept by _set_state)
        self.home_waiting: int | None = None
        self.home_at: float | None = None


class _QueueState:
    __slots__ = ("cfg", "plan_name", "plan", "rules", "top_tier", "pools", "order", "buckets", "queue_level",
                 "aht", "sweeping", "sweep_again", "strategy", "plan_by", "plan_at")

    def __init__(self, cfg, pools: list[_PoolState]) -> None:
        self.cfg = cfg
        self.plan_name: str | None = None
        self.plan = None
        self.plan_by: str | None = None  # who switched the plan on, and when (shown in status)
        self.plan_at: float | None = None
        self.pools = sorted(pools, key=lambda p: p.cfg.tier)
        self.top_tier = max(p.cfg.tier for p in pools)
        self.rules = routing.tier_rules(cfg, None)
        self.order = _SortedKeys()  # every waiting call: (-priority, seq, id)
        self.buckets: dict[tuple[int, str | None], _SortedKeys] = {}
        self.queue_level = 0
        self.aht = cfg.aht_s
        self.sweeping = False
        self.sweep_again = False
        self.strategy = cfg.selection

    def set_plan(self, name: str | None) -> None:
        self.plan_name = name
        self.plan = self.cfg.emergency_plans[name] if name is not None else None
        self.rules = routing.tier_rules(self.cfg, self.plan)


class Engine:
    """Queues, agents and the decisions between them.  See callcenter/engine/__init__.py."""

    def __init__(self, config: Config, clock) -> None:
        self.clock = clock
        self._listeners: list[Callable[[Event], None]] = []
        self._listeners_now: tuple[Callable[[Event], None], ...] = ()  # copy delivered to, renewed on (un)subscribe
        self._input_listeners: list[Callable[[dict], None]] = []
        # the current input's event list's append while an input runs (see _run)
        self._emit: Callable[[Event], None] = self._emit_outside
        self._pending: deque[Event] = deque()
        self._delivering = False
        self._seq = 0
        self._offer_seq = 0
        self._agent_seq = 0
        self._tseq = 0
        # touched during an input, settled at its end (dicts as ordered sets: deterministic)
        self._dirty_queues: dict[_QueueState, None] = {}
        self._dirty_pools: dict[_PoolState, None] = {}
        self._calls: dict[str, _Call] = {}
        self._agents: dict[str, _Agent] = {}
        # ids of calls that ended, newest last (bounded): a call never arrives, so never ends, twice
        self._ended: OrderedDict[str, None] = OrderedDict()
        # restored calls nothing has confirmed yet -> their grace timer (see reconcile_restored)
        self._provisional: dict[str, Any] = {}
        self._setup(config)

    # ------------------------------------------------------------------ set-up

    def _setup(self, config: Config) -> None:
        self.config = config
        self._cb_waiting = 0  # callback (virtual) calls in the queues' order lists
        self._categories = {c.name: c for c in config.categories}
        pool_queues: dict[str, list[str]] = {p.name: [] for p in config.pools}
        pool_strats: dict[str, set[str]] = {p.name: set() for p in config.pools}
        for q in config.queues:
            for pname in q.pools:
                pool_queues[pname].append(q.name)
                pool_strats[pname].add(q.selection)
        self._pools = {
            p.name: _PoolState(p, pool_queues[p.name], pool_strats[p.name] or {"longest-idle"}) for p in config.pools
        }
        self._queues = {q.name: _QueueState(q, [self._pools[n] for n in q.pools]) for q in config.queues}
        for ps in self._pools.values():
            ps.qstates = [self._queues[n] for n in ps.queues]

    # ---------------------------------------------------------- subscriptions

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``listener(event)`` for every event, in order; returns an unsubscribe function."""
        self._listeners.append(listener)
        self._listeners_now = tuple(self._listeners)

        def unsubscribe() -> None:
            self._listeners.remove(listener)
            self._listeners_now = tuple(self._listeners)

        return unsubscribe

    def adopt_listeners(self, other: Engine) -> None:
        """Take over ``other``'s event and input listeners, in their order.

        A standby that restores a snapshot builds a new engine; the subsystems
        already subscribed to the old one (records, say) follow it here.
        """
        for listener in list(other._listeners):
            other._listeners.remove(listener)
            self.subscribe(listener)
        other._listeners_now = ()
        for listener in list(other._input_listeners):
            other._input_listeners.remove(listener)
            self._input_listeners.append(listener)

    def subscribe_inputs(self, listener: Callable[[dict], None]) -> Callable[[], None]:
        """Call ``listener(record)`` for every accepted input (the journal for snapshot + replay)."""
        self._input_listeners.append(listener)
        return lambda: self._input_listeners.remove(listener)

    @staticmethod
    def _emit_outside(event: Event) -> None:
        """Outside an input there is nothing to collect into: emitting there is our bug."""
        raise RuntimeError(f"event emitted outside an input: {event!r}")

    def _run(self, name: str | None, fn: Callable, *args, record: dict | None = None) -> list[Event]:
        """Run one input or timer: collect its events, journal it, deliver in order.

        While it runs, ``self._emit`` is the bound ``append`` of its event list: ~10 events
        per call are emitted, and this spares a Python-level call for each."""
        outer_emit = self._emit
        produced: list[Event] = []
        self._emit = produced.append
        try:
            fn(*args)
            if self._dirty_pools or self._dirty_queues:
                self._settle()
        finally:
            self._emit = outer_emit
        if name is not None and self._input_listeners:
            rec = {"t": self.clock.seconds(), "input": name, "args": record or {}}
            for fn_ in list(self._input_listeners):
                try:
                    fn_(rec)
                except Exception:
                    log.failure("input journal listener failed")
        if produced:
            self._pending.extend(produced)
            if not self._delivering:
                self._deliver()
        return produced

    def _flush_pools(self) -> None:
        while self._dirty_pools:
            ps = next(iter(self._dirty_pools))
            del self._dirty_pools[ps]
            self._pool_opened(ps)

    def _settle(self) -> None:
        """Finish an input: widen overflow where the expected wait rose, use freed lender capacity."""
        while self._dirty_pools or self._dirty_queues:
            self._flush_pools()
            if self._dirty_queues:
                qs = next(iter(self._dirty_queues))
                del self._dirty_queues[qs]
                self._overflow_changed(qs)

    def _deliver(self) -> None:
        self._delivering = True
        pending = self._pending
        try:
            while pending:
                event = pending.popleft()
                # read per event: a listener (un)subscribed during delivery takes effect from the next one
                for listener in self._listeners_now:
                    try:
                        listener(event)
                    except Exception:
                        log.failure("engine listener failed on {kind}", kind=event.kind)
        finally:
            self._delivering = False

    def _call_later(self, delay: float, fn: Callable, *args, seq: int | None = None) -> _Timer:
        if seq is None:
            self._tseq += 1
            seq = self._tseq
        # a timer runs like an input (events collected, settled, delivered), minus the journal
        return _Timer(self.clock.callLater(delay if delay > 0.0 else 0.0, self._run, None, fn, *args), seq)

    # ------------------------------------------------------------ call inputs

    def call_arrived(self, call_id: str, queue: str, *, caller_masked: str = "", category: str | None = None,
                     priority: int | None = None) -> list[Event]:
        if call_id in self._calls:
            raise DuplicateCall(f"call {call_id} is already known")
        if call_id in self._ended:
            raise DuplicateCall(f"call {call_id} has already ended")
        if queue not in self._queues:
            raise UnknownQueue(f"unknown queue {queue!r}")
        if priority is not None and not isinstance(priority, int):
            raise EngineError("priority must be an integer")
        return self._run("call_arrived", self._call_arrived, call_id, queue, caller_masked, category, priority,
                         record={"call_id": call_id, "queue": queue, "caller_masked": caller_masked,
                                 "category": category, "priority": priority})

    def _call_arrived(self, call_id, queue, caller_masked, category, priority, callback=False, origin=None) -> None:
        qs = self._queues[queue]
        now = self.clock.seconds()
        cat = self._categories.get(category or "") or self._categories.get(qs.cfg.default_category) \
            or self.config.categories[-1]
        if not callback and self._waiting_callers() >= self.config.acd.max_calls:
            self._remember_ended(call_id)
            self._emit(CallEnded(now, call_id, queue, cat.name, cat.priority if priority is None else priority,
                                 OUTCOME_FALLBACK, 0.0, reason="capacity", emergency_plan=qs.plan_name))
            return
        c = _Call()
        c.id, c.queue, c.category = call_id, queue, cat.name
        c.priority = cat.priority if priority is None else priority
        c.caller_masked = caller_masked
        c.arrived = now
        self._seq += 1
        c.seq = self._seq
        c.key = (-c.priority, c.seq, call_id)
        c.urgent = cat.urgent
        c.skill = cat.skill
        c.required = cat.skill is not None and cat.skill_mode == "required"
        c.callback = callback
        c.origin = origin
        c.state = WAITING
        c.agent = None
        c.offer_at = None
        c.attempt = 0
        c.answered_at = None
        c.plan = qs.plan_name
        c.overdue = False
        c.cb_attempts = 0
        c.bucket = None
        level, cause = routing.initial_level(qs.rules, c.urgent, qs.plan, qs.top_tier)
        c.level = level
        self._calls[call_id] = c
        # Offered at once (the common case when agents are free)?  Choosing the agent is a pure query,
        # so it is asked first: such a call would leave the queue's lists and have its tier and
        # announcement timers cancelled by the offer within this very input, so it skips them.
        # Everything observable stays as if it had queued: the same position in CallQueued (the
        # keys ahead of it), the queue marked for settling, the timers' creation numbers used up.
        agent = self._select_agent(c, c.excluded)
        if agent is None:
            self._enqueue(c)
        else:
            self._dirty_queues[qs] = None
        self._emit(CallQueued(now, call_id, queue, c.category, c.priority, caller_masked, self._position(c),
                              callback=callback, origin_call_id=origin))
        if level > 0:
            self._emit(TierUnlocked(now, call_id, queue, level, cause))
        if agent is None:
            self._arm_waiting_timers(c, announce=not callback)
        else:
            self._tseq += (routing.next_unlock(qs.rules, level, now) is not None) + (not callback)
        if not callback:
            c.timers["maxwait"] = self._call_later(qs.cfg.max_wait_s, self._max_wait_reached, call_id)
        if agent is not None:
            self._offer(c, agent)

    def choice_made(self, call_id: str, choice: str) -> list[Event]:
        c = self._calls.get(call_id)
        if c is None:
            raise UnknownCall(call_id)
        if not isinstance(choice, str) or not 0 < len(choice) <= 16:
            raise EngineError("a choice is a short non-empty string")
        return self._run("choice_made", self._choice_made, c, choice, record={"call_id": call_id, "choice": choice})

    def _choice_made(self, c: _Call, choice: str) -> None:
        if len(c.choices) < MAX_CHOICES:
            c.choices.append(choice)
        self._emit(ChoiceMade(self.clock.seconds(), c.id, choice))

    def callback_requested(self, call_id: str) -> list[Event]:
        c = self._calls.get(call_id)
        if c is None:
            raise UnknownCall(call_id)
        if c.state != WAITING or c.callback:
            raise CallNotWaiting(f"call {call_id} is {c.state}{' (already a callback)' if c.callback else ''}")
        return self._run("callback_requested", self._callback_requested, c, record={"call_id": call_id})

    def _callback_requested(self, c: _Call) -> None:
        c.callback = True
        self._cb_waiting += 1  # the call is waiting, so it is in the queue's order
        for name in ("announce", "maxwait"):
            t = c.timers.pop(name, None)
            if t is not None:
                t.stop()
        self._emit(CallbackRequested(self.clock.seconds(), c.id, c.queue, self._position(c)))

    def caller_hung_up(self, call_id: str) -> list[Event]:
        """The caller's line ended.  Waiting or ringing: abandoned.  Talking: the call is complete.

        A callback call's line ends by design after the caller chose callback,
        so for such a call this is a no-op: the place is kept.
        """
        c = self._calls.get(call_id)
        if c is None:
            raise UnknownCall(call_id)
        if c.callback and c.state == WAITING:
            return []
        return self._run("caller_hung_up", self._caller_hung_up, c, record={"call_id": call_id})

    def _caller_hung_up(self, c: _Call) -> None:
        now = self.clock.seconds()
        if c.state == TALKING:
            self._complete(c, "caller")
            return
        agent = None
        reason = "while-waiting"
        if c.state == RINGING:
            agent = self._agents[c.agent]
            self._offer_over(c, agent, CALLER_HUNG_UP)
            reason = "while-ringing"
        else:
            self._dequeue(c)
        self._cancel_timers(c)
        self._forget(c)
        wait = now - c.arrived
        qs = self._queues[c.queue]
        self._emit(CallEnded(now, c.id, c.queue, c.category, c.priority, OUTCOME_ABANDONED, wait,
                             short_abandon=wait < SHORT_ABANDON_S, reason=reason, emergency_plan=c.plan,
                             callback=c.callback))
        cb = qs.cfg.callback
        if cb.abandoned_to_callback and not c.callback and wait >= cb.min_wait_for_abandoned_s:
            self._call_arrived(f"{c.id}:cb", c.queue, c.caller_masked, c.category, c.priority,
                               callback=True, origin=c.id)
        if agent is not None:
            self._match_agent(agent)

    def call_dropped(self, call_id: str, reason: str = "agi-error") -> list[Event]:
        """Call control gave up on the call's AGI link (the peer kept breaking the protocol).

        The dialplan's fallback takes the caller (``CC_RESULT=fallback``), so a waiting or
        ringing call ends as ``fallback`` with ``reason``; a call already talking is complete.
        """
        c = self._calls.get(call_id)
        if c is None:
            raise UnknownCall(call_id)
        return self._run("call_dropped", self._call_dropped, c, reason,
                         record={"call_id": call_id, "reason": reason})

    def _call_dropped(self, c: _Call, reason: str) -> None:
        if c.state == TALKING:
            self._complete(c, "caller")
            return
        now = self.clock.seconds()
        agent = None
        if c.state == RINGING:
            agent = self._agents[c.agent]
            self._offer_over(c, agent, CANCELLED)
        else:
            self._dequeue(c)
        self._cancel_timers(c)
        del self._calls[c.id]
        self._emit(CallEnded(now, c.id, c.queue, c.category, c.priority, OUTCOME_FALLBACK, now - c.arrived,
                             reason=reason[:40], emergency_plan=c.plan, callback=c.callback))
        if agent is not None:
            self._match_agent(agent)

    # ----------------------------------------------------------- offer inputs

    def _current_offer(self, call_id: str, agent_id: str) -> tuple[_Call, _Agent]:
        c = self._calls.get(call_id)
        if c is None:
            raise UnknownCall(call_id)
        a = self._agents.get(agent_id)
        if a is None:
            raise UnknownAgent(agent_id)
        if c.state != RINGING or c.agent != agent_id:
            raise StaleOffer(f"call {call_id} is not being offered to agent {agent_id}")
        return c, a

    def offer_accepted(self, call_id: str, agent_id: str) -> list[Event]:
        """The seat said it takes the call; ringing goes on until call control reports the answer."""
        self._current_offer(call_id, agent_id)
        return []

    def offer_answered(self, call_id: str, agent_id: str) -> list[Event]:
        c, a = self._current_offer(call_id, agent_id)
        return self._run("offer_answered", self._offer_answered, c, a,
                         record={"call_id": call_id, "agent_id": agent_id})

    def _offer_answered(self, c: _Call, a: _Agent) -> None:
        now = self.clock.seconds()
        ps = self._pools[a.pool]
        self._cancel_timers(c)
        self._emit(OfferEnded(now, c.id, a.id, a.pool, ps.cfg.tier, ANSWERED, now - c.offer_at))
        self._set_state(a, st.OFFER_ANSWERED)
        a.misses = 0
        a.calls += 1
        c.state = TALKING
        c.answered_at = now
        self._emit(CallAnswered(now, c.id, c.queue, a.id, a.pool, ps.cfg.tier, now - c.arrived, c.category,
                                callback=c.callback))

    def offer_failed(self, call_id: str, agent_id: str, result: str) -> list[Event]:
        """The offer did not connect.  ``cancelled``: call control withdrew it (say, the call's
        session moved to another ACD before it could ring): no fault of the agent's, no miss."""
        if result not in (NO_ANSWER, REJECTED, BUSY, UNAVAILABLE, CANCELLED):
            raise EngineError("offer result must be one of no-answer, rejected, busy, unavailable, cancelled; "
                              f"got {result!r}")
        c, a = self._current_offer(call_id, agent_id)
        return self._run("offer_failed", self._offer_failed, c, a, result,
                         record={"call_id": call_id, "agent_id": agent_id, "result": result})

    def _offer_failed(self, c: _Call, a: _Agent, result: str) -> None:
        self._offer_over(c, a, result)
        if result == REJECTED:
            c.excluded.add(a.id)
        if c.callback and result != CANCELLED:
            c.cb_attempts += 1
        if not self._requeue(c):
            self._match_agent(a)
            return
        # The call goes back to its place and on to the *next* agent.  Order matters for fairness:
        # the freed agent first takes the best other call for it, freed lender capacity goes to the
        # best calls, and only then does this call try the agents that were ready already (none of
        # which could take any other waiting call).  Last, the same agent again if nobody else can.
        self._match_agent(a, avoid_call=c.id)
        self._flush_pools()
        self._match_call(c, avoid=a.id)
        self._match_agent(a)

    def _ring_timed_out(self, call_id: str, agent_id: str) -> None:
        c = self._calls.get(call_id)
        if c is None or c.state != RINGING or c.agent != agent_id:
            return
        self._offer_failed(c, self._agents[agent_id], NO_ANSWER)

    def call_completed(self, call_id: str, by: str = "caller") -> list[Event]:
        c = self._calls.get(call_id)
        if c is None:
            raise UnknownCall(call_id)
        if c.state != TALKING:
            raise CallNotWaiting(f"call {call_id} is {c.state}, not talking")
        return self._run("call_completed", self._complete, c, by, record={"call_id": call_id, "by": by})

    def _complete(self, c: _Call, by: str) -> None:
        self._end_talking(c, OUTCOME_CALLED_BACK if c.callback else OUTCOME_ANSWERED, f"{by}-ended", aht=True)

    def _end_talking(self, c: _Call, outcome: str, reason: str, aht: bool = False) -> None:
        """A talking call ends: one CallEnded, its agent to wrap-up (or logged out, if that was asked)."""
        now = self.clock.seconds()
        a = self._agents[c.agent]
        ps = self._pools[a.pool]
        qs = self._queues[c.queue]
        talk = now - c.answered_at
        self._forget(c)
        self._cancel_timers(c)
        a.call = None
        if aht:
            qs.aht += AHT_ALPHA * ((talk + ps.cfg.wrapup_s) - qs.aht)
        self._emit(CallEnded(now, c.id, c.queue, c.category, c.priority, outcome, c.answered_at - c.arrived,
                             agent_id=a.id, pool=a.pool, tier=ps.cfg.tier, talk_s=talk, reason=reason,
                             emergency_plan=c.plan, callback=c.callback))
        self._set_state(a, st.CALL_DONE)
        if a.logout_pending:
            self._log_out(a, "logout-after-call")
            return
        if ps.cfg.wrapup_s > 0:
            a.wrap_deadline = now + ps.cfg.wrapup_s
            a.timer = self._call_later(ps.cfg.wrapup_s, self._wrapup_timed_out, a.id)
        else:
            self._to_ready(a, st.WRAPUP_DONE, "")

    # ----------------------------------------------------------- agent inputs

    def agent_logged_in(self, agent_id: str, pool: str, *, skills: dict[str, int] | None = None,
                        endpoint: str | None = None, session: str | None = None) -> list[Event]:
        if pool not in self._pools:
            raise UnknownPool(f"unknown pool {pool!r}")
        if agent_id in self._agents:
            raise IllegalTransition(agent_id, self._agents[agent_id].state, st.LOGIN)
        skills = dict(skills or {})
        for k, v in skills.items():
            if not isinstance(k, str) or not isinstance(v, int) or not 1 <= v <= 5:
                raise EngineError(f"skill levels are integers 1-5; got {k!r}: {v!r}")
        record = {"agent_id": agent_id, "pool": pool, "skills": skills, "endpoint": endpoint}
        if session:
            record["session"] = str(session)[:64]
        return self._run("agent_logged_in", self._agent_logged_in, agent_id, pool, skills, endpoint,
                         record.get("session", ""), record=record)

    def _agent_logged_in(self, agent_id, pool, skills, endpoint, session="") -> None:
        now = self.clock.seconds()
        ps = self._pools[pool]
        a = _Agent()
        a.id, a.pool, a.skills, a.endpoint, a.session = agent_id, pool, skills, endpoint, session
        a.state = LOGGED_OUT
        a.reason = "login"
        a.since = now
        a.idle_since = now
        a.calls = 0
        a.last_offer = 0
        a.misses = 0
        a.call = None
        self._agent_seq += 1
        a.seq = self._agent_seq
        a.logout_pending = False
        self._agents[agent_id] = a
        ps.logged_in += 1
        self._set_state(a, st.LOGIN, "login")
        if ps.cfg.max_share is not None:
            self._dirty_pools[ps] = None  # the cap may have risen

    def agent_session_changed(self, agent_id: str, session: str) -> list[Event]:
        """The agent's seat now has session ``session`` (a new login took over, or a resume
        rotated the token): seat tokens of older sessions stop resuming, on this ACD and on
        any that restores this state (journal and snapshot carry it)."""
        a = self._agent(agent_id)
        session = str(session)[:64]
        return self._run("agent_session_changed", setattr, a, "session", session,
                         record={"agent_id": agent_id, "session": session})

    def agent_ready(self, agent_id: str) -> list[Event]:
        a = self._agent(agent_id)
        if a.state == READY:
            return []
        st.next_state(agent_id, a.state, st.GO_READY)
        return self._run("agent_ready", self._agent_ready, a, record={"agent_id": agent_id})

    def _agent_ready(self, a: _Agent) -> None:
        a.misses = 0
        self._to_ready(a, st.GO_READY, "")

    def agent_not_ready(self, agent_id: str, reason: str = "") -> list[Event]:
        a = self._agent(agent_id)
        st.next_state(agent_id, a.state, st.GO_NOT_READY)
        return self._run("agent_not_ready", self._agent_not_ready, a, str(reason)[:64],
                         record={"agent_id": agent_id, "reason": reason})

    def _agent_not_ready(self, a: _Agent, reason: str) -> None:
        self._leave_state(a)
        self._set_state(a, st.GO_NOT_READY, reason)

    def agent_logged_out(self, agent_id: str, reason: str = "", *, force: bool = False) -> list[Event]:
        """Log an agent out.  Ringing: the call goes to the next agent.  Talking: once the call ends,
        or at once with ``force`` (a supervisor freeing the agent): the call then ends ``admin-ended``."""
        a = self._agent(agent_id)
        record = {"agent_id": agent_id, "reason": reason}
        if force:
            record["force"] = True
        return self._run("agent_logged_out", self._agent_logged_out, a, str(reason)[:64], bool(force),
                         record=record)

    def _agent_logged_out(self, a: _Agent, reason: str, force: bool = False) -> None:
        if a.state == ON_CALL:
            a.logout_pending = True
            if force:
                self._end_talking(self._calls[a.call], OUTCOME_ADMIN, f"agent logged out: {reason}"[:64])
            return
        if a.state == OFFERED:
            c = self._calls[a.call]
            self._offer_over(c, a, AGENT_LOGGED_OUT)
            self._log_out(a, reason)
            if self._requeue(c):
                self._flush_pools()
                self._match_call(c)
            return
        self._log_out(a, reason)

    def wrapup_ended(self, agent_id: str) -> list[Event]:
        a = self._agent(agent_id)
        st.next_state(agent_id, a.state, st.WRAPUP_DONE)
        return self._run("wrapup_ended", self._wrapup_ended, a, record={"agent_id": agent_id})

    def _wrapup_ended(self, a: _Agent) -> None:
        self._to_ready(a, st.WRAPUP_DONE, "")

    def _wrapup_timed_out(self, agent_id: str) -> None:
        a = self._agents.get(agent_id)
        if a is not None and a.state == WRAPUP:
            a.timer = None
            self._to_ready(a, st.WRAPUP_DONE, "")

    # ------------------------------------ reconciliation: ends the ACD decides itself
    #
    # The switch (AGI sessions, the h extension, Dial results) and the seats are the truth about
    # calls and agents; the engine's picture is a belief.  After a restore (standby takeover, restart
    # after a crash) every call is provisional until one of them confirms it; one that nothing
    # confirms within the grace ends ``lost-on-restart``.  The same machinery ends calls at a clean
    # shutdown (``acd-shutdown``) and at a supervisor's request (``admin-ended``).  Every end goes
    # through _forget, and an ended id can never arrive again: a call ends exactly once.

    def reconcile_restored(self, grace_s: float) -> list[Event]:
        """Make every restored call provisional (call once, right after :meth:`restore`).

        A call with a line (waiting, ringing, talking; a callback being placed) must be confirmed
        by :meth:`call_confirmed` or :meth:`agent_confirmed` within ``grace_s`` or it ends
        ``lost-on-restart``; its agent then goes to wrap-up or ready like after any call.  A
        callback still waiting holds no line (nothing could confirm it) and stays.  Returns no
        events; the verdicts come later, from the timers, on the injected clock.
        """
        grace = float(grace_s)
        if not grace >= 0.0 or grace == float("inf"):
            raise EngineError("the restore grace is a finite number of seconds >= 0")
        return self._run(None, self._reconcile_restored, grace)

    def _reconcile_restored(self, grace: float) -> None:
        for c in sorted(self._calls.values(), key=lambda c: c.seq):
            if c.callback and c.state == WAITING:
                continue
            if c.id not in self._provisional:
                self._provisional[c.id] = self._call_later(grace, self._provisional_expired, c.id)

    def provisional_calls(self) -> list[str]:
        """Restored calls nothing has confirmed yet."""
        return list(self._provisional)

    def call_confirmed(self, call_id: str) -> list[Event]:
        """The switch still has this call (its AGI session resumed, its agent answered): keep it.
        Unknown or already confirmed calls: nothing to do."""
        if call_id not in self._provisional:
            return []
        return self._run("call_confirmed", self._confirm, call_id, record={"call_id": call_id})

    def _confirm(self, call_id: str) -> None:
        t = self._provisional.pop(call_id, None)
        if t is not None:
            t.stop()

    def agent_confirmed(self, agent_id: str) -> list[Event]:
        """The agent's seat is back (resumed after a takeover): the call it rings or talks on is real."""
        a = self._agents.get(agent_id)
        if a is None or a.call is None or a.call not in self._provisional:
            return []
        return self._run("call_confirmed", self._confirm, a.call, record={"call_id": a.call})

    def _provisional_expired(self, call_id: str) -> None:
        self._provisional.pop(call_id, None)
        c = self._calls.get(call_id)
        if c is not None:
            self._end(c, OUTCOME_LOST, "not-confirmed-after-restore")

    def end_call(self, call_id: str, outcome: str = OUTCOME_ADMIN, reason: str = "") -> list[Event]:
        """End a call in any state with one of the ACD's own outcomes (admin-ended, acd-shutdown,
        lost-on-restart).  Ringing: the offer is withdrawn without a miss.  Talking: the agent
        goes to wrap-up (or is logged out, if that was pending)."""
        c = self._calls.get(call_id)
        if c is None:
            raise UnknownCall(call_id)
        if outcome not in END_OUTCOMES:
            raise EngineError(f"end_call outcome must be one of {sorted(END_OUTCOMES)}; got {outcome!r}")
        return self._run("end_call", self._end, c, outcome, str(reason)[:64],
                         record={"call_id": call_id, "outcome": outcome, "reason": reason})

    def end_all_calls(self, outcome: str = OUTCOME_SHUTDOWN, reason: str = "") -> list[Event]:
        """End every call (a clean shutdown): waiting ones first, so no freed agent is offered one."""
        if outcome not in END_OUTCOMES:
            raise EngineError(f"end_all_calls outcome must be one of {sorted(END_OUTCOMES)}; got {outcome!r}")
        if not self._calls:
            return []
        return self._run("end_all_calls", self._end_all, outcome, str(reason)[:64],
                         record={"outcome": outcome, "reason": reason})

    def _end_all(self, outcome: str, reason: str) -> None:
        rank = {WAITING: 0, RINGING: 1, TALKING: 2}
        for c in sorted(self._calls.values(), key=lambda c: (rank.get(c.state, 3), c.seq)):
            if c.id not in self._calls:
                continue
            if c.state == TALKING and c.agent in self._agents:
                # the caller was connected, and the conversation goes on in the switch: it counts as
                # answered (接通), the stop is its reason, its talk time ends here
                self._end_talking(c, OUTCOME_CALLED_BACK if c.callback else OUTCOME_ANSWERED, reason or outcome)
            else:
                self._end(c, outcome, reason)

    def _end(self, c: _Call, outcome: str, reason: str) -> None:
        if c.state == TALKING and c.agent in self._agents:
            self._end_talking(c, outcome, reason)
            return
        now = self.clock.seconds()
        agent = None
        if c.state == RINGING and c.agent in self._agents:
            agent = self._agents[c.agent]
            self._offer_over(c, agent, CANCELLED)
        else:
            self._dequeue(c)
        self._cancel_timers(c)
        self._forget(c)
        self._emit(CallEnded(now, c.id, c.queue, c.category, c.priority, outcome, now - c.arrived, reason=reason,
                             emergency_plan=c.plan, callback=c.callback))
        if agent is not None:
            self._match_agent(agent)

    def call_not_queued(self, call_id: str, queue: str, outcome: str, *, reason: str = "",
                        wait_s: float = 0.0) -> list[Event]:
        """A call that ended before it reached a queue (shed by admission control, or the caller
        hung up during the greeting): one CallEnded, so it too gets its CDR.  No state is kept."""
        if call_id in self._calls or call_id in self._ended:
            raise DuplicateCall(f"call {call_id} is already known")
        if queue not in self._queues:
            raise UnknownQueue(f"unknown queue {queue!r}")
        if outcome not in NOT_QUEUED_OUTCOMES:
            raise EngineError(f"call_not_queued outcome must be one of {sorted(NOT_QUEUED_OUTCOMES)}; got {outcome!r}")
        if not isinstance(wait_s, int | float) or isinstance(wait_s, bool) or not 0.0 <= wait_s < 86400.0:
            raise EngineError("wait_s must be a number of seconds in [0, 86400)")
        return self._run("call_not_queued", self._call_not_queued, call_id, queue, outcome, str(reason)[:64],
                         float(wait_s), record={"call_id": call_id, "queue": queue, "outcome": outcome,
                                                "reason": reason, "wait_s": wait_s})

    def _call_not_queued(self, call_id, queue, outcome, reason, wait_s) -> None:
        qs = self._queues[queue]
        cat = self._categories.get(qs.cfg.default_category) or self.config.categories[-1]
        self._remember_ended(call_id)
        self._emit(CallEnded(self.clock.seconds(), call_id, queue, cat.name, cat.priority, outcome, wait_s,
                             short_abandon=outcome == OUTCOME_ABANDONED and wait_s < SHORT_ABANDON_S,
                             reason=reason, emergency_plan=qs.plan_name))

    def has_ended(self, call_id: str) -> bool:
        """This engine saw the call end (among the last ENDED_REMEMBERED)."""
        return call_id in self._ended

    def _forget(self, c: _Call) -> None:
        del self._calls[c.id]
        self._remember_ended(c.id)
        if self._provisional:
            t = self._provisional.pop(c.id, None)
            if t is not None:
                t.stop()

    def _remember_ended(self, call_id: str) -> None:
        ended = self._ended
        ended[call_id] = None
        if len(ended) > ENDED_REMEMBERED:
            ended.popitem(last=False)

    # ------------------------------------------------------ admin and lenders

    def home_load_reported(self, pool: str, waiting: int, reported_at: float) -> list[Event]:
        if pool not in self._pools:
            raise UnknownPool(f"unknown pool {pool!r}")
        if not isinstance(waiting, int) or isinstance(waiting, bool) or waiting < 0:
            raise EngineError("waiting must be an integer >= 0")
        if not isinstance(reported_at, int | float) or isinstance(reported_at, bool):
            raise EngineError("reported_at must be a number of seconds")
        return self._run("home_load_reported", self._home_load_reported, pool, waiting, float(reported_at),
                         record={"pool": pool, "waiting": waiting, "reported_at": reported_at})

    def _home_load_reported(self, pool: str, waiting: int, reported_at: float) -> None:
        ps = self._pools[pool]
        now = self.clock.seconds()
        if ps.home_at is not None and reported_at < ps.home_at:
            return  # an older report arriving late changes nothing
        was_open = self._pool_open(ps)
        ps.home_waiting, ps.home_at = waiting, reported_at
        self._emit(HomeLoadReported(now, pool, waiting, reported_at))
        if not was_open and self._pool_open(ps):
            self._dirty_pools[ps] = None

    def emergency_set(self, queue: str, plan: str | None, by: str = "admin") -> list[Event]:
        qs = self._queues.get(queue)
        if qs is None:
            raise UnknownQueue(f"unknown queue {queue!r}")
        if plan is not None and plan not in qs.cfg.emergency_plans:
            raise EngineError(f"queue {queue!r} has no emergency plan {plan!r}; "
                              f"known: {sorted(qs.cfg.emergency_plans)}")
        if plan == qs.plan_name:
            return []
        return self._run("emergency_set", self._emergency_set, qs, plan, str(by)[:64],
                         record={"queue": queue, "plan": plan, "by": by})

    def _emergency_set(self, qs: _QueueState, plan: str | None, by: str) -> None:
        now = self.clock.seconds()
        previous = qs.plan_name
        qs.set_plan(plan)
        qs.plan_by, qs.plan_at = (by, now) if plan is not None else (None, None)
        self._emit(EmergencyChanged(now, qs.cfg.name, plan, previous, by))
        self._dirty_queues[qs] = None
        for entry in list(qs.order):
            c = self._calls[entry[2]]
            if plan is not None:
                c.plan = plan
            level, cause = routing.initial_level(qs.rules, c.urgent, qs.plan, qs.top_tier)
            waited = routing.level_after_wait(qs.rules, now - c.arrived)
            new = max(level, waited)
            if new != c.level:
                self._move_bucket(c, new)
                self._emit(TierUnlocked(now, c.id, c.queue, new, cause or "after"))
            self._arm_waiting_timers(c, announce=False)
        self._overflow_changed(qs)  # before the sweep: the new plan may narrow the queue-wide level
        self._sweep(qs)

    def replace_config(self, config: Config) -> list[Event]:
        """Swap in a new config without dropping calls; refuse one that would strand a call or agent."""
        problems = []
        for c in self._calls.values():
            if c.queue not in {q.name for q in config.queues}:
                problems.append(f"queue {c.queue!r} has calls and is missing from the new config")
        for a in self._agents.values():
            if a.pool not in {p.name for p in config.pools}:
                problems.append(f"pool {a.pool!r} has logged-in agents and is missing from the new config")
        for qs in self._queues.values():
            if qs.plan_name is not None:
                nq = next((q for q in config.queues if q.name == qs.cfg.name), None)
                if nq is not None and qs.plan_name not in nq.emergency_plans:
                    problems.append(f"queue {qs.cfg.name!r} runs emergency plan {qs.plan_name!r}, "
                                    "which the new config lacks")
        if problems:
            raise EngineError("; ".join(sorted(set(problems))))
        return self._run("replace_config", self._replace_config, config, record={})

    def _replace_config(self, config: Config) -> None:
        snap = self.snapshot()
        self._teardown()
        self._setup(config)
        self._load(snap)
        self._emit(ConfigReplaced(self.clock.seconds(), tuple(self._queues), tuple(self._pools)))
        for qs in self._queues.values():
            self._dirty_queues[qs] = None
            self._sweep(qs)

    # ---------------------------------------------------------------- queries

    def call_info(self, call_id: str) -> dict | None:
        c = self._calls.get(call_id)
        if c is None:
            return None
        now = self.clock.seconds()
        pos, ewt = self.position(call_id)
        qs = self._queues[c.queue]
        return {
            "call_id": c.id, "queue": c.queue, "state": c.state, "category": c.category, "priority": c.priority,
            "caller_masked": c.caller_masked, "waited_s": now - c.arrived, "position": pos, "ewt_s": ewt,
            "tier": max(c.level, qs.queue_level), "agent_id": c.agent, "callback": c.callback,
            "choices": list(c.choices), "attempt": c.attempt, "emergency_plan": c.plan,
        }

    def agent_info(self, agent_id: str) -> dict | None:
        a = self._agents.get(agent_id)
        if a is None:
            return None
        return {
            "agent_id": a.id, "pool": a.pool, "state": a.state, "reason": a.reason,
            "since_s": self.clock.seconds() - a.since, "call_id": a.call, "calls": a.calls,
            "skills": dict(a.skills), "endpoint": a.endpoint, "misses": a.misses,
            "logout_pending": a.logout_pending, "session": a.session,
        }

    def position(self, call_id: str) -> tuple[int, float]:
        """(place in line, 1 = next; expected wait in seconds).  A call ringing an agent is at place 0."""
        c = self._calls.get(call_id)
        if c is None:
            raise UnknownCall(call_id)
        if c.state != WAITING:
            return 0, 0.0
        pos = self._position(c)
        return pos, self._ewt_for(c, pos)

    def status(self) -> dict:
        now = self.clock.seconds()
        queues = []
        for qs in self._queues.values():
            waiting = len(qs.order)
            callbacks = sum(1 for e in qs.order if self._calls[e[2]].callback)
            oldest = min((self._calls[e[2]].arrived for e in qs.order), default=None)
            queues.append({
                "name": qs.cfg.name, "waiting": waiting, "callbacks_waiting": callbacks,
                "oldest_wait_s": 0.0 if oldest is None else now - oldest,
                "ewt_s": self._queue_ewt(qs), "emergency": qs.plan_name, "emergency_by": qs.plan_by,
                "emergency_since": qs.plan_at, "overflow_tier": qs.queue_level,
                "aht_s": qs.aht,
            })
        pools = []
        for ps in self._pools.values():
            cap = routing.lender_cap(ps.cfg, ps.logged_in)
            pools.append({
                "name": ps.cfg.name, "kind": ps.cfg.kind, "tier": ps.cfg.tier, "lender": ps.cfg.lender,
                "agents": dict(ps.counts), "logged_in": ps.logged_in, "busy": ps.busy, "cap": cap,
                "max_share": ps.cfg.max_share,
                "share": (ps.busy / ps.logged_in) if ps.logged_in else 0.0,
                "home_waiting": ps.home_waiting,
                "home_report_age_s": None if ps.home_at is None else now - ps.home_at,
                "gate_open": self._pool_open(ps),
            })
        return {"queues": queues, "pools": pools}

    def calls(self) -> list[str]:
        return list(self._calls)

    def agents(self) -> list[str]:
        return list(self._agents)

    # ------------------------------------------------------ matching (core)

    def _match_call(self, c: _Call, avoid: str | None = None) -> None:
        if c.state != WAITING:
            return
        a = self._select_agent(c, c.excluded | {avoid} if avoid else c.excluded)
        if a is not None:
            self._offer(c, a)

    def _match_agent(self, a: _Agent, avoid_call: str | None = None) -> None:
        if a.state != READY:
            return
        ps = self._pools[a.pool]
        if not self._pool_open(ps):
            return
        c = self._select_call(a, ps, avoid_call)
        if c is not None:
            self._offer(c, a)

    @staticmethod
    def _first_allowed(sl: _SortedKeys, excluded: set[str]):
        if not excluded:
            return sl[0]
        for entry in sl:
            if entry[-1] not in excluded:
                return entry
        return None

    def _select_agent(self, c: _Call, excluded: set[str]) -> _Agent | None:
        qs = self._queues[c.queue]
        level = c.level if c.level > qs.queue_level else qs.queue_level
        strategy = qs.strategy
        if c.skill is not None:
            best = None
            best_tier = None
            for ps in qs.pools:
                tier = ps.cfg.tier
                if tier > level or (best is not None and tier > best_tier):
                    break
                if not ps.counts[READY]:
                    continue
                idx = ps.by_skill.get(c.skill)
                sl = idx.get(strategy) if idx else None
                if not sl or not (ps.unguarded or self._pool_open(ps)):
                    continue
                entry = self._first_allowed(sl, excluded)
                if entry is not None and (best is None or entry < best):
                    best, best_tier = entry, tier
            if best is not None:
                return self._agents[best[-1]]
            if c.required:
                return None
        best = None
        best_tier = None
        for ps in qs.pools:
            tier = ps.cfg.tier
            if tier > level or (best is not None and tier > best_tier):
                break
            if not ps.counts[READY] or not (ps.unguarded or self._pool_open(ps)):
                continue
            sl = ps.general[strategy]
            entry = self._first_allowed(sl, excluded)
            if entry is not None and (best is None or entry < best):
                best, best_tier = entry, tier
        return self._agents[best[-1]] if best is not None else None

    def _select_call(self, a: _Agent, ps: _PoolState, avoid_call: str | None = None) -> _Call | None:
        tier = ps.cfg.tier
        best = None
        for qname in ps.queues:
            qs = self._queues[qname]
            if not qs.order:
                continue
            all_levels = qs.queue_level >= tier
            for (lvl, req), sl in qs.buckets.items():
                if not sl or (not all_levels and lvl < tier):
                    continue
                if req is not None and req not in a.skills:
                    continue
                for entry in sl:
                    if best is not None and entry >= best:
                        break
                    if entry[2] == avoid_call or a.id in self._calls[entry[2]].excluded:
                        continue
                    best = entry
                    break
        return self._calls[best[2]] if best is not None else None

    def _offer(self, c: _Call, a: _Agent) -> None:
        now = self.clock.seconds()
        ps = self._pools[a.pool]
        self._dequeue(c)
        timers = c.timers
        for name in ("tier", "announce"):
            if name in timers:
                timers.pop(name).stop()
        self._offer_seq += 1
        a.last_offer = self._offer_seq
        a.call = c.id
        self._set_state(a, st.OFFER)
        c.state = RINGING
        c.agent = a.id
        c.offer_at = now
        c.attempt += 1
        c.timers["ring"] = self._call_later(ps.cfg.ring_timeout_s, self._ring_timed_out, c.id, a.id)
        self._emit(CallOffered(now, c.id, c.queue, a.id, a.pool, ps.cfg.tier, ps.cfg.ring_timeout_s, a.endpoint,
                               c.category, c.priority, c.caller_masked, now - c.arrived, tuple(c.choices),
                               callback=c.callback, attempt=c.attempt))

    def _offer_over(self, c: _Call, a: _Agent, result: str) -> None:
        """End the current offer with a result other than answered; the agent is free again."""
        now = self.clock.seconds()
        ps = self._pools[a.pool]
        t = c.timers.pop("ring", None)
        if t is not None:
            t.stop()
        self._emit(OfferEnded(now, c.id, a.id, a.pool, ps.cfg.tier, result, now - c.offer_at))
        c.agent = None
        c.state = WAITING
        a.call = None
        if result == AGENT_LOGGED_OUT:
            return  # the caller logs the agent out
        self._set_state(a, st.OFFER_FAILED, "")
        counted = result in (NO_ANSWER, BUSY) and not c.callback
        if counted:
            a.misses += 1
        if result == UNAVAILABLE and not c.callback:
            self._leave_state(a)
            self._set_state(a, st.GO_NOT_READY, "unreachable")
        elif counted and a.misses >= ps.cfg.max_no_answer:
            self._leave_state(a)
            self._set_state(a, st.GO_NOT_READY, "no-answer")

    def _requeue(self, c: _Call) -> bool:
        """A call whose offer failed goes back to its own place (never the back of the line).

        Returns False when it ends instead (max wait passed while ringing, callback attempts used up).
        """
        now = self.clock.seconds()
        qs = self._queues[c.queue]
        if c.callback and c.cb_attempts >= MAX_CALLBACK_ATTEMPTS:
            self._cancel_timers(c)
            self._forget(c)
            self._emit(CallEnded(now, c.id, c.queue, c.category, c.priority, OUTCOME_CALLBACK_FAILED,
                                 now - c.arrived, reason=f"{c.cb_attempts} attempts", emergency_plan=c.plan,
                                 callback=True))
            return False
        if c.overdue:
            self._cancel_timers(c)
            self._forget(c)
            self._emit(CallEnded(now, c.id, c.queue, c.category, c.priority, OUTCOME_FALLBACK, now - c.arrived,
                                 reason="max-wait", emergency_plan=c.plan))
            return False
        new = max(c.level, routing.level_after_wait(qs.rules, now - c.arrived))
        if new > c.level:
            c.level = new
            self._emit(TierUnlocked(now, c.id, c.queue, new, "after"))
        self._enqueue(c)
        self._arm_waiting_timers(c, announce=not c.callback)
        return True

    def _sweep(self, qs: _QueueState) -> None:
        """Offer waiting calls of a queue in order after something widened who may take them."""
        if qs.sweeping:
            qs.sweep_again = True
            return
        qs.sweeping = True
        try:
            while True:
                qs.sweep_again = False
                for entry in list(qs.order):
                    if not any(ps.counts[READY] for ps in qs.pools):
                        break
                    c = self._calls.get(entry[2])
                    if c is not None:
                        self._match_call(c)
                if not qs.sweep_again:
                    break
        finally:
            qs.sweeping = False

    def _pool_opened(self, ps: _PoolState) -> None:
        """The pool may take more calls (gate opened, cap rose): offer to its ready agents in order."""
        if not ps.counts[READY] or not self._pool_open(ps) or not self._pool_has_work(ps):
            return
        strategy = next(iter(sorted(ps.strategies)))
        for entry in list(ps.general[strategy]):
            if not self._pool_open(ps):
                break
            a = self._agents.get(entry[-1])
            if a is not None:
                self._match_agent(a)

    def _pool_has_work(self, ps: _PoolState) -> bool:
        tier = ps.cfg.tier
        for qname in ps.queues:
            qs = self._queues[qname]
            if qs.order and (qs.queue_level >= tier or any(sl for (lvl, _), sl in qs.buckets.items() if lvl >= tier)):
                return True
        return False

    def _pool_open(self, ps: _PoolState) -> bool:
        if ps.unguarded:
            return True
        cfg = ps.cfg
        if cfg.max_share is not None and ps.busy >= routing.lender_cap(cfg, ps.logged_in):
            return False
        if cfg.home_waiting_max is not None:
            return routing.lender_gate_open(cfg, ps.home_waiting, ps.home_at, self.clock.seconds())
        return True

    # ------------------------------------------------------- agent machinery

    def _agent(self, agent_id: str) -> _Agent:
        a = self._agents.get(agent_id)
        if a is None:
            raise UnknownAgent(agent_id)
        return a

    def _set_state(self, a: _Agent, event: str, reason: str | None = None) -> None:
        """Move an agent along states.TRANSITIONS, keeping the pool's counts and ready indexes in step.

        The hot path of every call (offer, answer, wrap-up, ready): one table lookup, set
        membership for the busy/staffed classes, and dirty marks settled at the end of the input.
        """
        old = a.state
        new = _TRANSITIONS.get((old, event)) or st.next_state(a.id, old, event)  # raises when illegal
        ps = self._pools[a.pool]
        counts = ps.counts
        if old != LOGGED_OUT:
            counts[old] -= 1
        if new != LOGGED_OUT:
            counts[new] += 1
        busy_old = old in _BUSY
        busy_new = new in _BUSY
        if busy_old != busy_new:
            if busy_new:
                ps.busy += 1
            else:
                ps.busy -= 1
                if ps.cfg.max_share is not None:
                    self._dirty_pools[ps] = None  # a lender slot came free
        a.state = new
        if reason is not None:
            a.reason = reason
        now = self.clock.seconds()
        a.since = now
        if new == READY:
            a.idle_since = now
            self._index_ready(a, ps)
        elif old == READY:
            self._unindex_ready(a)
        self._emit(AgentStateChanged(now, a.id, a.pool, old, new, a.reason if new == NOT_READY else ""))
        if (old in _UNSTAFFED) != (new in _UNSTAFFED):  # staffed count changed: expected waits move
            ps.staffed += 1 if old in _UNSTAFFED else -1
            dirty = self._dirty_queues
            for qs in ps.qstates:
                dirty[qs] = None

    def _leave_state(self, a: _Agent) -> None:
        if a.timer is not None:
            a.timer.stop()
        a.timer = None
        a.wrap_deadline = None

    def _to_ready(self, a: _Agent, event: str, reason: str) -> None:
        self._leave_state(a)
        self._set_state(a, event, reason)
        self._match_agent(a)

    def _log_out(self, a: _Agent, reason: str) -> None:
        self._leave_state(a)
        ps = self._pools[a.pool]
        ps.logged_in -= 1
        self._set_state(a, st.LOGOUT, reason)
        del self._agents[a.id]

    def _index_ready(self, a: _Agent, ps: _PoolState) -> None:
        lists = a.lists
        if lists is None:
            lists = a.lists = self._ready_lists(a, ps)
        entries = a.entries
        for s, general, by_skill in lists:
            key = routing.strategy_key(s, a.idle_since, a.calls, a.last_offer, a.seq)
            e = (*key, a.id)
            general.add(e)
            entries.append((general, e))
            for sl, neg_level in by_skill:
                e2 = (neg_level, *key, a.id)
                sl.add(e2)
                entries.append((sl, e2))

    @staticmethod
    def _ready_lists(a: _Agent, ps: _PoolState) -> list[tuple[str, _SortedKeys, list[tuple[_SortedKeys, int]]]]:
        """The pool's index lists this agent goes into when ready, per strategy: resolved once per
        login (an agent's skills and pool are fixed while logged in; index lists are never dropped),
        and shared by the pool's agents with the same skills, so it costs no memory per agent."""
        profile = tuple(a.skills.items())
        out = ps.ready_lists.get(profile)
        if out is not None:
            return out
        out = ps.ready_lists[profile] = []
        for s in ps.strategies:
            by_skill = []
            for skill, level in a.skills.items():
                idx = ps.by_skill.get(skill)
                if idx is None:
                    idx = ps.by_skill[skill] = {}
                sl = idx.get(s)
                if sl is None:
                    sl = idx[s] = _SortedKeys()
                by_skill.append((sl, -level))
            out.append((s, ps.general[s], by_skill))
        return out

    def _unindex_ready(self, a: _Agent) -> None:
        for sl, e in a.entries:
            sl.remove(e)
        a.entries.clear()

    # -------------------------------------------------------- call machinery

    def _enqueue(self, c: _Call) -> None:
        qs = self._queues[c.queue]
        key = c.key
        qs.order.add(key)
        b = (c.level, c.skill if c.required else None)
        sl = qs.buckets.get(b)
        if sl is None:
            sl = qs.buckets[b] = _SortedKeys()
        sl.add(key)
        c.bucket = b
        c.state = WAITING
        if c.callback:
            self._cb_waiting += 1
        self._dirty_queues[qs] = None

    def _dequeue(self, c: _Call) -> None:
        if c.bucket is None:
            return
        qs = self._queues[c.queue]
        key = c.key
        qs.order.remove(key)
        qs.buckets[c.bucket].remove(key)
        c.bucket = None
        if c.callback:
            self._cb_waiting -= 1
        self._dirty_queues[qs] = None

    def _move_bucket(self, c: _Call, level: int) -> None:
        if c.bucket is not None:
            qs = self._queues[c.queue]
            qs.buckets[c.bucket].remove(c.key)
            b = (level, c.bucket[1])
            sl = qs.buckets.get(b)
            if sl is None:
                sl = qs.buckets[b] = _SortedKeys()
            sl.add(c.key)
            c.bucket = b
        c.level = level

    def _arm_waiting_timers(self, c: _Call, announce: bool) -> None:
        qs = self._queues[c.queue]
        t = c.timers.pop("tier", None)
        if t is not None:
            t.stop()
        nxt = routing.next_unlock(qs.rules, c.level, c.arrived)
        if nxt is not None:
            c.timers["tier"] = self._call_later(nxt[0] - self.clock.seconds(), self._tier_due, c.id)
        if announce and "announce" not in c.timers:
            every = routing.announce_every(qs.cfg, qs.plan)
            c.timers["announce"] = self._call_later(every, self._announce_due, c.id)

    def _tier_due(self, call_id: str) -> None:
        c = self._calls.get(call_id)
        if c is None or c.state != WAITING:
            return
        c.timers.pop("tier", None)
        qs = self._queues[c.queue]
        now = self.clock.seconds()
        new = routing.level_after_wait(qs.rules, now - c.arrived + 1e-9)
        if new > c.level:
            self._move_bucket(c, new)
            self._emit(TierUnlocked(now, c.id, c.queue, new, "after"))
        self._arm_waiting_timers(c, announce=False)
        self._match_call(c)

    def _announce_due(self, call_id: str) -> None:
        c = self._calls.get(call_id)
        if c is None or c.state != WAITING or c.callback:
            return
        qs = self._queues[c.queue]
        pos = self._position(c)
        self._emit(PositionAnnounced(self.clock.seconds(), c.id, c.queue, pos, self._ewt_for(c, pos),
                                     callback_offered=routing.callback_offered(qs.cfg, qs.plan, pos),
                                     announcement=qs.plan.announcement if qs.plan is not None else None))
        c.timers["announce"] = self._call_later(routing.announce_every(qs.cfg, qs.plan), self._announce_due, c.id)

    def _max_wait_reached(self, call_id: str) -> None:
        c = self._calls.get(call_id)
        if c is None or c.callback:
            return
        c.timers.pop("maxwait", None)
        if c.state == RINGING:
            c.overdue = True  # decided when the offer ends, so a ringing agent is not cut off
            return
        if c.state != WAITING:
            return
        now = self.clock.seconds()
        self._dequeue(c)
        self._cancel_timers(c)
        self._forget(c)
        self._emit(CallEnded(now, c.id, c.queue, c.category, c.priority, OUTCOME_FALLBACK, now - c.arrived,
                             reason="max-wait", emergency_plan=c.plan))

    def _cancel_timers(self, c: _Call) -> None:
        for t in c.timers.values():
            t.stop()
        c.timers.clear()

    def _position(self, c: _Call) -> int:
        """1 + the waiting calls ahead (keys are unique: also right for a call not in the list)."""
        return self._queues[c.queue].order.bisect_left(c.key) + 1

    # --------------------------------------------------- expected wait, overflow

    def _staffed_upto(self, qs: _QueueState, level: int) -> int:
        n = 0
        for ps in qs.pools:
            if ps.cfg.tier > level:
                break
            n += ps.staffed
        return n

    def _queue_ewt(self, qs: _QueueState) -> float:
        waiting = len(qs.order)
        if not waiting:
            return 0.0
        return routing.expected_wait(waiting, qs.aht, self._staffed_upto(qs, 0))

    def _ewt_for(self, c: _Call, pos: int) -> float:
        qs = self._queues[c.queue]
        level = c.level if c.level > qs.queue_level else qs.queue_level
        return routing.expected_wait(pos, qs.aht, self._staffed_upto(qs, level))

    def _overflow_changed(self, qs: _QueueState) -> None:
        """Recompute the queue-wide overflow tier; widen at once when it rises."""
        if not qs.rules and qs.plan is None:
            return
        if qs.plan is not None and qs.plan.all_tiers_at_once:
            level, cause = qs.top_tier, "emergency"
            if level == qs.queue_level:
                return  # the usual case under an all-tiers plan: nothing to recompute
            ewt = self._queue_ewt(qs)
        else:
            ewt = self._queue_ewt(qs)
            level, cause = routing.ewt_level(qs.rules, ewt), "ewt"
        if level == qs.queue_level:
            return
        old = qs.queue_level
        qs.queue_level = level
        self._emit(QueueOverflowChanged(self.clock.seconds(), qs.cfg.name, level,
                                        ewt if ewt != routing.INF else -1.0, cause))
        if level > old:
            self._sweep(qs)

    def _waiting_callers(self) -> int:
        """Callers holding a line while they wait; virtual (callback) calls hold none."""
        n = -self._cb_waiting
        for qs in self._queues.values():
            n += len(qs.order)
        return n

    # --------------------------------------------------- snapshot and restore

    def snapshot(self) -> dict:
        """The whole live state as plain JSON-able data; timers as absolute deadlines."""
        calls = []
        for c in sorted(self._calls.values(), key=lambda c: c.seq):
            timers = {n: [t.getTime(), t.seq] for n, t in c.timers.items() if t.active()}
            calls.append({
                "id": c.id, "queue": c.queue, "category": c.category, "priority": c.priority,
                "caller_masked": c.caller_masked, "arrived": c.arrived, "seq": c.seq, "level": c.level,
                "callback": c.callback, "origin": c.origin, "choices": list(c.choices), "state": c.state,
                "agent": c.agent, "offer_at": c.offer_at, "attempt": c.attempt, "answered_at": c.answered_at,
                "plan": c.plan, "excluded": sorted(c.excluded), "overdue": c.overdue,
                "cb_attempts": c.cb_attempts, "timers": timers,
            })
        agents = []
        for a in sorted(self._agents.values(), key=lambda a: a.seq):
            agents.append({
                "id": a.id, "pool": a.pool, "skills": dict(a.skills), "endpoint": a.endpoint, "state": a.state,
                "reason": a.reason, "since": a.since, "idle_since": a.idle_since, "calls": a.calls,
                "last_offer": a.last_offer, "misses": a.misses, "call": a.call, "seq": a.seq,
                "logout_pending": a.logout_pending, "session": a.session,
                "wrap_timer": [a.timer.getTime(), a.timer.seq] if a.timer is not None and a.timer.active() else None,
            })
        return {
            "version": SNAPSHOT_VERSION, "t": self.clock.seconds(), "seq": self._seq, "offer_seq": self._offer_seq,
            "agent_seq": self._agent_seq, "tseq": self._tseq,
            "queues": {n: {"plan": qs.plan_name, "aht": qs.aht, "queue_level": qs.queue_level,
                           "plan_by": qs.plan_by, "plan_at": qs.plan_at}
                       for n, qs in self._queues.items()},
            "pools": {n: {"home_waiting": ps.home_waiting, "home_at": ps.home_at} for n, ps in self._pools.items()},
            "agents": agents, "calls": calls,
            # the newest ended ids: a call that ended just before a takeover cannot arrive again
            "ended": list(islice(reversed(self._ended), SNAPSHOT_ENDED))[::-1],
        }

    @classmethod
    def restore(cls, config: Config, clock, snapshot: dict) -> Engine:
        """A new engine holding exactly the snapshot's state, its timers re-armed on ``clock``."""
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise EngineError(f"snapshot version {snapshot.get('version')!r} is not {SNAPSHOT_VERSION}")
        engine = cls(config, clock)
        engine._load(snapshot)
        engine._dirty_queues.clear()  # the snapshot's overflow levels are already settled
        engine._dirty_pools.clear()
        return engine

    @classmethod
    def carry_over(cls, config: Config, clock, snapshot: dict) -> Engine:
        """A clean start after a clean stop: a new, empty engine that keeps only what must outlive
        the calls -- each queue's emergency plan, with who switched it on and when -- and the ids
        of the calls that ended (so a caller resuming one of them is not taken as a new call)."""
        engine = cls(config, clock)
        for call_id in snapshot.get("ended", ()):
            engine._remember_ended(call_id)
        for name, q in (snapshot.get("queues") or {}).items():
            qs = engine._queues.get(name)
            if qs is not None and q.get("plan") is not None and q["plan"] in qs.cfg.emergency_plans:
                qs.set_plan(q["plan"])
                qs.plan_by, qs.plan_at = q.get("plan_by"), q.get("plan_at")
        return engine

    def carried_over(self) -> dict[str, dict]:
        """The emergency plans in force: queue -> {plan, by, since}."""
        return {n: {"plan": qs.plan_name, "by": qs.plan_by, "since": qs.plan_at}
                for n, qs in self._queues.items() if qs.plan_name is not None}

    def _teardown(self) -> None:
        for c in self._calls.values():
            self._cancel_timers(c)
        for a in self._agents.values():
            self._leave_state(a)
        self._calls.clear()
        self._agents.clear()

    def _load(self, snap: dict) -> None:
        now = self.clock.seconds()
        self._seq = snap["seq"]
        self._offer_seq = snap["offer_seq"]
        self._agent_seq = snap["agent_seq"]
        self._tseq = snap["tseq"]
        for call_id in snap.get("ended", ()):
            self._remember_ended(call_id)
        arm: list[tuple[int, float, Callable, tuple, Callable]] = []  # armed below in creation order
        for name, q in snap["queues"].items():
            qs = self._queues.get(name)
            if qs is None:
                continue
            if q["plan"] is not None and q["plan"] in qs.cfg.emergency_plans:
                qs.set_plan(q["plan"])
                qs.plan_by, qs.plan_at = q.get("plan_by"), q.get("plan_at")
            qs.aht = q["aht"]
            qs.queue_level = min(q.get("queue_level", 0), qs.top_tier)
        for name, p in snap["pools"].items():
            ps = self._pools.get(name)
            if ps is not None:
                ps.home_waiting, ps.home_at = p["home_waiting"], p["home_at"]
        for d in snap["agents"]:
            a = _Agent()
            for k in ("id", "pool", "skills", "endpoint", "state", "reason", "since", "idle_since", "calls",
                      "last_offer", "misses", "call", "seq", "logout_pending"):
                setattr(a, k, d[k])
            a.session = d.get("session", "")  # (absent in snapshots older than seat sessions)
            ps = self._pools[a.pool]
            self._agents[a.id] = a
            ps.logged_in += 1
            ps.counts[a.state] += 1
            if a.state not in _UNSTAFFED:
                ps.staffed += 1
            if a.state in (OFFERED, ON_CALL, WRAPUP):
                ps.busy += 1
            if a.state == READY:
                self._index_ready(a, ps)
            if a.state == WRAPUP and d["wrap_timer"] is not None:
                at, seq = d["wrap_timer"]
                a.wrap_deadline = at
                arm.append((seq, at, self._wrapup_timed_out, (a.id,), lambda t, a=a: setattr(a, "timer", t)))
        for d in snap["calls"]:
            c = _Call()
            qs = self._queues[d["queue"]]
            cat = self._categories.get(d["category"]) or self._categories.get(qs.cfg.default_category) \
                or self.config.categories[-1]
            c.id, c.queue, c.category, c.priority = d["id"], d["queue"], cat.name, d["priority"]
            c.caller_masked, c.arrived, c.seq = d["caller_masked"], d["arrived"], d["seq"]
            c.key = (-c.priority, c.seq, c.id)
            c.level = min(d["level"], qs.top_tier)
            c.callback, c.origin, c.choices = d["callback"], d["origin"], list(d["choices"])
            c.agent, c.offer_at, c.attempt, c.answered_at = d["agent"], d["offer_at"], d["attempt"], d["answered_at"]
            c.plan, c.excluded, c.overdue, c.cb_attempts = d["plan"], set(d["excluded"]), d["overdue"], d["cb_attempts"]
            c.urgent, c.skill = cat.urgent, cat.skill
            c.required = cat.skill is not None and cat.skill_mode == "required"
            c.bucket = None
            self._calls[c.id] = c
            timers = d["timers"]

            def setter(name, c=c):
                return lambda t: c.timers.__setitem__(name, t)

            if d["state"] == WAITING:
                self._enqueue(c)
                # tier deadlines follow the (possibly new) rules; the creation order is kept
                nxt = routing.next_unlock(qs.rules, c.level, c.arrived)
                if nxt is not None:
                    seq = timers["tier"][1] if "tier" in timers else None
                    arm.append((seq, nxt[0], self._tier_due, (c.id,), setter("tier")))
                if "announce" in timers and not c.callback:
                    arm.append((timers["announce"][1], timers["announce"][0], self._announce_due, (c.id,),
                                setter("announce")))
            else:
                c.state = d["state"]
            if "maxwait" in timers:
                arm.append((timers["maxwait"][1], timers["maxwait"][0], self._max_wait_reached, (c.id,),
                            setter("maxwait")))
            if d["state"] == RINGING and "ring" in timers:
                arm.append((timers["ring"][1], timers["ring"][0], self._ring_timed_out, (c.id, c.agent),
                            setter("ring")))
        arm.sort(key=lambda x: (x[0] is None, x[0] or 0))
        for seq, at, fn, args, assign in arm:
            assign(self._call_later(at - now, fn, *args, seq=seq))

    # ------------------------------------------------------------- journal

    _INPUTS = {
        "call_arrived", "choice_made", "callback_requested", "caller_hung_up", "call_dropped", "offer_answered",
        "offer_failed",
        "call_completed", "agent_logged_in", "agent_ready", "agent_not_ready", "agent_logged_out",
        "wrapup_ended", "home_load_reported", "emergency_set", "call_confirmed", "end_call", "end_all_calls",
        "call_not_queued", "agent_session_changed",
    }

    def apply_input(self, record: dict) -> list[Event]:
        """Replay one journal record from :meth:`subscribe_inputs` (not replace_config)."""
        name = record.get("input")
        if name not in self._INPUTS:
            raise EngineError(f"cannot replay input {name!r}")
        args = dict(record.get("args") or {})
        method = getattr(self, name)
        if name == "call_arrived":
            return method(args.pop("call_id"), args.pop("queue"), **args)
        if name == "agent_logged_in":
            return method(args.pop("agent_id"), args.pop("pool"), **args)
        if name == "call_not_queued":
            return method(args.pop("call_id"), args.pop("queue"), args.pop("outcome"), **args)
        return method(**args)
