"""Config reload over real HTTP: a bad file changes nothing, a good one is swapped in live.

The tests share one ACD and run in file order; the last one changes its config.
"""

from __future__ import annotations

import pytest
import yaml
from api_support import ADMIN, SUPERVISOR, VIEWER, make_config, start_acd, stop_acd


@pytest.fixture(scope="module")
def acd(tmp_path_factory):
    running = start_acd(tmp_path_factory.mktemp("acd-reload"), make_config())
    try:
        yield running
    finally:
        stop_acd(running)


def status_of(acd, kind: str, name: str) -> dict:
    body = acd.http("GET", "/api/v1/status", token=SUPERVISOR).body
    return next(x for x in body[kind] if x["name"] == name)


def _write_config(acd, raw: dict) -> None:
    acd.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))


def test_reload_bad_file_answers_every_error_and_keeps_the_running_config(acd):
    acd.engine("call_arrived", "c1", "hotline")
    raw = make_config()
    raw["pools"][0]["wrapup_s"] = -3
    raw["queues"][1]["pools"] = ["nowhere"]
    raw["queues"][0]["max_wait_s"] = "long"
    _write_config(acd, raw)
    reply = acd.http("POST", "/api/v1/config/reload", token=ADMIN)
    assert reply.status == 400 and reply.body["error"] == "invalid_config"
    paths = {i["path"] for i in reply.body["issues"]}
    assert paths >= {"pools[0].wrapup_s", "queues[1].pools[0]", "queues[0].max_wait_s"}
    acd.config_path.write_text("queues: [unclosed\n")
    reply = acd.http("POST", "/api/v1/config/reload", token=ADMIN)
    assert reply.status == 400 and "not valid YAML" in reply.body["issues"][0]["message"]
    # still running the old config, with the call still waiting
    assert acd.http("GET", "/api/v1/calls/c1", token=VIEWER).body["state"] == "waiting"
    assert {q["name"] for q in acd.http("GET", "/api/v1/status", token=VIEWER).body["queues"]} == {"hotline", "quiet"}
    assert acd.audit() == []
    acd.engine("caller_hung_up", "c1")


def test_reload_that_would_strand_agents_is_refused(acd):
    acd.engine("agent_logged_in", "r1", "remote")
    raw = make_config()
    raw["pools"] = [p for p in raw["pools"] if p["name"] != "remote"]
    raw["queues"][0]["pools"].remove("remote")
    raw["queues"][0]["tiers"] = [t for t in raw["queues"][0]["tiers"] if t["tier"] != 1]
    _write_config(acd, raw)
    reply = acd.http("POST", "/api/v1/config/reload", token=ADMIN)
    assert reply.status == 409 and reply.body["error"] == "incompatible_config"
    assert status_of(acd, "pools", "remote")["logged_in"] == 1
    assert acd.audit() == []
    acd.engine("agent_logged_out", "r1")


def test_reload_good_file_is_swapped_in_without_dropping_calls(acd):
    acd.engine("call_arrived", "r1", "hotline")
    acd.engine("call_arrived", "r2", "hotline")
    raw = make_config()
    raw["queues"].append(
        {"name": "vaccines", "pools": ["own"], "emergency_plans": {"rush": {"all_tiers_at_once": True}}}
    )
    raw["acd"]["admin_tokens"] = [t for t in raw["acd"]["admin_tokens"] if t["role"] != "viewer"]
    _write_config(acd, raw)
    reply = acd.http("POST", "/api/v1/config/reload", token=ADMIN)
    assert reply.status == 200, reply
    assert reply.body["reloaded"] is True and "vaccines" in reply.body["queues"] and reply.body["needs_restart"] == []
    # the calls kept their places
    assert [acd.http("GET", f"/api/v1/calls/{c}", token=SUPERVISOR).body["position"] for c in ("r1", "r2")] == [1, 2]
    # the new config is the running one: its queue and plan exist, the removed token is refused
    reply = acd.http("PUT", "/api/v1/queues/vaccines/emergency", token=SUPERVISOR, body={"plan": "rush"})
    assert reply.status == 200
    assert acd.http("GET", "/api/v1/status", token=VIEWER).status == 401
    assert [e["what"].split()[0] for e in acd.audit(expect=2)] == ["config-reloaded", "emergency-set"]
