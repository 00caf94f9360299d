"""Database URLs, engines and migrations: the only place that knows SQLite from PostgreSQL.

Blocking calls (``migrate``, ``make_engine().connect()``) belong in a thread
when the reactor is running; the writer and services take care of that.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# The default URL (SQLite under state_dir) is callcenter.app.default_database_url.


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 (the driver we ship with)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, **kw) -> Engine:
    """An engine that recovers by itself when the database goes away and comes back.

    ``pool_pre_ping`` tests a pooled connection before use, so the first write
    after a PostgreSQL restart reconnects instead of failing on a dead socket.
    """
    url = normalize_url(url)
    if is_sqlite(url):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 10}, **kw)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # WAL: readers (CLI export) do not block the writer
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    kw.setdefault("pool_pre_ping", True)
    kw.setdefault("pool_size", 2)
    kw.setdefault("max_overflow", 2)
    # A short connect timeout: a dead server must not hold the writer past the shutdown budget.
    return create_engine(url, connect_args={"connect_timeout": 3}, **kw)


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' must be doubled for configparser interpolation (passwords may hold it).
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head", engine: Engine | None = None) -> None:
    """Bring the schema at ``url`` up to ``revision`` (blocking; idempotent)."""
    cfg = alembic_config(url)
    own = engine is None
    engine = engine or make_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Two ACDs of a failover pair may start together: one migrates, the other waits.
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7112345)")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        if own:
            engine.dispose()


def head_revision() -> str:
    """The newest migration shipped with this code (what ``migrate`` brings a database to)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


_EPOCH = datetime(1970, 1, 1)


def utc(t: float | None) -> datetime | None:
    """Engine clock seconds (epoch on the real reactor) -> naive UTC datetime, as stored."""
    if t is None:
        return None
    return _EPOCH + timedelta(seconds=t)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
