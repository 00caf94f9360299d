"""``callcenter report daily|hourly``: one report as JSON, HTML and PDF (docs/reports.md).

    callcenter report daily --date 2026-12-01 [--district 雁塔区] [--out reports/]
    callcenter report hourly --date 2026-12-01 --hour 10
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date, datetime, time
from pathlib import Path

__all__ = ["register"]

DEFAULT_CONFIG = os.environ.get("CALLCENTER_CONFIG", "deploy/callcenter.yaml")


def register(subparsers) -> None:
    rep = subparsers.add_parser("report", help="daily or hourly report (专报): calls, orders, hot topics")
    rep.add_argument("kind", choices=["daily", "hourly"])
    rep.add_argument("--date", required=True, help="the local date, YYYY-MM-DD")
    rep.add_argument("--hour", type=int, help="hourly: the hour, 0-23")
    rep.add_argument("--until", help="daily: end the report at this local time HH:MM (default: the whole day)")
    rep.add_argument("--keep-days", type=int, help="delete reports older than this many days from --out")
    rep.add_argument("--webhook", help="hourly: post the urgent digest to this http(s) URL")
    rep.add_argument("--district", help="only this district's orders and hot topics")
    rep.add_argument("--zone", default="Asia/Shanghai", help="time zone of the date and hours (default: %(default)s)")
    rep.add_argument("--out", default="reports", help="directory for the .json, .html and .pdf (default: %(default)s)")
    rep.add_argument("--config", default=DEFAULT_CONFIG, help="config naming the database (default: %(default)s)")
    rep.add_argument("--database", help="database URL (default: the config's)")
    rep.add_argument("--min-count", type=int, default=5, help="hot topics: least texts a term needs (default: 5)")
    rep.set_defaults(func=_report)


def _fail(msg: str) -> int:
    print(f"callcenter report: {msg}", file=sys.stderr)
    return 2


def _report(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        day = date.fromisoformat(args.date)
    except ValueError:
        return _fail(f"--date {args.date!r}: expected YYYY-MM-DD")
    if args.kind == "hourly" and (args.hour is None or not 0 <= args.hour <= 23):
        return _fail("hourly reports need --hour from 0 to 23")
    until = None
    if args.until is not None:
        if args.kind != "daily":
            return _fail("--until goes with daily reports")
        try:
            until = time.fromisoformat(args.until)
        except ValueError:
            return _fail(f"--until {args.until!r}: expected HH:MM")
    if args.keep_days is not None and not 1 <= args.keep_days <= 3650:
        return _fail("--keep-days must be from 1 to 3650")
    if args.webhook is not None and (args.kind != "hourly" or not args.webhook.startswith(("http://", "https://"))):
        return _fail("--webhook needs an hourly report and an http(s) URL")
    if not 1 <= args.min_count <= 10_000:
        return _fail("--min-count must be from 1 to 10000")
    try:
        ZoneInfo(args.zone)
    except (ZoneInfoNotFoundError, ValueError):
        return _fail(f"--zone {args.zone!r}: unknown time zone")
    if args.district is not None and not 0 < len(args.district) <= 64:
        return _fail("--district must be 1 to 64 characters")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return _fail(f"--out {args.out}: exists and is not a directory")
    url = args.database
    if url is None:
        from callcenter.app import default_database_url
        from callcenter.config import ConfigError, load_config

        try:
            cfg = load_config(args.config)
        except ConfigError as exc:
            return _fail(f"{args.config}: {len(exc.issues)} problem(s), first: {exc.issues[0]}")
        url = cfg.acd.database_url or default_database_url(Path(cfg.acd.state_dir).expanduser().resolve())
    from callcenter.kb.text import words as segment
    from callcenter.records.db import make_engine, normalize_url

    from .build import build_report, period
    from .render import FontMissing, write_report

    start, end = period(args.kind, day, args.hour, args.zone)
    if until is not None and until != time(0):
        end = start + (datetime.combine(day, until) - datetime.combine(day, time(0)))
    engine = make_engine(normalize_url(url))
    try:
        doc = build_report(engine, args.kind, start, end, segment=segment, zone=args.zone, district=args.district,
                           min_count=args.min_count, cache_dir=out / ".term-counts",
                           now=datetime.now(ZoneInfo("UTC")).replace(tzinfo=None))
    finally:
        engine.dispose()
    stem = f"{args.kind}-{day.isoformat()}" + (f"-{args.hour:02d}" if args.kind == "hourly" else "") + (
        f"-until-{until.strftime('%H%M')}" if until is not None and until != time(0) else "") + (
        f"-{args.district}" if args.district else "")
    try:
        paths = write_report(doc, out, stem)
    except FontMissing as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write under {out}: {exc.strerror or exc}")
    calls = doc["calls"]
    if calls:
        rate = calls["connection_rate"]
        print(f"calls: {calls['offered']} offered, connection rate {'-' if rate is None else f'{100 * rate:.1f}%'}")
    print(f"orders: {doc['orders']['created']} created, {doc['orders']['overdue_open']} overdue; "
          f"hot topics: {', '.join(h['term'] for h in doc['hot_topics']['overall'][:5]) or 'none'}")
    for p in paths.values():
        print(f"wrote {p}")
    if args.keep_days is not None:
        removed = prune(out, args.keep_days)
        if removed:
            print(f"removed {removed} report file(s) older than {args.keep_days} days")
    if args.webhook is not None:
        from .digest import digest_text, post_digest

        try:
            status = post_digest(args.webhook, digest_text(doc))
        except OSError as exc:
            print(f"callcenter report: the digest could not be posted to {args.webhook}: {exc}", file=sys.stderr)
            return 1
        print(f"digest posted ({status})")
    return 0


def prune(out: Path, keep_days: int) -> int:
    """Delete report files (daily-*, hourly-*) last written more than ``keep_days`` days ago."""
    import time as _time

    horizon = _time.time() - keep_days * 86400
    removed = 0
    old = [p for p in out.glob("*") if p.is_file() and p.name.startswith(("daily-", "hourly-"))]
    old += list((out / ".term-counts").glob("*.json"))  # the baseline cache ages out with the reports
    for p in old:
        if p.stat().st_mtime < horizon:
            p.unlink()
            removed += p.parent == out
    return removed
