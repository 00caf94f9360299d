"""Where blocking Redis calls run.

redis-py is a blocking client, and the guide forbids Redis I/O on the reactor
thread.  Each user (the lease keeper, the state writer) gets its own
one-thread pool, so a slow snapshot write can never delay a lease renewal, and
calls from one user stay in order (one thread = FIFO).  A runner is a callable
``runner(fn, *args) -> Deferred`` that runs ``fn(*args)`` somewhere else.

:class:`InlineRunner` runs the call at once on the calling thread; tests that
drive a ``task.Clock`` use it to stay deterministic against a real Redis.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, threads
from twisted.python.threadpool import ThreadPool


class ThreadRunner:
    """One dedicated thread; results come back to the reactor as Deferreds."""

    def __init__(self, reactor: Any, name: str):
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name=name)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._pool.start()
            self._started = True

    def stop(self) -> None:
        """Finish the queued calls and join the thread (bounded by socket timeouts)."""
        if self._started:
            self._started = False
            self._pool.stop()

    def __call__(self, fn: Callable[..., Any], *args: Any) -> defer.Deferred:
        if not self._started:
            return defer.fail(RuntimeError("runner is stopped"))
        return threads.deferToThreadPool(self._reactor, self._pool, fn, *args)


class InlineRunner:
    """Runs the call immediately on the caller's thread (tests, benchmarks)."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def __call__(self, fn: Callable[..., Any], *args: Any) -> defer.Deferred:
        return defer.maybeDeferred(fn, *args)


class DaemonThreadRunner:
    """``runner(fn, *args) -> Deferred``: one daemon thread per call, result delivered on the reactor.

    For health probes (a PING, a ``SELECT 1``) that may hang on a frozen
    server: unlike :class:`ThreadRunner` nothing is joined at stop, so a stuck
    probe can delay neither the reactor nor shutdown.  Callers keep at most
    one probe in flight, so threads do not pile up.
    """

    def __init__(self, reactor: Any, name: str = "callcenter-probe"):
        self.reactor = reactor
        self.name = name

    def start(self) -> None:
        pass

    def stop(self) -> None:
        """Nothing to join: a probe stuck on a frozen server must not hold up shutdown."""

    def __call__(self, fn: Callable[..., Any], *args: Any) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()

        def run() -> None:
            try:
                result = fn(*args)
            except BaseException as exc:  # delivered as a failure, never raised in the thread
                self.reactor.callFromThread(d.errback, exc)
            else:
                self.reactor.callFromThread(d.callback, result)

        threading.Thread(target=run, name=self.name, daemon=True).start()
        return d
