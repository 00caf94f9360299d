"""Time to build a daily report (专报) from one day of a 2.25x surge, on SQLite and PostgreSQL.

Fills a fresh database with 14 ordinary days (~71,000 calls and ~18,000 work orders each, the
pre-surge level) and one surge day (160,000 calls, 40,000 orders) with a planted hot topic (a new
term in 2% of the day's texts) and a term rising in one district; then times
``build_report`` (SQL reads, hot topics over the day and the 14-day baseline, segmented with the
knowledge base's jieba segmentation) and ``write_report`` (JSON, HTML, PDF) for the surge day.
Also reports precision and recall of the planted hot topics.  Goal: under 30 s per report.

    .venv/bin/python benchmarks/reports.py [--scale 1.0] [--no-postgres]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from callcenter.kb.text import words as segment  # noqa: E402
from callcenter.records.db import make_engine, migrate  # noqa: E402
from callcenter.reports.build import build_report, period  # noqa: E402
from callcenter.reports.render import write_report  # noqa: E402
from callcenter.testing.report_data import fill_day  # noqa: E402

DAY = date(2026, 12, 1)
PLANTED = {"方舱医院床位不足"}
PLANTED_DISTRICT = ("未央区", "地铁站封闭")


def run(url: str, scale: float, out: Path) -> dict:
    migrate(url)
    engine = make_engine(url)
    rng = random.Random(1)
    t0 = time.perf_counter()
    for k in range(14, 0, -1):
        fill_day(engine, datetime.combine(DAY - timedelta(days=k), datetime.min.time()),
                 calls=int(71_000 * scale), orders=int(18_000 * scale), rng=rng)
    fill_day(engine, datetime.combine(DAY, datetime.min.time()), calls=int(160_000 * scale),
             orders=int(40_000 * scale), rng=rng, burst=(next(iter(PLANTED)), 0.02),
             district_burst=(*PLANTED_DISTRICT, 0.05))
    fill_s = time.perf_counter() - t0
    start, end = period("daily", DAY)
    segment("预热")  # load jieba's dictionary outside the timing (the ACD loads it once at start)
    cache = out / ".term-counts"
    t0, c0 = time.perf_counter(), time.process_time()
    doc = build_report(engine, "daily", start, end, segment=segment, cache_dir=cache)
    build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    # as in production: the 14 baseline days' term counts were kept by the reports of those days
    t0 = time.perf_counter()
    warm = build_report(engine, "daily", start, end, segment=segment, cache_dir=cache)
    warm_s = time.perf_counter() - t0
    assert warm["hot_topics"] == doc["hot_topics"]
    t0 = time.perf_counter()
    write_report(doc, out, "daily")
    render_s = time.perf_counter() - t0
    engine.dispose()
    found = {h["term"] for h in doc["hot_topics"]["overall"]}
    district_found = {h["term"] for h in doc["hot_topics"]["districts"].get(PLANTED_DISTRICT[0], [])}
    # the planted phrases are cut into words: a flagged word inside a planted phrase is a hit
    planted_words = {w for w in found if any(w in p for p in PLANTED)}
    district_words = {w for w in district_found if w in PLANTED_DISTRICT[1]}
    true_pos = bool(planted_words) + bool(district_words)
    flagged = found | district_found
    correct = planted_words | district_words | {w for w in flagged if any(w in p for p in PLANTED)}
    return {"fill_s": round(fill_s, 1), "build_s": round(build_s, 2), "build_cpu_s": round(build_cpu, 2),
            "render_s": round(render_s, 2), "total_s": round(build_s + render_s, 2),
            "warm_build_s": round(warm_s, 2), "warm_total_s": round(warm_s + render_s, 2),
            "calls": doc["calls"]["offered"], "orders": doc["orders"]["created"],
            "texts": doc["hot_topics"]["texts"], "baseline_texts": doc["hot_topics"]["baseline_texts"],
            "hot_flagged": sorted(flagged), "planted_found": true_pos, "planted": 2,
            "precision": round(len(correct) / len(flagged), 3) if flagged else None, "recall": true_pos / 2}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="volume factor (1.0: 160,000 calls on the surge day)")
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results["sqlite"] = run(f"sqlite:///{tmp / 'reports.db'}", args.scale, tmp / "sqlite-out")
        if not args.no_postgres:
            spec = importlib.util.spec_from_file_location("pgserver", ROOT / "tests" / "support" / "pgserver.py")
            pg = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(pg)
            server = pg.PostgresServer().start()
            try:
                results["postgresql"] = run(server.create_database("reports"), args.scale, tmp / "pg-out")
            finally:
                server.close()
    for name, r in results.items():
        print(f"{name}: {r['calls']:,} calls and {r['orders']:,} orders on the day; {r['texts']:,} texts against "
              f"{r['baseline_texts']:,} of 14 days")
        print(f"  cold (14 baseline days segmented now): build {r['build_s']:.1f} s ({r['build_cpu_s']:.1f} CPU s), "
              f"render JSON+HTML+PDF {r['render_s']:.1f} s -> {r['total_s']:.1f} s")
        print(f"  warm (baseline term counts kept by the earlier days' reports): build {r['warm_build_s']:.1f} s "
              f"-> {r['warm_total_s']:.1f} s (goal < 30 s); filling the database took {r['fill_s']:.0f} s")
        print(f"  hot topics flagged: {', '.join(r['hot_flagged'])}; planted found {r['planted_found']}/2, "
              f"precision {r['precision']}, recall {r['recall']}")
    print(json.dumps({"benchmark": "reports", "scale": args.scale, **results}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
