"""``callcenter_database_up`` from a probe, not from the last write.

The writer sets the gauge when a batch succeeds or fails, so after every start
it read 0 until the first call ended, and it said nothing about a database
that went away during a quiet hour.  The probe runs ``SELECT 1`` every
``interval`` seconds and sets the gauge to 1 when it answered (and the
writer's last write, if any, did not fail), else 0.

The query runs on a fresh daemon thread per probe, never on the reactor: a
database frozen mid-query can hold a socket read for minutes, and a daemon
thread stuck there can neither delay the reactor nor hold up shutdown (a
thread-pool worker would be joined at stop).  At most one probe is in flight;
one still running at the next tick counts as a failed probe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from callcenter.records.db import is_sqlite, make_engine, normalize_url
from callcenter.state.runner import DaemonThreadRunner

__all__ = ["DatabaseProbe", "select_one"]

log = Logger(namespace="callcenter.records")

PROBE_INTERVAL_S = 5.0


def select_one(url: str) -> Callable[[], bool]:
    """A blocking check: ``SELECT 1`` on its own one-connection engine (created on first use)."""
    url = normalize_url(url)
    holder: dict[str, Any] = {}

    def check() -> bool:
        engine = holder.get("engine")
        if engine is None:
            kw = {} if is_sqlite(url) else {"pool_size": 1, "max_overflow": 0}
            engine = holder["engine"] = make_engine(url, **kw)
        with engine.connect() as conn:
            return conn.execute(text("SELECT 1")).scalar() == 1

    return check


class DatabaseProbe:
    """Sets ``gauge`` from a periodic ``check()`` (True = the database answered)."""

    def __init__(self, clock: Any, check: Callable[[], bool], gauge: Any, *, runner: Any = None,
                 interval: float = PROBE_INTERVAL_S, writes_ok: Callable[[], bool] = lambda: True):
        self.clock = clock
        self.check = check
        self.gauge = gauge
        self.runner = runner or DaemonThreadRunner(clock)
        self.interval = interval
        self.writes_ok = writes_ok
        self.up: bool | None = None  # None until the first probe answered
        self._in_flight = False
        self._loop: LoopingCall | None = None

    def start(self) -> None:
        self._loop = LoopingCall(self.tick)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=True)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def tick(self) -> None:
        if self._in_flight:
            self._set(False, "the last SELECT 1 has not come back")
            return
        self._in_flight = True
        d = self.runner(self.check)
        d.addCallbacks(self._answered, self._failed)

    def _answered(self, ok: Any) -> None:
        self._in_flight = False
        self._set(ok is True and self.writes_ok(), "SELECT 1 answered" if ok is True else "SELECT 1 gave no 1")

    def _failed(self, failure: Any) -> None:
        self._in_flight = False
        self._set(False, failure.getErrorMessage())

    def _set(self, up: bool, why: str) -> None:
        if up != self.up and self.up is not None:
            if up:
                log.info("records database answers again")
            else:
                log.warn("records database probe failed: {why}", why=why)
        self.up = up
        self.gauge.set(1 if up else 0)
