"""Read helpers over the records: repeat callers, knowledge-base search, CDR export.

All blocking (a SQLAlchemy ``Session``): from the reactor, run them in a thread
(``twisted.internet.threads.deferToThreadPool``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from callcenter.records.db import utcnow
from callcenter.records.models import Agent, AuditLog, CallRecord, Wrapup

RECENT_DAYS = 7


def recent_contacts(session: Session, caller_hash: str, since: datetime | None = None, *,
                    limit: int = 20, now: datetime | None = None) -> list[dict]:
    """The caller's calls since ``since`` (default: the last 7 days), newest first.

    ``caller_hash`` is callcenter.masking.caller_hash(number, key): the seat
    helper shows "3 calls this week, last one abandoned" without the number.
    """
    if not caller_hash:
        return []
    if since is None:
        since = (now or utcnow()) - timedelta(days=RECENT_DAYS)
    q = (
        select(CallRecord)
        .where(CallRecord.caller_hash == caller_hash, CallRecord.arrival >= since)
        .order_by(CallRecord.arrival.desc())
        .limit(max(1, min(int(limit), 500)))
    )
    return [
        {
            "call_id": r.call_id,
            "arrival": r.arrival,
            "queue": r.queue,
            "category": r.category,
            "outcome": r.outcome,
            "agent_id": r.agent_id,
            "wait_s": r.wait_s,
            "talk_s": r.talk_s,
            "callback": r.callback,
        }
        for r in session.scalars(q)
    ]


def search_articles(session: Session, text: str, limit: int = 10) -> list[dict]:
    """Knowledge-base articles for ``text``, best first (callcenter.kb: segmented full-text, BM25).

    Only published articles in effect now; ``tags`` is the stored space-separated string.
    """
    from callcenter.kb.store import KbStore

    hits = KbStore(session.get_bind()).search(text or "", max(1, min(int(limit), 50)))
    return [{"id": h["id"], "key": h["key"], "title": h["title"], "tags": " ".join(h["tags"]),
             "updated": h["updated"], "snippet": h["snippet"]} for h in hits]


CDR_COLUMNS = [
    "call_id", "origin_call_id", "caller_masked", "caller_hash", "queue", "category", "priority",
    "arrival", "answered_at", "ended_at", "outcome", "reason", "wait_s", "talk_s", "wrapup_s",
    "short_abandon", "agent_id", "pool", "tier", "emergency_plan", "callback", "offers", "disposition",
]


def cdr_rows(session: Session, start: datetime | None = None, end: datetime | None = None) -> Iterator[dict]:
    """CDRs with ``start <= arrival < end`` in arrival order, each with a compact ``offers`` string
    and the ``disposition`` and ``ticket`` of the call's newest wrap-up (None: no wrap-up saved)."""
    def newest(column):
        return (
            select(column).where(Wrapup.call_id == CallRecord.call_id)
            .order_by(Wrapup.at.desc(), Wrapup.id.desc()).limit(1)
            .correlate(CallRecord).scalar_subquery()
        )

    q = (select(CallRecord, newest(Wrapup.disposition).label("disposition"), newest(Wrapup.ticket).label("ticket"))
         .options(selectinload(CallRecord.offers))
         .order_by(CallRecord.arrival, CallRecord.call_id))
    if start is not None:
        q = q.where(CallRecord.arrival >= start)
    if end is not None:
        q = q.where(CallRecord.arrival < end)
    for r, disp, ticket in session.execute(q.execution_options(yield_per=500)):
        row = {c: getattr(r, c) for c in CDR_COLUMNS if c not in ("offers", "disposition")}
        row["offers"] = " ".join(f"{o.agent_id}@{o.pool}/t{o.tier}:{o.result}:{o.ring_s:.1f}s" for o in r.offers)
        row["disposition"] = disp
        row["ticket"] = ticket
        yield row


def agent_names(session: Session) -> dict[str, str]:
    """Agent id -> display name, for the accounts that have one."""
    return {a_id: name for a_id, name in session.execute(select(Agent.id, Agent.name)) if name}


def wrapups_of(session: Session, call_id: str) -> list[dict]:
    """A call's saved wrap-ups, oldest first (a resent wrap-up is another row; the newest counts)."""
    q = select(Wrapup).where(Wrapup.call_id == call_id).order_by(Wrapup.at, Wrapup.id)
    return [{"call_id": w.call_id, "agent_id": w.agent_id, "pool": w.pool, "disposition": w.disposition,
             "notes": w.notes, "ticket": w.ticket, "at": w.at} for w in session.scalars(q)]


def write_csv(rows: Iterable[dict], out: io.TextIOBase, columns: list[str] = CDR_COLUMNS,
              lineterminator: str = "\n") -> int:
    w = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator=lineterminator)
    w.writeheader()
    n = 0
    for row in rows:
        w.writerow({k: (v.isoformat(sep=" ") if isinstance(v, datetime) else v) for k, v in row.items()})
        n += 1
    return n


def audit_entries(session: Session, since: datetime | None = None, *, who: str | None = None,
                  limit: int = 100) -> list[dict]:
    """The admin audit log, newest first (rows are written by ``writer.audit_logged``)."""
    q = select(AuditLog).order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(max(1, min(int(limit), 1000)))
    if since is not None:
        q = q.where(AuditLog.at >= since)
    if who:
        q = q.where(AuditLog.who == who)
    return [{"who": a.who, "what": a.what, "at": a.at, "details": a.details} for a in session.scalars(q)]
