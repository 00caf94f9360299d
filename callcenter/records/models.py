"""The SQL schema of our records (SQLAlchemy 2.0 declarative, typed ``Mapped[]``).

One place for every table the records subsystem owns.  Alembic migrations
(callcenter/records/migrations/) are written against this metadata; a change
here needs a new revision there.

All datetimes are naive UTC, on purpose: SQLite has no time zones, and naive
UTC on both SQLite and PostgreSQL (``timestamp without time zone``) keeps the
same queries and the same results on both.  Caller numbers are never stored:
only the masked form (138********) and a keyed hash (callcenter.masking.caller_hash).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names, so Alembic migrations name them the same on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Agent(Base):
    """An agent account: who may log in to a seat, in which pool, rung at which endpoint."""

    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    pool: Mapped[str] = mapped_column(String(64), index=True)
    skills: Mapped[dict] = mapped_column(JSON, default=dict)  # {skill: level}
    endpoint: Mapped[str | None] = mapped_column(String(200))  # PJSIP/1001, PJSIP/xian-trunk/8021, Local/1001@agents
    password_hash: Mapped[str | None] = mapped_column(String(255))  # argon2id PHC string
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created: Mapped[datetime] = mapped_column(DateTime)


class CallRecord(Base):
    """One row per call (CDR), written when the call ends; wrap-up filled in when it ends."""

    __tablename__ = "cdr"

    call_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    origin_call_id: Mapped[str | None] = mapped_column(String(128))  # a callback's abandoned original
    caller_masked: Mapped[str] = mapped_column(String(32), default="")
    caller_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    queue: Mapped[str] = mapped_column(String(64), index=True)
    category: Mapped[str] = mapped_column(String(64), default="")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    arrival: Mapped[datetime] = mapped_column(DateTime, index=True)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime)
    ended_at: Mapped[datetime] = mapped_column(DateTime)
    outcome: Mapped[str] = mapped_column(String(16))  # answered | abandoned | called-back | fallback
    reason: Mapped[str] = mapped_column(String(200), default="")
    wait_s: Mapped[float] = mapped_column(Float, default=0.0)
    talk_s: Mapped[float] = mapped_column(Float, default=0.0)
    wrapup_s: Mapped[float | None] = mapped_column(Float)
    short_abandon: Mapped[bool] = mapped_column(Boolean, default=False)
    agent_id: Mapped[str | None] = mapped_column(String(64), index=True)
    pool: Mapped[str | None] = mapped_column(String(64))
    tier: Mapped[int | None] = mapped_column(Integer)
    emergency_plan: Mapped[str | None] = mapped_column(String(64))  # set: the call ended under this plan
    callback: Mapped[bool] = mapped_column(Boolean, default=False)
    choices: Mapped[list] = mapped_column(JSON, default=list)  # DTMF choices made while waiting

    offers: Mapped[list[Offer]] = relationship(
        back_populates="call", order_by="Offer.seq", cascade="all, delete-orphan"
    )

    @property
    def emergency(self) -> bool:
        return self.emergency_plan is not None


class Offer(Base):
    """Every time a call rang an agent, and how that ended."""

    __tablename__ = "cdr_offers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("cdr.call_id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)  # 1, 2, ... in offer order
    agent_id: Mapped[str] = mapped_column(String(64))
    pool: Mapped[str] = mapped_column(String(64))
    tier: Mapped[int] = mapped_column(Integer)
    offered_at: Mapped[datetime] = mapped_column(DateTime)
    result: Mapped[str] = mapped_column(String(32))  # events.OFFER_RESULTS
    ring_s: Mapped[float] = mapped_column(Float, default=0.0)

    call: Mapped[CallRecord] = relationship(back_populates="offers")


class Wrapup(Base):
    """An agent's wrap-up of a call (disposition, notes, ticket fields), as the seat sent it.

    No foreign key to ``cdr``: the wrap-up may be written before the CDR (a call the
    process never saw end after a failover).  A resent wrap-up is another row; the
    newest one counts (``cdr export`` shows its disposition).
    """

    __tablename__ = "wrapups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(128), index=True)
    agent_id: Mapped[str] = mapped_column(String(64))
    pool: Mapped[str] = mapped_column(String(64), default="")
    disposition: Mapped[str] = mapped_column(String(64))  # the category the agent chose
    notes: Mapped[str] = mapped_column(Text, default="")
    ticket: Mapped[dict] = mapped_column(JSON, default=dict)  # {field: value}
    at: Mapped[datetime] = mapped_column(DateTime, index=True)


class AgentStateLog(Base):
    """One row per interval an agent spent in one state (``to_`` NULL: still in it at shutdown)."""

    __tablename__ = "agent_state_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agent_id: Mapped[str] = mapped_column(String(64))
    pool: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(200), default="")
    from_: Mapped[datetime] = mapped_column("from", DateTime)
    to_: Mapped[datetime | None] = mapped_column("to", DateTime)

    __table_args__ = (Index("ix_agent_state_log_agent_from", "agent_id", "from"),)


class EmergencySwitch(Base):
    """Each time an emergency plan (应急预案) was switched on, changed or off."""

    __tablename__ = "emergency_switches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(String(64))
    plan: Mapped[str | None] = mapped_column(String(64))
    previous: Mapped[str | None] = mapped_column(String(64))
    by: Mapped[str] = mapped_column(String(200), default="")
    at: Mapped[datetime] = mapped_column(DateTime, index=True)


class HomeLoadReport(Base):
    """A lending hotline's report of its own waiting callers (the lender gate's input)."""

    __tablename__ = "home_load_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pool: Mapped[str] = mapped_column(String(64))
    waiting: Mapped[int] = mapped_column(Integer)
    reported_at: Mapped[datetime] = mapped_column(DateTime)
    received_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class AuditLog(Base):
    """Who did what through the admin API, and when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    who: Mapped[str] = mapped_column(String(200))
    what: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    details: Mapped[dict] = mapped_column(JSON, default=dict)


class Article(Base):
    """A knowledge-base article of the province's shared knowledge base (callcenter.kb).

    Every member hotline reads every article; only its owning organisation
    (``org``: a city's 12345, 12333, 12315, a department) edits it.  Searchers
    see only ``published`` articles in effect (``effective_from`` <=
    now < ``effective_until``); the search index (``kb_fts`` on SQLite,
    ``kb_index`` on PostgreSQL) is kept by callcenter.kb.store, never by hand.
    """

    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str | None] = mapped_column(String(100), unique=True, nullable=True)  # stable id for import/export
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")  # Markdown
    tags: Mapped[str] = mapped_column(String(500), default="")  # space- or comma-separated
    category: Mapped[str] = mapped_column(String(64), default="")
    org: Mapped[str] = mapped_column(String(64), default="", index=True)
    region: Mapped[str] = mapped_column(String(64), default="")  # "" = province-wide
    effective_from: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    effective_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="published", index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[str] = mapped_column(String(200), default="")
    updated: Mapped[datetime] = mapped_column(DateTime)


class ArticleVersion(Base):
    """One saved state of an article: who changed which fields, when and why."""

    __tablename__ = "article_versions"
    __table_args__ = (Index("ix_article_versions_article", "article_id", "version", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    who: Mapped[str] = mapped_column(String(200))
    why: Mapped[str] = mapped_column(String(500), default="")
    at: Mapped[datetime] = mapped_column(DateTime)
    changed: Mapped[list] = mapped_column(JSON, default=list)  # field names that differ from the previous version
    snapshot: Mapped[dict] = mapped_column(JSON, default=dict)  # every field of this version


class KbRole(Base):
    """Who may edit (``editor``) or also publish/retire (``publisher``) an organisation's articles."""

    __tablename__ = "kb_roles"
    __table_args__ = (Index("ix_kb_roles_who_org", "who", "org", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    who: Mapped[str] = mapped_column(String(200))
    org: Mapped[str] = mapped_column(String(64))  # "*" = every organisation
    role: Mapped[str] = mapped_column(String(16))


class KbFeedback(Base):
    """A public reader's "was this helpful" vote (no login, nothing personal stored)."""

    __tablename__ = "kb_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), index=True)
    helpful: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(DateTime)


class QueueLogEntry(Base):
    """Asterisk's realtime ``queue_log`` table layout (time, callid, queuename, agent, event, data1..5)."""

    __tablename__ = "queue_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(DateTime, index=True)
    callid: Mapped[str] = mapped_column(String(128), default="NONE")
    queuename: Mapped[str] = mapped_column(String(64), default="NONE")
    agent: Mapped[str] = mapped_column(String(64), default="NONE")
    event: Mapped[str] = mapped_column(String(32))
    data: Mapped[str] = mapped_column(String(400), default="")  # data1|data2|... as in the file
    data1: Mapped[str] = mapped_column(String(200), default="")
    data2: Mapped[str] = mapped_column(String(200), default="")
    data3: Mapped[str] = mapped_column(String(200), default="")
    data4: Mapped[str] = mapped_column(String(200), default="")
    data5: Mapped[str] = mapped_column(String(200), default="")


class WorkOrder(Base):
    """A work order (工单) as it stands now: owner, deadline, state (callcenter/orders/book.py).

    The order's whole history is in ``work_order_events``; this row is rewritten on every change.
    No caller number: the linked calls' CDRs hold the masked number.
    """

    __tablename__ = "work_orders"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    category: Mapped[str] = mapped_column(String(64), index=True)
    district: Mapped[str] = mapped_column(String(64), default="", index=True)
    street: Mapped[str] = mapped_column(String(64), default="")
    address: Mapped[str] = mapped_column(String(200), default="")
    summary: Mapped[str] = mapped_column(String(500))
    request_text: Mapped[str] = mapped_column(Text, default="")
    urgency: Mapped[str] = mapped_column(String(16))
    reply_wanted: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    call_ids: Mapped[list] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16), index=True)
    owner: Mapped[str] = mapped_column(String(140), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    deadline: Mapped[datetime] = mapped_column(DateTime, index=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    on_time: Mapped[bool | None] = mapped_column(Boolean)
    result: Mapped[str] = mapped_column(Text, default="")
    reply: Mapped[str] = mapped_column(Text, default="")
    kb_article: Mapped[str | None] = mapped_column(String(64))
    returns: Mapped[dict] = mapped_column(JSON, default=dict)
    extension: Mapped[dict | None] = mapped_column(JSON)
    escalation_level: Mapped[int] = mapped_column(Integer, default=-1)
    reminded: Mapped[bool] = mapped_column(Boolean, default=False)
    reopened: Mapped[int] = mapped_column(Integer, default=0)
    linked: Mapped[list] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class WorkOrderEvent(Base):
    """Every step of every work order: who did what, when (the audit trail of 督办)."""

    __tablename__ = "work_order_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(140), default="")
    data: Mapped[dict] = mapped_column(JSON, default=dict)


metadata = Base.metadata
