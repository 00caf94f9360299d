"""Hot topics: terms whose count today is far above what the trailing days make likely.

For each term, today's count ``x`` (in how many of today's texts it appears) is compared with
its trailing-days baseline.  The expected count is the term's share of the baseline texts times
today's number of texts, with half a text of prior so that a term never seen before has a small,
non-zero expectation::

    lambda = (baseline_count + 0.5) / (baseline_texts + 1) * today_texts

Under "nothing changed" ``x`` is Poisson(lambda).  The burst score is ``-log10 P(X >= x)``, and a
term is hot when ``x >= min_count`` and its p-value is below ``alpha / terms_tested``
(Bonferroni: with thousands of terms tested a day, a plain 1% threshold would flag dozens by
chance).  A term absent from every baseline day is reported as new.  The same test runs per
district on that district's texts.  Pure: texts in, figures out; the caller segments.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["HotTerm", "TermCounts", "count_terms", "poisson_sf", "hot_terms", "STOPWORDS", "terms_of"]

# Words every request has; they say nothing about what changed.
STOPWORDS = frozenset(
    "的 了 是 在 我 有 和 就 不 人 都 一 一个 上 也 很 到 说 要 去 你 会 着 没有 看 好 自己 这 那 他 她 它 们 我们 你们 "
    "他们 请 请问 问 一下 怎么 怎么办 什么 为什么 哪里 哪儿 能 可以 吗 呢 吧 啊 呀 还 又 再 但是 因为 所以 如果 "
    "已经 现在 今天 昨天 明天 这个 那个 这里 那里 情况 问题 反映 咨询 希望 需要 相关 部门 处理 市民 来电 电话 "
    "热线 工作人员 谢谢 你好 您好 及时 尽快 一直 没 还是 给 让 被 把 对 从 向 与 及 等 并 或 而 之 其".split()
)


def poisson_sf(x: int, lam: float) -> float:
    """P(X >= x) for X ~ Poisson(lam), accurate in the far tail (summed in log space)."""
    if x <= 0:
        return 1.0
    if lam <= 0:
        return 0.0
    if x <= lam:
        # below the mean: 1 - P(X <= x - 1), fine in linear space
        term = math.exp(-lam)
        cdf = term
        for k in range(1, x):
            term *= lam / k
            cdf += term
        return max(0.0, 1.0 - cdf)
    # the upper tail: sum from x while the terms matter
    log_term = -lam + x * math.log(lam) - math.lgamma(x + 1)
    total = 0.0
    k = x
    term = math.exp(log_term)
    while term > total * 1e-17 and k < x + 10_000:
        total += term
        k += 1
        term *= lam / k
    return min(1.0, total)


@dataclass
class HotTerm:
    term: str
    count: int  # texts today that contain it
    expected: float
    score: float  # -log10 p
    new: bool
    district: str | None = None
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"term": self.term, "count": self.count, "expected": round(self.expected, 3),
                "ratio": round(self.count / self.expected, 2) if self.expected else None,
                "score": round(self.score, 2), "new": self.new, "district": self.district,
                "examples": list(self.examples)}


def terms_of(text: str, segment: Callable[[str], Iterable[str]]) -> set[str]:
    """The distinct terms of one text worth counting: no stop words, no single characters, no numbers."""
    out = set()
    for w in segment(text):
        w = w.strip()
        if len(w) >= 2 and w not in STOPWORDS and not w.isdigit() and any("\u3400" <= c <= "\u9fff" or c.isalpha()
                                                                             for c in w):
            out.add(w)
    return out


@dataclass
class TermCounts:
    """How many texts there were and how many contained each term, overall and per district: all the
    baseline needs, so a past day is segmented once and its counts kept (build.py caches them)."""

    texts: int = 0
    terms: Counter = field(default_factory=Counter)
    districts: dict[str, tuple[int, Counter]] = field(default_factory=dict)

    def add(self, other: TermCounts) -> TermCounts:
        self.texts += other.texts
        self.terms.update(other.terms)
        for d, (n, c) in other.districts.items():
            m, mine = self.districts.get(d, (0, Counter()))
            mine.update(c)
            self.districts[d] = (m + n, mine)
        return self

    def to_json(self) -> dict:
        return {"texts": self.texts, "terms": dict(self.terms),
                "districts": {d: {"texts": n, "terms": dict(c)} for d, (n, c) in self.districts.items()}}

    @classmethod
    def from_json(cls, data: dict) -> TermCounts:
        return cls(int(data["texts"]), Counter(data["terms"]),
                   {d: (int(v["texts"]), Counter(v["terms"])) for d, v in data["districts"].items()})


def count_terms(texts: Iterable[tuple[str, str]], segment: Callable[[str], Iterable[str]]) -> TermCounts:
    out = TermCounts()
    for d, t in texts:
        ws = terms_of(t, segment)
        out.texts += 1
        out.terms.update(ws)
        if d:
            n, c = out.districts.get(d, (0, Counter()))
            c.update(ws)
            out.districts[d] = (n + 1, c)
    return out


def hot_terms(today: Sequence[tuple[str, str]], baseline: TermCounts,
              segment: Callable[[str], Iterable[str]], *, min_count: int = 5, alpha: float = 0.01,
              examples: int = 3, mask: Callable[[str], str] = lambda s: s, by_district: bool = True,
              limit: int = 30) -> dict:
    """Hot terms of ``today`` (texts as ``(district, text)``) against the ``baseline`` counts.

    Returns ``{"overall": [HotTerm...], "districts": {district: [HotTerm...]}, "tested": n,
    "threshold_p": p}``, most significant first.
    """
    today_terms = [(d, t, terms_of(t, segment)) for d, t in today]

    def test(rows_today, n_base, base, district):
        cnt = Counter(w for _, _, ws in rows_today for w in ws)
        n_today = len(rows_today)
        candidates = [w for w, c in cnt.items() if c >= min_count]
        found = []
        tested = len(cnt)
        threshold = alpha / max(tested, 1)
        for w in candidates:
            lam = (base[w] + 0.5) / (n_base + 1) * n_today
            p = poisson_sf(cnt[w], lam)
            if p < threshold:
                score = -math.log10(p) if p > 0 else 320.0
                ex = [mask(t)[:120] for _, t, ws in rows_today if w in ws][:examples]
                found.append(HotTerm(w, cnt[w], lam, score, base[w] == 0, district, ex))
        found.sort(key=lambda h: (-h.score, -h.count, h.term))
        return found[:limit], tested, threshold

    overall, tested, threshold = test(today_terms, baseline.texts, baseline.terms, None)
    districts: dict[str, list[HotTerm]] = {}
    if by_district:
        for d in sorted({d for d, _, _ in today_terms if d}):
            n_base, base = baseline.districts.get(d, (0, Counter()))
            hot, _, _ = test([r for r in today_terms if r[0] == d], n_base, base, d)
            if hot:
                districts[d] = hot
    return {"overall": overall, "districts": districts, "tested": tested, "threshold_p": threshold}
