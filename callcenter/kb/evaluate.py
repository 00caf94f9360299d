"""Retrieval quality on the labelled queries (data/queries.json): recall@k and MRR.

recall@k of one query is the share of its relevant articles found in the first
k results, capped at 1 when it has more than k relevant ones (a query such as
"发热门诊在哪里" has one per district, and 5 of them in the top 5 is a perfect
answer); MRR is the mean of 1/rank of the first relevant result (0 when none).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

__all__ = ["labelled_queries", "evaluate"]


def labelled_queries() -> list[dict]:
    return json.loads((Path(__file__).with_name("data") / "queries.json").read_text(encoding="utf-8"))


def evaluate(search: Callable[[str, int], list[str]], queries: list[dict] | None = None, k: int = 5) -> dict:
    """``search(query, k)`` returns article keys, best first."""
    queries = queries if queries is not None else labelled_queries()
    recalls, rrs, misses = [], [], []
    for item in queries:
        rel = set(item["relevant"])
        got = search(item["q"], max(k, 10))
        top = got[:k]
        recalls.append(len(rel & set(top)) / min(len(rel), k))
        rank = next((i + 1 for i, key in enumerate(got) if key in rel), None)
        rrs.append(1.0 / rank if rank else 0.0)
        if not rel & set(top):
            misses.append({"q": item["q"], "relevant": sorted(rel)[:3], "got": top})
    n = len(queries)
    return {"queries": n, f"recall@{k}": round(sum(recalls) / n, 4), "mrr": round(sum(rrs) / n, 4), "misses": misses}
