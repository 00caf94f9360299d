"""The work-order endpoints (callcenter/api/orders.py) over a real order desk on a task.Clock."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from twisted.internet.task import Clock

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from api_support import ADMIN, SUPERVISOR, VIEWER, make_config  # noqa: E402

from callcenter.api import handlers  # noqa: E402
from callcenter.api.auth import hash_token  # noqa: E402
from callcenter.api.handlers import ApiContext, ApiRequest  # noqa: E402
from callcenter.config import parse_config  # noqa: E402
from callcenter.engine import Engine  # noqa: E402
from callcenter.orders.book import OrderBook  # noqa: E402
from callcenter.orders.desk import OrderDesk  # noqa: E402

STREET = "street:雁塔区:小寨路街道"
STREET_TOKEN = "street-token"
OTHER_TOKEN = "other-street-token"


class World:
    def __init__(self):
        self.clock = Clock()
        self.clock.advance(1_796_700_000)  # a Monday morning, Beijing time
        raw = make_config()
        raw["acd"]["admin_tokens"] += [
            {"name": "xiaozhai", "role": f"unit:{STREET}", "token_sha256": hash_token(STREET_TOKEN)},
            {"name": "other", "role": "unit:street:雁塔区:长延堡街道", "token_sha256": hash_token(OTHER_TOKEN)},
        ]
        raw["orders"] = {"dispatch": [{"category": "epidemic", "to": "street"}]}
        self.config = parse_config(raw, env={})
        self.engine = Engine(self.config, self.clock)
        self.audit: list[handlers.AuditEntry] = []
        ids = iter(f"WO{i:04d}" for i in range(1, 1000))
        self.desk = OrderDesk(OrderBook(self.config.orders), self.clock, new_id=lambda: next(ids))
        self.ctx = ApiContext(self.engine, self.clock, lambda: self.config, self.audit.append, "acd-test",
                              None, handlers.load_openapi(), orders=self.desk)

    def ask(self, method, path, token=None, body=None):
        data = json.dumps(body).encode() if body is not None else b""
        segs = tuple(quote(s, safe=":") for s in path.strip("/").split("/"))
        return handlers.handle(self.ctx, ApiRequest(method, segs, f"Bearer {token}" if token else None, data))


@pytest.fixture
def world():
    return World()


ORDER = {"category": "epidemic", "district": "雁塔区", "street": "小寨路街道", "summary": "小区封控 物资配送不到",
         "urgency": "urgent", "calls": ["1700000000.1"]}


def test_a_whole_order_through_the_api(world):
    r = world.ask("POST", "/v1/orders", SUPERVISOR, ORDER)
    assert r.status == 201, r.body
    order = r.body["order"]
    assert order["id"] == "WO0001" and order["owner"] == STREET and order["state"] == "dispatched"
    base = f"/v1/units/{STREET}/orders/WO0001"
    # another unit may neither read this street's list nor act on its order
    assert world.ask("GET", f"/v1/units/{STREET}/orders", OTHER_TOKEN).status == 403
    assert world.ask("POST", f"{base}/accept", OTHER_TOKEN).status == 403
    r = world.ask("GET", f"/v1/units/{STREET}/orders", STREET_TOKEN)
    assert [o["id"] for o in r.body["orders"]] == ["WO0001"]
    assert world.ask("POST", f"{base}/accept", STREET_TOKEN).status == 200
    assert world.ask("POST", f"{base}/progress", STREET_TOKEN, {"note": "已联系社区"}).status == 200
    assert world.ask("POST", f"{base}/reply", STREET_TOKEN, {"text": "今晚送达"}).status == 200
    r = world.ask("POST", f"{base}/close", STREET_TOKEN, {"result": "已送达"})
    assert r.status == 200 and r.body["state"] == "closed" and r.body["on_time"] is True
    r = world.ask("POST", "/v1/orders/WO0001/visit", SUPERVISOR, {"satisfied": True})
    assert r.body["state"] == "done"
    assert [a.action for a in world.audit] == ["order-created", "order-accept", "order-progress", "order-reply",
                                               "order-close", "order-visited"]


def test_repeats_are_linked_and_shown_as_clusters(world):
    world.ask("POST", "/v1/orders", SUPERVISOR, ORDER)
    r = world.ask("POST", "/v1/orders", SUPERVISOR, {**ORDER, "summary": "小区封控，物资配送不到", "calls": ["c2"]})
    assert r.status == 200 and r.body["linked"] and r.body["order"]["id"] == "WO0001"
    r = world.ask("GET", "/v1/orders/clusters", VIEWER)
    assert r.body["clusters"][0]["requests"] == 2


def test_return_and_reassign_and_extension(world):
    world.ask("POST", "/v1/orders", ADMIN, ORDER)
    base = f"/v1/units/{STREET}/orders/WO0001"
    r = world.ask("POST", f"{base}/return", STREET_TOKEN, {"reason": "不属于本街道"})
    assert r.body["state"] == "returned" and r.body["owner"] == "dispatch-desk"
    assert world.ask("POST", f"{base}/accept", STREET_TOKEN).status == 403  # no longer its order
    r = world.ask("POST", "/v1/orders/WO0001/dispatch", SUPERVISOR, {"unit": STREET})
    assert r.body["owner"] == STREET
    world.ask("POST", f"{base}/accept", STREET_TOKEN)
    r = world.ask("POST", f"{base}/extension", STREET_TOKEN, {"seconds": 3600, "reason": "需协调"})
    assert r.body["extension"]["seconds"] == 3600
    deadline = r.body["deadline"]
    assert world.ask("POST", "/v1/orders/WO0001/extension-decision", VIEWER, {"approve": True}).status == 403
    r = world.ask("POST", "/v1/orders/WO0001/extension-decision", SUPERVISOR, {"approve": True})
    assert r.body["deadline"] == deadline + 3600


@pytest.mark.parametrize("path,token,body,status", [
    ("/v1/orders", VIEWER, ORDER, 403),
    ("/v1/orders", None, ORDER, 401),
    ("/v1/orders", SUPERVISOR, {**ORDER, "urgency": "now"}, 400),
    ("/v1/orders", SUPERVISOR, {**ORDER, "summary": "a\x00b"}, 400),
    ("/v1/orders", SUPERVISOR, {**ORDER, "summary": "x" * 501}, 400),
    ("/v1/orders", SUPERVISOR, {**ORDER, "calls": "c1"}, 400),
    ("/v1/orders", SUPERVISOR, {**ORDER, "owner": "me"}, 400),
    ("/v1/orders/nope/dispatch", SUPERVISOR, {"unit": STREET}, 404),
    (f"/v1/units/{STREET}/orders/WO0001/extension", STREET_TOKEN, {"seconds": 1e400, "reason": "x"}, 400),
    (f"/v1/units/{STREET}/orders/WO0001/extension", STREET_TOKEN, {"seconds": True, "reason": "x"}, 400),
    (f"/v1/units/{STREET}/orders/WO0001/close", STREET_TOKEN, {"result": "x"}, 409),  # not accepted yet
    (f"/v1/units/{STREET}/orders/WO0001/fly", STREET_TOKEN, {}, 404),
])
def test_bad_requests_get_clear_errors_and_change_nothing(world, path, token, body, status):
    world.ask("POST", "/v1/orders", SUPERVISOR, ORDER)
    before = world.desk.book.orders["WO0001"].state
    raw_body = body
    r = world.ask("POST", path, token, raw_body)
    assert r.status == status, r.body
    assert world.desk.book.orders["WO0001"].state == before
    assert set(world.desk.book.orders) == {"WO0001"}
