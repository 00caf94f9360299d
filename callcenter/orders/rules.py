"""Dispatch and deadline policy, in one place: the ``orders`` section of the config and the pure
functions that read it.

* Dispatch (一单直达): the first rule whose category (and district, when the rule names one)
  matches decides the owning unit: ``to: street`` sends the order to the street/township unit of
  the caller's district and street (``street:<district>:<street>``), anything else names a unit
  (a department such as ``dept:market-regulation``).  No rule: the dispatch desk keeps it.
* Deadlines: the first rule whose urgency (and category, when it names one) matches; ``hours``
  count round the clock (an urgent epidemic request does not wait for Monday), ``working_days``
  and ``working_hours`` count on the working calendar.
* Supervision: a reminder to the owning unit once ``remind_at`` of the allowed time has passed,
  then escalation levels after the deadline: the unit, the supervising office, a leader role.
"""

from __future__ import annotations

from datetime import date, time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .calendar import WorkingCalendar

__all__ = ["OrdersConfig", "DispatchRule", "DeadlineRule", "EscalationStep", "CalendarConfig",
           "owning_unit", "deadline_for", "calendar_of", "URGENCIES", "LEVELS"]

URGENCIES = ("urgent", "ordinary")
LEVELS = ("unit", "office", "leader")  # escalation levels, in order
MAX_S = 366 * 86400.0

Seconds = Annotated[float, Field(ge=0, le=MAX_S, allow_inf_nan=False)]
Text64 = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DispatchRule(_Model):
    category: Text64
    district: Text64 | None = None  # None: every district
    to: Text64  # "street", or a unit id


class DeadlineRule(_Model):
    urgency: Literal["urgent", "ordinary"]
    category: Text64 | None = None
    hours: Annotated[float, Field(gt=0, le=24 * 366, allow_inf_nan=False)] | None = None
    working_hours: Annotated[float, Field(gt=0, le=8 * 366, allow_inf_nan=False)] | None = None
    working_days: Annotated[int, Field(ge=1, le=366)] | None = None

    @model_validator(mode="after")
    def _one_measure(self):
        given = [m for m in ("hours", "working_hours", "working_days") if getattr(self, m) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of hours, working_hours, working_days")
        return self


class EscalationStep(_Model):
    after_s: Seconds  # after the deadline
    to: Literal["unit", "office", "leader"]


class CalendarConfig(_Model):
    zone: str = "Asia/Shanghai"
    day_start: time = time(9, 0)
    day_end: time = time(17, 30)
    holidays: Annotated[list[date], Field(max_length=1000)] = []
    workdays: Annotated[list[date], Field(max_length=1000)] = []  # 调休: weekend days worked

    @model_validator(mode="after")
    def _valid(self):
        try:
            WorkingCalendar(self.zone, self.day_start, self.day_end)
        except Exception as exc:  # ZoneInfoNotFoundError, ValueError
            raise ValueError(f"calendar: {exc}") from None
        return self


class OrdersConfig(_Model):
    dispatch_desk: Text64 = "dispatch-desk"  # owns an order until it is dispatched, and when returned
    office: Text64 = "supervision-office"  # the supervising office (督办)
    leader_role: Text64 = "leader"
    dispatch: Annotated[list[DispatchRule], Field(max_length=10_000)] = []
    deadlines: Annotated[list[DeadlineRule], Field(min_length=1, max_length=1000)] = [
        DeadlineRule(urgency="urgent", hours=2),
        DeadlineRule(urgency="ordinary", working_days=3),
    ]
    remind_at: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.75
    escalation: Annotated[list[EscalationStep], Field(max_length=10)] = [
        EscalationStep(after_s=0, to="unit"),
        EscalationStep(after_s=4 * 3600, to="office"),
        EscalationStep(after_s=24 * 3600, to="leader"),
    ]
    max_extension_s: Seconds = 7 * 86400
    returns_per_unit: Annotated[int, Field(ge=0, le=10)] = 1
    similar_days: Annotated[float, Field(gt=0, le=366, allow_inf_nan=False)] = 30
    similar_at: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.6  # Dice coefficient of the words
    calendar: CalendarConfig = CalendarConfig()

    @model_validator(mode="after")
    def _checks(self):
        if not any(r.category is None for r in self.deadlines if r.urgency == "ordinary") or \
                not any(r.category is None for r in self.deadlines if r.urgency == "urgent"):
            raise ValueError("deadlines need a rule without category for each urgency (urgent, ordinary)")
        steps = [s.after_s for s in self.escalation]
        if steps != sorted(steps):
            raise ValueError("escalation steps must be in order of after_s")
        return self


def calendar_of(cfg: OrdersConfig) -> WorkingCalendar:
    c = cfg.calendar
    return WorkingCalendar(c.zone, c.day_start, c.day_end, frozenset(c.holidays), frozenset(c.workdays))


def street_unit(district: str, street: str) -> str:
    return f"street:{district}:{street}"


def owning_unit(cfg: OrdersConfig, category: str, district: str, street: str) -> str | None:
    """The unit an order goes straight to, or None when the dispatch desk must choose."""
    for r in cfg.dispatch:
        if r.category == category and (r.district is None or r.district == district):
            if r.to == "street":
                return street_unit(district, street) if district and street else None
            return r.to
    return None


def deadline_for(cfg: OrdersConfig, cal: WorkingCalendar, urgency: str, category: str, t: float) -> float:
    """When an order of this urgency and category received at ``t`` must be closed."""
    exact = [r for r in cfg.deadlines if r.urgency == urgency and r.category == category]
    rule = exact[0] if exact else next(r for r in cfg.deadlines if r.urgency == urgency and r.category is None)
    if rule.hours is not None:
        return t + rule.hours * 3600
    if rule.working_hours is not None:
        return cal.add_working_seconds(t, rule.working_hours * 3600)
    return cal.end_of_working_days(t, rule.working_days)
