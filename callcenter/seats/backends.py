"""The blocking helpers behind the seat server: accounts, knowledge base, contacts, wrap-ups.

Every function here does database I/O and is called by server.py in a thread
(``deferToThreadPool``), never on the reactor thread.  Each prefers the
records package's own helper when it exists (one place per fact) and falls
back to a direct SQLAlchemy query on callcenter.records.models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from callcenter.records.accounts import PASSWORD_HASHER

from .session import Account

__all__ = ["StaticAccounts", "DbAccounts", "DbKnowledgeBase", "hash_password", "records_helper"]

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


class DbKnowledgeBase:
    """Search over the knowledge base (callcenter.kb: jieba-segmented full-text index, BM25
    ranking with title and tag boosts, only published articles in effect)."""

    def __init__(self, database_url: str):
        self.database_url = database_url
        self._engine = None

    def _db(self):
        if self._engine is None:
            from callcenter.records.db import make_engine

            self._engine = make_engine(self.database_url)
        return self._engine

    def search(self, query: str, limit: int = 10) -> list[dict[str, Any]]:
        from callcenter.kb.store import KbStore

        return KbStore(self._db()).search(query, limit)

    def get(self, article_id: int) -> dict[str, Any] | None:
        from callcenter.kb.model import NotFound
        from callcenter.kb.store import KbStore

        try:
            return KbStore(self._db()).get(article_id)
        except NotFound:
            return None

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
