"""``callcenter admin ...`` against a running ACD."""

from __future__ import annotations

import io

import pytest
from api_support import ADMIN, SUPERVISOR, VIEWER

from callcenter.api.auth import hash_token
from callcenter.cli import main


def run(capsys, *argv):
    rc = main(["admin", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_token_hash_prints_the_config_value(capsys, monkeypatch):
    assert run(capsys, "token-hash", "dev-admin-token")[:2] == (0, hash_token("dev-admin-token") + "\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("from-stdin\n"))
    assert run(capsys, "token-hash", "-")[1].strip() == hash_token("from-stdin")


def test_status_prints_queue_and_pool_tables(acd, capsys):
    acd.engine("call_arrived", "cli-c1", "quiet")
    try:
        rc, out, _ = run(capsys, "status", "--url", acd.url, "--token", VIEWER)
    finally:
        acd.engine("caller_hung_up", "cli-c1")
    assert rc == 0
    assert all(name in out for name in ("quiet", "hotline", "own", "lender-12333", "lender-12315"))
    assert "∞" in out  # nobody staffed: unbounded expected wait


def test_url_and_token_come_from_the_environment(acd, capsys, monkeypatch):
    monkeypatch.setenv("CALLCENTER_ADMIN_URL", acd.url)
    monkeypatch.setenv("CALLCENTER_ADMIN_TOKEN", VIEWER)
    rc, out, _ = run(capsys, "status", "--json")
    assert rc == 0 and '"queues"' in out


def test_emergency_on_and_off(acd, capsys):
    base = ["--url", acd.url, "--token", SUPERVISOR]
    rc, out, _ = run(capsys, "emergency", "hotline", "on", "surge", *base)
    assert (rc, out) == (0, "hotline: emergency plan surge (was off)\n")
    queue = acd.http("GET", "/api/v1/status", token=VIEWER).body["queues"][0]
    assert queue["emergency"] == "surge"
    assert queue["emergency_by"] and isinstance(queue["emergency_since"], float)
    rc, out, _ = run(capsys, "status", "--url", acd.url, "--token", VIEWER)
    assert rc == 0 and f"surge (by {queue['emergency_by']}, " in out and " UTC)" in out
    rc, out, _ = run(capsys, "emergency", "hotline", "off", *base)
    assert (rc, out) == (0, "hotline: emergency plan off (was surge)\n")
    rc, _, err = run(capsys, "emergency", "hotline", "on", "no-such-plan", *base)
    assert rc == 1 and "no emergency plan 'no-such-plan'" in err
    assert run(capsys, "emergency", "hotline", "on", *base)[0] == 2


def test_lender_report_and_errors_are_clear(acd, capsys):
    rc, out, _ = run(capsys, "lender-report", "lender-12315", "3", "--url", acd.url, "--token", "lender-12315-secret")
    assert rc == 0 and "lender-12315: 3 waiting" in out
    rc, _, err = run(capsys, "lender-report", "lender-12333", "3", "--url", acd.url, "--token", "lender-12315-secret")
    assert rc == 1 and "its own pool" in err
    rc, _, err = run(capsys, "status", "--url", acd.url, "--token", "nope")
    assert rc == 1 and "unknown bearer token" in err and "CALLCENTER_ADMIN_TOKEN" in err


def test_unreachable_api_is_one_clear_line(capsys, free_port):
    rc, _, err = run(capsys, "status", "--url", f"http://127.0.0.1:{free_port}/api/v1", "--token", ADMIN)
    assert rc == 1 and err.startswith("error: cannot reach http://127.0.0.1:")


@pytest.mark.parametrize("argv", [["emergency", "q", "off", "plan"]])
def test_bad_arguments_exit_2(capsys, argv):
    assert run(capsys, *argv)[0] == 2


def test_the_admin_port_address_is_enough_for_the_cli():
    from callcenter.api.cli import AdminClient

    for url in ("http://127.0.0.1:8080", "http://127.0.0.1:8080/", "http://127.0.0.1:8080/api/v1/"):
        assert AdminClient(url, None).url == "http://127.0.0.1:8080/api/v1"
