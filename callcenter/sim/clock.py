"""A heap-based simulated clock implementing twisted's ``IReactorTime``.

The simulator runs the real :class:`callcenter.engine.Engine` on this clock,
so nothing sleeps: time jumps from one scheduled call to the next.
``twisted.internet.task.Clock`` keeps its calls in a list that it re-sorts on
every ``callLater`` and pops from the front, which is O(n log n) per timer --
far too slow for a day of 80,000 calls with thousands of pending timers.  Here
pending calls live in a binary heap (``heapq``) keyed by (time, sequence):

* ``callLater`` is O(log n);
* ``cancel`` marks the call dead and leaves its heap entry behind (lazy
  deletion; the heap is compacted when dead entries outnumber live ones);
* ``reset``/``delay`` push a fresh entry and orphan the old one;
* calls due at the same instant run in the order they were scheduled (the
  sequence number), as with ``task.Clock``, so a run is deterministic.

The clock runs about twenty calls per simulated call, so the hot paths are
kept flat: a call without keyword arguments stores ``kw=None`` and runs as
``func(*args)`` (no empty dict built and unpacked), ``cancel`` checks the
compaction condition inline rather than through a method call, and
``calls_run`` is brought up to date when ``run_until`` returns (or raises).

Like ``task.Clock``, :meth:`advance` moves time forward and runs everything
due, including calls scheduled (for "now") by those calls.  Unlike it, each
call runs with ``seconds()`` equal to its own scheduled time (task.Clock
reports the end of the advance): a simulated event happens exactly when it
was due, whatever step the driver advances by.
Exceptions raised by a call propagate to the caller of :meth:`advance` /
:meth:`run` -- in a simulation a failing timer is a bug to see, not to log.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Any

from twisted.internet.error import AlreadyCalled, AlreadyCancelled
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from zope.interface import implementer

__all__ = ["SimClock", "SimDelayedCall"]

_heappush = heapq.heappush


@implementer(IDelayedCall)
class SimDelayedCall:
    """One pending call on a :class:`SimClock` (``IDelayedCall``)."""

    __slots__ = ("time", "func", "args", "kw", "cancelled", "called", "_clock", "_seq")

    def __init__(self, clock: SimClock, time: float, func: Callable[..., Any], args: tuple, kw: dict, seq: int):
        self.time = time
        self.func = func
        self.args = args
        self.kw = kw
        self.cancelled = 0
        self.called = 0
        self._clock = clock
        self._seq = seq

    def getTime(self) -> float:
        return self.time

    def active(self) -> bool:
        return not (self.cancelled or self.called)

    def cancel(self) -> None:
        if self.cancelled:
            raise AlreadyCancelled()
        if self.called:
            raise AlreadyCalled()
        self.cancelled = 1
        self.func = self.args = self.kw = None
        clock = self._clock
        clock._dead = dead = clock._dead + 1
        clock._live = live = clock._live - 1
        if dead > 1024 and dead > live:
            clock._compact()

    def reset(self, secondsFromNow: float) -> None:
        if self.cancelled:
            raise AlreadyCancelled()
        if self.called:
            raise AlreadyCalled()
        self._clock._reschedule(self, self._clock.now + secondsFromNow)

    def delay(self, secondsLater: float) -> None:
        if self.cancelled:
            raise AlreadyCancelled()
        if self.called:
            raise AlreadyCalled()
        self._clock._reschedule(self, self.time + secondsLater)

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else "called" if self.called else "pending"
        name = getattr(self.func, "__qualname__", repr(self.func))
        return f"<SimDelayedCall t={self.time:.3f} {state} {name}>"


@implementer(IReactorTime)
class SimClock:
    """Simulated time for the engine: ``seconds``/``callLater``/``getDelayedCalls``.

    ``start`` is the initial time in seconds (a simulated day usually starts at
    0 = midnight).
    """

    def __init__(self, start: float = 0.0):
        self.now = float(start)
        self._heap: list[tuple[float, int, SimDelayedCall]] = []
        self._seq = 0
        self._live = 0
        self._dead = 0  # heap entries that no longer fire (cancelled or rescheduled)
        self.calls_run = 0

    # -- IReactorTime -------------------------------------------------------
    def seconds(self) -> float:
        return self.now

    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any) -> SimDelayedCall:
        t = self.now + delay if delay > 0 else self.now
        self._seq = seq = self._seq + 1
        dc = SimDelayedCall(self, t, callable, args, kw or None, seq)
        _heappush(self._heap, (t, seq, dc))
        self._live += 1
        return dc

    def getDelayedCalls(self) -> list[SimDelayedCall]:
        return sorted(
            (dc for (_t, seq, dc) in self._heap if dc._seq == seq and not dc.cancelled and not dc.called),
            key=lambda dc: (dc.time, dc._seq),
        )

    # -- driving time -------------------------------------------------------
    def advance(self, amount: float) -> None:
        """Move time forward by ``amount`` seconds, running every call due."""
        self.run_until(self.now + amount)

    def run_until(self, until: float) -> None:
        """Run calls due at or before ``until``, then set the time to ``until``."""
        heap = self._heap
        pop = heapq.heappop
        ran = 0  # booked into calls_run once, at the end (also when a call raises)
        try:
            while heap and heap[0][0] <= until:
                t, seq, dc = pop(heap)
                if dc._seq != seq or dc.cancelled:
                    self._dead -= 1
                    continue
                self.now = t
                dc.called = 1
                self._live -= 1
                ran += 1
                func, args, kw = dc.func, dc.args, dc.kw
                dc.func = dc.args = dc.kw = None
                if kw is None:
                    func(*args)
                else:
                    func(*args, **kw)
        finally:
            self.calls_run += ran
        if until > self.now and until != math.inf:
            self.now = until

    def run(self) -> None:
        """Run until nothing is pending (time stays at the last call's time)."""
        self.run_until(math.inf)

    def next_time(self) -> float | None:
        """Time of the next live call, or None when nothing is pending."""
        heap = self._heap
        while heap:
            t, seq, dc = heap[0]
            if dc._seq == seq and not dc.cancelled:
                return t
            heapq.heappop(heap)
            self._dead -= 1
        return None

    @property
    def pending(self) -> int:
        """Number of live pending calls."""
        return self._live

    # -- internals ----------------------------------------------------------
    def _reschedule(self, dc: SimDelayedCall, t: float) -> None:
        if t < self.now:
            t = self.now
        self._seq += 1
        dc.time = t
        dc._seq = self._seq
        self._dead += 1
        heapq.heappush(self._heap, (t, self._seq, dc))
        self._maybe_compact()

    def _maybe_compact(self) -> None:
        if self._dead > 1024 and self._dead > self._live:
            self._compact()

    def _compact(self) -> None:
        """Drop the dead entries (cancelled or rescheduled) once they outnumber the live ones."""
        # in place: run_until holds a reference to the list
        self._heap[:] = [e for e in self._heap if e[2]._seq == e[1] and not e[2].cancelled]
        heapq.heapify(self._heap)
        self._dead = 0

    def __repr__(self) -> str:
        return f"<SimClock t={self.now:.3f} pending={self._live}>"
