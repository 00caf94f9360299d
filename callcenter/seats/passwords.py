"""Password checks on a small thread pool of their own, with a bounded queue.

An argon2 check costs tens of milliseconds of CPU and ~19 MiB of memory.  Run
in the reactor's shared thread pool, a login burst (or an attacker's parallel
wrong passwords) filled it, and every other blocking job queued behind the
checks: a knowledge-base search took 20 s (issue 16).  Here the checks get
``threads`` threads (default: one fewer than the CPUs, at least one, so the
reactor keeps a core) and at most ``max_queued`` waiting checks; beyond that a
login is refused at once with ``busy`` and a retry hint instead of queueing
without bound.  argon2-cffi releases the GIL while hashing, so a check on this
pool does not stall the reactor thread.  (Nicing the pool threads was tried:
on a contended host it cut checks from 25/s to 1/s, so the threads keep the
process's priority; one CPU is left to the reactor by the thread count.)

Twisted's ThreadPool has no queue bound of its own (``callInThreadWithCallback``
appends to an unbounded ``queue.Queue``), so the bound is counted here, on the
reactor thread: ``pending`` rises when a check is queued and falls when its
result is back on the reactor.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, threads
from twisted.python.threadpool import ThreadPool

__all__ = ["PasswordChecks", "Busy", "default_threads"]


class Busy(Exception):
    """Too many password checks are waiting; ``retry_after_s`` is a hint for the seat."""

    def __init__(self, retry_after_s: float):
        super().__init__(f"too many password checks waiting; retry in {retry_after_s:g} s")
        self.retry_after_s = retry_after_s


def default_threads() -> int:
    return max(1, min(4, (os.cpu_count() or 2) - 1))


class PasswordChecks:
    """``checks(fn, *args) -> Deferred``, or raises :class:`Busy` when the queue is full."""

    def __init__(self, reactor: Any, *, workers: int | None = None, max_queued: int = 200,
                 name: str = "seat-password-checks"):
        self.reactor = reactor
        self.threads = workers or default_threads()
        self.max_queued = max_queued
        self.pool = ThreadPool(minthreads=0, maxthreads=self.threads, name=name)
        self.pending = 0  # queued or running, counted on the reactor thread
        self.refused = 0
        self.check_s = 0.05  # moving average of one check's duration (wall), for the retry hint
        self._started = False

    def retry_after_s(self) -> float:
        """About how long the checks already waiting take (1-30 s): the hint sent with ``busy``."""
        return round(min(30.0, max(1.0, self.pending * self.check_s / self.threads)), 1)

    def __call__(self, fn: Callable[..., Any], *args: Any) -> defer.Deferred:
        if self.pending >= self.threads + self.max_queued:
            self.refused += 1
            raise Busy(self.retry_after_s())
        if not self._started:
            self.pool.start()
            self._started = True
        self.pending += 1

        def timed():
            start = time.monotonic()
            try:
                return fn(*args)
            finally:
                took = time.monotonic() - start
                self.check_s += 0.1 * (took - self.check_s)  # (a float store: safe across threads)

        def done(result):
            self.pending -= 1
            return result

        return threads.deferToThreadPool(self.reactor, self.pool, timed).addBoth(done)

    def stop(self) -> None:
        """Join the threads (the check running on each finishes first)."""
        if self._started:
            self._started = False
            self.pool.stop()
