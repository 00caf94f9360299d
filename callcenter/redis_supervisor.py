"""Keep the embedded Redis alive and tell /healthz the truth about it.

Before this, a killed embedded ``redis-server`` stayed dead (the ACD served
from memory with unsynced inputs growing for good) and a frozen one (SIGSTOP,
swapped out, stuck on a disk) looked healthy because the process still
existed.  The supervisor looks every ``interval`` seconds:

* **dead** (the child exited): spawn it again on the same port, from the
  reactor thread (see :meth:`EmbeddedRedis.spawn` for why that thread), at
  once the first time and then after a growing delay (:class:`Backoff`) while
  it keeps dying; the delay resets once Redis has answered for
  ``stable_after`` seconds.  The state subsystem needs nothing special: its
  redis-py clients reconnect on their next command and the lease keeper
  reclaims the lease (callcenter/state/lease.py).
* **frozen** (alive, but ``PING`` does not answer within ``ping_timeout``):
  after ``frozen_after`` unanswered pings in a row /healthz says
  ``redis-unresponsive``.  The PING runs on its own daemon thread
  (``runner``, a DaemonThreadRunner in the app): a socket read on a frozen
  server blocks for the whole timeout and must never do so on the reactor,
  nor hold up shutdown.  A PING still in flight at the next tick counts as
  unanswered too, so a thread stuck for longer than the timeout cannot hide
  the fault.

Time comes from the injected reactor (``IReactorTime``), so tests drive the
whole schedule with ``task.Clock``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

__all__ = ["Backoff", "RedisSupervisor", "OK", "DOWN", "UNRESPONSIVE"]

log = Logger(namespace="callcenter.redis")

OK = "ok"
DOWN = "redis-down"  # dead, restart pending or just spawned and not answering yet
UNRESPONSIVE = "redis-unresponsive"  # alive but not answering PING (frozen)


class Backoff:
    """Delays between restart attempts: 0 (at once), then ``first``, doubling up to ``cap``."""

    def __init__(self, first: float = 1.0, factor: float = 2.0, cap: float = 30.0):
        if not (first > 0 and factor >= 1 and cap >= first):
            raise ValueError("Backoff needs first > 0, factor >= 1 and cap >= first")
        self.first, self.factor, self.cap = first, factor, cap
        self.attempts = 0

    def next_delay(self) -> float:
        """The wait before the next attempt (call once per attempt)."""
        if self.attempts == 0:
            delay = 0.0
        else:
            delay = min(self.cap, self.first * self.factor ** (self.attempts - 1))
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0


class RedisSupervisor:
    """Restarts a dead :class:`~callcenter.redis_server.EmbeddedRedis` and spots a frozen one."""

    def __init__(
        self,
        reactor: Any,
        server: Any,
        runner: Any,
        *,
        interval: float = 1.0,
        ping_timeout: float = 1.0,
        frozen_after: int = 2,
        stable_after: float = 60.0,
        backoff: Backoff | None = None,
    ):
        self.reactor = reactor
        self.server = server
        self.runner = runner
        self.interval = interval
        self.ping_timeout = ping_timeout
        self.frozen_after = frozen_after
        self.stable_after = stable_after
        self.backoff = backoff or Backoff()
        self.restarts = 0  # successful spawns (for the log and tests)
        self._missed = 0  # unanswered pings in a row
        self._ping_in_flight = False
        self._down_since: float | None = None
        self._next_attempt: float | None = None
        self._answering_since: float | None = None
        self._loop: LoopingCall | None = None

    # -- queries -----------------------------------------------------------
    @property
    def status(self) -> str:
        if not self.server.alive() or self._down_since is not None:
            return DOWN
        if self._missed >= self.frozen_after:
            return UNRESPONSIVE
        return OK

    # -- commands ----------------------------------------------------------
    def start(self) -> None:
        self.runner.start()
        self._loop = LoopingCall(self.tick)
        self._loop.clock = self.reactor
        self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        """Stop watching (before the app stops Redis on purpose); the ping thread is joined."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        self.runner.stop()

    def tick(self) -> None:
        now = self.reactor.seconds()
        if not self.server.alive():
            self._dead(now)
            return
        if self._ping_in_flight:
            self._missed += 1
            self._answering_since = None
            return
        self._ping_in_flight = True
        d = self.runner(self.server.ping, self.ping_timeout)
        d.addBoth(self._pinged)

    # -- internals ---------------------------------------------------------
    def _dead(self, now: float) -> None:
        self._answering_since = None
        self._missed = 0
        if self._down_since is None:
            self._down_since = now
            log.error(
                "embedded redis-server exited unexpectedly; restarting it (log: {log_file})",
                log_file=str(self.server.log_file),
            )
        if self._next_attempt is None:
            self._next_attempt = now + self.backoff.next_delay()
        if now < self._next_attempt:
            return
        self._next_attempt = None
        try:
            self.server.spawn()
        except Exception as exc:  # binary gone, port taken...: try again later
            log.error("could not restart redis-server: {e}", e=str(exc))
            return
        self.restarts += 1
        log.warn("restarted redis-server (pid {pid}, attempt {n})", pid=self.server.pid, n=self.backoff.attempts)

    def _pinged(self, result: Any) -> None:
        self._ping_in_flight = False
        now = self.reactor.seconds()
        if result is True and self.server.alive():
            if self._missed >= self.frozen_after:
                log.info("embedded redis-server answers again")
            self._missed = 0
            if self._down_since is not None:
                log.info("embedded redis-server answers again after {s:.1f} s down", s=now - self._down_since)
                self._down_since = None
                self._next_attempt = None
            if self._answering_since is None:
                self._answering_since = now
            elif now - self._answering_since >= self.stable_after:
                self.backoff.reset()
            return
        self._answering_since = None
        if self._down_since is not None:
            return  # just spawned, not answering yet (or died again: the next tick sees it)
        self._missed += 1
        if self._missed == self.frozen_after:
            log.error(
                "embedded redis-server (pid {pid}) is alive but has not answered PING for {n} check(s): "
                "frozen or overloaded",
                pid=self.server.pid,
                n=self._missed,
            )
