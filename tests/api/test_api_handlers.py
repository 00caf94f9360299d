"""Request -> response logic (callcenter.api.handlers) over a real engine on a task.Clock."""

from __future__ import annotations

import json

import pytest
from api_support import ADMIN, SUPERVISOR, VIEWER, make_config
from twisted.internet.task import Clock

from callcenter.api import handlers
from callcenter.api.handlers import ApiContext, ApiRequest, ReloadRequested
from callcenter.config import ConfigError, ConfigIssue, parse_config
from callcenter.engine import Engine


class World:
    def __init__(self):
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.config = parse_config(make_config(), env={})
        self.engine = Engine(self.config, self.clock)
        self.audit: list[handlers.AuditEntry] = []
        self.ctx = ApiContext(
            self.engine,
            self.clock,
            lambda: self.config,
            self.audit.append,
            "acd-test",
            "/etc/callcenter.yaml",
            handlers.load_openapi(),
        )

    def ask(self, method, path, token=None, body=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        req = ApiRequest(method, tuple(path.strip("/").split("/")), f"Bearer {token}" if token else None, data)
        return handlers.handle(self.ctx, req)


@pytest.fixture
def world():
    return World()


def test_unknown_path_is_404_and_wrong_method_is_405_with_allow(world):
    r = world.ask("GET", "/v1/nothing", ADMIN)
    assert (r.status, r.body["error"]) == (404, "not_found")
    r = world.ask("DELETE", "/v1/status", ADMIN)
    assert r.status == 405 and dict(r.headers)["Allow"] == "GET"


def test_route_does_not_match_an_empty_parameter(world):
    assert world.ask("GET", "/v1/calls/", ADMIN).status == 404


def test_missing_token_gets_401_with_www_authenticate(world):
    r = world.ask("GET", "/v1/status")
    assert r.status == 401
    assert dict(r.headers)["WWW-Authenticate"].startswith("Bearer")


def test_openapi_needs_no_token(world):
    r = world.ask("GET", "/v1/openapi.json")
    assert r.status == 200 and r.body["openapi"].startswith("3.")


def test_body_over_the_limit_is_413(world):
    r = world.ask("PUT", "/v1/queues/hotline/emergency", ADMIN, raw=b" " * (handlers.MAX_BODY_BYTES + 1))
    assert r.status == 413


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"waiting": "3"}, "waiting", "must be an integer, got a string"),
        ({"waiting": True}, "waiting", "must be an integer, got a boolean"),
        ({"waiting": -1}, "waiting", "between 0 and"),
        ({"waiting": 2.5}, "waiting", "must be an integer"),
        ({}, "waiting", "'waiting' is required"),
        ({"waiting": 1, "at": "yesterday"}, "at", "must be a number"),
        ({"waiting": 1, "at": 1_800_000_000 + 3600}, "at", "in the future"),
        ({"waiting": 1, "pool": "x"}, "pool", "unknown field"),
    ],
)
def test_home_load_body_errors_name_the_field(world, body, field, words):
    r = world.ask("POST", "/v1/lenders/lender-12333/home-load", ADMIN, body=body)
    assert r.status == 400, r
    assert r.body["field"] == field and words in r.body["message"]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"{", "not valid JSON"),
        (b"[1]", "must be a JSON object, got an array"),
        (b"\xff", "not UTF-8"),
        (b"", "body is required"),
        (b'{"waiting": NaN}', "not valid JSON"),
    ],
)
def test_unparseable_bodies_are_400(world, raw, words):
    r = world.ask("POST", "/v1/lenders/lender-12333/home-load", ADMIN, raw=raw)
    assert r.status == 400 and words in r.body["message"]


def test_home_load_reaches_the_engine_and_is_audited(world):
    r = world.ask(
        "POST",
        "/v1/lenders/lender-12333/home-load",
        "lender-12333-secret",
        body={"waiting": 2, "at": world.clock.seconds() - 10},
    )
    assert r.status == 200 and r.body["age_s"] == pytest.approx(10)
    pool = next(p for p in world.engine.status()["pools"] if p["name"] == "lender-12333")
    assert pool["home_waiting"] == 2 and pool["home_report_age_s"] == pytest.approx(10)
    (entry,) = world.audit
    assert (entry.who, entry.role, entry.action, entry.target) == (
        "hrss-12333",
        "lender:12333",
        "home-load-reported",
        "lender-12333",
    )
    assert entry.at == world.clock.seconds()


def test_home_load_slightly_ahead_counts_as_now(world):
    r = world.ask(
        "POST", "/v1/lenders/lender-12333/home-load", ADMIN, body={"waiting": 0, "at": world.clock.seconds() + 5}
    )
    assert r.status == 200 and r.body["at"] == world.clock.seconds() and r.body["age_s"] == 0


def test_home_load_for_unknown_pool_is_404_for_admin_but_403_for_a_lender(world):
    assert world.ask("POST", "/v1/lenders/nope/home-load", ADMIN, body={"waiting": 1}).status == 404
    assert world.ask("POST", "/v1/lenders/nope/home-load", "lender-12333-secret", body={"waiting": 1}).status == 403


def test_emergency_plan_must_be_one_of_the_queue_and_null_is_off(world):
    r = world.ask("PUT", "/v1/queues/hotline/emergency", SUPERVISOR, body={"plan": "flood"})
    assert r.status == 400 and r.body["field"] == "plan" and "'drill', 'surge'" in r.body["message"]
    r = world.ask("PUT", "/v1/queues/hotline/emergency", SUPERVISOR, body={})
    assert r.status == 400 and r.body["field"] == "plan"
    r = world.ask("PUT", "/v1/queues/hotline/emergency", SUPERVISOR, body={"plan": 3})
    assert r.status == 400 and r.body["field"] == "plan"
    assert world.ask("PUT", "/v1/queues/nope/emergency", SUPERVISOR, body={"plan": None}).status == 404
    r = world.ask("PUT", "/v1/queues/hotline/emergency", SUPERVISOR, body={"plan": "surge"})
    assert r.body == {
        "queue": "hotline",
        "plan": "surge",
        "previous": None,
        "changed": True,
        "by": "night-supervisor",
        "at": world.clock.seconds(),
    }
    r = world.ask("PUT", "/v1/queues/hotline/emergency", SUPERVISOR, body={"plan": "surge"})
    assert r.body["changed"] is False and r.body["previous"] == "surge"
    r = world.ask("PUT", "/v1/queues/hotline/emergency", SUPERVISOR, body={"plan": None})
    assert (r.body["plan"], r.body["previous"], r.body["changed"]) == (None, "surge", True)
    assert [e.detail["plan"] for e in world.audit] == ["surge", "surge", None]


def test_unknown_call_and_agent_are_404(world):
    assert world.ask("GET", "/v1/calls/c404", VIEWER).status == 404
    assert world.ask("GET", "/v1/agents/a404", VIEWER).status == 404
    assert world.ask("POST", "/v1/agents/a404/logout", SUPERVISOR).status == 404


def test_logout_of_an_agent_on_a_call_is_pending_until_the_call_ends(world):
    world.engine.agent_logged_in("a1", "own")
    world.engine.agent_ready("a1")
    world.engine.call_arrived("c1", "quiet")
    world.engine.offer_answered("c1", "a1")
    r = world.ask("POST", "/v1/agents/a1/logout", SUPERVISOR, body={"reason": "end of shift"})
    assert r.status == 200
    assert (r.body["state"], r.body["logout_pending"], r.body["call"]["state"]) == ("on-call", True, "talking")
    world.engine.call_completed("c1")
    assert world.engine.agent_info("a1") is None


def test_forced_logout_frees_an_agent_on_a_call_at_once(world):
    ended = []
    world.engine.subscribe(lambda e: ended.append(e) if e.kind == "CallEnded" else None)
    world.engine.agent_logged_in("a1", "own")
    world.engine.agent_ready("a1")
    world.engine.call_arrived("c1", "quiet")
    world.engine.offer_answered("c1", "a1")
    r = world.ask("POST", "/v1/agents/a1/logout", SUPERVISOR, body={"reason": "ghost call", "force": True})
    assert r.status == 200 and (r.body["state"], r.body["logout_pending"]) == ("logged-out", False)
    assert world.engine.agent_info("a1") is None
    assert [(e.call_id, e.outcome) for e in ended] == [("c1", "admin-ended")]
    assert world.audit[-1].detail["force"] is True
    assert world.ask("POST", "/v1/agents/a1/logout", SUPERVISOR, body={"force": "yes"}).status == 400


def test_end_call_ends_a_stuck_call_once_audited(world):
    ended = []
    world.engine.subscribe(lambda e: ended.append(e) if e.kind == "CallEnded" else None)
    world.engine.agent_logged_in("a1", "own")
    world.engine.agent_ready("a1")
    world.engine.call_arrived("c1", "quiet")
    world.engine.offer_answered("c1", "a1")
    assert world.ask("POST", "/v1/calls/c1/end", VIEWER, body={"reason": "x"}).status == 403
    assert world.ask("POST", "/v1/calls/c1/end", SUPERVISOR, body={}).status == 400
    r = world.ask("POST", "/v1/calls/c1/end", SUPERVISOR, body={"reason": "switch has no such channel"})
    assert r.status == 200
    assert (r.body["outcome"], r.body["previous_state"], r.body["agent_id"]) == ("admin-ended", "talking", "a1")
    assert world.engine.agent_info("a1")["state"] == "wrap-up"
    assert [(e.outcome, e.reason) for e in ended] == [("admin-ended", "by night-supervisor: switch has no such channel")]
    entry = world.audit[-1]
    assert (entry.action, entry.target, entry.detail["reason"]) == ("call-ended", "c1", "switch has no such channel")
    assert world.ask("POST", "/v1/calls/c1/end", SUPERVISOR, body={"reason": "again"}).status == 404
    assert len(ended) == 1


def test_status_turns_an_unbounded_wait_into_null(world):
    world.engine.call_arrived("c1", "quiet")
    r = world.ask("GET", "/v1/status", VIEWER)
    quiet = next(q for q in r.body["queues"] if q["name"] == "quiet")
    assert quiet["ewt_s"] == float("inf")
    assert json.loads(r.json_bytes())["queues"][1]["ewt_s"] is None


def test_reload_is_handed_to_the_shell_and_bad_file_reports_every_issue(world):
    r = world.ask("POST", "/v1/config/reload", ADMIN)
    assert isinstance(r, ReloadRequested) and r.principal.name == "ops-admin"
    assert world.ask("POST", "/v1/config/reload", SUPERVISOR).status == 403
    bad = ConfigError(
        [ConfigIssue("pools[0].tier", "expected an integer"), ConfigIssue("queues[1].pools[0]", "unknown pool")]
    )
    resp, new = handlers.config_loaded(world.ctx, r.principal, bad)
    assert new is None and resp.status == 400
    assert resp.body["issues"] == [
        {"path": "pools[0].tier", "message": "expected an integer"},
        {"path": "queues[1].pools[0]", "message": "unknown pool"},
    ]
    assert world.audit == []


def test_reload_refused_by_the_engine_is_409_and_changes_nothing(world):
    world.engine.agent_logged_in("r1", "remote")
    raw = make_config()
    raw["pools"] = [p for p in raw["pools"] if p["name"] != "remote"]
    raw["queues"][0]["pools"].remove("remote")
    raw["queues"][0]["tiers"] = [t for t in raw["queues"][0]["tiers"] if t["tier"] != 1]
    resp, new = handlers.config_loaded(world.ctx, handlers.auth.Principal("x", "admin"), parse_config(raw, env={}))
    assert resp.status == 409 and "remote" in resp.body["message"] and new is None
    assert world.engine.agent_info("r1")["pool"] == "remote"


def test_good_reload_swaps_and_lists_settings_that_need_a_restart(world):
    raw = make_config()
    raw["acd"]["listen"] = {"admin_port": 9999}
    raw["queues"].append({"name": "extra", "pools": ["own"]})
    resp, new = handlers.config_loaded(world.ctx, handlers.auth.Principal("x", "admin"), parse_config(raw, env={}))
    assert resp.status == 200 and new is not None
    assert resp.body["needs_restart"] == ["acd.listen"] and "extra" in resp.body["queues"]
    assert [q["name"] for q in world.engine.status()["queues"]] == ["hotline", "quiet", "extra"]
    assert world.audit[-1].action == "config-reloaded"
