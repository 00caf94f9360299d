"""A simulated day of work orders: 20,000 orders across 200 units with random unit behaviour.

The real order book (callcenter/orders/book.py) on the real desk (desk.py) runs on the
simulator's heap clock (callcenter/sim/clock.py): orders arrive over one day (peaks 09-11 and
14-16), go straight to a street or department by the dispatch rules or through the dispatch desk,
and units accept, report progress, sometimes return an order (wrong unit), ask for an extension,
close it; the hotline visits the caller back and 8% are dissatisfied (the order reopens).  A tenth
of the units are slow.  The run continues until every order is done.

Reports: on-time share (overall, urgent, ordinary, by unit speed), reminders and escalations by
level, returns, extensions, reopened orders, repeated requests linked, the CPU cost of the
supervision scheduler (time inside the book's ``due``/``next_due`` and the desk's timer), and
the invariants (every order always has an owner and a deadline), checked every simulated hour.

    .venv/bin/python benchmarks/orders.py [--orders 20000] [--units 200] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from callcenter.orders import states as st  # noqa: E402
from callcenter.orders.book import OrderBook  # noqa: E402
from callcenter.orders.desk import OrderDesk  # noqa: E402
from callcenter.orders.rules import DispatchRule, OrdersConfig  # noqa: E402
from callcenter.sim.clock import SimClock  # noqa: E402

PROFILE = [0.6, 0.4, 0.3, 0.25, 0.25, 0.4, 1.0, 2.5, 5.5, 8.0, 8.5, 7.5,
           5.5, 6.0, 7.5, 7.8, 7.2, 5.5, 4.0, 3.6, 3.3, 2.8, 2.0, 1.2]
DISTRICTS = ["新城区", "碑林区", "莲湖区", "灞桥区", "未央区", "雁塔区", "阎良区", "临潼区", "长安区", "高陵区"]
CATEGORIES = {  # category: (share, urgent share)
    "epidemic": (0.35, 0.5), "supplies": (0.15, 0.4), "medical": (0.10, 0.6), "consumer": (0.12, 0.0),
    "housing": (0.10, 0.0), "traffic": (0.08, 0.0), "noise": (0.10, 0.0),
}
DEPARTMENTS = ["dept:market-regulation", "dept:housing", "dept:transport", "dept:health", "dept:environment"]
TOPICS = ["小区封控 物资配送不到", "核酸检测点排队太长", "发热门诊在哪里", "健康码变黄无法出行", "药品购买困难",
          "超市哄抬物价", "物业不作为", "道路施工拥堵", "夜间施工噪音", "隔离酒店条件差", "外地返回如何报备"]
COMMUNITIES = ["曲江花园", "紫薇田园都市", "枫林绿洲", "锦园新世纪", "丈八北路小区", "翠华路社区", "长安大学家属院",
               "西影路小区", "含光门社区", "电子城小区", "明德门小区", "吉祥村", "八里村", "瓦胡同", "后村"]
DETAILS = ["老人独居需要帮助", "孩子发烧买不到药", "已经等了两天", "物业电话打不通", "社区说要等通知",
           "家里有孕妇", "楼下垃圾没人清运", "想知道解封时间", "上班需要出行证明", "快递进不来"]
REPEAT = 0.15  # share of requests that repeat an earlier one at the same street and category
MON = 1796608800.0  # Monday 2026-12-07 00:00 Beijing time


def build_config(streets: list[tuple[str, str]]) -> OrdersConfig:
    return OrdersConfig(dispatch=[
        DispatchRule(category="epidemic", to="street"),
        DispatchRule(category="supplies", to="street"),
        DispatchRule(category="medical", to="dept:health"),
        DispatchRule(category="consumer", to="dept:market-regulation"),
    ])


def run(n_orders: int, n_units: int, seed: int) -> dict:
    rng = random.Random(seed)
    n_streets = n_units - len(DEPARTMENTS)
    streets = [(DISTRICTS[i % len(DISTRICTS)], f"街道{i:03d}") for i in range(n_streets)]
    units = [f"street:{d}:{s}" for d, s in streets] + DEPARTMENTS
    slow = set(rng.sample(units, k=max(1, n_units // 10)))
    cfg = build_config(streets)
    clock = SimClock(MON)
    book = OrderBook(cfg)
    desk = OrderDesk(book, clock)
    counts: Counter = Counter()
    desk.subscribe(lambda e: counts.update([e.kind if e.kind != "escalated" else f"escalated-{e.data['level']}"]))
    violations: list[str] = []
    sched_cpu = [0.0]

    # time the supervision path: the book's due/next_due as the desk calls them
    due, next_due = book.due, book.next_due

    def timed_due(now):
        t0 = time.process_time()
        try:
            return due(now)
        finally:
            sched_cpu[0] += time.process_time() - t0

    def timed_next_due():
        t0 = time.process_time()
        try:
            return next_due()
        finally:
            sched_cpu[0] += time.process_time() - t0

    book.due, book.next_due = timed_due, timed_next_due

    def speed(unit: str) -> float:
        return 3.0 if unit in slow else 1.0

    def unit_takes(oid: str) -> None:
        o = book.orders.get(oid)
        if o is None or o.state != st.DISPATCHED:
            return
        unit = o.owner
        if rng.random() < 0.04 and o.returns.get(unit, 0) == 0:
            desk.run("give_back", oid, unit, "不属于本单位职责")
            clock.callLater(rng.uniform(300, 1800), desk_dispatches, oid)
            return
        desk.run("accept", oid, unit)
        allowed = o.deadline - clock.seconds()
        work = rng.lognormvariate(math.log(max(allowed, 600) * 0.45 * speed(unit)), 0.6)
        if rng.random() < 0.05:
            clock.callLater(work * 0.3, unit_asks_more_time, oid, unit)
        clock.callLater(work * 0.5, unit_progress, oid, unit)
        clock.callLater(work, unit_closes, oid, unit)

    def unit_progress(oid: str, unit: str) -> None:
        o = book.orders[oid]
        if o.owner == unit and o.state == st.ACCEPTED:
            desk.run("progress", oid, unit, "已联系当事人, 正在处理")

    def unit_asks_more_time(oid: str, unit: str) -> None:
        o = book.orders[oid]
        if o.owner == unit and o.state == st.ACCEPTED and o.extension is None:
            desk.run("request_extension", oid, unit, 86400.0, "需协调多个部门")
            clock.callLater(rng.uniform(600, 7200), office_decides, oid)

    def office_decides(oid: str) -> None:
        if book.orders[oid].extension is not None:
            desk.run("decide_extension", oid, "office-1", rng.random() < 0.7)

    def unit_closes(oid: str, unit: str) -> None:
        o = book.orders[oid]
        if o.owner != unit or o.state != st.ACCEPTED:
            return
        if o.reply_wanted:
            desk.run("reply", oid, unit, "已处理完毕, 请您放心")
        desk.run("close", oid, unit, "已办结")
        clock.callLater(rng.uniform(3600, 2 * 86400), hotline_visits, oid)

    def hotline_visits(oid: str) -> None:
        o = book.orders[oid]
        if o.state == st.CLOSED:
            desk.run("record_visit", oid, "own-1", rng.random() >= 0.08)
            if o.state == st.DISPATCHED:  # reopened
                clock.callLater(rng.uniform(60, 3600), unit_takes, oid)

    def desk_dispatches(oid: str) -> None:
        o = book.orders[oid]
        if o.state in (st.NEW, st.RETURNED):
            choices = [u for u in units if o.returns.get(u, 0) == 0 or u == o.owner]
            desk.run("dispatch", oid, rng.choice(choices), "desk-1")
            clock.callLater(rng.uniform(60, 3600), unit_takes, oid)

    def arrive(i: int) -> None:
        cat = rng.choices(list(CATEGORIES), weights=[v[0] for v in CATEGORIES.values()])[0]
        district, street = rng.choice(streets)
        urgent = rng.random() < CATEGORIES[cat][1]
        oid = f"WO{i:06d}"
        previous = recent.get((cat, district, street))
        if previous is not None and rng.random() < REPEAT:  # the same request again, in other words
            planted.add(oid)
            summary = previous + rng.choice(["，还没人管", "，请尽快处理", "，第二次反映了"])
        else:
            summary = (f"{rng.choice(COMMUNITIES)}{rng.randrange(1, 40)}号楼 {rng.choice(TOPICS)}，"
                       f"{rng.choice(DETAILS)}")
            recent[(cat, district, street)] = summary
        events = desk.run("create", order_id=oid, category=cat, district=district, street=street,
                          summary=summary, urgency="urgent" if urgent else "ordinary",
                          reply_wanted=rng.random() < 0.7, call_ids=(f"call-{i}",), created_by="own-1")
        if events[0].kind == "linked":
            return
        o = book.orders[oid]
        if o.state == st.NEW:
            clock.callLater(rng.uniform(60, 1200), desk_dispatches, oid)
        else:
            clock.callLater(rng.uniform(60, 3600 if not urgent else 900), unit_takes, oid)

    recent: dict[tuple[str, str, str], str] = {}
    planted: set[str] = set()
    linked_ids: set[str] = set()
    desk.subscribe(lambda e: linked_ids.add(e.data["request"]) if e.kind == "linked" else None)
    # arrivals: the day's profile, Poisson within each hour
    total = sum(PROFILE)
    t_arrivals = []
    for h, w in enumerate(PROFILE):
        n = round(n_orders * w / total)
        t_arrivals += [MON + h * 3600 + rng.random() * 3600 for _ in range(n)]
    t_arrivals.sort()
    for i, t in enumerate(t_arrivals):
        clock.callLater(t - MON, arrive, i)

    def audit() -> None:
        violations.extend(book.check())
        if any(o.state in st.OPEN_STATES for o in book.orders.values()) or clock.seconds() < MON + 86400:
            clock.callLater(3600, audit)

    clock.callLater(3600, audit)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    clock.run()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    orders = list(book.orders.values())
    closed = [o for o in orders if o.on_time is not None]
    urgent = [o for o in closed if o.urgency == "urgent"]
    ordinary = [o for o in closed if o.urgency == "ordinary"]
    slow_closed = [o for o in closed if o.owner in slow]

    def share(xs):
        return round(sum(o.on_time for o in xs) / len(xs), 4) if xs else None

    return {
        "benchmark": "orders", "seed": seed, "requests": len(t_arrivals), "orders": len(orders),
        "linked_requests": counts["linked"], "planted_repeats": len(planted),
        "planted_repeats_linked": len(planted & linked_ids),
        "other_requests_linked": len(linked_ids - planted), "units": n_units, "slow_units": len(slow),
        "done": sum(o.state == st.DONE for o in orders), "still_open": sum(o.state != st.DONE for o in orders),
        "on_time_share": share(closed), "on_time_urgent": share(urgent), "on_time_ordinary": share(ordinary),
        "on_time_slow_units": share(slow_closed),
        "reminders": counts["reminded"], "escalated_unit": counts["escalated-unit"],
        "escalated_office": counts["escalated-office"], "escalated_leader": counts["escalated-leader"],
        "returned": counts["returned"], "extensions_requested": counts["extension-requested"],
        "reopened": counts["reopened"], "sim_days": round((clock.seconds() - MON) / 86400, 2),
        "invariant_violations": len(violations), "scheduler_cpu_s": round(sched_cpu[0], 4),
        "scheduler_us_per_order": round(1e6 * sched_cpu[0] / max(len(orders), 1), 2),
        "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=20_000)
    ap.add_argument("--units", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    r = run(args.orders, args.units, args.seed)
    print(f"A simulated day: {r['requests']:,} requests -> {r['orders']:,} orders "
          f"({r['linked_requests']:,} repeats linked), {r['units']} units ({r['slow_units']} slow)")
    print(f"  planted repeats {r['planted_repeats']:,}, of which linked {r['planted_repeats_linked']:,}; "
          f"other requests linked (same street, category and similar words) {r['other_requests_linked']:,}")
    print(f"  all done after {r['sim_days']} simulated days; still open: {r['still_open']}")
    print(f"  on time: {100 * r['on_time_share']:.1f}% (urgent {100 * r['on_time_urgent']:.1f}%, ordinary "
          f"{100 * r['on_time_ordinary']:.1f}%, slow units {100 * r['on_time_slow_units']:.1f}%)")
    print(f"  reminders {r['reminders']:,}; escalations: unit {r['escalated_unit']:,}, office "
          f"{r['escalated_office']:,}, leader {r['escalated_leader']:,}")
    print(f"  returned {r['returned']:,}, extensions asked {r['extensions_requested']:,}, reopened {r['reopened']:,}")
    print(f"  supervision scheduler: {r['scheduler_cpu_s']:.3f} CPU s in all, {r['scheduler_us_per_order']:.1f} µs "
          f"per order; whole run {r['cpu_s']:.2f} CPU s")
    print(f"  invariant violations (owner, deadline), checked hourly: {r['invariant_violations']}")
    print(json.dumps(r, ensure_ascii=False))
    return 0 if r["invariant_violations"] == 0 and r["still_open"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
