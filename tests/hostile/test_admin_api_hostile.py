"""Hostile admin API requests (issue 16, items 4, 5 and 8): a clear 4xx, never a 500."""

from __future__ import annotations

import json

import pytest
from api_support import ADMIN, make_config
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from callcenter import admin_http
from callcenter import config as config_module
from callcenter.admin_http import AdminSite, HealthResource
from callcenter.api import handlers
from callcenter.api.handlers import ApiContext, ApiRequest
from callcenter.config import parse_config
from callcenter.engine import Engine

# getattr: the suite also runs (and must fail case by case) against the code before the fixes.
HEADER_DEADLINE_S = getattr(admin_http, "HEADER_DEADLINE_S", 10.0)
BODY_DEADLINE_S = getattr(admin_http, "BODY_DEADLINE_S", 30.0)
SHIPPED_TOKEN_SHA256 = getattr(config_module, "SHIPPED_TOKEN_SHA256",
                               {"1734d503f6aa6a047c36d113cbad769f719c93784b469b771c4c3e7c63adbefd"})

LENDER = "lender-12333-secret"


class World:
    def __init__(self):
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.config = parse_config(make_config(), env={})
        self.engine = Engine(self.config, self.clock)
        self.ctx = ApiContext(self.engine, self.clock, lambda: self.config, lambda entry: None, "acd-test",
                              "/etc/callcenter.yaml", handlers.load_openapi())

    def ask(self, method, path, token=ADMIN, raw=b""):
        req = ApiRequest(method, tuple(path.strip("/").split("/")), f"Bearer {token}", raw)
        return handlers.handle(self.ctx, req)


@pytest.fixture
def world():
    return World()


@pytest.mark.parametrize("raw", [
    b'{"waiting": 1, "at": 1' + b"0" * 400 + b"}",
    b'{"waiting": 1, "at": -1' + b"0" * 400 + b"}",
    b'{"waiting": 1, "at": 1e400}',
    b'{"waiting": 1, "at": -1e400}',
    b'{"waiting": 1, "at": 1.5e308}',
    b'{"waiting": 1e400}',
    b'{"waiting": 1' + b"0" * 5000 + b"}",
    b'{"waiting": 1' + b"0" * 30 + b"}",
    b'{"waiting": 1.5}',
    b'{"waiting": NaN}',
    b'{"waiting": Infinity}',
    b'{"waiting": 1, "at": 12}',
    b'{"waiting": true}',
    b'[' * 100_000 + b']' * 100_000,
    b'{"waiting": 1, "at": "1800000000"}',
])
def test_hostile_numbers_in_a_home_load_report_are_400(world, raw):
    r = world.ask("POST", "/v1/lenders/lender-12333/home-load", LENDER, raw)
    assert r.status in (400, 413), r.body
    json.loads(r.json_bytes())


def test_a_sane_home_load_report_still_works(world):
    r = world.ask("POST", "/v1/lenders/lender-12333/home-load", LENDER, b'{"waiting": 3, "at": 1799999990}')
    assert r.status == 200 and r.body["waiting"] == 3


@pytest.mark.parametrize("pool", ["own", "remote"])
def test_home_load_for_a_pool_that_is_not_borrowed_is_refused(world, pool):
    r = world.ask("POST", f"/v1/lenders/{pool}/home-load", ADMIN, b'{"waiting": 3}')
    assert r.status == 404 and "not a borrowed pool" in r.body["message"]


@pytest.mark.parametrize(("path", "field"), [
    ("/v1/calls/c\x00x", "call_id"),
    ("/v1/calls/" + "x" * 129, "call_id"),
    ("/v1/agents/a\x1b[31m", "agent_id"),
    ("/v1/agents/a\u202eb", "agent_id"),
    ("/v1/queues/bad queue/emergency", "queue"),
    ("/v1/lenders/" + "p" * 65 + "/home-load", "pool"),
])
def test_ids_in_the_path_are_validated_at_the_edge(world, path, field):
    method = "PUT" if path.endswith("emergency") else "POST" if path.endswith("home-load") else "GET"
    r = world.ask(method, path, ADMIN, b'{"plan": null}' if method == "PUT" else b'{"waiting": 1}')
    assert (r.status, r.body.get("field")) == (400, field)


@pytest.mark.parametrize("reason", ["stuck\x00", "line\nbreak", "esc\x1b[2J", "bidi\u202e", "x" * 201])
def test_free_text_reason_with_control_characters_is_refused(world, reason):
    world.engine.agent_logged_in("a1", "own")
    r = world.ask("POST", "/v1/agents/a1/logout", ADMIN, json.dumps({"reason": reason}).encode())
    assert (r.status, r.body.get("field")) == (400, "reason")


def test_reload_with_a_shipped_secret_is_refused_outside_dev_mode(world):
    raw = make_config()
    raw["acd"]["caller_hash_key"] = "dev-caller-hash-key"
    loaded = parse_config(raw, env={})
    principal = handlers.auth.authenticate(f"Bearer {ADMIN}", world.config.acd.admin_tokens)
    response, new = handlers.config_loaded(world.ctx, principal, loaded)
    assert new is None and response.status == 400
    assert response.body["issues"][0]["path"] == "acd.caller_hash_key"
    raw["acd"]["caller_hash_key"] = "a-key-of-our-own-0123456789"
    raw["acd"]["admin_tokens"].append({"name": "dev-admin", "role": "admin",
                                       "token_sha256": next(iter(sorted(SHIPPED_TOKEN_SHA256)))})
    response, new = handlers.config_loaded(world.ctx, principal, parse_config(raw, env={}))
    assert new is None and response.body["issues"][0]["path"].startswith("acd.admin_tokens[")


def test_openapi_declares_the_bounds_the_handlers_enforce():
    doc = json.loads(handlers.load_openapi())
    at = doc["components"]["schemas"]["HomeLoadRequest"]["properties"]["at"]
    assert (at["minimum"], at["maximum"]) == (handlers.MIN_EPOCH_S, handlers.MAX_EPOCH_S)
    assert doc["components"]["schemas"]["LogoutRequest"]["properties"]["reason"]["pattern"]
    checked = 0
    for ops in doc["paths"].values():
        for op in ops.values():
            for param in op.get("parameters", []):
                if param["name"] in ("call_id", "agent_id"):
                    assert param["schema"]["pattern"] and param["schema"]["maxLength"] == 128
                    assert "400" in op["responses"]
                    checked += 1
    assert checked >= 3


# -- the HTTP channel: header and body deadlines -------------------------------------------


def _connect(clock):
    site = AdminSite(HealthResource(lambda: "ok"), reactor=clock)
    proto = site.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport


def test_slowloris_headers_are_cut_off_at_the_header_deadline():
    clock = Clock()
    conns = [_connect(clock) for _ in range(5)]
    for i in range(int(HEADER_DEADLINE_S) - 1):  # one header byte a second keeps the idle timer happy
        for proto, _ in conns:
            proto.dataReceived(b"GET / HTTP/1.1\r\n"[i:i + 1] if i < 16 else b"X")
        clock.advance(1)
    assert not any(t.disconnecting for _, t in conns)
    clock.advance(1.5)
    assert all(t.disconnecting for _, t in conns)


def test_a_slow_body_is_cut_off_at_the_body_deadline():
    clock = Clock()
    proto, transport = _connect(clock)
    proto.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n")
    clock.advance(HEADER_DEADLINE_S + 1)  # headers are complete: the header deadline no longer applies
    assert not transport.disconnecting
    for _ in range(int(BODY_DEADLINE_S - HEADER_DEADLINE_S) - 2):
        proto.dataReceived(b"x")
        clock.advance(1)
    assert not transport.disconnecting
    clock.advance(2)
    assert transport.disconnecting


def test_a_prompt_request_is_answered_and_the_next_one_gets_a_fresh_deadline():
    clock = Clock()
    proto, transport = _connect(clock)
    clock.advance(HEADER_DEADLINE_S - 1)
    proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert b"200 OK" in transport.value() and not transport.disconnecting
    clock.advance(HEADER_DEADLINE_S - 1)
    assert not transport.disconnecting  # a new deadline started with the response
    clock.advance(2)
    assert transport.disconnecting
