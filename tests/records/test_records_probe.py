"""``callcenter_database_up`` is probed with SELECT 1 from the start, not inferred from the last write."""

from __future__ import annotations

from types import SimpleNamespace

from records_helpers import small_config
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.python.threadpool import ThreadPool

from callcenter import metrics
from callcenter.engine import Engine
from callcenter.records.probe import DatabaseProbe, select_one
from callcenter.records.service import make_subsystem
from callcenter.state.runner import InlineRunner
from callcenter.testing.polling import wait_until


class Gauge:
    def __init__(self):
        self.value = None

    def set(self, v):
        self.value = v


def test_a_database_that_answers_reads_up_at_once_without_any_write(db):
    gauge = Gauge()
    probe = DatabaseProbe(Clock(), select_one(db.url), gauge, runner=InlineRunner())
    probe.start()
    try:
        assert gauge.value == 1
    finally:
        probe.stop()


def test_a_postgres_outage_reads_down_within_one_probe_and_up_when_it_is_back(postgres_server):
    url = postgres_server.create_database("probe_outage")
    clock, gauge = Clock(), Gauge()
    probe = DatabaseProbe(clock, select_one(url), gauge, runner=InlineRunner(), interval=5.0)
    probe.start()
    try:
        assert gauge.value == 1
        postgres_server.stop("fast")
        try:
            clock.advance(5)
            assert gauge.value == 0
        finally:
            postgres_server.start()
        clock.advance(5)
        assert gauge.value == 1
    finally:
        probe.stop()


def test_a_failed_write_keeps_the_gauge_down_even_when_select_answers(db):
    gauge, writes = Gauge(), {"ok": False}
    probe = DatabaseProbe(Clock(), select_one(db.url), gauge, runner=InlineRunner(), writes_ok=lambda: writes["ok"])
    probe.start()
    try:
        assert gauge.value == 0
    finally:
        probe.stop()


def test_a_probe_still_in_flight_at_the_next_tick_reads_down():
    class Stuck:
        def __call__(self, fn, *args):
            return defer.Deferred()  # a frozen database: the SELECT never returns

    clock, gauge = Clock(), Gauge()
    probe = DatabaseProbe(clock, lambda: True, gauge, runner=Stuck(), interval=5.0)
    probe.start()
    try:
        assert gauge.value is None
        clock.advance(5)
        assert gauge.value == 0
    finally:
        probe.stop()


class ClockReactor(Clock):
    """task.Clock plus the thread-pool methods the records subsystem uses."""

    def __init__(self):
        super().__init__()
        self.pool = ThreadPool(1, 2, name="test-reactor")
        self.pool.start()

    def getThreadPool(self):
        return self.pool

    def callFromThread(self, f, *a, **kw):
        f(*a, **kw)


def test_the_records_subsystem_reports_the_database_up_right_after_start(tmp_path):
    reactor = ClockReactor()
    config = small_config()
    state_dir = tmp_path / "state"
    acd = SimpleNamespace(config=config, reactor=reactor, engine=Engine(config, Clock()), state_dir=state_dir,
                          database_url=f"sqlite:///{state_dir / 'callcenter.db'}", records=None)
    metrics.DATABASE_UP.set(0)
    sub = make_subsystem(acd)
    try:
        sub.start()
        wait_until(lambda: metrics.DATABASE_UP._value.get() == 1, 10, "callcenter_database_up 1 with no write yet")
        assert sub.writer.items_written == 0
    finally:
        done = []
        sub.stop().addBoth(done.append)
        wait_until(lambda: done, 10, "the records subsystem to stop")
        reactor.pool.stop()
