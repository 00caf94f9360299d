"""A real ``callcenter serve`` process whose Redis goes away and comes back (empty):
it stays active and healthy, raises the alarm metrics, and writes its state back."""

from __future__ import annotations

import json
import re

import pytest

from callcenter.state.cluster import LocalCluster
from callcenter.testing.polling import wait_until as until


def metric(text: str, name: str) -> float | None:
    m = re.search(rf"^{re.escape(name)} ([0-9.eE+-]+)$", text, re.M)
    return float(m.group(1)) if m else None


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_redis_outage_alarm_and_write_back_in_a_real_process(tmp_path):
    cluster = LocalCluster(tmp_path / "cluster", acds=1, agents=3)
    try:
        cluster.start()
        acd = cluster.wait_active()
        until(lambda: metric(acd.metrics(), "callcenter_state_leader") == 1.0, 10, "the leader gauge")
        assert metric(acd.metrics(), "callcenter_redis_up") == 1.0

        cluster.redis.kill()  # Redis dies without saving
        until(lambda: metric(acd.metrics(), "callcenter_redis_up") == 0.0, 10, "the alarm")
        assert acd.health() == "ok" and acd.alive()  # still active, routing from memory
        code, status = acd.api("status")
        assert code == 200 and status["pools"][0]["agents"]["ready"] == 3

        cluster.redis.wipe_files()  # its files are lost too (with them the AOF would keep the data)
        cluster.redis.requested_port = cluster.redis.port
        cluster.redis.start()  # back, empty
        until(lambda: metric(acd.metrics(), "callcenter_redis_up") == 1.0, 15, "Redis seen again")
        client = cluster.client()
        try:
            snap = until(lambda: client.get(cluster.keys.snapshot), 10, "the state written back")
            assert client.get(cluster.keys.fence) == b"1"  # the fence restored to the active's token
        finally:
            client.close()
        doc = json.loads(snap)
        assert {a["id"] for a in doc["engine"]["agents"]} == {"robot-0", "robot-1", "robot-2"}
        assert metric(acd.metrics(), "callcenter_state_unsynced_inputs") == 0.0
        assert "lease had lapsed and was reclaimed" in acd.log_text()
    finally:
        cluster.stop()
