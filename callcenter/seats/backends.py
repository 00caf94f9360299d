"""The blocking helpers behind the seat server: accounts, knowledge base, contacts, wrap-ups.

Every function here does database I/O and is called by server.py in a thread
(``deferToThreadPool``), never on the reactor thread.  Each prefers the
records package's own helper when it exists (one place per fact) and falls
back to a direct SQLAlchemy query on callcenter.records.models.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from callcenter.records.accounts import PASSWORD_HASHER

from .session import Account

__all__ = ["StaticAccounts", "DbAccounts", "DbKnowledgeBase", "snippet", "hash_password", "records_helper"]

_HASHER = PASSWORD_HASHER  # one place for the parameters (records/accounts.py)
# Verified against when the agent is unknown, so a wrong agent id costs as much
# time as a wrong password (no account enumeration by timing).
_DUMMY_HASH = _HASHER.hash("not-a-password")


def hash_password(password: str, hasher: PasswordHasher | None = None) -> str:
    return (hasher or _HASHER).hash(password)


def _verify(hasher: PasswordHasher, stored: str | None, password: str, dummy: str = _DUMMY_HASH) -> bool:
    try:
        return hasher.verify(stored or dummy, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def records_helper(module: str, name: str) -> Callable | None:
    """``callcenter.records.<module>.<name>`` if the records package provides it."""
    from callcenter.app import import_optional

    mod = import_optional(f"callcenter.records.{module}")
    return getattr(mod, name, None) if mod is not None else None


class StaticAccounts:
    """Accounts held in memory (tests, benchmarks, demo): {agent: (argon2 hash, pool, skills, endpoint)}."""

    def __init__(self, hasher: PasswordHasher | None = None):
        self.hasher = hasher or _HASHER
        self._dummy = self.hasher.hash("not-a-password")
        self._accounts: dict[str, tuple[str, Account]] = {}

    def add(self, agent_id: str, password: str | None, pool: str, *, skills: dict | None = None,
            endpoint: str | None = None, name: str = "", password_hash: str | None = None) -> None:
        """Add an account; pass ``password_hash`` to reuse one hash for many (benchmarks)."""
        stored = password_hash or self.hasher.hash(password)
        self._accounts[agent_id] = (stored, Account(agent_id, pool, skills, endpoint, name))

    def verify(self, agent_id: str, password: str) -> Account | None:
        stored, account = self._accounts.get(agent_id, (None, None))
        return account if _verify(self.hasher, stored, password, self._dummy) else None


class DbAccounts:
    """Agent accounts in the records database (table ``agents``, argon2id hashes)."""

    def __init__(self, database_url: str):
        self.database_url = database_url
        self._engine = None
        self.hasher = _HASHER

    def _db(self):
        if self._engine is None:
            from callcenter.records.db import make_engine

            self._engine = make_engine(self.database_url)
        return self._engine

    def verify(self, agent_id: str, password: str) -> Account | None:
        from sqlalchemy import select

        from callcenter.records.models import Agent

        with self._db().connect() as conn:
            row = conn.execute(
                select(Agent.id, Agent.name, Agent.pool, Agent.skills, Agent.endpoint, Agent.password_hash, Agent.enabled)
                .where(Agent.id == agent_id)
            ).first()
        ok = _verify(self.hasher, row.password_hash if row is not None and row.enabled else None, password)
        if not ok:
            return None
        return Account(row.id, row.pool, dict(row.skills or {}) or None, row.endpoint, row.name or "")

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def snippet(body: str, terms: list[str], width: int = 160) -> str:
    """About ``width`` characters of ``body`` around the first term found."""
    text = " ".join((body or "").split())
    low = text.lower()
    hits = [i for i in (low.find(t.lower()) for t in terms) if i >= 0]
    start = max(0, min(hits) - width // 4) if hits else 0
    if start:  # begin at a word
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < min(hits) else start
    out = text[start:start + width]
    return ("…" if start else "") + out + ("…" if start + width < len(text) else "")


class DbKnowledgeBase:
    """Search over the ``articles`` table: every word must appear in the title,
    body or tags; title hits rank first.  Plain LIKE, which is enough for a
    knowledge base of thousands of articles and works the same on SQLite and
    PostgreSQL (a later issue may add full-text search)."""

    MAX_CANDIDATES = 200

    def __init__(self, database_url: str):
        self.database_url = database_url
        self._engine = None

    def _db(self):
        if self._engine is None:
            from callcenter.records.db import make_engine

            self._engine = make_engine(self.database_url)
        return self._engine

    def search(self, query: str, limit: int = 10) -> list[dict[str, Any]]:
        from sqlalchemy import and_, or_, select

        from callcenter.records.models import Article

        terms = [t for t in re.split(r"\s+", query.strip()) if t][:8]
        if not terms:
            return []

        def like(t: str):
            pat = "%" + t.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            return or_(Article.title.ilike(pat, escape="\\"), Article.body.ilike(pat, escape="\\"),
                       Article.tags.ilike(pat, escape="\\"))

        stmt = (select(Article.id, Article.title, Article.body, Article.tags)
                .where(and_(*[like(t) for t in terms])).order_by(Article.id).limit(self.MAX_CANDIDATES))
        with self._db().connect() as conn:
            rows = conn.execute(stmt).all()
        lows = [t.lower() for t in terms]
        rows.sort(key=lambda r: -sum(t in (r.title or "").lower() for t in lows))
        return [
            {"id": r.id, "title": r.title, "snippet": snippet(r.body, terms),
             "tags": [t for t in re.split(r"[\s,]+", r.tags or "") if t]}
            for r in rows[:limit]
        ]

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
