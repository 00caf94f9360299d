"""The records subsystem as ``callcenter serve`` runs it: migrate at start, write, flush at stop."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from records_helpers import CallRun, small_config
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from twisted.internet.task import Clock
from twisted.python.threadpool import ThreadPool

from callcenter.engine import Engine
from callcenter.records import models as m
from callcenter.records.db import make_engine
from callcenter.records.service import make_subsystem


class ThreadReactor:
    """The two reactor methods deferToThreadPool needs; results are delivered in the pool thread."""

    def __init__(self):
        self.pool = ThreadPool(1, 2, name="test-reactor")
        self.pool.start()

    def getThreadPool(self):
        return self.pool

    def callFromThread(self, f, *a, **kw):
        f(*a, **kw)

    def seconds(self):
        return time.time()


def wait(d, timeout=30):
    done = threading.Event()
    out = []
    d.addBoth(lambda r: (out.append(r), done.set()))
    assert done.wait(timeout), "deferred did not fire"
    return out[0]


def test_subsystem_migrates_sqlite_by_itself_records_and_flushes(tmp_path, clock):
    reactor = ThreadReactor()
    config = small_config()
    engine = Engine(config, clock)
    state_dir = tmp_path / "state"
    acd = SimpleNamespace(config=config, reactor=reactor, engine=engine, state_dir=state_dir,
                          database_url=f"sqlite:///{state_dir / 'callcenter.db'}", records=None)
    try:
        sub = make_subsystem(acd)
        assert acd.records is sub.writer
        assert [label for label, _ in sub.listening] == ["records database", "queue_log"]
        run = CallRun(clock, engine=engine)
        run.run(2)  # events before start() are buffered, not lost
        assert wait(sub.start()) is None
        assert sub.writer.migrated
        run.run(3)
        assert wait(sub.stop()) is None
        db = make_engine(acd.database_url)
        with Session(db) as s:
            assert s.scalar(select(func.count()).select_from(m.CallRecord)) == 5
        db.dispose()
        assert (state_dir / "queue_log").read_text().count("ENTERQUEUE") == 5
    finally:
        reactor.pool.stop()


def test_subsystem_starts_when_the_database_is_unreachable(tmp_path):
    reactor = ThreadReactor()
    config = small_config()
    engine = Engine(config, Clock())
    acd = SimpleNamespace(config=config, reactor=reactor, engine=engine, state_dir=tmp_path,
                          database_url="postgresql://nobody@127.0.0.1:1/none", records=None)
    try:
        sub = make_subsystem(acd)
        sub.writer.flush_timeout_s = 0.2
        assert wait(sub.start()) is None  # logged loudly; the writer keeps retrying
        assert not sub.writer.migrated
        wait(sub.stop())
    finally:
        reactor.pool.stop()
