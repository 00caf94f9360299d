"""Seat token revocation survives a restart (issue 16): a real ``callcenter serve``
process, a real Redis, SIGKILL and a restart; the seat protocol over real TLS.

Log in (T_old), log out, log in again (T_new), SIGKILL the ACD and start it again:
T_old must be refused and T_new must resume.  The engine state restored from Redis
carries the agent's current seat session id, which every token names.
"""

from __future__ import annotations

import re

import pytest

from callcenter.state.cluster import ROBOT_PASSWORD, LocalCluster
from callcenter.testing.polling import wait_until as until

from .wss_sync import Closed, SyncSeat


def metric(text: str, name: str) -> float | None:
    m = re.search(rf"^{re.escape(name)} ([0-9.eE+-]+)$", text, re.M)
    return float(m.group(1)) if m else None


def login(acd, cafile: str) -> tuple[SyncSeat, str]:
    seat = SyncSeat(acd.seat_url, cafile)
    seat.send({"v": 1, "type": "login", "agent_id": "robot-0", "password": ROBOT_PASSWORD})
    ok = seat.recv_until("login_ok")
    assert ok["type"] == "login_ok", ok
    return seat, ok["token"]


def resume(acd, cafile: str, token: str) -> dict:
    seat = SyncSeat(acd.seat_url, cafile)
    try:
        seat.send({"v": 1, "type": "resume", "token": token})
        return seat.recv_until("resumed")
    finally:
        seat.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_old_token_is_dead_after_logout_relogin_and_a_sigkill_restart(tmp_path):
    cluster = LocalCluster(tmp_path / "cluster", acds=1, agents=1, seat_robots=True)
    try:
        cluster.start()
        acd = cluster.wait_active()
        first, t_old = login(acd, cluster.cafile)
        first.send({"v": 1, "type": "logout"})
        assert first.recv_until("session_ended")["reason"] == "logged-out"
        with pytest.raises(Closed):
            first.recv()
        second, t_new = login(acd, cluster.cafile)
        assert t_new != t_old
        # the inputs are in Redis (what a restart restores from)
        until(lambda: metric(acd.metrics(), "callcenter_state_unsynced_inputs") == 0.0, 10, "state written")
        acd.kill()
        second.close()
        acd.start()
        acd = cluster.wait_active(timeout=40)
        refused = resume(acd, cluster.cafile, t_old)
        assert (refused["type"], refused.get("code")) == ("error", "bad-token"), refused
        resumed = resume(acd, cluster.cafile, t_new)
        assert resumed["type"] == "resumed" and resumed["agent_id"] == "robot-0", resumed
        t_rotated = resumed["token"]
        assert t_rotated != t_new  # rotated on resume: T_new is now dead too
        again = resume(acd, cluster.cafile, t_new)
        assert (again["type"], again.get("code")) == ("error", "bad-token"), again
        # and the rotation itself survives the next restart
        until(lambda: metric(acd.metrics(), "callcenter_state_unsynced_inputs") == 0.0, 10, "rotation written")
        acd.kill()
        acd.start()
        acd = cluster.wait_active(timeout=40)
        stale = resume(acd, cluster.cafile, t_new)
        assert (stale["type"], stale.get("code")) == ("error", "bad-token"), stale
        assert resume(acd, cluster.cafile, t_rotated)["type"] == "resumed"
    finally:
        cluster.stop()
