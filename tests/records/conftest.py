"""Records fixtures: the same tests run against SQLite and a real PostgreSQL server.

``db`` is parametrized over ``sqlite`` and ``postgresql``; each test gets a
fresh, empty database (a new SQLite file / a new PostgreSQL database on one
session-wide throwaway server, tests/support/pgserver.py) and a way to take it
down and bring it back (``db.outage()``):

* PostgreSQL: ``pg_ctl stop -m fast`` then ``pg_ctl start`` -- a real outage;
* SQLite: another connection holds an EXCLUSIVE lock, so every write fails
  with "database is locked" (what a SQLite writer sees when it cannot write).
"""

from __future__ import annotations

import importlib.util
import itertools
import sqlite3
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge
from twisted.internet.task import Clock

from callcenter.records.db import make_engine, migrate

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))  # records_helpers


def _load_pgserver():
    path = _HERE.parent / "support" / "pgserver.py"
    spec = importlib.util.spec_from_file_location("callcenter_tests_pgserver", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pgserver = _load_pgserver()
_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres_server():
    try:
        server = pgserver.PostgresServer().start()
    except pgserver.PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL is required for the records tests: {exc}")
    try:
        yield server
    finally:
        server.close()


class Db:
    def __init__(self, kind: str, url: str, server=None, sqlite_path: Path | None = None):
        self.kind, self.url, self.server, self.sqlite_path = kind, url, server, sqlite_path
        self._engine = None

    @property
    def engine(self):
        if self._engine is None:
            self._engine = make_engine(self.url)
        return self._engine

    def writer_engine(self):
        """An engine for a writer under test: SQLite gives up on a lock after 0.2 s (outage tests)."""
        if self.kind == "sqlite":
            from sqlalchemy import create_engine, event

            engine = create_engine(self.url, connect_args={"timeout": 0.2})

            @event.listens_for(engine, "connect")
            def _pragmas(conn, _):
                conn.execute("PRAGMA foreign_keys=ON")

            return engine
        return make_engine(self.url)

    def migrate(self):
        migrate(self.url)

    @contextmanager
    def outage(self):
        """The database is unavailable inside the block and comes back at its end."""
        if self.kind == "postgresql":
            self.server.stop("fast")
            try:
                yield
            finally:
                self.server.start()
        else:
            conn = sqlite3.connect(self.sqlite_path, timeout=5, isolation_level=None, check_same_thread=False)
            conn.execute("BEGIN EXCLUSIVE")
            try:
                yield
            finally:
                conn.execute("ROLLBACK")
                conn.close()

    def dispose(self):
        if self._engine is not None:
            self._engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    if request.param == "sqlite":
        path = tmp_path / "records.sqlite3"
        d = Db("sqlite", f"sqlite:///{path}", sqlite_path=path)
    else:
        server = request.getfixturevalue("postgres_server")
        name = f"t{next(_counter)}_{threading.get_ident() % 10000}"
        d = Db("postgresql", server.create_database(name), server=server)
    yield d
    d.dispose()


@pytest.fixture
def migrated_db(db):
    db.migrate()
    return db


class Metrics:
    """Fresh metric objects per test (a private registry), injected into the writer."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.buffered = Gauge("callcenter_records_buffered_events", "test", registry=self.registry)
        self.dropped = Counter("callcenter_records_dropped_events", "test", registry=self.registry)
        self.up = Gauge("callcenter_database_up", "test", registry=self.registry)

    def value(self, name: str) -> float:
        return self.registry.get_sample_value(name) or 0.0

    def writer_kwargs(self) -> dict:
        return {"buffered_gauge": self.buffered, "dropped_counter": self.dropped, "up_gauge": self.up}


@pytest.fixture
def metrics():
    return Metrics()


@pytest.fixture
def clock():
    c = Clock()
    c.advance(1_764_300_000)  # 2025-11-28: engine times are epoch seconds on the real reactor
    return c


@pytest.fixture
def make_writer(migrated_db, tmp_path, metrics):
    """A started RecordsWriter on the migrated database, fast retries; stopped afterwards."""
    from records_helpers import LogCapture, small_config

    from callcenter.records.queue_log import queues_by_pool
    from callcenter.records.writer import RecordsWriter

    made = []

    def make(**kw):
        capture = LogCapture()
        kw.setdefault("retry_initial_s", 0.02)
        kw.setdefault("retry_max_s", 0.2)
        kw.setdefault("linger_s", 0.0)
        w = RecordsWriter(migrated_db.url, engine=migrated_db.writer_engine(), state_dir=tmp_path / "state",
                          queues_by_pool=queues_by_pool(small_config()), log=capture.log,
                          **metrics.writer_kwargs(), **kw)
        w.capture = capture
        w.start()
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop(timeout=30)
        w._engine.dispose()
