"""Agent accounts: add, list, disable, set a password, verify a login.

Passwords are hashed with argon2id (argon2-cffi's ``PasswordHasher``, the
RFC 9106 KDF); only the PHC string ``$argon2id$v=19$...`` is stored.  A verify
costs tens of milliseconds of CPU and a database read, so from the reactor use
:func:`verify_login_in_thread`, which runs it in a thread and returns a Deferred.

Functions take a SQLAlchemy ``Session``; the caller owns the transaction
(``with Session(engine) as s, s.begin(): add_agent(s, ...)``).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from callcenter.bounds import BadText, check_text
from callcenter.records.db import utcnow
from callcenter.records.models import Agent

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
# Asterisk dial strings: TECH/resource, e.g. PJSIP/1001, PJSIP/xian-trunk/8021, Local/1001@agents.
ENDPOINT_RE = re.compile(r"^(PJSIP|SIP|IAX2|DAHDI|Local)/[A-Za-z0-9_.+:-]+(/[A-Za-z0-9_.+:-]+)?(@[A-Za-z0-9_.-]+)?$")
# Local/<exten>@<context>[/<options>]: options n (no optimisation), j (jitter buffer), m (MOH
# passthrough), b (bridge) (Asterisk core_local.c, "Local Channel Modifiers")
LOCAL_ENDPOINT_RE = re.compile(r"^Local/[A-Za-z0-9_.+:-]+@[A-Za-z0-9_.-]+(/[njmb]{1,4})?$")
MIN_PASSWORD = 8

# argon2id at OWASP's minimum: m=19 MiB, t=2, p=1 (OWASP Password Storage Cheat Sheet,
# "Argon2id": "a minimum configuration of 19 MiB of memory, an iteration count of 2, and
# 1 degree of parallelism").  ~26 ms of one core per check here, against ~200 ms and
# 4 threads for argon2-cffi's default (RFC 9106 low-memory: 64 MiB, t=3, p=4), which
# starved the reactor of CPU during a 1,000-seat login burst (issue 14).  p=1: one
# check uses one core; the seat server runs checks on a pool one smaller than the
# CPUs (callcenter/seats/passwords.py).  Hashes made with other parameters still
# verify (the PHC string carries them) and are rehashed at the next good login.
PASSWORD_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_default_hasher = PASSWORD_HASHER


class AccountError(ValueError):
    """A request about agent accounts that cannot be done (the message says why)."""


class UnknownAgent(AccountError):
    pass


class AgentExists(AccountError):
    pass


class InvalidAccount(AccountError):
    pass


@dataclass(frozen=True)
class AgentAccount:
    """A detached copy of an account (safe to hand across threads; no password hash)."""

    id: str
    name: str
    pool: str
    skills: dict
    endpoint: str | None
    enabled: bool
    created: datetime
    has_password: bool

    @classmethod
    def of(cls, a: Agent) -> AgentAccount:
        return cls(a.id, a.name, a.pool, dict(a.skills or {}), a.endpoint, bool(a.enabled), a.created,
                   a.password_hash is not None)


def validate_endpoint(endpoint: str | None) -> str | None:
    if endpoint in (None, ""):
        return None
    if endpoint.startswith("Local/") and LOCAL_ENDPOINT_RE.match(endpoint):
        return endpoint
    if not ENDPOINT_RE.match(endpoint):
        raise InvalidAccount(f"endpoint {endpoint!r}: expected TECH/resource like PJSIP/1001, "
                             "PJSIP/xian-trunk/8021, Local/1001@agents or Local/1001@agents/n")
    if endpoint.startswith("Local/") and "@" not in endpoint:
        raise InvalidAccount(f"endpoint {endpoint!r}: a Local channel needs @context (Local/1001@agents)")
    return endpoint


def validate_skills(skills: dict | None) -> dict:
    out = {}
    for k, v in (skills or {}).items():
        if not isinstance(k, str) or not ID_RE.match(k):
            raise InvalidAccount(f"skill name {k!r}: letters, digits and . _ : - only")
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 100:
            raise InvalidAccount(f"skill {k!r}: level must be an integer 0..100, got {v!r}")
        out[k] = v
    return out


def parse_skills(text: str | None) -> dict:
    """``epidemic=3,medical=1`` (CLI form) -> {"epidemic": 3, "medical": 1}; a bare name means level 1."""
    skills: dict = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, _, level = part.partition("=")
        try:
            skills[name.strip()] = int(level) if level.strip() else 1
        except ValueError:
            raise InvalidAccount(f"skill {part!r}: expected name=level with an integer level") from None
    return validate_skills(skills)


def _hash(password: str, hasher: PasswordHasher | None) -> str:
    hasher = hasher or _default_hasher
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise InvalidAccount(f"password: at least {MIN_PASSWORD} characters")
    return hasher.hash(password)


MAX_NAME_CHARS = 200  # the agents.name column


def add_agent(session: Session, agent_id: str, *, pool: str, name: str = "", endpoint: str | None = None,
              skills: dict | None = None, password: str | None = None, enabled: bool = True,
              hasher: PasswordHasher | None = None, known_pools: Collection[str] | None = None) -> AgentAccount:
    """Add an account; ``known_pools`` (the config's pool names), when given, must hold ``pool``."""
    if not ID_RE.match(agent_id or ""):
        raise InvalidAccount(f"agent id {_shown(agent_id)}: 1-64 letters, digits and . _ : - "
                             "(starting with a letter or digit)")
    if not ID_RE.match(pool or ""):
        raise InvalidAccount(f"pool {_shown(pool)}: a pool name from the config")
    if known_pools is not None and pool not in known_pools:
        raise InvalidAccount(f"no pool {pool!r} in the config; its pools: {sorted(known_pools)}")
    try:
        check_text(name or "", what="name", max_chars=MAX_NAME_CHARS)
    except BadText as exc:
        raise InvalidAccount(str(exc)) from None
    if session.get(Agent, agent_id) is not None:
        raise AgentExists(f"agent {agent_id!r} already exists")
    agent = Agent(id=agent_id, name=name or "", pool=pool, skills=validate_skills(skills),
                  endpoint=validate_endpoint(endpoint), enabled=enabled, created=utcnow(),
                  password_hash=_hash(password, hasher) if password is not None else None)
    session.add(agent)
    session.flush()
    return AgentAccount.of(agent)


def _shown(value: object, limit: int = 40) -> str:
    """``repr`` of user input cut short: an error message must not echo 100k characters back."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...(" + str(len(str(value))) + " chars)"


def _get(session: Session, agent_id: str) -> Agent:
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise UnknownAgent(f"no agent {agent_id!r}")
    return agent


def list_agents(session: Session, pool: str | None = None, *, enabled_only: bool = False) -> list[AgentAccount]:
    q = select(Agent).order_by(Agent.pool, Agent.id)
    if pool:
        q = q.where(Agent.pool == pool)
    if enabled_only:
        q = q.where(Agent.enabled.is_(True))
    return [AgentAccount.of(a) for a in session.scalars(q)]


def get_agent(session: Session, agent_id: str) -> AgentAccount:
    return AgentAccount.of(_get(session, agent_id))


def set_enabled(session: Session, agent_id: str, enabled: bool) -> AgentAccount:
    agent = _get(session, agent_id)
    agent.enabled = enabled
    session.flush()
    return AgentAccount.of(agent)


def disable_agent(session: Session, agent_id: str) -> AgentAccount:
    return set_enabled(session, agent_id, False)


def set_password(session: Session, agent_id: str, password: str,
                 hasher: PasswordHasher | None = None) -> AgentAccount:
    agent = _get(session, agent_id)
    agent.password_hash = _hash(password, hasher)
    session.flush()
    return AgentAccount.of(agent)


def verify_login(session: Session, agent_id: str, password: str,
                 hasher: PasswordHasher | None = None) -> AgentAccount | None:
    """The account if ``password`` is right and the account enabled; else None (never says which).

    Blocking (argon2 + a query): from the reactor use :func:`verify_login_in_thread`.
    Rehashes transparently when the hasher's parameters changed.
    """
    hasher = hasher or _default_hasher
    agent = session.get(Agent, agent_id) if isinstance(agent_id, str) and ID_RE.match(agent_id) else None
    if agent is None or not agent.password_hash or not isinstance(password, str):
        _default_hasher_dummy(hasher, password)  # same cost either way: no account probing by timing
        return None
    try:
        hasher.verify(agent.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if not agent.enabled:
        return None
    if hasher.check_needs_rehash(agent.password_hash):
        agent.password_hash = hasher.hash(password)
        session.flush()
    return AgentAccount.of(agent)


_DUMMY: dict[int, str] = {}


def _default_hasher_dummy(hasher: PasswordHasher, password) -> None:
    key = id(hasher)
    if key not in _DUMMY:
        _DUMMY[key] = hasher.hash("not-a-real-password")
    try:
        hasher.verify(_DUMMY[key], password if isinstance(password, str) else "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        pass


def verify_login_blocking(engine: Engine, agent_id: str, password: str,
                          hasher: PasswordHasher | None = None) -> AgentAccount | None:
    with Session(engine) as session, session.begin():
        return verify_login(session, agent_id, password, hasher)


def verify_login_in_thread(engine: Engine, agent_id: str, password: str, *, reactor=None,
                           threadpool=None, hasher: PasswordHasher | None = None):
    """Deferred[AgentAccount | None]: the login check run off the reactor thread (seat logins)."""
    from twisted.internet import threads

    if reactor is None:
        from twisted.internet import reactor  # noqa: F811
    pool = threadpool or reactor.getThreadPool()
    return threads.deferToThreadPool(reactor, pool, verify_login_blocking, engine, agent_id, password, hasher)
