"""Work orders in a running ACD process (records + orders + admin API over real HTTP and SQLite):
an order made and worked through the API is still there, with its owner, deadline and history,
after the process is stopped and started again."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from urllib.parse import quote  # noqa: E402

from api_support import SUPERVISOR, make_config, start_acd, stop_acd  # noqa: E402

from callcenter.api.auth import hash_token  # noqa: E402

UNIT = "street:雁塔区:小寨路街道"


def test_orders_survive_a_restart_of_the_acd(tmp_path):
    config = make_config()
    config["acd"]["admin_tokens"].append({"name": "xiaozhai", "role": f"unit:{UNIT}",
                                          "token_sha256": hash_token("unit-secret")})
    config["orders"] = {"dispatch": [{"category": "epidemic", "to": "street"}]}
    acd = start_acd(tmp_path, config)
    try:
        r = acd.http("POST", "/api/v1/orders", token=SUPERVISOR,
                     body={"category": "epidemic", "district": "雁塔区", "street": "小寨路街道",
                           "summary": "小区封控 物资配送不到", "urgency": "urgent"})
        assert r.status == 201, r
        oid = r.body["order"]["id"]
        unit_path = f"/api/v1/units/{quote(UNIT)}/orders/{oid}"
        assert acd.http("POST", f"{unit_path}/accept", token="unit-secret").status == 200
        assert acd.http("POST", f"{unit_path}/progress", token="unit-secret", body={"note": "已联系社区"}).status == 200
        before = acd.http("GET", f"/api/v1/orders/{oid}", token=SUPERVISOR).body
        acd.audit(expect=3)  # the writer has caught up with the API's changes
    finally:
        stop_acd(acd)
    acd = start_acd(tmp_path, config)
    try:
        after = acd.http("GET", f"/api/v1/orders/{oid}", token=SUPERVISOR)
        assert after.status == 200, after
        for key in ("state", "owner", "urgency", "summary"):
            assert after.body[key] == before[key], key
        for key in ("deadline", "created_at"):  # SQL keeps microseconds
            assert after.body[key] == pytest.approx(before[key], abs=1e-5), key
        assert after.body["state"] == "accepted" and after.body["owner"] == UNIT
        r = acd.http("GET", f"/api/v1/units/{quote(UNIT)}/orders", token="unit-secret")
        assert [o["id"] for o in r.body["orders"]] == [oid]
        assert acd.http("POST", f"{unit_path}/close", token="unit-secret", body={"result": "已送达"}).status == 200
    finally:
        stop_acd(acd)
