"""The order book: every work order's state, owner and deadline; commands in, events out.

Pure: no clock, no I/O.  Each command takes ``now`` (POSIX seconds) and returns the events it
caused; :meth:`OrderBook.due` returns the reminders and escalations due by ``now`` and
:meth:`OrderBook.next_due` says when to call it next, so the shell needs one timer for all
orders (:class:`callcenter.orders.desk.OrderDesk` on a reactor, the benchmark on a simulated
clock).  Invariants, checked by :meth:`OrderBook.check`: every order has exactly one owner and
a finite deadline; an open order has exactly one pending supervision step.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any

from . import states as st
from .calendar import WorkingCalendar
from .rules import LEVELS, OrdersConfig, calendar_of, deadline_for, owning_unit
from .similar import similarity, tokens

__all__ = ["Order", "OrderEvent", "OrderBook", "OrderError", "NotOwner", "UnknownOrder"]

MAX_NOTES = 200  # progress notes kept per order


class OrderError(Exception):
    """A command the book refuses (the caller's mistake): nothing changed."""


class UnknownOrder(OrderError):
    pass


class NotOwner(OrderError):
    """A unit acting on an order it does not own."""


@dataclass(frozen=True, slots=True)
class OrderEvent:
    at: float
    order_id: str
    kind: str  # created, dispatched, returned, accepted, progress, replied, closed, visited, reopened, ...
    actor: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Order:
    id: str
    created_at: float
    category: str
    district: str
    street: str
    address: str
    summary: str
    request_text: str
    urgency: str
    reply_wanted: bool
    created_by: str
    call_ids: list[str]
    state: str = st.NEW
    owner: str = ""
    started_at: float = 0.0  # the deadline clock's start (creation, or the last reopening)
    deadline: float = 0.0
    closed_at: float | None = None
    on_time: bool | None = None
    result: str = ""
    reply: str = ""
    kb_article: str | None = None
    returns: dict[str, int] = field(default_factory=dict)
    extension: dict[str, Any] | None = None  # a pending request: {"unit", "seconds", "reason", "at"}
    escalation_level: int = -1  # index into LEVELS reached; -1: none
    reminded: bool = False
    reopened: int = 0
    linked: list[str] = field(default_factory=list)  # later requests merged into this order
    notes: list[tuple[float, str, str]] = field(default_factory=list)
    gen: int = 0  # bumped whenever the supervision schedule changes; stale heap entries are skipped
    words: frozenset[str] = frozenset()


class OrderBook:
    def __init__(self, cfg: OrdersConfig, calendar: WorkingCalendar | None = None, segment=None):
        self.cfg = cfg
        self.cal = calendar or calendar_of(cfg)
        self.orders: dict[str, Order] = {}
        self._due: list[tuple[float, int, str, int]] = []  # (time, seq, order id, gen)
        self._seq = 0
        self._segment = segment
        self._by_place: dict[tuple[str, str, str], list[str]] = {}  # (category, district, street) -> ids

    # ------------------------------------------------------------ creation
    def create(self, now: float, *, order_id: str, category: str, district: str = "", street: str = "",
               address: str = "", summary: str, request_text: str = "", urgency: str = "ordinary",
               reply_wanted: bool = True, call_ids: tuple[str, ...] = (), created_by: str = "",
               resolved_on_spot: bool = False, kb_article: str | None = None) -> list[OrderEvent]:
        """A new order from a wrap-up; a repeat of an open or recent one is linked to it instead."""
        if order_id in self.orders:
            raise OrderError(f"order {order_id} exists")
        if urgency not in ("urgent", "ordinary"):
            raise OrderError(f"urgency must be urgent or ordinary, not {urgency!r}")
        words = tokens(f"{summary} {request_text}", self._segment)
        if not resolved_on_spot:
            twin = self._similar(now, category, district, street, address, words)
            if twin is not None:
                twin.linked.append(order_id)
                twin.call_ids.extend(c for c in call_ids if c not in twin.call_ids)
                return [OrderEvent(now, twin.id, "linked", created_by,
                                   {"request": order_id, "calls": list(call_ids), "summary": summary})]
        o = Order(order_id, now, category, district, street, address, summary, request_text, urgency,
                  reply_wanted, created_by, list(call_ids), owner=self.cfg.dispatch_desk, started_at=now,
                  words=words)
        o.deadline = deadline_for(self.cfg, self.cal, urgency, category, now)
        self.orders[order_id] = o
        self._by_place.setdefault((category, district, street), []).append(order_id)
        events = [OrderEvent(now, order_id, "created", created_by,
                             {"category": category, "district": district, "street": street, "urgency": urgency,
                              "deadline": o.deadline, "calls": list(call_ids)})]
        if resolved_on_spot:
            o.state = st.next_state(o.id, o.state, st.RESOLVE_ON_SPOT)
            o.closed_at, o.on_time, o.kb_article = now, True, kb_article
            events.append(OrderEvent(now, order_id, "resolved-on-spot", created_by, {"kb_article": kb_article}))
            return events
        unit = owning_unit(self.cfg, category, district, street)
        if unit is not None:
            events += self._hand_to(now, o, unit, "rule", st.DISPATCH)
        self._schedule(o)
        return events

    def _similar(self, now: float, category: str, district: str, street: str, address: str,
                 words: frozenset[str]) -> Order | None:
        horizon = now - self.cfg.similar_days * 86400
        best, best_sim = None, self.cfg.similar_at
        for oid in reversed(self._by_place.get((category, district, street), ())):
            o = self.orders[oid]
            if o.state not in st.OPEN_STATES and (o.closed_at or o.created_at) < horizon:
                continue
            sim = 1.0 if address and address == o.address else similarity(words, o.words)
            if sim >= best_sim:
                best, best_sim = o, sim
        return best

    # ------------------------------------------------------------ the dispatch desk
    def dispatch(self, now: float, order_id: str, unit: str, actor: str) -> list[OrderEvent]:
        o = self._get(order_id)
        cmd = st.REASSIGN if o.state == st.RETURNED else st.DISPATCH
        return self._hand_to(now, o, unit, actor, cmd)

    def _hand_to(self, now: float, o: Order, unit: str, actor: str, cmd: str) -> list[OrderEvent]:
        if not unit or unit == self.cfg.dispatch_desk:
            raise OrderError("dispatch to a unit, not to the dispatch desk")
        o.state = st.next_state(o.id, o.state, cmd)
        previous, o.owner = o.owner, unit
        return [OrderEvent(now, o.id, "dispatched", actor, {"unit": unit, "from": previous})]

    # ------------------------------------------------------------ the owning unit
    def accept(self, now: float, order_id: str, unit: str) -> list[OrderEvent]:
        o = self._owned(order_id, unit)
        o.state = st.next_state(o.id, o.state, st.ACCEPT)
        return [OrderEvent(now, o.id, "accepted", unit)]

    def progress(self, now: float, order_id: str, unit: str, note: str) -> list[OrderEvent]:
        o = self._owned(order_id, unit)
        o.state = st.next_state(o.id, o.state, st.PROGRESS)
        if len(o.notes) < MAX_NOTES:
            o.notes.append((now, unit, note))
        return [OrderEvent(now, o.id, "progress", unit, {"note": note})]

    def reply(self, now: float, order_id: str, unit: str, text: str) -> list[OrderEvent]:
        o = self._owned(order_id, unit)
        o.state = st.next_state(o.id, o.state, st.REPLY)
        o.reply = text
        return [OrderEvent(now, o.id, "replied", unit, {"reply": text})]

    def give_back(self, now: float, order_id: str, unit: str, reason: str) -> list[OrderEvent]:
        """The unit says it is the wrong unit: the order goes back to the dispatch desk, once per unit."""
        o = self._owned(order_id, unit)
        if not reason.strip():
            raise OrderError("a return needs a reason")
        if o.returns.get(unit, 0) >= self.cfg.returns_per_unit:
            raise OrderError(f"unit {unit} has returned order {o.id} already")
        o.state = st.next_state(o.id, o.state, st.RETURN)
        o.returns[unit] = o.returns.get(unit, 0) + 1
        o.owner = self.cfg.dispatch_desk
        return [OrderEvent(now, o.id, "returned", unit, {"reason": reason})]

    def close(self, now: float, order_id: str, unit: str, result: str) -> list[OrderEvent]:
        o = self._owned(order_id, unit)
        if not result.strip():
            raise OrderError("closing needs a result")
        o.state = st.next_state(o.id, o.state, st.CLOSE)
        o.result, o.closed_at = result, now
        o.on_time = now <= o.deadline
        o.extension = None
        self._unschedule(o)
        return [OrderEvent(now, o.id, "closed", unit, {"result": result, "on_time": o.on_time,
                                                        "visit": o.reply_wanted})]

    def request_extension(self, now: float, order_id: str, unit: str, seconds: float, reason: str) -> list[OrderEvent]:
        o = self._owned(order_id, unit)
        if not (math.isfinite(seconds) and 0 < seconds <= self.cfg.max_extension_s):
            raise OrderError(f"an extension is from 1 s to {self.cfg.max_extension_s:g} s")
        if o.extension is not None:
            raise OrderError(f"order {o.id} has an extension request pending")
        o.state = st.next_state(o.id, o.state, st.REQUEST_EXTENSION)
        o.extension = {"unit": unit, "seconds": seconds, "reason": reason, "at": now}
        return [OrderEvent(now, o.id, "extension-requested", unit, {"seconds": seconds, "reason": reason})]

    # ------------------------------------------------------------ the supervising office
    def decide_extension(self, now: float, order_id: str, actor: str, approve: bool) -> list[OrderEvent]:
        o = self._get(order_id)
        if o.extension is None:
            raise OrderError(f"order {o.id} has no extension request")
        o.state = st.next_state(o.id, o.state, st.DECIDE_EXTENSION)
        ext, o.extension = o.extension, None
        if approve:
            o.deadline += ext["seconds"]
            o.reminded = False
            o.escalation_level = -1
            self._schedule(o)
        return [OrderEvent(now, o.id, "extension-decided", actor,
                           {"approved": approve, "seconds": ext["seconds"], "deadline": o.deadline})]

    # ------------------------------------------------------------ the hotline: return visit (回访)
    def record_visit(self, now: float, order_id: str, agent: str, satisfied: bool, note: str = "") -> list[OrderEvent]:
        o = self._get(order_id)
        if not satisfied:
            o.state = st.next_state(o.id, o.state, st.VISIT_DISSATISFIED)
            o.reopened += 1
            o.closed_at = o.on_time = None
            o.started_at = now
            o.deadline = deadline_for(self.cfg, self.cal, o.urgency, o.category, now)
            o.reminded, o.escalation_level = False, -1
            self._schedule(o)
            return [OrderEvent(now, o.id, "visited", agent, {"satisfied": False, "note": note}),
                    OrderEvent(now, o.id, "reopened", agent, {"unit": o.owner, "deadline": o.deadline})]
        o.state = st.next_state(o.id, o.state, st.VISIT_SATISFIED)
        return [OrderEvent(now, o.id, "visited", agent, {"satisfied": True, "note": note})]

    # ------------------------------------------------------------ supervision
    def _steps(self, o: Order) -> list[tuple[float, str, int]]:
        """(time, kind, level) of every supervision step of the order's current deadline."""
        span = max(o.deadline - o.started_at, 0.0)
        out = [(o.started_at + self.cfg.remind_at * span, "reminded", -1)]
        out += [(o.deadline + s.after_s, "escalated", LEVELS.index(s.to)) for s in self.cfg.escalation]
        return out

    def _next_step(self, o: Order) -> tuple[float, str, int] | None:
        for t, kind, level in self._steps(o):
            if kind == "reminded" and not o.reminded:
                return t, kind, level
            if kind == "escalated" and level > o.escalation_level:
                return t, kind, level
        return None

    def _schedule(self, o: Order) -> None:
        o.gen += 1
        step = self._next_step(o)
        if step is not None:
            self._seq += 1
            heapq.heappush(self._due, (step[0], self._seq, o.id, o.gen))

    def _unschedule(self, o: Order) -> None:
        o.gen += 1  # its heap entry is now stale

    def next_due(self) -> float | None:
        while self._due:
            t, _, oid, gen = self._due[0]
            o = self.orders.get(oid)
            if o is not None and o.gen == gen and o.state in st.OPEN_STATES:
                return t
            heapq.heappop(self._due)
        return None

    def due(self, now: float) -> list[OrderEvent]:
        """Reminders and escalations due by ``now``, oldest first."""
        events: list[OrderEvent] = []
        while self._due and self._due[0][0] <= now:
            t, _, oid, gen = heapq.heappop(self._due)
            o = self.orders.get(oid)
            if o is None or o.gen != gen or o.state not in st.OPEN_STATES:
                continue
            step = self._next_step(o)
            if step is None:
                continue
            _, kind, level = step
            if kind == "reminded":
                o.reminded = True
                events.append(OrderEvent(t, oid, "reminded", "supervision", {"unit": o.owner, "deadline": o.deadline}))
            else:
                o.escalation_level = level
                to = {"unit": o.owner, "office": self.cfg.office, "leader": self.cfg.leader_role}[LEVELS[level]]
                events.append(OrderEvent(t, oid, "escalated", "supervision",
                                         {"level": LEVELS[level], "to": to, "unit": o.owner,
                                          "overdue_s": t - o.deadline}))
            self._schedule(o)
        return events

    # ------------------------------------------------------------ restore
    def restore(self, o: Order) -> None:
        """Put back an order read from SQL at start (open, or closed within ``similar_days``)."""
        if o.id in self.orders:
            raise OrderError(f"order {o.id} exists")
        o.words = tokens(f"{o.summary} {o.request_text}", self._segment)
        self.orders[o.id] = o
        self._by_place.setdefault((o.category, o.district, o.street), []).append(o.id)
        if o.state in st.OPEN_STATES:
            self._schedule(o)

    # ------------------------------------------------------------ queries
    def clusters(self, min_requests: int = 2) -> list[Order]:
        """Orders that gathered repeated requests (共性诉求), most requests first."""
        found = [o for o in self.orders.values() if 1 + len(o.linked) >= min_requests]
        return sorted(found, key=lambda o: (-len(o.linked), o.created_at))

    def check(self) -> list[str]:
        """Broken invariants, if any (empty: all hold)."""
        bad = []
        for o in self.orders.values():
            if not o.owner:
                bad.append(f"{o.id}: no owner")
            if not math.isfinite(o.deadline) or o.deadline < o.started_at:
                bad.append(f"{o.id}: bad deadline {o.deadline}")
            if o.state in st.OPEN_STATES and o.state != st.NEW and o.owner == self.cfg.dispatch_desk \
                    and o.state != st.RETURNED:
                bad.append(f"{o.id}: {o.state} but owned by the dispatch desk")
        return bad

    # ------------------------------------------------------------ helpers
    def _get(self, order_id: str) -> Order:
        try:
            return self.orders[order_id]
        except KeyError:
            raise UnknownOrder(f"no order {order_id}") from None

    def _owned(self, order_id: str, unit: str) -> Order:
        o = self._get(order_id)
        if o.owner != unit:
            raise NotOwner(f"order {order_id} is not owned by {unit}")
        return o
