"""Generated records for report tests and benchmarks/reports.py: days of CDRs, wrap-ups and work
orders with a known mix of topics, and optionally a planted hot topic (a new term, and a term
rising in one district).  Seeded; bulk-inserted with executemany."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert

from callcenter.records import models as m

__all__ = ["TOPICS", "DISTRICTS", "fill_day"]

TOPICS = ["核酸检测点排队太长", "健康码变黄无法出行", "小区封控物资配送不到", "发热门诊在哪里", "隔离酒店条件差",
          "预付卡退费难", "物业不作为", "夜间施工噪音", "小区停水", "公积金提取", "社保卡补办", "医保报销比例",
          "出行证明怎么开", "快递进不了小区", "买不到常用药品", "学校网课安排", "房租减免", "工资拖欠",
          "超市哄抬物价", "车辆通行证办理", "疫苗接种预约", "返乡报备流程", "核酸结果查不到", "方舱医院转运",
          "心理疏导热线", "垃圾清运不及时"]
DISTRICTS = ["新城区", "碑林区", "莲湖区", "灞桥区", "未央区", "雁塔区", "阎良区", "临潼区", "长安区", "高陵区"]
CATEGORIES = ["epidemic", "supplies", "medical", "consumer", "housing", "traffic", "labour"]
PROFILE = [0.6, 0.4, 0.3, 0.25, 0.25, 0.4, 1.0, 2.5, 5.5, 8.0, 8.5, 7.5,
           5.5, 6.0, 7.5, 7.8, 7.2, 5.5, 4.0, 3.6, 3.3, 2.8, 2.0, 1.2]
POOLS = [("own-12345", 0, 0.7), ("remote-cities", 1, 0.2), ("lender-12333", 2, 0.05), ("lender-12315", 2, 0.05)]


def fill_day(engine: Engine, day: datetime, *, calls: int, orders: int, rng: random.Random,
             burst: tuple[str, float] | None = None, district_burst: tuple[str, str, float] | None = None,
             zone: str = "Asia/Shanghai", prefix: str = "") -> None:
    """One local day of records.  ``burst`` (term, share of texts) plants a hot term everywhere;
    ``district_burst`` (district, term, share) in one district's orders only."""
    tz = ZoneInfo(zone)
    start = day.replace(tzinfo=tz).astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
    weights = [1 / (k + 1) for k in range(len(TOPICS))]
    tot = sum(PROFILE)
    hours = rng.choices(range(24), weights=[p / tot for p in PROFILE], k=calls)
    tag = prefix + day.strftime("%Y%m%d")
    cdr, wrapups, rows = [], [], []
    for i, h in enumerate(hours):
        t = start + timedelta(hours=h, seconds=rng.random() * 3600)
        r = rng.random()
        outcome = "answered" if r < 0.85 else "abandoned" if r < 0.97 else "shed"
        wait = rng.expovariate(1 / 12)
        pool, tier, _ = rng.choices(POOLS, weights=[p[2] for p in POOLS])[0]
        cid = f"{tag}.{i}"
        cdr.append({"call_id": cid, "caller_masked": "138****", "caller_hash": None, "queue": "hotline-12345",
                    "category": rng.choice(CATEGORIES), "priority": 0, "arrival": t,
                    "answered_at": t + timedelta(seconds=wait) if outcome == "answered" else None,
                    "ended_at": t + timedelta(seconds=wait + 200), "outcome": outcome, "reason": "",
                    "wait_s": wait, "talk_s": 200.0 if outcome == "answered" else 0.0, "wrapup_s": None,
                    "short_abandon": False, "agent_id": "a1" if outcome == "answered" else None,
                    "pool": pool if outcome == "answered" else None, "tier": tier if outcome == "answered" else None,
                    "emergency_plan": None, "callback": False, "choices": []})
        if outcome == "answered" and rng.random() < 0.5:
            text = "，".join(rng.choices(TOPICS, weights=weights, k=rng.randint(1, 2)))
            if burst and rng.random() < burst[1]:
                text += f"，{burst[0]}"
            wrapups.append({"call_id": cid, "agent_id": "a1", "pool": pool, "disposition": "resolved",
                            "notes": text, "ticket": {}, "at": t + timedelta(seconds=wait + 220)})
    for j in range(orders):
        t = start + timedelta(hours=rng.choices(range(24), weights=PROFILE)[0], seconds=rng.random() * 3600)
        district = rng.choice(DISTRICTS)
        summary = rng.choices(TOPICS, weights=weights)[0]
        words = "，".join(rng.choices(TOPICS, weights=weights, k=1))
        if burst and rng.random() < burst[1]:
            words += f"，{burst[0]}"
        if district_burst and district == district_burst[0] and rng.random() < district_burst[2]:
            words += f"，{district_burst[1]}"
        urgent = rng.random() < 0.2
        deadline = t + timedelta(hours=2 if urgent else 72)
        closed = t + timedelta(hours=rng.uniform(0.5, 100)) if rng.random() < 0.8 else None
        on_time = None if closed is None else closed <= deadline
        rows.append({"id": f"WO{tag}{j:06d}", "created_at": t, "category": rng.choice(CATEGORIES),
                     "district": district, "street": f"街道{rng.randrange(20):02d}", "address": "", "summary": summary,
                     "request_text": words, "urgency": "urgent" if urgent else "ordinary", "reply_wanted": True,
                     "created_by": "a1", "call_ids": [], "state": "closed" if closed else "accepted",
                     "owner": f"street:{district}:街道{rng.randrange(20):02d}", "started_at": t, "deadline": deadline,
                     "closed_at": closed, "on_time": on_time, "result": "", "reply": "", "kb_article": None,
                     "returns": {}, "extension": None, "escalation_level": -1, "reminded": False, "reopened": 0,
                     "linked": [f"r{j}"] if rng.random() < 0.05 else [], "updated_at": t})
    with engine.begin() as conn:
        for table, data in ((m.CallRecord, cdr), (m.Wrapup, wrapups), (m.WorkOrder, rows)):
            for k in range(0, len(data), 5000):
                conn.execute(insert(table), data[k:k + 5000])
