"""Knowledge-base search benchmark: retrieval quality and search latency at scale.

    .venv/bin/python benchmarks/kb.py [--articles 50000] [--searches 2000] [--postgres]

1. Quality: the seed corpus (callcenter/kb/seed.py, 211 articles) is loaded into
   a fresh SQLite database through callcenter.kb.store; each labelled query of
   callcenter/kb/data/queries.json is searched and recall@5 and MRR computed
   (callcenter/kb/evaluate.py).  Goal: recall@5 >= 0.9.
2. Latency: the database is filled to ``--articles`` articles (the seed corpus plus
   synthetic ones of the same shape in other places) and ``--searches`` searches are
   timed one by one, cycling through the labelled queries: the whole
   ``KbStore.search`` call (query parsing, FTS5 match, BM25 ranking, the
   in-effect filter, snippets), as the seat server runs it in its thread pool.
   Goal: p99 < 20 ms.  Wall time and the searching thread's CPU time are both
   reported with the load average: on a shared machine the wall time includes
   waiting for a core.  The quality is measured again at that size, for
   information only: the synthetic articles are near-copies of the labelled ones
   in other places, so they are about as relevant and push the labelled ones
   out of the top 5.
3. ``--postgres``: the same on a throwaway PostgreSQL server (tests/support/pgserver.py).

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from callcenter.kb.evaluate import evaluate, labelled_queries  # noqa: E402
from callcenter.kb.seed import corpus, synthetic  # noqa: E402
from callcenter.kb.store import KbStore  # noqa: E402
from callcenter.records.db import make_engine, migrate  # noqa: E402

NOW = datetime(2026, 6, 1)
GOAL_RECALL, GOAL_P99_MS = 0.9, 20.0


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def run(url: str, articles: int, searches: int, label: str) -> dict:
    migrate(url)
    engine = make_engine(url)
    kb = KbStore(engine)
    seed = corpus()
    kb.create_many(seed, "bench", publish=True, trusted=True, now=NOW)
    kb.optimize()
    quality = evaluate(lambda q, k: [h["key"] for h in kb.search(q, k, now=NOW)])
    t0 = time.perf_counter()
    extra = synthetic(max(0, articles - len(seed)))
    for i in range(0, len(extra), 2000):
        kb.create_many(extra[i:i + 2000], "bench", publish=True, trusted=True, now=NOW)
    kb.optimize()
    load_s = time.perf_counter() - t0
    queries = [q["q"] for q in labelled_queries()]
    for q in queries:  # warm the page cache and jieba
        kb.search(q, 10, now=NOW)
    times, cpu = [], []
    for i in range(searches):
        t, c = time.perf_counter(), time.thread_time()
        kb.search(queries[i % len(queries)], 10, now=NOW)
        times.append((time.perf_counter() - t) * 1000)
        cpu.append((time.thread_time() - c) * 1000)
    at_scale = evaluate(lambda q, k: [h["key"] for h in kb.search(q, k, now=NOW)])
    engine.dispose()
    out = {
        "db": label, "seed_articles": len(seed), "queries": quality["queries"],
        "recall@5": quality["recall@5"], "mrr": quality["mrr"],
        "articles": len(seed) + len(extra), "load_s": round(load_s, 1), "searches": searches,
        "search_p50_ms": round(statistics.median(times), 2), "search_p99_ms": round(pct(times, 99), 2),
        "search_max_ms": round(max(times), 2),
        # CPU time of the searching thread: less sensitive than wall time to other processes on the machine
        "search_cpu_p50_ms": round(statistics.median(cpu), 2), "search_cpu_p99_ms": round(pct(cpu, 99), 2),
        "load_average_1m": round(os.getloadavg()[0], 1),
        "recall@5_at_scale": at_scale["recall@5"], "mrr_at_scale": at_scale["mrr"],
    }
    print(f"{label}: recall@5 {out['recall@5']} MRR {out['mrr']} on {out['queries']} queries / {len(seed)} articles;"
          f" at {out['articles']} articles: search p50 {out['search_p50_ms']} ms, p99 {out['search_p99_ms']} ms"
          f" (goal < {GOAL_P99_MS}), recall@5 {out['recall@5_at_scale']}", flush=True)
    for miss in quality["misses"]:
        print("  miss:", json.dumps(miss, ensure_ascii=False))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--articles", type=int, default=50_000)
    ap.add_argument("--searches", type=int, default=2000)
    ap.add_argument("--postgres", action="store_true")
    args = ap.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as d:
        results.append(run(f"sqlite:///{d}/kb.sqlite3", args.articles, args.searches, "sqlite"))
        if args.postgres:
            spec = importlib.util.spec_from_file_location("pgserver", ROOT / "tests" / "support" / "pgserver.py")
            pg = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(pg)
            server = pg.PostgresServer().start()
            try:
                results.append(run(server.create_database("kbbench"), args.articles, args.searches, "postgresql"))
            finally:
                server.close()
    first = results[0]
    summary = {"benchmark": "kb", **first, "goal_recall@5": GOAL_RECALL, "goal_p99_ms": GOAL_P99_MS,
               "ok": first["recall@5"] >= GOAL_RECALL and first["search_p99_ms"] < GOAL_P99_MS}
    if len(results) > 1:
        summary["postgresql"] = results[1]
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
