"""Scenarios, determinism, and the shipped surge scenario on the example config."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from callcenter.config import load_config
from callcenter.sim.planner import Target, forecast_from_scenario, make_plan, verify_plan
from callcenter.sim.report import summarize
from callcenter.sim.scenario import ScenarioError, check_against_config, load_scenario, parse_scenario
from callcenter.sim.simulator import simulate, without_overflow

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "callcenter.yaml"
NORMAL = ROOT / "deploy" / "scenarios" / "normal-day.yaml"
SURGE = ROOT / "deploy" / "scenarios" / "surge-2.25x.yaml"


@pytest.fixture(scope="module")
def config():
    return load_config(CONFIG, env={})


def window(path: Path, start: float, end: float):
    return load_scenario(path).model_copy(update={"start_hour": start, "end_hour": end})


@pytest.mark.parametrize("path", [NORMAL, SURGE])
def test_shipped_scenarios_are_valid_for_the_example_config(path, config):
    scenario = load_scenario(path)
    check_against_config(scenario, config, str(path))
    assert sum(scenario.queues["hotline-12345"].hourly()) == pytest.approx(24000)


def test_scenario_errors_name_every_key_path():
    raw = {
        "queues": {"q": {"calls_per_hour": [1, 2], "patience": {"dist": "bogus"}, "talk": {"dist": "lognormal", "mean_s": -1}}},
        "pools": {"p": {"shifts": [{"start": "08:30", "end": "07:00", "agents": 3}]}},
        "emergency": [{"at": "9:xx", "queue": "q", "plan": None}],
        "surge": "lots",
    }
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(raw, "bad.yaml")
    text = str(exc.value)
    for expected in (
        "queues.q.calls_per_hour: expected 24 values (one per hour 0..23), got 2",
        "queues.q.patience: unknown distribution 'bogus'",
        "queues.q.talk.mean_s: input should be greater than 0",
        "pools.p.shifts[0]: end must be after start",
        'emergency[0].at: expected hours as a number or "HH:MM", got "9:xx"',
        "surge:",
    ):
        assert expected in text
    assert len(exc.value.issues) == 6


def test_scenario_must_match_the_config(config):
    scenario = parse_scenario({
        "queues": {"hotline-12345": {"daily_calls": 10, "profile": [1] * 24, "category_mix": {"gossip": 1}},
                   "nope": {"daily_calls": 10, "profile": [1] * 24}},
        "pools": {"own-12345": {"agents_per_hour": [1] * 24, "home_waiting": [0] * 24},
                  "ghost": {"agents_per_hour": [1] * 24}},
        "emergency": [{"at": 8, "queue": "hotline-12345", "plan": "panic"}],
    })
    with pytest.raises(ScenarioError) as exc:
        check_against_config(scenario, config)
    paths = [i.path for i in exc.value.issues]
    assert paths == ["queues.hotline-12345.category_mix.gossip", "queues.nope", "pools.own-12345.home_waiting",
                     "pools.ghost", "emergency[0].plan"]


def _fingerprint(result):
    return [(c.call_id, c.queue, c.category, round(c.arrived, 9), c.outcome, round(c.wait_s, 9), c.pool, c.tier,
             round(c.talk_s, 9)) for c in result.calls]


def test_same_seed_same_result_and_another_seed_differs(config):
    scenario = window(SURGE, 9.0, 9.25)
    a = simulate(config, scenario, 7)
    b = simulate(config, scenario, 7)
    c = simulate(config, scenario, 8)
    assert _fingerprint(a) == _fingerprint(b)
    assert a.timeline == b.timeline
    da, db = summarize(a), summarize(b)
    da["run"].pop("wall_s"), db["run"].pop("wall_s")
    da["run"].pop("calls_per_s"), db["run"].pop("calls_per_s")
    assert da == db
    assert _fingerprint(a) != _fingerprint(c)
    # the waiting-caller counts kept from the engine's events never go negative
    assert all(n >= 0 for _t, snap in a.timeline for counts in snap.values() for n in counts)


def test_a_run_restores_the_garbage_collector_settings(config):
    # simulate() collects rarely during a run (a higher gen-0 threshold, set-up objects
    # frozen); the process gets its own settings back, also when it had frozen objects
    scenario = window(SURGE, 9.0, 9.05)
    before, frozen_before = gc.get_threshold(), gc.get_freeze_count()
    simulate(config, scenario, 1)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen_before
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        simulate(config, scenario, 1)
        assert gc.get_freeze_count() == frozen and gc.get_threshold() == before
    finally:
        gc.unfreeze()


@pytest.fixture(scope="module")
def surge_hour(config):
    # 09:00-10:00 of the surge day: the emergency plan is on (switched at 08:00), the
    # 12333 line reports 7 of its own callers waiting (> home_waiting_max 5): gate closed
    return summarize(simulate(config, window(SURGE, 9.0, 10.0), 3))


def test_surge_hour_uses_remote_and_borrowed_seats_and_protects_lenders(surge_hour):
    doc = surge_hour
    assert not doc["run"]["refused_inputs"]
    tot = doc["totals"]
    assert tot["offered"] > 4000
    assert tot["answered_by_tier"]["1"] > 0 and tot["answered_by_tier"]["2"] > 0
    pools = doc["pools"]
    assert pools["lender-12333"]["answered"] == 0  # its home line is busy: it lends nothing
    assert pools["lender-12315"]["answered"] > 0
    lender = doc["lenders"]["12315"]
    assert lender["busy_share_max"] <= lender["max_share"] + 1e-9
    assert lender["cap_respected"]
    # every caller accounted for exactly once
    assert tot["offered"] == (tot["answered"] + tot["abandoned"] + tot["fallback"] + tot["called_back"]
                              + tot["unfinished"])
    assert tot["unfinished"] == 0


def test_without_overflow_keeps_only_tier_zero(config):
    bare = without_overflow(config)
    assert bare.queue("hotline-12345").pools == ["own-12345"]
    assert bare.queue("hotline-12345").tiers == []
    doc = summarize(simulate(bare, window(SURGE, 9.0, 9.25), 3))
    assert doc["totals"]["answered_by_tier"]["1"] == 0 and doc["totals"]["answered_by_tier"]["2"] == 0


def test_plan_for_the_surge_needs_remote_and_borrowed_seats(config):
    scenario = load_scenario(SURGE)
    forecast = forecast_from_scenario(scenario, config)
    assert forecast.calls_per_hour[10] == pytest.approx(24000 * 2.25 * 8.5 / 91.6)
    plan = make_plan(forecast, Target(0.95, 0.80, 15.0))
    peak = plan[10]
    assert peak.erlang_a <= peak.erlang_c
    assert peak.predicted_connected >= 0.95 and peak.predicted_within >= 0.80
    assert peak.shortfall == max(0, peak.erlang_a - peak.own) > 0
    assert peak.remote_used == min(peak.shortfall, forecast.remote[10])
    for name, share, counts in forecast.borrowed:
        assert peak.borrowed_used[name] <= int(share * counts[10])
    assert peak.remote_used + sum(peak.borrowed_used.values()) + peak.missing == peak.shortfall
    night = plan[3]
    assert night.shortfall == 0 and night.own >= night.erlang_a


def test_plan_verification_by_simulation(config):
    scenario = window(NORMAL, 10.0, 11.0)
    forecast = forecast_from_scenario(scenario, config)
    plan = make_plan(forecast, Target(0.95, 0.80, 15.0))
    check = verify_plan(scenario, config, plan, Target(0.95, 0.80, 15.0), seed=2)
    (row,) = check["hours"]
    assert row["hour"] == 10 and row["offered"] > 1800
    # the normal day's own seats cover the Erlang A plan, so the simulation should meet it
    # (within the noise of one simulated hour)
    assert row["connected"] >= 0.92


def test_pool_talk_mean_divides_by_the_calls_it_sums(surge_hour, config):
    # the mean talk time of a pool is the mean over the calls it talked on (callbacks included),
    # recomputed here straight from the call records
    result = simulate(config, window(SURGE, 9.0, 10.0), 3)
    doc = summarize(result)
    for name, entry in doc["pools"].items():
        talks = [r.talk_s for r in result.calls if r.pool == name and r.outcome in ("answered", "called-back")]
        if talks:
            assert entry["talk_s_mean"] == pytest.approx(sum(talks) / len(talks), abs=1e-3)
    # and it is a talk time, not inflated by a smaller denominator (the scenario's talk mean is ~283 s)
    own = doc["pools"]["own-12345"]["talk_s_mean"]
    assert 150 < own < 450


def test_the_drain_after_the_window_is_not_booked_into_its_last_hour(config):
    # 10:00-11:00 of the surge day, then the drain while the last callers finish
    scenario = window(SURGE, 10.0, 11.0)
    doc = summarize(simulate(config, scenario, 5))
    own = doc["pools"]["own-12345"]
    (hour,) = own["hours"]
    roster = load_scenario(SURGE).pools["own-12345"].agents_per_hour[10]
    # hour 10 holds one hour of the hour's roster, not the drain's agent-seconds on top
    assert hour["agents_mean"] <= roster + 1e-6
    assert own["drain"]["seconds"] > 0 and own["drain"]["agent_hours"] > 0
    assert own["agent_hours"] == pytest.approx(hour["agents_mean"] + own["drain"]["agent_hours"], abs=0.01)
