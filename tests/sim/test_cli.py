"""`callcenter simulate` and `callcenter plan` end to end, writing into tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from callcenter.cli import main

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "callcenter.yaml"
SURGE = ROOT / "deploy" / "scenarios" / "surge-2.25x.yaml"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def short_surge(tmp_path: Path) -> Path:
    raw = yaml.safe_load(SURGE.read_text(encoding="utf-8"))
    raw["start_hour"], raw["end_hour"] = "09:00", "09:20"
    path = tmp_path / "short-surge.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_simulate_writes_summary_and_plots(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["simulate", "--config", str(CONFIG), "--scenario", str(short_surge(tmp_path)), "--seed", "4",
                 "--out", str(out), "--compare-no-overflow", "--no-progress"])
    assert code == 0
    doc = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert doc["schema"] == "callcenter.sim.summary/1"
    assert doc["seed"] == 4 and doc["overflow"] is True
    assert doc["totals"]["offered"] > 1000
    assert set(doc["tiers"]) == {"0", "1", "2"}
    assert {"own-12345", "remote-cities", "lender-12333", "lender-12315"} <= set(doc["pools"])
    assert doc["hours"][0]["hour"] == 9
    assert "without_overflow" in doc
    # overflow connects more callers than the own seats alone
    assert doc["totals"]["connection_rate"] > doc["without_overflow"]["totals"]["connection_rate"]
    for name in ("connection_rate.png", "waiting.png", "occupancy.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    text = capsys.readouterr().out
    assert "connected" in text and "without overflow" in text and "summary.json" in text


def test_simulate_reports_every_scenario_mistake(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("queues:\n  hotline-12345: {calls_per_hour: [1, 2]}\npools:\n  nobody: {agents_per_hour: [1]}\n")
    code = main(["simulate", "--config", str(CONFIG), "--scenario", str(bad), "--out", str(tmp_path / "o")])
    assert code == 1
    err = capsys.readouterr().err
    assert "queues.hotline-12345.calls_per_hour: expected 24 values" in err
    assert "pools.nobody.agents_per_hour: expected 24 values" in err
    assert not (tmp_path / "o").exists()


def test_plan_from_numbers_and_from_a_scenario(tmp_path, capsys):
    calls = ",".join(["250"] * 24)
    plan_json = tmp_path / "plan.json"
    code = main(["plan", "--calls-per-hour", calls, "--aht", "330", "--patience", "1e9", "--within", "0.8",
                 "--within-s", "30", "--connected", "0", "--json", str(plan_json)])
    assert code == 0
    plan = json.loads(plan_json.read_text())
    # the Erlang C textbook case: 250 calls/h, 330 s, 80% within 30 s -> 28 agents
    assert plan["hours"][0]["erlang_c"] == 28
    assert plan["hours"][0]["erlang_a"] == 28  # near-infinite patience: Erlang A agrees
    capsys.readouterr()

    code = main(["plan", "--config", str(CONFIG), "--scenario", str(SURGE), "--json", str(plan_json)])
    assert code == 0
    plan = json.loads(plan_json.read_text())
    peak = plan["hours"][10]
    assert peak["shortfall"] > 0 and peak["remote_used"] > 0
    assert "Erlang A" in capsys.readouterr().out


def test_plan_verify_runs_the_simulation(tmp_path, capsys):
    code = main(["plan", "--config", str(CONFIG), "--scenario", str(short_surge(tmp_path)), "--verify", "--seed", "2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "Verification by simulation" in out and "day (after the warm-up): connected" in out


def test_plan_needs_a_forecast(capsys):
    assert main(["plan", "--aht", "300"]) == 2
    assert "--calls-per-hour" in capsys.readouterr().err


def test_simulate_checks_out_before_running(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["simulate", "--config", str(CONFIG), "--scenario", str(SURGE), "--out", str(blocker / "sub"),
                 "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--out" in err and "cannot create" in err
    code = main(["simulate", "--config", str(CONFIG), "--scenario", str(SURGE), "--out", str(blocker),
                 "--no-progress"])
    assert code == 2 and "not a directory" in capsys.readouterr().err


@pytest.mark.parametrize("args", [
    ["--calls-per-hour", ",".join(["-5"] + ["250"] * 23), "--aht", "300", "--patience", "90"],
    ["--calls-per-hour", ",".join(["inf"] + ["250"] * 23), "--aht", "300", "--patience", "90"],
    ["--calls-per-hour", ",".join(["250"] * 24), "--aht", "300", "--patience", "90",
     "--own", ",".join(["-1"] + ["10"] * 23)],
    ["--calls-per-hour", ",".join(["250"] * 24), "--aht", "nan", "--patience", "90"],
    ["--calls-per-hour", ",".join(["250"] * 24), "--aht", "300", "--patience", "-90"],
])
def test_plan_refuses_negative_or_infinite_inputs(args, capsys):
    try:
        code = main(["plan", *args])
    except SystemExit as exc:  # the comma-separated lists stop the parser with their message
        code = exc.code
    assert code not in (0, None)


def test_plan_verify_judges_with_several_seeds_and_drops_the_warm_up(tmp_path, capsys):
    raw = yaml.safe_load(SURGE.read_text(encoding="utf-8"))
    raw["start_hour"], raw["end_hour"] = "09:00", "10:30"
    path = tmp_path / "surge-90min.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    plan_json = tmp_path / "plan.json"
    code = main(["plan", "--config", str(CONFIG), "--scenario", str(path), "--verify", "--seeds", "3",
                 "--warmup-h", "1", "--json", str(plan_json)])
    assert code == 0
    out = json.loads(plan_json.read_text())["verify"]
    rows = {r["hour"]: r for r in out["hours"]}
    assert rows[9]["meets"] == "warm-up" and rows[9]["warmup"]
    assert rows[10]["meets"] in ("yes", "~", "NO") and rows[10]["seeds"] == 3
    assert rows[10]["connected_ci"] > 0  # three seeds give an interval
    assert out["totals"]["seeds"] == 3 and out["totals"]["warmup_h"] == 1
    assert "day (after the warm-up)" in capsys.readouterr().out
