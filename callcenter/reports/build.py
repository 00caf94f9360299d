"""One period's figures from SQL (blocking: run it off the reactor thread).

Calls come from ``cdr``, work orders from ``work_orders``, the texts for hot topics from the
agents' wrap-up notes (``wrapups``) and the orders' summaries and the callers' own words
(``work_orders``).  Times in the database are naive UTC; periods and hours are local to
``zone`` (Asia/Shanghai by default), as a hotline reports them.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, or_, select

from callcenter.masking import mask_text
from callcenter.records import models as m

from .hot import TermCounts, count_terms, hot_terms

__all__ = ["period", "build_report", "SCHEMA"]

SCHEMA = "callcenter.report/1"
CONNECT_S = 15.0
BASELINE_DAYS = 14


def period(kind: str, day: date, hour: int | None = None, zone: str = "Asia/Shanghai") -> tuple[datetime, datetime]:
    """[start, end) of a daily report (the local day) or an hourly one, as naive UTC datetimes."""
    tz = ZoneInfo(zone)
    if kind == "daily":
        start = datetime.combine(day, time(0), tz)
        end = start + timedelta(days=1)
    elif kind == "hourly":
        if hour is None or not 0 <= hour <= 23:
            raise ValueError("an hourly report needs an hour from 0 to 23")
        start = datetime.combine(day, time(hour), tz)
        end = start + timedelta(hours=1)
    else:
        raise ValueError(f"unknown report kind {kind!r}")
    utc = ZoneInfo("UTC")
    return start.astimezone(utc).replace(tzinfo=None), end.astimezone(utc).replace(tzinfo=None)


def _local_hour(t: datetime, tz: ZoneInfo) -> int:
    return t.replace(tzinfo=ZoneInfo("UTC")).astimezone(tz).hour


def _rate(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def _calls(engine: Engine, start: datetime, end: datetime, tz: ZoneInfo) -> dict:
    c = m.CallRecord
    q = select(c.arrival, c.queue, c.outcome, c.wait_s, c.pool, c.tier, c.origin_call_id).where(
        c.arrival >= start, c.arrival < end)
    total = Counter()
    by_hour: dict[int, Counter] = defaultdict(Counter)
    by_queue: dict[str, Counter] = defaultdict(Counter)
    by_pool: Counter = Counter()
    by_tier: Counter = Counter()
    with engine.connect() as conn:
        for arrival, queue, outcome, wait_s, pool, tier, origin in conn.execute(q):
            if origin is not None:  # a callback's leg: counted under callbacks, not as a new caller
                total["callbacks"] += 1
                total["callbacks_connected"] += outcome in ("answered", "called-back")
                continue
            answered = outcome == "answered"
            row = (total, by_hour[_local_hour(arrival, tz)], by_queue[queue])
            for k in row:
                k["offered"] += 1
                k["connected"] += answered
                k["within_15s"] += answered and wait_s <= CONNECT_S
                k["abandoned"] += outcome == "abandoned"
                k["shed"] += outcome == "shed"
            if answered:
                by_pool[pool or "?"] += 1
                by_tier[str(tier if tier is not None else "?")] += 1

    def figures(k: Counter) -> dict:
        return {"offered": k["offered"], "connected": k["connected"], "within_15s": k["within_15s"],
                "abandoned": k["abandoned"], "shed": k["shed"], "connection_rate": _rate(k["connected"], k["offered"]),
                "within_15s_rate": _rate(k["within_15s"], k["offered"])}

    answered = sum(by_tier.values())
    return {
        **figures(total), "callbacks": total["callbacks"], "callbacks_connected": total["callbacks_connected"],
        "by_hour": [{"hour": h, **figures(by_hour[h])} for h in sorted(by_hour)],
        "by_queue": {q: figures(k) for q, k in sorted(by_queue.items())},
        "by_pool": {p: {"answered": n, "share": _rate(n, answered)} for p, n in by_pool.most_common()},
        "by_tier": {t: {"answered": n, "share": _rate(n, answered)} for t, n in sorted(by_tier.items())},
    }


def _orders(engine: Engine, start: datetime, end: datetime, district: str | None) -> dict:
    o = m.WorkOrder
    cond = [o.created_at >= start, o.created_at < end]
    if district:
        cond.append(o.district == district)
    created = Counter()
    by_cat: dict[str, Counter] = defaultdict(Counter)
    by_district: Counter = Counter()
    by_unit: dict[str, Counter] = defaultdict(Counter)
    repeated = []
    with engine.connect() as conn:
        for row in conn.execute(select(o.id, o.category, o.district, o.owner, o.urgency, o.state, o.deadline,
                                       o.on_time, o.linked, o.summary).where(and_(*cond))):
            created["created"] += 1
            created["urgent"] += row.urgency == "urgent"
            by_cat[row.category]["created"] += 1
            by_district[row.district or "?"] += 1
            by_unit[row.owner]["created"] += 1
            if row.linked:
                repeated.append((1 + len(row.linked), row.id, row.category, row.district, row.summary))
        # closed in the period (whenever created), and open past their deadline at the period's end
        ccond = [o.closed_at >= start, o.closed_at < end]
        if district:
            ccond.append(o.district == district)
        for row in conn.execute(select(o.category, o.owner, o.on_time).where(and_(*ccond))):
            key = "closed_on_time" if row.on_time else "closed_late"
            created[key] += 1
            by_cat[row.category][key] += 1
            by_unit[row.owner][key] += 1
        ocond = [o.deadline < end, o.created_at < end, or_(o.closed_at.is_(None), o.closed_at >= end),
                 o.state != "done"]
        if district:
            ocond.append(o.district == district)
        for row in conn.execute(select(o.category, o.owner, o.urgency).where(and_(*ocond))):
            created["overdue_open"] += 1
            created["overdue_urgent"] += row.urgency == "urgent"
            by_cat[row.category]["overdue_open"] += 1
            by_unit[row.owner]["overdue_open"] += 1
    closed = created["closed_on_time"] + created["closed_late"]
    repeated.sort(key=lambda r: (-r[0], r[1]))
    return {
        "created": created["created"], "urgent": created["urgent"], "closed_on_time": created["closed_on_time"],
        "closed_late": created["closed_late"], "on_time_rate": _rate(created["closed_on_time"], closed),
        "overdue_open": created["overdue_open"], "overdue_urgent": created["overdue_urgent"],
        "by_category": {k: dict(v) for k, v in sorted(by_cat.items(), key=lambda kv: -kv[1]["created"])},
        "by_district": dict(by_district.most_common()),
        "by_unit": {k: dict(v) for k, v in sorted(by_unit.items(), key=lambda kv: (-kv[1]["overdue_open"],
                                                                                   -kv[1]["created"]))[:50]},
        "top_repeated": [{"requests": n, "order": oid, "category": cat, "district": dist, "summary": mask_text(s)}
                         for n, oid, cat, dist, s in repeated[:10]],
    }


def _texts(engine: Engine, start: datetime, end: datetime, district: str | None) -> list[tuple[str, str]]:
    """(district, text) of the period: order summaries and callers' words, and wrap-up notes."""
    o, w = m.WorkOrder, m.Wrapup
    out: list[tuple[str, str]] = []
    with engine.connect() as conn:
        cond = [o.created_at >= start, o.created_at < end]
        if district:
            cond.append(o.district == district)
        # in a fixed order: the examples of a hot topic are its first texts, on every database and run
        for d, summary, words in conn.execute(select(o.district, o.summary, o.request_text).where(and_(*cond))
                                              .order_by(o.created_at, o.id)):
            out.append((d or "", f"{summary} {words}".strip()))
        if not district:  # wrap-ups carry no district
            for (notes,) in conn.execute(select(w.notes).where(w.at >= start, w.at < end, w.notes != "")
                                         .order_by(w.at, w.id)):
                out.append(("", notes))
    return out


def _baseline_counts(engine: Engine, start: datetime, end: datetime, district: str | None, segment,
                     cache_dir: Path | None, now: datetime) -> TermCounts:
    """The term counts of one past span, from the cache when it has them (a span that has ended does
    not change: its texts are segmented once, not again by every later report)."""
    key = f"{start:%Y%m%dT%H%M}-{end:%Y%m%dT%H%M}-{district or 'all'}.json"
    path = cache_dir / key if cache_dir is not None else None
    if path is not None and path.exists():
        try:
            return TermCounts.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, KeyError, OSError):
            pass  # a damaged entry: count again
    counts = count_terms(_texts(engine, start, end, district), segment)
    if path is not None and end <= now:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(counts.to_json(), ensure_ascii=False), encoding="utf-8")
            tmp.replace(path)
        except OSError:
            pass  # no cache: slower next time, not wrong
    return counts


def build_report(engine: Engine, kind: str, start: datetime, end: datetime, *,
                 segment: Callable[[str], Iterable[str]], zone: str = "Asia/Shanghai", district: str | None = None,
                 baseline_days: int = BASELINE_DAYS, min_count: int = 5, cache_dir: Path | None = None,
                 now: datetime | None = None) -> dict:
    """The report document (schema ``callcenter.report/1``); docs/reports.md lists its fields.

    ``cache_dir`` keeps the term counts of the baseline spans (``now``, naive UTC, says which
    spans are over and may be kept; default: the end of the report's own period)."""
    tz = ZoneInfo(zone)
    span = end - start
    now = now or end
    today = _texts(engine, start, end, district)
    # the same span on each of the trailing days (an hourly report compares with that hour before)
    baseline = TermCounts()
    for k in range(1, baseline_days + 1):
        shift = timedelta(days=k)
        baseline.add(_baseline_counts(engine, start - shift, start - shift + span, district, segment, cache_dir, now))
    hot = hot_terms(today, baseline, segment, min_count=min_count, mask=mask_text)
    local = start.replace(tzinfo=ZoneInfo("UTC")).astimezone(tz)
    return {
        "schema": SCHEMA, "kind": kind, "zone": zone, "district": district,
        "start": local.isoformat(), "end": end.replace(tzinfo=ZoneInfo("UTC")).astimezone(tz).isoformat(),
        "calls": _calls(engine, start, end, tz) if not district else None,
        "orders": _orders(engine, start, end, district),
        "hot_topics": {"overall": [h.to_dict() for h in hot["overall"]],
                       "districts": {d: [h.to_dict() for h in hs] for d, hs in hot["districts"].items()},
                       "texts": len(today), "baseline_texts": baseline.texts, "baseline_days": baseline_days,
                       "terms_tested": hot["tested"], "threshold_p": hot["threshold_p"], "min_count": min_count},
    }
