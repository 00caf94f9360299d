"""The report schedule (pure), the child command lines, and the subsystem on a task.Clock."""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from twisted.internet.task import Clock

from callcenter.config import Reports
from callcenter.reports.schedule import covers, next_runs
from callcenter.reports.service import ReportsSubsystem, report_argv

TZ = ZoneInfo("Asia/Shanghai")


def t(*a) -> float:
    return datetime(*a, tzinfo=TZ).timestamp()


def test_next_runs_and_what_they_cover():
    daily = [time(12, 0), time(0, 0)]
    assert next_runs(t(2026, 12, 1, 11, 59, 30), daily, True, "Asia/Shanghai") == (t(2026, 12, 1, 12), ["daily", "hourly"])
    assert next_runs(t(2026, 12, 1, 12), daily, True, "Asia/Shanghai") == (t(2026, 12, 1, 13), ["hourly"])
    assert next_runs(t(2026, 12, 1, 23, 10), daily, False, "Asia/Shanghai") == (t(2026, 12, 2, 0), ["daily"])
    assert next_runs(t(2026, 12, 1, 23, 10), [], False, "Asia/Shanghai")[1] == []
    assert covers("daily", t(2026, 12, 1, 12), "Asia/Shanghai") == (t(2026, 12, 1), t(2026, 12, 1, 12))
    assert covers("daily", t(2026, 12, 2), "Asia/Shanghai") == (t(2026, 12, 1), t(2026, 12, 2))
    assert covers("hourly", t(2026, 12, 1, 13), "Asia/Shanghai") == (t(2026, 12, 1, 12), t(2026, 12, 1, 13))


def test_command_lines():
    cfg = Reports(enabled=True, webhook_url="http://127.0.0.1:9/hook")
    kw = {"out_dir": Path("/r"), "database_url": "sqlite:///x.db", "config_path": None}
    noon = report_argv("daily", t(2026, 12, 1, 12), cfg, **kw)
    assert noon[3:7] == ["report", "daily", "--date", "2026-12-01"] and noon[-2:] == ["--until", "12:00"]
    midnight = report_argv("daily", t(2026, 12, 2), cfg, **kw)
    assert midnight[6] == "2026-12-01" and "--until" not in midnight
    hourly = report_argv("hourly", t(2026, 12, 1, 0), cfg, **kw)
    assert hourly[6] == "2026-11-30" and hourly[hourly.index("--hour") + 1] == "23"
    assert hourly[hourly.index("--webhook") + 1] == "http://127.0.0.1:9/hook"


def test_the_subsystem_runs_one_child_at_a_time_on_its_clock(tmp_path):
    clock = Clock()
    clock.advance(t(2026, 12, 1, 11, 30))
    acd = SimpleNamespace(config=SimpleNamespace(reports=Reports(enabled=True)), reactor=clock, state_dir=tmp_path,
                          database_url="sqlite:///x.db", config_path=None)
    spawned = []
    sub = ReportsSubsystem(acd, spawn=lambda argv, proto: spawned.append((argv, proto)))
    sub.start()
    assert (tmp_path / "reports").is_dir() and spawned == []
    clock.advance(1800)  # 12:00: the daily report so far and the 11:00-12:00 hourly one
    assert [a[4] for a, _ in spawned] == ["daily"]  # one child at a time
    spawned[0][1].processEnded(SimpleNamespace(value=SimpleNamespace(exitCode=0)))
    assert [a[4] for a, _ in spawned] == ["daily", "hourly"]
    spawned[1][1].processEnded(SimpleNamespace(value=SimpleNamespace(exitCode=1)))
    assert [code for _, code in sub.built] == [0, 1]
    clock.advance(3600)  # 13:00: the next hourly one
    assert [a[4] for a, _ in spawned] == ["daily", "hourly", "hourly"]
    sub.stop()
    assert clock.getDelayedCalls() == []
