"""The orders subsystem of ``callcenter serve``: the order desk on the reactor, persisted through
the records writer, restored from SQL at start.  Starts after ``records`` (it writes through the
writer) and before ``api`` (which serves the desk)."""

from __future__ import annotations

from twisted.internet import threads
from twisted.logger import Logger

from callcenter import metrics
from callcenter.records.db import normalize_url

from .book import OrderBook, OrderEvent
from .desk import OrderDesk
from .store import event_row, load_orders, order_row

log = Logger(namespace="callcenter.orders")


class OrdersSubsystem:
    def __init__(self, acd):
        self.acd = acd
        self.book = OrderBook(acd.config.orders)
        self.desk = OrderDesk(self.book, acd.reactor)
        self.listening: list[tuple[str, str]] = []
        self.desk.subscribe(self._event)
        self.collector = metrics.OrdersCollector(self.book, acd.reactor, reactor=acd.reactor)
        acd.orders = self.desk

    def _event(self, e: OrderEvent) -> None:
        o = self.book.orders.get(e.order_id)
        metrics.order_event_counted(e, o.urgency if o is not None else "")
        if o is not None and self.acd.records is not None:
            self.acd.records.order_changed(order_row(o, self.acd.reactor.seconds()), [event_row(e)])
        if e.kind == "escalated":
            log.warn("order {order} overdue: escalated to {to} ({level})", order=e.order_id, to=e.data["to"],
                     level=e.data["level"])

    def start(self):
        reactor = self.acd.reactor
        cfg = self.acd.config.orders
        d = threads.deferToThreadPool(reactor, reactor.getThreadPool(), load_orders,
                                      normalize_url(self.acd.database_url), reactor.seconds(), cfg.similar_days)

        def loaded(orders):
            n = self.desk.restored(orders)
            log.info("orders: {n} order(s) restored from SQL", n=n)

        def failed(failure):
            log.error("orders: cannot read the orders at start ({err}); starting with none",
                      err=failure.getErrorMessage())

        d.addCallbacks(loaded, failed)
        d.addCallback(lambda _: metrics.REGISTRY.register(self.collector))
        return d

    def stop(self):
        self.desk.stop()
        try:
            metrics.REGISTRY.unregister(self.collector)
        except KeyError:  # start did not get that far
            pass


def make_subsystem(acd) -> OrdersSubsystem:
    return OrdersSubsystem(acd)
