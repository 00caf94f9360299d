"""The work-order core: state table, dispatch rules, deadlines on the working calendar, supervision."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from callcenter.orders import states as st
from callcenter.orders.book import NotOwner, OrderBook, OrderError
from callcenter.orders.calendar import WorkingCalendar
from callcenter.orders.rules import DeadlineRule, DispatchRule, OrdersConfig
from callcenter.orders.states import IllegalOrderTransition

TZ = ZoneInfo("Asia/Shanghai")


def at(y, mo, d, h=0, mi=0) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=TZ).timestamp()


MON = at(2026, 12, 7, 10)  # a Monday, 10:00 Beijing time

CFG = OrdersConfig(dispatch=[
    DispatchRule(category="epidemic", to="street"),
    DispatchRule(category="consumer", to="dept:market-regulation"),
    DispatchRule(category="housing", district="雁塔区", to="dept:yanta-housing"),
])


def new(book: OrderBook, oid: str, now: float = MON, **kw):
    base = {"category": "epidemic", "district": "雁塔区", "street": "小寨路街道", "summary": f"小区封控 物资配送不到 {oid}",
            "urgency": "ordinary", "created_by": "own-1", "call_ids": (f"call-{oid}",)}
    base.update(kw)
    return book.create(now, order_id=oid, **base)


def test_epidemic_orders_go_straight_to_the_street_with_a_deadline_and_one_owner():
    book = OrderBook(CFG)
    events = new(book, "o1", urgency="urgent")
    assert [e.kind for e in events] == ["created", "dispatched"]
    o = book.orders["o1"]
    assert o.state == st.DISPATCHED and o.owner == "street:雁塔区:小寨路街道"
    assert o.deadline == MON + 2 * 3600  # urgent: 2 hours round the clock
    new(book, "o2", category="consumer", summary="超市哄抬菜价")
    assert book.orders["o2"].owner == "dept:market-regulation"
    new(book, "o3", category="noise", summary="夜间施工噪音")
    assert book.orders["o3"].state == st.NEW and book.orders["o3"].owner == "dispatch-desk"
    assert book.check() == []


def test_ordinary_deadline_is_three_working_days_skipping_weekends_and_holidays():
    cal = WorkingCalendar(holidays=frozenset({date(2026, 12, 10)}))  # Thursday off
    book = OrderBook(CFG, calendar=cal)
    new(book, "o1")
    # Monday 10:00 + 3 working days: Tue, Wed, (Thu holiday), Fri -> Friday 17:30
    assert book.orders["o1"].deadline == at(2026, 12, 11, 17, 30)
    fri = at(2026, 12, 11, 16)
    assert cal.end_of_working_days(fri, 1) == at(2026, 12, 14, 17, 30)  # over the weekend
    swap = WorkingCalendar(workdays=frozenset({date(2026, 12, 12)}))  # 调休: Saturday worked
    assert swap.end_of_working_days(fri, 1) == at(2026, 12, 12, 17, 30)
    # working hours: Friday 16:00 + 3 h -> 1.5 h on Friday, 1.5 h from Monday 09:00
    assert cal.add_working_seconds(fri, 3 * 3600) == at(2026, 12, 14, 10, 30)


def test_category_specific_deadline_wins():
    cfg = CFG.model_copy(update={"deadlines": [*CFG.deadlines,
                                               DeadlineRule(urgency="ordinary", category="consumer", working_hours=4)]})
    book = OrderBook(cfg)
    new(book, "o1", category="consumer", summary="退货难")
    assert book.orders["o1"].deadline == MON + 4 * 3600


def test_reminder_then_escalation_levels_in_order_with_one_timer_entry_per_order():
    book = OrderBook(CFG)
    new(book, "o1", urgency="urgent")
    assert book.next_due() == MON + 0.75 * 7200  # reminder at 75% of the allowed time
    assert [e.kind for e in book.due(MON + 5400)] == ["reminded"]
    assert book.due(MON + 7199) == []
    (e,) = book.due(MON + 7200)
    assert e.kind == "escalated" and e.data["level"] == "unit" and e.data["to"] == "street:雁塔区:小寨路街道"
    evs = book.due(MON + 7200 + 30 * 3600)
    assert [(x.data["level"], x.data["to"]) for x in evs] == [("office", "supervision-office"), ("leader", "leader")]
    assert evs[0].at == MON + 7200 + 4 * 3600  # each step at its own time, not when asked
    assert book.next_due() is None and len(book._due) == 0


def test_closing_on_time_stops_supervision_and_the_visit_closes_or_reopens():
    book = OrderBook(CFG)
    new(book, "o1", urgency="urgent")
    unit = book.orders["o1"].owner
    book.accept(MON + 60, "o1", unit)
    book.progress(MON + 120, "o1", unit, "已联系社区")
    book.reply(MON + 600, "o1", unit, "物资今晚送达")
    (closed,) = book.close(MON + 900, "o1", unit, "已送达")
    assert closed.data["on_time"] is True and book.next_due() is None
    events = book.record_visit(MON + 3600, "o1", "own-2", satisfied=False, note="没收到")
    assert [e.kind for e in events] == ["visited", "reopened"]
    o = book.orders["o1"]
    assert o.state == st.DISPATCHED and o.owner == unit and o.reopened == 1
    assert o.deadline == MON + 3600 + 7200 and book.next_due() is not None
    book.accept(MON + 4000, "o1", unit)
    book.close(MON + 5000, "o1", unit, "已补送")
    book.record_visit(MON + 6000, "o1", "own-2", satisfied=True)
    assert book.orders["o1"].state == st.DONE
    with pytest.raises(IllegalOrderTransition):
        book.record_visit(MON + 7000, "o1", "own-2", satisfied=True)


def test_a_unit_returns_an_order_once_and_the_desk_reassigns():
    book = OrderBook(CFG)
    new(book, "o1")
    street = book.orders["o1"].owner
    with pytest.raises(OrderError):
        book.give_back(MON + 1, "o1", street, "  ")
    book.give_back(MON + 60, "o1", street, "不属于本街道")
    o = book.orders["o1"]
    assert o.state == st.RETURNED and o.owner == "dispatch-desk"
    assert book.check() == []
    book.dispatch(MON + 120, "o1", street, "desk-1")  # the desk insists
    with pytest.raises(OrderError, match="returned order o1 already"):
        book.give_back(MON + 180, "o1", street, "还是不属于")
    with pytest.raises(NotOwner):
        book.accept(MON + 200, "o1", "street:other")


def test_extension_needs_the_office_and_moves_the_deadline():
    book = OrderBook(CFG)
    new(book, "o1", urgency="urgent")
    unit = book.orders["o1"].owner
    book.accept(MON, "o1", unit)
    with pytest.raises(OrderError):
        book.request_extension(MON, "o1", unit, float("inf"), "x")
    book.request_extension(MON + 60, "o1", unit, 3600, "需协调物业")
    with pytest.raises(OrderError, match="pending"):
        book.request_extension(MON + 61, "o1", unit, 3600, "again")
    (e,) = book.decide_extension(MON + 120, "o1", "office-1", approve=True)
    assert e.data["approved"] and book.orders["o1"].deadline == MON + 3 * 3600
    book.request_extension(MON + 180, "o1", unit, 3600, "more")
    book.decide_extension(MON + 240, "o1", "office-1", approve=False)
    assert book.orders["o1"].deadline == MON + 3 * 3600


def test_repeated_requests_are_linked_not_duplicated():
    book = OrderBook(CFG)
    new(book, "o1", summary="小区封控三天了 物资配送不到 没有蔬菜")
    (e,) = new(book, "o2", now=MON + 600, summary="封控小区物资配送不到，缺蔬菜")
    assert e.kind == "linked" and e.order_id == "o1"
    assert "o2" not in book.orders and book.orders["o1"].linked == ["o2"]
    assert book.orders["o1"].call_ids == ["call-o1", "call-o2"]
    # another street, or another request at the same street, is its own order
    new(book, "o3", street="长延堡街道", summary="小区封控三天了 物资配送不到 没有蔬菜")
    new(book, "o4", summary="核酸检测点排队太长 希望增加检测点")
    assert {"o3", "o4"} <= set(book.orders)
    assert [o.id for o in book.clusters()] == ["o1"]


def test_resolved_on_spot_needs_no_unit():
    book = OrderBook(CFG)
    events = new(book, "o1", category="policy", summary="咨询健康码转码", resolved_on_spot=True, kb_article="kb-17")
    assert [e.kind for e in events] == ["created", "resolved-on-spot"]
    assert book.orders["o1"].state == st.DONE and book.orders["o1"].kb_article == "kb-17"
    assert book.next_due() is None


def test_illegal_commands_change_nothing():
    book = OrderBook(CFG)
    new(book, "o1", category="noise", summary="噪音")
    with pytest.raises(NotOwner):
        book.accept(MON, "o1", "street:x")
    with pytest.raises(OrderError):
        book.dispatch(MON, "o1", "dispatch-desk", "desk-1")
    assert book.orders["o1"].state == st.NEW and book.orders["o1"].owner == "dispatch-desk"


def test_config_refuses_unbounded_numbers_and_missing_defaults():
    with pytest.raises(ValueError):
        OrdersConfig(remind_at=float("nan"))
    with pytest.raises(ValueError):
        OrdersConfig(deadlines=[DeadlineRule(urgency="urgent", hours=2)])
    with pytest.raises(ValueError):
        DeadlineRule(urgency="urgent", hours=2, working_days=1)
    with pytest.raises(ValueError):
        DeadlineRule(urgency="urgent", hours=float("inf"))


def test_the_desk_fires_supervision_on_its_clock_with_one_timer():
    from twisted.internet.task import Clock

    from callcenter.orders.desk import OrderDesk

    clock = Clock()
    clock.advance(MON)
    desk = OrderDesk(OrderBook(CFG), clock)
    seen = []
    desk.subscribe(seen.append)
    desk.run("create", order_id="o1", category="epidemic", district="雁塔区", street="小寨路街道",
             summary="物资", urgency="urgent")
    desk.run("create", order_id="o2", category="epidemic", district="雁塔区", street="长延堡街道",
             summary="发热", urgency="urgent")
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(5400)
    assert [e.kind for e in seen[-2:]] == ["reminded", "reminded"]
    desk.run("accept", "o1", "street:雁塔区:小寨路街道")
    desk.run("close", "o1", "street:雁塔区:小寨路街道", "done")
    clock.advance(1800)
    assert [(e.order_id, e.kind) for e in seen[-1:]] == [("o2", "escalated")]
    assert len(clock.getDelayedCalls()) == 1
    desk.stop()
    assert clock.getDelayedCalls() == []
