"""Every Prometheus metric the ACD exports, in one place.

Three kinds of metric live here:

* **Counters and histograms driven by engine events** (:class:`EventRecorder`):
  calls offered / answered / ended by outcome, offers by result (ring-no-answer
  is ``callcenter_offers_total{result="no-answer"}``), callbacks, wait and talk
  time.  They are incremented once per event, so nothing is lost between
  scrapes.
* **Gauges read from ``engine.status()`` at scrape time** (:class:`EngineCollector`):
  agents by pool and state, waiting callers, oldest wait, expected wait,
  overflow tier, emergency plan, borrowed share per lender and its cap, the
  lender's own load.  Reading at scrape time costs nothing per event and can
  never drift from the engine's truth.
* **Health gauges set by other subsystems**, imported by name from this module
  (keep the names stable): :data:`REDIS_UP`, :data:`DATABASE_UP`,
  :data:`RECORDS_BUFFERED`, :data:`RECORDS_DROPPED`, :data:`STATE_REDIS_LAG`.

Naming follows https://prometheus.io/docs/practices/naming/: base units
(seconds, ratios 0..1), ``_total`` for counters, and only small bounded label
sets (queue, pool, tier, category, outcome, result, state, lender, plan).
Caller numbers, call ids and agent ids are never labels.

Connection rate (接通率) = ``callcenter_calls_answered_total`` /
``callcenter_calls_offered_total``; "answered within 15 s" is the ``le="15"``
bucket of ``callcenter_call_wait_seconds{outcome="answered"}``.  The recording
rules in deploy/prometheus/rules/ build on exactly these names; docs/operations.md
explains each.
"""

from __future__ import annotations

import queue as _queue
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics import disable_created_metrics
from prometheus_client.registry import Collector
from twisted.logger import Logger

from callcenter.engine import events as ev
from callcenter.orders.states import OPEN_STATES

log = Logger(namespace="callcenter.metrics")

# `_created` series double the series count and nothing here uses them.
disable_created_metrics()

# GB/T 33358-2016: answer within 15 s; the other bounds give the shape of the wait.
WAIT_BUCKETS = (5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0)
TALK_BUCKETS = (30.0, 60.0, 120.0, 180.0, 240.0, 300.0, 600.0, 900.0, 1800.0)

# Outcomes observed in the wait histogram.  "answered" is observed when the
# caller is connected (CallAnswered), the others when the call ends.
WAIT_OUTCOMES = ev.OUTCOMES
# Agent states whose time counts as handling work (occupancy numerator).
HANDLING_STATES = (ev.OFFERED, ev.ON_CALL, ev.WRAPUP)

# --------------------------------------------------------------------------
# Event-driven counters and histograms (registered in the default registry).
# --------------------------------------------------------------------------

CALLS_OFFERED = Counter(
    "callcenter_calls_offered",
    "Calls that entered a queue (callbacks made for abandoned calls are not counted again).",
    ["queue", "category"],
)
CALLS_ANSWERED = Counter(
    "callcenter_calls_answered",
    "Waiting callers connected to an agent (live answers; callbacks are in callcenter_callbacks_answered_total).",
    ["queue", "pool", "tier", "category"],
)
CALLS_ENDED = Counter(
    "callcenter_calls_ended",
    "Offered calls that ended, by outcome: answered, abandoned, called-back, fallback, or the ACD's own "
    "verdicts shed, lost-on-restart, acd-shutdown, admin-ended, callback-failed (docs/routing.md).",
    ["queue", "category", "outcome"],
)
CALLS_SHORT_ABANDONED = Counter(
    "callcenter_calls_short_abandoned",
    f"Abandoned calls that waited less than {ev.SHORT_ABANDON_S:g} s (already in callcenter_calls_ended_total).",
    ["queue"],
)
CALLBACKS_REQUESTED = Counter(
    "callcenter_callbacks_requested",
    "Callers who asked to be called back instead of waiting on the line.",
    ["queue"],
)
CALLBACKS_QUEUED = Counter(
    "callcenter_callbacks_queued",
    "Callback calls queued for abandoned calls (abandoned_to_callback).",
    ["queue"],
)
CALLBACKS_ANSWERED = Counter(
    "callcenter_callbacks_answered",
    "Callbacks in which an agent reached the caller.",
    ["queue", "pool", "tier"],
)
CALLBACK_CALLS_ENDED = Counter(
    "callcenter_callback_calls_ended",
    "Callback calls made for abandoned calls that ended, by outcome.",
    ["queue", "outcome"],
)
OFFERS = Counter(
    "callcenter_offers",
    "Offers (rings) to agents by result; result=\"no-answer\" is the ring-no-answer count.",
    ["pool", "tier", "result"],
)
CALL_WAIT = Histogram(
    "callcenter_call_wait_seconds",
    "Time callers waited in the queue: until answered (outcome=answered) or until the call ended otherwise.",
    ["queue", "outcome"],
    buckets=WAIT_BUCKETS,
)
CALL_TALK = Histogram(
    "callcenter_call_talk_seconds",
    "Conversation time of answered calls.",
    ["queue", "tier"],
    buckets=TALK_BUCKETS,
)
TIER_UNLOCKS = Counter(
    "callcenter_tier_unlocks",
    "Waiting calls that were allowed to overflow to a further tier, by cause.",
    ["queue", "tier", "cause"],
)
EMERGENCY_CHANGES = Counter(
    "callcenter_emergency_changes",
    "Emergency plan switches (on, off or to another plan).",
    ["queue"],
)
EVENT_ERRORS = Counter(
    "callcenter_metrics_event_errors",
    "Engine events the metrics recorder failed to account for (a bug; see the log).",
)
BUILD = Info("callcenter_build", "Version of the running ACD.")

# Call control (callcenter/fastagi/): set-ups admitted and shed at overload, broken peers.
AGI_SETUPS = Counter("callcenter_agi_setups", "New calls admitted by call control (FastAGI and the classic relay).")
AGI_SHED = Counter(
    "callcenter_agi_shed",
    "New calls shed at overload (over acd.max_calls or acd.max_setups_per_s): apology and dialplan fallback.",
)
AGI_PROTOCOL_ERRORS = Counter(
    "callcenter_agi_protocol_errors", "AGI sessions closed because the peer broke the protocol."
)
AGI_AUTH_FAILURES = Counter("callcenter_agi_auth_failures", "Classic-script relay connections refused: bad secret.")

# Work orders (callcenter/orders): steps counted as the desk publishes them; open and overdue
# orders read from the book at scrape time (OrdersCollector).
ORDER_KINDS = ("created", "dispatched", "linked", "returned", "accepted", "progress", "replied", "closed",
               "visited", "reopened", "resolved-on-spot", "extension-requested", "extension-decided", "reminded",
               "escalated")
ORDERS_EVENTS = Counter("callcenter_orders_events", "Work-order steps, by kind (created, dispatched, closed, ...).",
                        ["kind"])
ORDERS_CLOSED = Counter("callcenter_orders_closed", "Work orders closed by their unit, by urgency and deadline kept.",
                        ["urgency", "on_time"])
ORDERS_ESCALATED = Counter("callcenter_orders_escalated", "Overdue work orders escalated, by level and urgency.",
                           ["level", "urgency"])
ORDERS_OPEN = "callcenter_orders_open"
ORDERS_OVERDUE = "callcenter_orders_overdue"


def order_event_counted(event: Any, urgency: str) -> None:
    """Count one step the order desk published (its listener; never raises into the desk)."""
    try:
        if event.kind in ORDER_KINDS:
            ORDERS_EVENTS.labels(event.kind).inc()
        if event.kind == "closed":
            ORDERS_CLOSED.labels(urgency, "true" if event.data.get("on_time") else "false").inc()
        elif event.kind == "escalated":
            ORDERS_ESCALATED.labels(event.data.get("level", ""), urgency).inc()
    except Exception:  # noqa: BLE001
        log.failure("metrics: could not count order event {e!r}", e=event)


class OrdersCollector(Collector):
    """Open work orders by urgency and state, and overdue ones by urgency, category and unit (bounded:
    units with overdue orders only), read from the order book at scrape time on the reactor thread."""

    def __init__(self, book: Any, clock: Any, reactor: Any = None):
        self._book, self._clock, self._reactor = book, clock, reactor

    def describe(self) -> Iterable:
        return [GaugeMetricFamily(ORDERS_OPEN, "", labels=["urgency", "state"]),
                GaugeMetricFamily(ORDERS_OVERDUE, "", labels=["urgency", "category", "unit"])]

    def _read(self) -> tuple[dict, dict]:
        now = self._clock.seconds()
        open_: dict[tuple[str, str], int] = {}
        overdue: dict[tuple[str, str, str], int] = {}
        for o in self._book.orders.values():
            if o.state in OPEN_STATES:
                open_[(o.urgency, o.state)] = open_.get((o.urgency, o.state), 0) + 1
                if o.deadline < now:
                    key = (o.urgency, o.category, o.owner)
                    overdue[key] = overdue.get(key, 0) + 1
        return open_, overdue

    def collect(self) -> Iterable:
        open_, overdue = _on_reactor_thread(self._reactor, self._read)
        g_open = GaugeMetricFamily(ORDERS_OPEN, "Work orders not yet closed, by urgency and state.",
                                   labels=["urgency", "state"])
        for urgency in ("urgent", "ordinary"):
            for state in sorted(OPEN_STATES):
                g_open.add_metric([urgency, state], open_.get((urgency, state), 0))
        g_over = GaugeMetricFamily(ORDERS_OVERDUE, "Open work orders past their deadline, by urgency, category and "
                                   "owning unit.", labels=["urgency", "category", "unit"])
        for key, n in sorted(overdue.items()):
            g_over.add_metric(list(key), n)
        yield g_open
        yield g_over


# --------------------------------------------------------------------------
# Health gauges set by other subsystems: import these by name.
# --------------------------------------------------------------------------

REDIS_UP = Gauge("callcenter_redis_up", "1 if the live-state Redis answers, else 0.")
DATABASE_UP = Gauge(
    "callcenter_database_up",
    "1 if the records database answers a SELECT 1 probe (every 5 s) and the last write did not fail, else 0.",
)
RECORDS_BUFFERED = Gauge(
    "callcenter_records_buffered_events", "Call and agent records waiting to be written to the database."
)
RECORDS_DROPPED = Counter(
    "callcenter_records_dropped_events", "Records dropped because the buffer overflowed while the database was down."
)
STATE_REDIS_LAG = Gauge(
    "callcenter_state_redis_lag_seconds", "Age of the newest engine change not yet written to Redis."
)
STATE_IS_LEADER = Gauge("callcenter_state_leader", "1 if this ACD holds the active lease (primary), else 0.")
STATE_UNSYNCED_INPUTS = Gauge(
    "callcenter_state_unsynced_inputs", "Engine inputs accepted by the active ACD that Redis has not confirmed yet."
)

# Families the collector yields at scrape time: name -> (type, help, labels).
# One place per fact: the collector and describe() both build from this table.
AGENTS = "callcenter_agents"
AGENT_STATE_SECONDS = "callcenter_agent_state_seconds"
POOL_INFO = "callcenter_pool_info"
POOL_LOGGED_IN = "callcenter_pool_logged_in_agents"
POOL_BUSY = "callcenter_pool_busy_agents"
QUEUE_POOL_INFO = "callcenter_queue_pool_info"
QUEUE_WAITING = "callcenter_queue_waiting_calls"
QUEUE_OLDEST_WAIT = "callcenter_queue_oldest_wait_seconds"
QUEUE_EWT = "callcenter_queue_expected_wait_seconds"
QUEUE_OVERFLOW_TIER = "callcenter_queue_overflow_tier"
QUEUE_EMERGENCY_ACTIVE = "callcenter_queue_emergency_active"
QUEUE_EMERGENCY_PLAN = "callcenter_queue_emergency_plan_info"
QUEUE_EMERGENCY_SINCE = "callcenter_queue_emergency_since_seconds"
LENDER_SHARE = "callcenter_lender_borrowed_share_ratio"
LENDER_MAX_SHARE = "callcenter_lender_max_share_ratio"
LENDER_CAP = "callcenter_lender_cap_agents"
LENDER_HOME_WAITING = "callcenter_lender_home_waiting_calls"
LENDER_HOME_REPORT_AGE = "callcenter_lender_home_report_age_seconds"
LENDER_GATE_OPEN = "callcenter_lender_gate_open"
QUEUE_CALLBACKS_WAITING = "callcenter_queue_callbacks_waiting_calls"

SCRAPED: dict[str, tuple[str, str, list[str]]] = {
    AGENTS: (
        "gauge",
        "Logged-in agents by pool, tier and state (ready, not-ready, offered, on-call, wrap-up).",
        ["pool", "tier", "state"],
    ),
    AGENT_STATE_SECONDS: (
        "counter",
        "Agent-seconds spent in each state, per pool (occupancy = handling states / ready+handling).",
        ["pool", "state"],
    ),
    POOL_INFO: (
        "gauge",
        "Pools: kind (own, remote, borrowed, carrier), tier and lender; always 1.",
        ["pool", "kind", "tier", "lender"],
    ),
    POOL_LOGGED_IN: ("gauge", "Agents logged in to the pool (any state but logged-out).", ["pool", "tier"]),
    POOL_BUSY: ("gauge", "Agents of the pool offered or on one of our calls, or in wrap-up.", ["pool", "tier"]),
    QUEUE_POOL_INFO: ("gauge", "Pools serving each queue, with their tier; always 1.", ["queue", "pool", "tier"]),
    QUEUE_WAITING: ("gauge", "Callers waiting in the queue (on the line or as a virtual callback call).", ["queue"]),
    QUEUE_OLDEST_WAIT: ("gauge", "How long the longest-waiting caller has waited (0 when nobody waits).", ["queue"]),
    QUEUE_EWT: ("gauge", "Expected wait of a caller joining the queue now.", ["queue"]),
    QUEUE_OVERFLOW_TIER: (
        "gauge",
        "Highest tier every waiting call may overflow to (0: no queue-wide overflow).",
        ["queue"],
    ),
    QUEUE_EMERGENCY_ACTIVE: ("gauge", "1 while an emergency plan (应急预案) is switched on for the queue.", ["queue"]),
    QUEUE_EMERGENCY_PLAN: (
        "gauge",
        "The emergency plan switched on for the queue; always 1, absent when none.",
        ["queue", "plan"],
    ),
    QUEUE_EMERGENCY_SINCE: (
        "gauge",
        "When the emergency plan in force was switched on (Unix seconds) and by whom (the admin API"
        " principal, from the config); absent when none.  It outlives a restart when the state is restored.",
        ["queue", "plan", "by"],
    ),
    LENDER_SHARE: (
        "gauge",
        "Share of the lending hotline's logged-in agents busy on our calls (0..1).",
        ["pool", "lender"],
    ),
    LENDER_MAX_SHARE: ("gauge", "Configured cap on that share (max_share, 0..1).", ["pool", "lender"]),
    LENDER_CAP: ("gauge", "Most borrowed agents we may use at once under max_share.", ["pool", "lender"]),
    LENDER_HOME_WAITING: (
        "gauge",
        "Callers waiting on the lending hotline's own line, as last reported.",
        ["pool", "lender"],
    ),
    LENDER_HOME_REPORT_AGE: (
        "gauge",
        "Age of the lender's last home-load report (-1: never reported).",
        ["pool", "lender"],
    ),
    LENDER_GATE_OPEN: (
        "gauge",
        "1 while we may offer calls to the borrowed pool (under cap, lender's own line not overloaded).",
        ["pool", "lender"],
    ),
    QUEUE_CALLBACKS_WAITING: ("gauge", "Of the waiting calls, virtual calls waiting for a callback.", ["queue"]),
}


def _family(name: str) -> GaugeMetricFamily | CounterMetricFamily:
    kind, doc, labels = SCRAPED[name]
    cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    return cls(name, doc, labels=labels)


def init_series(config: Any) -> None:
    """Create every expected labelled series at zero.

    A counter that appears only on its first increment makes ``rate()`` and
    ``increase()`` miss that increment, and an absent series makes "rate below
    95 %" alerts silent; so each queue/pool/category/outcome combination of the
    config is exported from the start.  Safe to call again after a reload.
    """
    cats = [c.name for c in config.categories]
    pools = {p.name: p for p in config.pools}
    for p in config.pools:
        for result in ev.OFFER_RESULTS:
            OFFERS.labels(p.name, str(p.tier), result)
    for q in config.queues:
        CALLS_SHORT_ABANDONED.labels(q.name)
        CALLBACKS_REQUESTED.labels(q.name)
        CALLBACKS_QUEUED.labels(q.name)
        EMERGENCY_CHANGES.labels(q.name)
        for outcome in WAIT_OUTCOMES:
            CALL_WAIT.labels(q.name, outcome)
            CALLBACK_CALLS_ENDED.labels(q.name, outcome)
        tiers = sorted({pools[n].tier for n in q.pools if n in pools})
        for tier in tiers:
            CALL_TALK.labels(q.name, str(tier))
        for cat in cats:
            CALLS_OFFERED.labels(q.name, cat)
            for outcome in ev.OUTCOMES:
                CALLS_ENDED.labels(q.name, cat, outcome)
        for pname in q.pools:
            p = pools.get(pname)
            if p is None:
                continue
            CALLBACKS_ANSWERED.labels(q.name, p.name, str(p.tier))
            for cat in cats:
                CALLS_ANSWERED.labels(q.name, p.name, str(p.tier), cat)


class EventRecorder:
    """Engine listener: turns each event into counter/histogram updates.

    Also keeps, per logged-in agent, the current state and since when (agent
    ids stay in memory, never in labels) so the collector can export
    agent-seconds per pool and state for occupancy.  Runs on the reactor
    thread like the engine; it never raises into the engine.
    """

    def __init__(self, open_calls: Iterable[str] = ()) -> None:
        # Calls counted as offered and not yet ended; seeded with the calls of
        # a restored engine so that their end is not counted as a new offer.
        self._open: set[str] = set(open_calls)
        self._followups: set[str] = set()  # callback calls made for abandoned calls
        self._agents: dict[str, tuple[str, str, float]] = {}  # agent -> (pool, state, since)
        self._state_seconds: dict[tuple[str, str], float] = {}  # closed intervals by (pool, state)
        self._handlers: dict[type, Callable[[Any], None]] = {
            ev.CallQueued: self.call_queued,
            ev.CallbackRequested: self.callback_requested,
            ev.OfferEnded: self.offer_ended,
            ev.CallAnswered: self.call_answered,
            ev.CallEnded: self.call_ended,
            ev.AgentStateChanged: self.agent_state_changed,
            ev.TierUnlocked: self.tier_unlocked,
            ev.EmergencyChanged: self.emergency_changed,
        }

    def calls_in_progress(self, call_ids: Iterable[str]) -> None:
        """Calls already offered before we subscribed (a restored engine): their end is no new offer."""
        self._open.update(call_ids)

    def agents_present(self, agents: Iterable[tuple[str, str, str]], now: float) -> None:
        """Agents already logged in when we subscribed, as (agent, pool, state).

        Their time is counted from ``now``: earlier time belongs to the process
        that served them then (counters restart with each process).
        """
        for agent_id, pool, state in agents:
            if state != ev.LOGGED_OUT:
                self._agents.setdefault(agent_id, (pool, state, now))

    def __call__(self, event: ev.Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is None:
            return
        try:
            handler(event)
        except Exception:  # a metrics bug must never break call handling
            EVENT_ERRORS.inc()
            log.failure("metrics: cannot account for {kind}", kind=type(event).__name__)

    # -- calls --------------------------------------------------------------

    def call_queued(self, e: ev.CallQueued) -> None:
        if e.origin_call_id is not None:
            self._followups.add(e.call_id)
            CALLBACKS_QUEUED.labels(e.queue).inc()
            return
        self._open.add(e.call_id)
        CALLS_OFFERED.labels(e.queue, e.category).inc()

    def callback_requested(self, e: ev.CallbackRequested) -> None:
        CALLBACKS_REQUESTED.labels(e.queue).inc()

    def offer_ended(self, e: ev.OfferEnded) -> None:
        OFFERS.labels(e.pool, str(e.tier), e.result).inc()

    def call_answered(self, e: ev.CallAnswered) -> None:
        if e.callback:
            CALLBACKS_ANSWERED.labels(e.queue, e.pool, str(e.tier)).inc()
            return
        CALLS_ANSWERED.labels(e.queue, e.pool, str(e.tier), e.category).inc()
        CALL_WAIT.labels(e.queue, ev.OUTCOME_ANSWERED).observe(max(0.0, e.wait_s))

    def call_ended(self, e: ev.CallEnded) -> None:
        if e.outcome in (ev.OUTCOME_ANSWERED, ev.OUTCOME_CALLED_BACK) and e.tier is not None:
            CALL_TALK.labels(e.queue, str(e.tier)).observe(max(0.0, e.talk_s))
        if e.call_id in self._followups:
            self._followups.discard(e.call_id)
            CALLBACK_CALLS_ENDED.labels(e.queue, e.outcome).inc()
            return
        if e.call_id in self._open:
            self._open.discard(e.call_id)
        else:
            # Ended without ever being queued (fallback at capacity): it was
            # still offered to the hotline, and it was not answered.
            CALLS_OFFERED.labels(e.queue, e.category).inc()
        CALLS_ENDED.labels(e.queue, e.category, e.outcome).inc()
        if e.outcome != ev.OUTCOME_ANSWERED:
            CALL_WAIT.labels(e.queue, e.outcome).observe(max(0.0, e.wait_s))
        if e.outcome == ev.OUTCOME_ABANDONED and e.short_abandon:
            CALLS_SHORT_ABANDONED.labels(e.queue).inc()

    def tier_unlocked(self, e: ev.TierUnlocked) -> None:
        TIER_UNLOCKS.labels(e.queue, str(e.tier), e.cause).inc()

    def emergency_changed(self, e: ev.EmergencyChanged) -> None:
        EMERGENCY_CHANGES.labels(e.queue).inc()

    # -- agents -------------------------------------------------------------

    def agent_state_changed(self, e: ev.AgentStateChanged) -> None:
        known = self._agents.pop(e.agent_id, None)
        if known is not None:
            pool, state, since = known
            key = (pool, state)
            self._state_seconds[key] = self._state_seconds.get(key, 0.0) + max(0.0, e.t - since)
        if e.new != ev.LOGGED_OUT:
            self._agents[e.agent_id] = (e.pool, e.new, e.t)

    def agent_state_seconds(self, now: float) -> dict[tuple[str, str], float]:
        """Agent-seconds per (pool, state) up to ``now``, open intervals included."""
        out = dict(self._state_seconds)
        for pool, state, since in self._agents.values():
            out[(pool, state)] = out.get((pool, state), 0.0) + max(0.0, now - since)
        return out


def _on_reactor_thread(reactor: Any, fn: Callable[[], Any], timeout_s: float = 5.0) -> Any:
    """Run ``fn`` on the reactor thread and return its result.

    prometheus-client's Twisted resource renders in the reactor's thread pool,
    while the engine is single-threaded on the reactor: reading it from the
    pool would race with call handling.  Called on the reactor thread (or when
    no reactor thread exists, as in tests with task.Clock) it just calls fn.
    """
    from twisted.python import threadable

    if threadable.ioThread is None or threadable.isInIOThread() or reactor is None:
        return fn()
    box: _queue.Queue = _queue.Queue(maxsize=1)

    def run() -> None:
        try:
            box.put((True, fn()))
        except BaseException as exc:  # noqa: BLE001 - handed back to the scraping thread
            box.put((False, exc))

    reactor.callFromThread(run)
    try:
        ok, value = box.get(timeout=timeout_s)
    except _queue.Empty:
        raise TimeoutError(f"the reactor did not answer within {timeout_s:g} s") from None
    if not ok:
        raise value
    return value


def _num(value: Any, default: float = 0.0) -> float:
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default


class EngineCollector(Collector):
    """Gauges read from ``engine.status()`` (and the recorder) at scrape time."""

    def __init__(self, engine: Any, recorder: EventRecorder, clock: Any, config: Any = None, reactor: Any = None):
        self._engine = engine
        self._recorder = recorder
        self._clock = clock
        self._config = config
        self._reactor = reactor

    def clock_seconds(self) -> float:
        return self._clock.seconds()

    def _read(self) -> tuple[dict, dict[tuple[str, str], float], Any]:
        status = self._engine.status() or {}
        seconds = self._recorder.agent_state_seconds(self._clock.seconds())
        config = getattr(self._engine, "config", None) or self._config
        return status, seconds, config

    def describe(self) -> Iterable:
        # Names only, without reading the engine: lets the registry refuse a
        # second collector exporting the same series.
        return [_family(name) for name in SCRAPED]

    def collect(self) -> Iterable:
        status, seconds, config = _on_reactor_thread(self._reactor, self._read)
        pool_cfg = {p.name: p for p in getattr(config, "pools", [])} if config is not None else {}
        queue_cfg = {q.name: q for q in getattr(config, "queues", [])} if config is not None else {}

        agents = _family(AGENTS)
        pool_info = _family(POOL_INFO)
        logged_in = _family(POOL_LOGGED_IN)
        busy = _family(POOL_BUSY)
        share = _family(LENDER_SHARE)
        max_share = _family(LENDER_MAX_SHARE)
        cap = _family(LENDER_CAP)
        home_waiting = _family(LENDER_HOME_WAITING)
        home_age = _family(LENDER_HOME_REPORT_AGE)
        gate = _family(LENDER_GATE_OPEN)

        for p in status.get("pools", []) or []:
            name = str(p.get("name", ""))
            if not name:
                continue
            pc = pool_cfg.get(name)
            tier = str(p.get("tier", pc.tier if pc is not None else 0))
            kind = str(p.get("kind", pc.kind if pc is not None else ""))
            counts = p.get("agents") or {}
            for state in ev.AGENT_STATES:
                if state != ev.LOGGED_OUT:  # logged-out agents are not counted by pool
                    agents.add_metric([name, tier, state], _num(counts.get(state)))
            lender = p.get("lender", pc.lender if pc is not None else None)
            pool_info.add_metric([name, kind, tier, str(lender or "")], 1.0)
            n_logged_in = p.get("logged_in")
            if n_logged_in is None:
                n_logged_in = sum(_num(v) for s, v in counts.items() if s != ev.LOGGED_OUT)
            logged_in.add_metric([name, tier], _num(n_logged_in))
            n_busy = p.get("busy")
            if n_busy is None:
                n_busy = sum(_num(counts.get(s)) for s in HANDLING_STATES)
            busy.add_metric([name, tier], _num(n_busy))
            if kind == "borrowed" or lender:
                labels = [name, str(lender or "")]
                share.add_metric(labels, _num(p.get("share")))
                ms = pc.max_share if pc is not None and pc.max_share is not None else p.get("max_share")
                if ms is not None:
                    max_share.add_metric(labels, _num(ms))
                if p.get("cap") is not None:
                    cap.add_metric(labels, _num(p.get("cap")))
                if p.get("home_waiting") is not None:
                    home_waiting.add_metric(labels, _num(p.get("home_waiting")))
                home_age.add_metric(labels, _num(p.get("home_report_age_s"), -1.0))
                if p.get("gate_open") is not None:
                    gate.add_metric(labels, 1.0 if p.get("gate_open") else 0.0)

        waiting = _family(QUEUE_WAITING)
        cb_waiting = _family(QUEUE_CALLBACKS_WAITING)
        oldest = _family(QUEUE_OLDEST_WAIT)
        ewt = _family(QUEUE_EWT)
        overflow = _family(QUEUE_OVERFLOW_TIER)
        em_active = _family(QUEUE_EMERGENCY_ACTIVE)
        em_plan = _family(QUEUE_EMERGENCY_PLAN)
        em_since = _family(QUEUE_EMERGENCY_SINCE)
        queue_pool = _family(QUEUE_POOL_INFO)

        for q in status.get("queues", []) or []:
            name = str(q.get("name", ""))
            if not name:
                continue
            waiting.add_metric([name], _num(q.get("waiting")))
            cb_waiting.add_metric([name], _num(q.get("callbacks_waiting")))
            oldest.add_metric([name], _num(q.get("oldest_wait_s")))
            ewt.add_metric([name], _num(q.get("ewt_s")))
            overflow.add_metric([name], _num(q.get("overflow_tier")))
            plan = q.get("emergency")
            em_active.add_metric([name], 1.0 if plan else 0.0)
            if plan:
                em_plan.add_metric([name, str(plan)], 1.0)
                since = q.get("emergency_since")
                if since is not None:
                    em_since.add_metric([name, str(plan), str(q.get("emergency_by") or "")], _num(since))
            qc = queue_cfg.get(name)
            for pname in getattr(qc, "pools", []) if qc is not None else []:
                pc = pool_cfg.get(pname)
                if pc is not None:
                    queue_pool.add_metric([name, pname, str(pc.tier)], 1.0)

        state_seconds = _family(AGENT_STATE_SECONDS)
        for pname in sorted({p for p, _ in seconds} | set(pool_cfg)):
            for state in ev.AGENT_STATES:
                if state == ev.LOGGED_OUT:
                    continue
                state_seconds.add_metric([pname, state], seconds.get((pname, state), 0.0))

        yield from (agents, pool_info, logged_in, busy, share, max_share, cap, home_waiting, home_age, gate)
        yield from (waiting, cb_waiting, oldest, ewt, overflow, em_active, em_plan, em_since, queue_pool,
                    state_seconds)


class MetricsBinding:
    """The recorder subscribed to one engine and the collector registered for it."""

    def __init__(self, engine: Any, clock: Any, config: Any = None, reactor: Any = None, registry: Any = REGISTRY):
        self.engine = engine
        self.registry = registry
        self.recorder = EventRecorder()
        # Agent-state intervals are stamped by the engine's clock: measure open ones by it too.
        clock = getattr(engine, "clock", None) or clock
        self.collector = EngineCollector(engine, self.recorder, clock, config=config, reactor=reactor)
        self._config = config
        self._bound = False
        self._unsubscribe: Callable[[], None] | None = None

    def bind(self) -> None:
        if self._bound:
            return
        config = getattr(self.engine, "config", None) or self._config
        if config is not None:
            init_series(config)
        calls = getattr(self.engine, "calls", None)
        if callable(calls):
            self.recorder.calls_in_progress(calls())
        agents, agent_info = getattr(self.engine, "agents", None), getattr(self.engine, "agent_info", None)
        if callable(agents) and callable(agent_info):
            infos = [agent_info(a) or {} for a in agents()]
            self.recorder.agents_present(
                ((i.get("agent_id", ""), i.get("pool", ""), i.get("state", ev.LOGGED_OUT)) for i in infos),
                self.collector.clock_seconds(),
            )
        self.registry.register(self.collector)  # raises first if these series are already exported
        unsubscribe = self.engine.subscribe(self._listener)
        self._unsubscribe = unsubscribe if callable(unsubscribe) else None
        self._bound = True

    def _listener(self, event: ev.Event) -> None:
        if not self._bound:
            return
        self.recorder(event)
        if isinstance(event, ev.ConfigReplaced):
            config = getattr(self.engine, "config", None)
            if config is not None:
                init_series(config)

    def unbind(self) -> None:
        """Stop counting and unregister the collector."""
        if not self._bound:
            return
        self._bound = False
        if self._unsubscribe is not None:
            try:
                self._unsubscribe()
            except ValueError:
                pass
            self._unsubscribe = None
        try:
            self.registry.unregister(self.collector)
        except KeyError:
            pass
