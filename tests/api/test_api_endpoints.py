"""The admin API over real HTTP against a running ACD (engine + API on a twisted.web Site)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from api_support import ADMIN, SUPERVISOR, VIEWER

LENDER = "lender-12333-secret"  # role lender:12333 (the pool's lender)
LENDER_BY_POOL = "lender-pool-secret"  # role lender:lender-12333 (the pool's name)
OTHER_LENDER = "lender-12315-secret"


def _epoch(stored) -> float:
    """An audit_log ``at`` (UTC, as SQLite stores it) in epoch seconds."""
    return datetime.fromisoformat(str(stored)).replace(tzinfo=UTC).timestamp()


def status_of(acd, kind: str, name: str) -> dict:
    body = acd.http("GET", "/api/v1/status", token=VIEWER).body
    return next(x for x in body[kind] if x["name"] == name)


# --- each role's limits ---------------------------------------------------------

READS = [("GET", "/api/v1/status", None), ("GET", "/api/v1/calls/c-none", None), ("GET", "/api/v1/agents/a-none", None)]
EMERGENCY = ("PUT", "/api/v1/queues/quiet/emergency", {"plan": None})
LOGOUT = ("POST", "/api/v1/agents/a-none/logout", None)
HOME_LOAD = ("POST", "/api/v1/lenders/lender-12333/home-load", {"waiting": 1})
OTHER_HOME_LOAD = ("POST", "/api/v1/lenders/lender-12315/home-load", {"waiting": 1})
RELOAD = ("POST", "/api/v1/config/reload", None)
ALL = [*READS, EMERGENCY, LOGOUT, HOME_LOAD, OTHER_HOME_LOAD, RELOAD]

# What each token may do; anything else must be 403.  ("allowed" answers are
# 200, or 404 for the ids that do not exist.)
MAY = {
    ADMIN: set(range(len(ALL))),
    SUPERVISOR: {0, 1, 2, 3, 4},
    VIEWER: {0, 1, 2},
    LENDER: {5},
    LENDER_BY_POOL: {5},
    OTHER_LENDER: {6},
}


@pytest.mark.parametrize("token", list(MAY), ids=lambda t: t.removesuffix("-secret"))
def test_each_role_may_do_exactly_its_part(acd, token):
    for i, (method, path, body) in enumerate(ALL):
        reply = acd.http(method, path, token=token, body=body)
        if i in MAY[token]:
            assert reply.status in (200, 404), (method, path, reply)
            assert reply.status == 200 or reply.body["error"] == "not_found"
        else:
            assert reply.status == 403, (token, method, path, reply)
            assert reply.body["error"] == "forbidden"


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Basic YWRtaW46YWRtaW4=", "Bearer"])
def test_missing_or_wrong_token_is_401_everywhere(acd, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    for method, path, body in ALL:
        reply = acd.http(method, path, body=body, headers=headers)
        assert reply.status == 401, (method, path, reply)
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")


def test_openapi_document_is_served_without_a_token(acd):
    reply = acd.http("GET", "/api/v1/openapi.json")
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("application/json")
    assert set(reply.body["paths"]) >= {
        "/status",
        "/queues/{queue}/emergency",
        "/lenders/{pool}/home-load",
        "/calls/{call_id}",
        "/agents/{agent_id}",
        "/agents/{agent_id}/logout",
        "/config/reload",
    }


def test_hostile_requests_get_clear_errors(acd):
    assert acd.http("GET", "/api/v2/status", token=ADMIN).status == 404
    reply = acd.http("PATCH", "/api/v1/status", token=ADMIN, body={})
    assert reply.status == 405 and reply.headers["Allow"] == "GET"
    reply = acd.http(
        "POST", "/api/v1/lenders/lender-12333/home-load", token=ADMIN, raw=b'{"waiting": 1' + b" " * 70000 + b"}"
    )
    assert reply.status == 413
    reply = acd.http("POST", "/api/v1/lenders/lender-12333/home-load", token=ADMIN, raw=b"{not json")
    assert reply.status == 400 and "not valid JSON" in reply.body["message"]
    reply = acd.http("POST", "/api/v1/lenders/lender-12333/home-load", token=ADMIN, body={"waiting": "many"})
    assert reply.status == 400 and reply.body["field"] == "waiting"
    # and the ACD carries on
    assert acd.http("GET", "/api/v1/status", token=VIEWER).status == 200


# --- behaviour ------------------------------------------------------------------------


def test_status_shows_queues_and_pools(acd):
    body = acd.http("GET", "/api/v1/status", token=VIEWER).body
    assert body["acd"] == "acd-test" and abs(body["at"] - time.time()) < 60
    assert {q["name"] for q in body["queues"]} == {"hotline", "quiet"}
    pool = next(p for p in body["pools"] if p["name"] == "lender-12333")
    assert (pool["kind"], pool["max_share"], pool["lender"]) == ("borrowed", 0.5, "12333")
    assert set(pool["agents"]) >= {"ready", "not-ready", "offered", "on-call", "wrap-up"}


def test_emergency_plan_takes_effect_for_waiting_callers_at_once(acd):
    before = len(acd.audit())
    acd.engine("agent_logged_in", "r1", "remote", endpoint="PJSIP/r1")
    acd.engine("agent_ready", "r1")
    acd.engine("call_arrived", "c1", "hotline", caller_masked="138****5678")
    call = acd.http("GET", "/api/v1/calls/c1", token=VIEWER).body
    assert (call["state"], call["agent_id"]) == ("waiting", None)  # the remote tier opens only after 3000 s
    assert status_of(acd, "queues", "hotline")["waiting"] == 1

    reply = acd.http("PUT", "/api/v1/queues/hotline/emergency", token=SUPERVISOR, body={"plan": "surge"})
    assert reply.status == 200 and reply.body["plan"] == "surge" and reply.body["changed"] is True

    call = acd.http("GET", "/api/v1/calls/c1", token=VIEWER).body
    assert (call["state"], call["agent_id"], call["emergency_plan"]) == ("offered", "r1", "surge")
    assert status_of(acd, "queues", "hotline")["emergency"] == "surge"

    reply = acd.http("PUT", "/api/v1/queues/hotline/emergency", token=SUPERVISOR, body={"plan": None})
    assert (reply.status, reply.body["previous"]) == (200, "surge")
    assert status_of(acd, "queues", "hotline")["emergency"] is None
    rows = acd.audit(expect=before + 2)[before:]
    assert [(e["who"], e["what"], e["details"]["plan"]) for e in rows] == [
        ("night-supervisor (supervisor)", "emergency-set hotline", "surge"),
        ("night-supervisor (supervisor)", "emergency-set hotline", None),
    ]
    assert all(abs(_epoch(e["at"]) - time.time()) < 60 for e in rows)
    acd.engine("caller_hung_up", "c1")
    acd.engine("agent_logged_out", "r1")


def test_lender_home_load_report_is_what_the_lender_gate_reads(acd):
    before = len(acd.audit())
    for agent in ("l1", "l2"):  # two of 12333's agents logged in: cap 1 at max_share 0.5
        acd.engine("agent_logged_in", agent, "lender-12333")
    reply = acd.http(
        "POST", "/api/v1/lenders/lender-12333/home-load", token=LENDER, body={"waiting": 9, "at": time.time()}
    )
    assert reply.status == 200 and reply.body["applied"] is True and reply.body["age_s"] < 60
    pool = status_of(acd, "pools", "lender-12333")
    assert (pool["home_waiting"], pool["gate_open"]) == (9, False)  # over home_waiting_max 5: stop borrowing
    assert 0 <= pool["home_report_age_s"] < 60
    reply = acd.http("POST", "/api/v1/lenders/lender-12333/home-load", token=LENDER_BY_POOL, body={"waiting": 2})
    assert reply.status == 200 and reply.body["age_s"] == 0
    pool = status_of(acd, "pools", "lender-12333")
    assert (pool["home_waiting"], pool["gate_open"]) == (2, True)
    # a report older than the last one arrives late: accepted, but it changes nothing
    reply = acd.http(
        "POST", "/api/v1/lenders/lender-12333/home-load", token=LENDER, body={"waiting": 50, "at": time.time() - 30}
    )
    assert reply.status == 200 and reply.body["applied"] is False
    assert status_of(acd, "pools", "lender-12333")["home_waiting"] == 2
    # a lender cannot speak for another lender's pool, nor read our state
    other = status_of(acd, "pools", "lender-12315")["home_waiting"]
    assert acd.http("POST", "/api/v1/lenders/lender-12315/home-load", token=LENDER, body={"waiting": 77}).status == 403
    assert acd.http("GET", "/api/v1/status", token=LENDER).status == 403
    assert status_of(acd, "pools", "lender-12315")["home_waiting"] == other
    rows = acd.audit(expect=before + 3)[before:]
    assert [(e["who"], e["what"], e["details"]["waiting"]) for e in rows] == [
        ("hrss-12333 (lender:12333)", "home-load-reported lender-12333", 9),
        ("hrss-by-pool (lender:lender-12333)", "home-load-reported lender-12333", 2),
        ("hrss-12333 (lender:12333)", "home-load-reported lender-12333", 50),
    ]
    for agent in ("l1", "l2"):
        acd.engine("agent_logged_out", agent)


def test_calls_and_agents_are_looked_up_by_id(acd):
    acd.engine("agent_logged_in", "o1", "own", skills={"medical": 3})
    acd.engine("call_arrived", "1700000000.42", "quiet", caller_masked="138****5678")
    call = acd.http("GET", "/api/v1/calls/1700000000.42", token=VIEWER)
    assert call.status == 200
    assert (call.body["call_id"], call.body["queue"], call.body["position"]) == ("1700000000.42", "quiet", 1)
    assert call.body["caller_masked"] == "138****5678"
    agent = acd.http("GET", "/api/v1/agents/o1", token=VIEWER)
    assert (agent.status, agent.body["state"], agent.body["pool"]) == (200, "not-ready", "own")
    assert acd.http("GET", "/api/v1/calls/1700000000.43", token=VIEWER).status == 404
    acd.engine("caller_hung_up", "1700000000.42")
    acd.engine("agent_logged_out", "o1")


def test_forced_logout_sends_the_offered_call_to_the_next_agent(acd):
    before = len(acd.audit())
    for agent in ("o1", "o2"):
        acd.engine("agent_logged_in", agent, "own", endpoint=f"PJSIP/{agent}")
        acd.engine("agent_ready", agent)
    acd.engine("call_arrived", "f1", "quiet")
    assert acd.http("GET", "/api/v1/calls/f1", token=VIEWER).body["agent_id"] == "o1"  # longest idle
    assert acd.http("POST", "/api/v1/agents/o1/logout", token=VIEWER).status == 403

    reply = acd.http("POST", "/api/v1/agents/o1/logout", token=SUPERVISOR, body={"reason": "seat frozen"})
    assert reply.status == 200
    assert (reply.body["state"], reply.body["previous_state"]) == ("logged-out", "offered")
    assert (reply.body["call"]["state"], reply.body["call"]["agent_id"]) == ("offered", "o2")
    assert acd.http("GET", "/api/v1/agents/o1", token=VIEWER).status == 404
    assert acd.http("GET", "/api/v1/agents/o2", token=VIEWER).body["call_id"] == "f1"
    (entry,) = acd.audit(expect=before + 1)[before:]
    assert (entry["what"], entry["details"]["reason"], entry["details"]["call_id"]) == (
        "agent-logged-out o1",
        "seat frozen",
        "f1",
    )
    assert acd.http("POST", "/api/v1/agents/o1/logout", token=SUPERVISOR).status == 404
    acd.engine("caller_hung_up", "f1")
    acd.engine("agent_logged_out", "o2")


def test_an_oversized_body_is_cut_off_before_it_is_read(acd):
    """The admin port refuses a declared body over 1 MiB: the connection closes at the headers."""
    import socket

    with socket.create_connection(("127.0.0.1", acd.port), timeout=5) as s:
        s.sendall(b"POST /api/v1/lenders/lender-12333/home-load HTTP/1.1\r\nHost: x\r\n"
                  b"Authorization: Bearer " + ADMIN.encode() + b"\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n" + b" " * 65536)
        s.settimeout(5)
        try:
            assert s.recv(65536) == b""  # closed, no reply, nothing buffered
        except ConnectionResetError:
            pass  # aborted: equally closed
    assert acd.http("GET", "/api/v1/status", token=ADMIN).status == 200  # and the ACD carries on
