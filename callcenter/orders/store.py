"""Work orders <-> SQL rows (tables ``work_orders`` and ``work_order_events``, records/models.py).

Writes go through the records writer (off the reactor, buffered through a database outage:
:meth:`callcenter.records.writer.RecordsWriter.order_changed`); :func:`load_orders` reads the
orders the book needs at start (blocking: run it in a thread).
"""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from callcenter.records import models as m
from callcenter.records.db import make_engine, utc

from . import states as st
from .book import Order, OrderEvent

__all__ = ["order_row", "event_row", "load_orders"]

_EPOCH = utc(0)
_TIMES = ("created_at", "started_at", "deadline", "closed_at")
_NOT_STORED = {"notes", "gen", "words"}  # notes are progress events; the rest is rebuilt
_COLUMNS = [f.name for f in fields(Order) if f.name not in _NOT_STORED]


def order_row(o: Order, now: float) -> dict:
    row = {name: getattr(o, name) for name in _COLUMNS}
    for name in _TIMES:
        row[name] = utc(row[name]) if row[name] is not None else None
    row["call_ids"] = list(o.call_ids)
    row["linked"] = list(o.linked)
    row["returns"] = dict(o.returns)
    row["updated_at"] = utc(now)
    return row


def event_row(e: OrderEvent) -> dict:
    return {"order_id": e.order_id, "at": utc(e.at), "kind": e.kind, "actor": e.actor, "data": dict(e.data)}


def _seconds(dt) -> float | None:
    return None if dt is None else (dt - _EPOCH) / timedelta(seconds=1)


def load_orders(url: str, now: float, similar_days: float) -> list[Order]:
    """Every open order, and those closed within ``similar_days`` (repeats link to them)."""
    engine = make_engine(url)
    try:
        horizon = utc(now - similar_days * 86400)
        with Session(engine) as s:
            rows = s.scalars(select(m.WorkOrder).where(or_(m.WorkOrder.state.in_(sorted(st.OPEN_STATES)),
                                                           m.WorkOrder.closed_at >= horizon,
                                                           m.WorkOrder.state == st.CLOSED))
                             .order_by(m.WorkOrder.created_at)).all()
            out = []
            for r in rows:
                kw = {name: getattr(r, name) for name in _COLUMNS}
                for name in _TIMES:
                    kw[name] = _seconds(kw[name])
                kw["call_ids"] = list(kw["call_ids"] or [])
                kw["linked"] = list(kw["linked"] or [])
                kw["returns"] = dict(kw["returns"] or {})
                out.append(Order(**kw))
            return out
    finally:
        engine.dispose()
