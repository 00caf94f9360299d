"""When reports are due, and what each covers (pure: times in, times out).

A daily report at local time ``HH:MM`` covers the local day up to that moment (a report at 12:00
covers 00:00-12:00; one at 00:00 covers the whole day before).  An hourly report at each full hour
covers the hour before, and comes with the urgent digest.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["next_runs", "covers"]


def next_runs(now: float, daily_at: list[time], hourly: bool, zone: str) -> tuple[float, list[str]]:
    """The next moment after ``now`` something is due, and what: ``["daily"]``, ``["hourly"]`` or both."""
    tz = ZoneInfo(zone)
    local = datetime.fromtimestamp(now, tz)
    candidates: dict[float, list[str]] = {}
    if hourly:
        nxt = (local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)).timestamp()
        candidates.setdefault(nxt, []).append("hourly")
    for t in daily_at:
        for day in (local.date(), local.date() + timedelta(days=1)):
            at = datetime.combine(day, t, tz).timestamp()
            if at > now:
                candidates.setdefault(at, []).append("daily")
                break
    if not candidates:
        return float("inf"), []
    at = min(candidates)
    return at, sorted(set(candidates[at]))


def covers(kind: str, at: float, zone: str) -> tuple[float, float]:
    """[start, end) in POSIX seconds of the report of ``kind`` due at ``at``."""
    tz = ZoneInfo(zone)
    if kind == "hourly":
        return at - 3600, at
    day = datetime.fromtimestamp(at - 1, tz).date()
    return datetime.combine(day, time(0), tz).timestamp(), at
