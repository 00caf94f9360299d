"""A daily report built from a real SQLite database of generated days, written as JSON, HTML and
PDF; the PDF rendered to PNG pages with pdftoppm and looked at."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from datetime import date, datetime, timedelta

import pytest

from callcenter.records.db import make_engine, migrate
from callcenter.reports.build import build_report, period
from callcenter.reports.render import write_report
from callcenter.testing.report_data import fill_day

DAY = date(2026, 12, 1)


def segment(text: str):
    return [w for w in re.split(r"[，\s]+", text) if w]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    path = tmp_path_factory.mktemp("report")
    url = f"sqlite:///{path / 'r.db'}"
    migrate(url)
    engine = make_engine(url)
    rng = random.Random(7)
    for k in range(14, 0, -1):
        fill_day(engine, datetime.combine(DAY - timedelta(days=k), datetime.min.time()), calls=400, orders=150,
                 rng=rng)
    fill_day(engine, datetime.combine(DAY, datetime.min.time()), calls=900, orders=300, rng=rng,
             burst=("方舱医院床位不足", 0.03), district_burst=("未央区", "地铁站封闭", 0.3))
    start, end = period("daily", DAY)
    doc = build_report(engine, "daily", start, end, segment=segment)
    engine.dispose()
    return doc, path, url


def test_the_figures_add_up(report):
    doc = report[0]
    calls = doc["calls"]
    assert calls["offered"] == 900
    assert calls["offered"] == sum(h["offered"] for h in calls["by_hour"])
    assert calls["connected"] == sum(v["answered"] for v in calls["by_tier"].values())
    assert 0.8 < calls["connection_rate"] < 0.9
    assert doc["orders"]["created"] == 300
    assert doc["start"] == "2026-12-01T00:00:00+08:00" and doc["end"] == "2026-12-02T00:00:00+08:00"


def test_the_planted_hot_topics_and_nothing_else(report):
    doc = report[0]
    overall = {h["term"]: h for h in doc["hot_topics"]["overall"]}
    assert overall["方舱医院床位不足"]["new"]
    assert "地铁站封闭" in {h["term"] for h in doc["hot_topics"]["districts"]["未央区"]}
    assert set(overall) <= {"方舱医院床位不足", "地铁站封闭"}


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (Debian poppler-utils) is not installed; "
                    "tests/support/ensure_fonts.sh installs it")
def test_html_and_pdf_are_written_and_the_pdf_pages_look_right(report):
    from PIL import Image

    doc, path = report[0], report[1]
    paths = write_report(doc, path / "out", "daily-2026-12-01")
    page = paths["html"].read_text(encoding="utf-8")
    assert "12345热线日报" in page and "data:image/png;base64," in page and "方舱医院床位不足" in page
    text = subprocess.run(["pdftotext", str(paths["pdf"]), "-"], capture_output=True, check=True).stdout.decode()
    assert "12345热线日报" in text and "热点诉求" in text and "方舱医院床位不足" in text
    fonts = subprocess.run(["pdffonts", str(paths["pdf"])], capture_output=True, check=True).stdout.decode()
    assert "CJK" in fonts and " yes " in fonts  # the CJK font is embedded
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(paths["pdf"]), str(path / "page")], check=True,
                   capture_output=True)
    pages = sorted(path.glob("page-*.png"))
    assert len(pages) >= 3  # the tables, then one page per chart
    for p in pages:
        img = Image.open(p).convert("L")
        dark = sum(img.histogram()[:128]) / (img.width * img.height)
        assert 0.002 < dark < 0.5, f"{p.name}: {dark:.4f} of the page is ink"


def test_the_baseline_is_segmented_once_and_then_read_from_the_cache(report, tmp_path):
    seen = []

    def counting(text):
        seen.append(text)
        return segment(text)

    engine = make_engine(report[2])
    start, end = period("daily", DAY)
    first = build_report(engine, "daily", start, end, segment=counting, cache_dir=tmp_path)
    cold = len(seen)
    assert len(list(tmp_path.glob("*.json"))) == 14  # one entry per baseline day
    seen.clear()
    second = build_report(engine, "daily", start, end, segment=counting, cache_dir=tmp_path)
    assert len(seen) == first["hot_topics"]["texts"] < cold  # only today's texts again
    assert second["hot_topics"] == first["hot_topics"] == report[0]["hot_topics"]
    engine.dispose()
