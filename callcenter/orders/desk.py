"""The order desk: the order book on a clock.  Commands run at ``clock.seconds()``; events go to
listeners (records, metrics, the seats); one timer, re-armed after every change, fires the
book's reminders and escalations when they are due.  Takes any ``IReactorTime``: the reactor in
the ACD, ``task.Clock`` in tests, the simulator's clock in benchmarks/orders.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from .book import Order, OrderBook, OrderEvent

__all__ = ["OrderDesk"]


class OrderDesk:
    def __init__(self, book: OrderBook, clock: IReactorTime, new_id: Callable[[], str] | None = None):
        self.book = book
        self.clock = clock
        self.new_id = new_id or (lambda: "WO" + uuid.uuid4().hex[:12].upper())
        self._listeners: list[Callable[[OrderEvent], None]] = []
        self._timer: IDelayedCall | None = None
        self._timer_at: float | None = None

    def subscribe(self, listener: Callable[[OrderEvent], None]) -> None:
        self._listeners.append(listener)

    def run(self, command: str, *args, **kw) -> list[OrderEvent]:
        """Run a book command (``create``, ``accept``, ...) now; errors propagate, nothing changed."""
        events = getattr(self.book, command)(self.clock.seconds(), *args, **kw)
        self._publish(events)
        self._rearm()
        return events

    def restored(self, orders: Iterable[Order]) -> int:
        """Orders read back from SQL at start: into the book, and supervision re-armed."""
        n = 0
        for o in orders:
            self.book.restore(o)
            n += 1
        self._rearm()
        return n

    def _publish(self, events: list[OrderEvent]) -> None:
        for e in events:
            for listener in self._listeners:
                listener(e)

    def _rearm(self) -> None:
        at = self.book.next_due()
        if at == self._timer_at and self._timer is not None and self._timer.active():
            return
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer, self._timer_at = None, at
        if at is not None:
            self._timer = self.clock.callLater(max(0.0, at - self.clock.seconds()), self._fired)

    def _fired(self) -> None:
        self._timer = self._timer_at = None
        self._publish(self.book.due(self.clock.seconds()))
        self._rearm()

    def stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self._timer_at = None
