"""Hot topics: planted bursts are found, ordinary days raise no alarm (seeded generated data)."""

from __future__ import annotations

import random
import re

import pytest

from callcenter.reports.hot import count_terms, hot_terms, poisson_sf

WORDS = ["核酸检测", "健康码", "物资配送", "小区封控", "发热门诊", "隔离酒店", "退费", "物业", "噪音", "停水",
         "公积金", "社保", "医保报销", "出行证明", "快递", "外卖", "药品", "学校", "网课", "房租", "工资拖欠",
         "预付卡", "哄抬物价", "车辆通行", "疫苗接种", "返乡报备", "核酸结果", "方舱", "心理疏导", "垃圾清运"]
DISTRICTS = ["雁塔区", "碑林区", "莲湖区", "未央区"]


def segment(text: str):
    return [w for w in re.split(r"[，\s]+", text) if w]


def day(rng: random.Random, n: int, extra: dict[str, float] | None = None, district_extra=None):
    weights = [1 / (k + 1) for k in range(len(WORDS))]  # Zipf-like
    texts = []
    for _ in range(n):
        d = rng.choice(DISTRICTS)
        words = set(rng.choices(WORDS, weights=weights, k=rng.randint(1, 3)))
        for w, p in (extra or {}).items():
            if rng.random() < p:
                words.add(w)
        if district_extra and d == district_extra[0] and rng.random() < district_extra[2]:
            words.add(district_extra[1])
        texts.append((d, "，".join(sorted(words))))
    return texts


def test_poisson_tail_is_right_far_out():
    assert poisson_sf(0, 3.0) == 1.0
    assert poisson_sf(1, 2.0) == pytest.approx(1 - 2.718281828459045 ** -2)
    assert poisson_sf(50, 5.0) == pytest.approx(4.2e-26, rel=0.1)  # computed in log space, not 0
    assert poisson_sf(3, 0.0) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_no_alarm_on_an_ordinary_day(seed):
    rng = random.Random(seed)
    baseline = [t for _ in range(14) for t in day(rng, 800)]
    result = hot_terms(day(rng, 1200), count_terms(baseline, segment), segment)  # more calls than usual, same mix
    assert result["overall"] == [] and result["districts"] == {}


@pytest.mark.parametrize("seed", range(5))
def test_planted_bursts_are_found_new_and_rising_and_by_district(seed):
    rng = random.Random(100 + seed)
    baseline = [t for _ in range(14) for t in day(rng, 800)]
    today = day(rng, 800, extra={"核酸点关闭": 0.02, "退费": 0.06},
                district_extra=("未央区", "停电", 0.08))
    result = hot_terms(today, count_terms(baseline, segment), segment)
    found = {h.term: h for h in result["overall"]}
    assert found["核酸点关闭"].new and found["核酸点关闭"].count >= 5
    assert "退费" in found and not found["退费"].new and found["退费"].count > 1.5 * found["退费"].expected
    assert "停电" in {h.term for h in result["districts"].get("未央区", [])}
    # nothing else: the planted terms are the only hot ones
    assert set(found) <= {"核酸点关闭", "退费", "停电"}


def test_examples_are_masked_and_short():
    today = [("雁塔区", f"停电 停电了 电话13912345678 第{i}次") for i in range(10)]
    result = hot_terms(today, count_terms([("雁塔区", "物业")] * 50, segment), segment, mask=lambda s: s.replace("13912345678", "139****5678"))
    (h,) = [h for h in result["overall"] if h.term == "停电"]
    assert all("13912345678" not in e and len(e) <= 120 for e in h.examples)
