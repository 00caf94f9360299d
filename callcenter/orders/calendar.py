"""Working days and hours, for deadlines such as "3 working days" (pure: no clock, no I/O).

Times are POSIX seconds; the calendar's zone (default Asia/Shanghai) says which local dates are
working days: Monday to Friday, except ``holidays``, plus ``workdays`` (调休: weekend days worked
in exchange for a holiday).  A working day runs from ``day_start`` to ``day_end`` local time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["WorkingCalendar"]

MAX_SPAN_DAYS = 3660  # a deadline further than ten years away is a configuration mistake


@dataclass(frozen=True)
class WorkingCalendar:
    zone: str = "Asia/Shanghai"
    day_start: time = time(9, 0)
    day_end: time = time(17, 30)
    holidays: frozenset[date] = field(default_factory=frozenset)
    workdays: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not self.day_start < self.day_end:
            raise ValueError("day_start must be before day_end")
        ZoneInfo(self.zone)  # raises for an unknown zone

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    def is_working_day(self, d: date) -> bool:
        if d in self.workdays:
            return True
        return d.weekday() < 5 and d not in self.holidays

    def _bounds(self, d: date) -> tuple[float, float]:
        tz = self.tz
        return (datetime.combine(d, self.day_start, tz).timestamp(), datetime.combine(d, self.day_end, tz).timestamp())

    def end_of_working_days(self, t: float, days: int) -> float:
        """The end of the ``days``-th working day after the day of ``t`` (the day of receipt does not
        count: an order received on Monday with 3 working days is due at Thursday's close)."""
        if days < 0:
            raise ValueError("days must be >= 0")
        d = datetime.fromtimestamp(t, self.tz).date()
        if days == 0:
            return max(t, self._bounds(d)[1]) if self.is_working_day(d) else self.end_of_working_days(t, 1)
        left = days
        for _ in range(MAX_SPAN_DAYS):
            d += timedelta(days=1)
            if self.is_working_day(d):
                left -= 1
                if left == 0:
                    return self._bounds(d)[1]
        raise ValueError(f"{days} working days reach past {MAX_SPAN_DAYS} calendar days")

    def add_working_seconds(self, t: float, seconds: float) -> float:
        """``t`` plus ``seconds`` of working time (time outside working hours does not count)."""
        if not seconds >= 0:
            raise ValueError("seconds must be >= 0")
        d = datetime.fromtimestamp(t, self.tz).date()
        left = seconds
        for _ in range(MAX_SPAN_DAYS):
            if self.is_working_day(d):
                start, end = self._bounds(d)
                begin = max(t, start)
                if begin < end:
                    if begin + left <= end:
                        return begin + left
                    left -= end - begin
            d += timedelta(days=1)
        raise ValueError(f"{seconds} working seconds reach past {MAX_SPAN_DAYS} calendar days")
