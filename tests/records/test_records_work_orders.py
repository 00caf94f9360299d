"""Work orders written through the records writer and read back at start, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.orders import states as st
from callcenter.orders.book import OrderBook
from callcenter.orders.rules import DispatchRule, OrdersConfig
from callcenter.orders.store import event_row, load_orders, order_row
from callcenter.records import models as m

CFG = OrdersConfig(dispatch=[DispatchRule(category="epidemic", to="street")])
T0 = 1_796_700_000.0


def test_orders_survive_a_restart_with_owner_deadline_and_supervision(migrated_db, make_writer):
    writer = make_writer()
    book = OrderBook(CFG)

    def persist(events, now):
        for e in events:
            assert writer.order_changed(order_row(book.orders[e.order_id], now), [event_row(e)])

    persist(book.create(T0, order_id="WO1", category="epidemic", district="雁塔区", street="小寨路街道",
                        summary="物资配送不到", urgency="urgent", call_ids=("c1",)), T0)
    persist(book.create(T0 + 1, order_id="WO2", category="noise", summary="夜间施工"), T0 + 1)
    persist(book.create(T0 + 2, order_id="WO3", category="epidemic", district="雁塔区", street="小寨路街道",
                        summary="物资配送不到了", call_ids=("c3",)), T0 + 2)  # linked to WO1
    unit = book.orders["WO1"].owner
    persist(book.accept(T0 + 60, "WO1", unit), T0 + 60)
    persist(book.due(T0 + 5400), T0 + 5400)  # the reminder
    assert writer.wait_written(timeout=30)

    with Session(migrated_db.engine) as s:
        kinds = s.scalars(select(m.WorkOrderEvent.kind).where(m.WorkOrderEvent.order_id == "WO1")
                          .order_by(m.WorkOrderEvent.id)).all()
        assert kinds == ["created", "dispatched", "linked", "accepted", "reminded"]
        row = s.get(m.WorkOrder, "WO1")
        assert row.owner == unit and row.linked == ["WO3"] and row.call_ids == ["c1", "c3"] and row.reminded

    restored = OrderBook(CFG)
    for o in load_orders(migrated_db.url, T0 + 5400, CFG.similar_days):
        restored.restore(o)
    o = restored.orders["WO1"]
    assert (o.state, o.owner, o.deadline, o.reminded) == (st.ACCEPTED, unit, book.orders["WO1"].deadline, True)
    assert restored.orders["WO2"].owner == "dispatch-desk"
    assert restored.check() == []
    # supervision picks up where it was: the escalation at the deadline is next
    assert restored.next_due() == o.deadline
    (e,) = restored.due(o.deadline)
    assert e.kind == "escalated" and e.data["level"] == "unit"
