"""The work-order endpoints of the admin API (pure, like handlers.py; docs/orders.md).

The dispatch desk and the supervising office (``supervisor``/``admin`` tokens) create, dispatch,
decide extensions and record return visits; a unit (a ``unit:<id>`` token) reads and acts on the
orders it owns under ``/v1/units/{unit}/orders``.  Every change is audited.
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import unquote

from callcenter.orders import states as st
from callcenter.orders.book import NotOwner, Order, OrderError, UnknownOrder
from callcenter.orders.states import IllegalOrderTransition

from . import auth
from .handlers import (
    ApiContext,
    ApiRequest,
    ApiResponse,
    AuditEntry,
    BadRequest,
    _principal,
    _str_field,
    error,
    ok,
    only_keys,
    parse_body,
)

__all__ = ["ORDER_ROUTES", "order_error", "ORDER_ERRORS"]

MAX_TEXT = 2000
MAX_SHORT = 200
MAX_LIST = 500  # orders listed in one answer
_CALL_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # Asterisk unique ids and the ACD's own


def order_view(o: Order) -> dict[str, Any]:
    return {
        "id": o.id, "state": o.state, "owner": o.owner, "category": o.category, "district": o.district,
        "street": o.street, "address": o.address, "summary": o.summary, "request_text": o.request_text,
        "urgency": o.urgency, "reply_wanted": o.reply_wanted, "created_at": o.created_at, "created_by": o.created_by,
        "deadline": o.deadline, "closed_at": o.closed_at, "on_time": o.on_time, "result": o.result, "reply": o.reply,
        "kb_article": o.kb_article, "calls": list(o.call_ids), "linked_requests": list(o.linked),
        "reopened": o.reopened, "escalation_level": o.escalation_level, "extension": o.extension,
        "notes": [{"at": t, "by": who, "note": n} for t, who, n in o.notes],
    }


def _desk(ctx: ApiContext):
    if ctx.orders is None:
        raise BadRequest("this ACD runs without the orders subsystem")
    return ctx.orders


def _text(data: dict, key: str, max_chars: int, *, required: bool, default: str = "") -> str:
    v = _str_field(data, key, max_chars, nullable=False, required=required)
    if v is None:
        return default
    if required and not v.strip():
        raise BadRequest(f"{key!r} must not be empty", field=key)
    _no_controls(v, key)
    return v


def _path(params: dict[str, str], key: str, max_chars: int) -> str:
    """A percent-decoded path parameter, bounded like the document says (an id no order or unit
    has is then simply not found)."""
    v = unquote(params[key])
    if not 0 < len(v) <= max_chars:
        raise BadRequest(f"path parameter {key!r} must be 1 to {max_chars} characters", field=key)
    return v


def _no_controls(v: str, key: str) -> None:
    if any(ord(c) < 32 and c not in "\n\t" or ord(c) == 127 for c in v):
        raise BadRequest(f"{key!r} holds control characters", field=key)


def _bool(data: dict, key: str, default: bool | None = None) -> bool:
    if key not in data:
        if default is None:
            raise BadRequest(f"{key!r} is required", field=key)
        return default
    if not isinstance(data[key], bool):
        raise BadRequest(f"{key!r} must be true or false", field=key)
    return data[key]


def _audit(ctx: ApiContext, principal: auth.Principal, action: str, target: str, detail: dict) -> None:
    ctx.audit(AuditEntry(ctx.now(), principal.name, principal.role, action, target, detail))


# -- the desk and the office ---------------------------------------------------------------
def post_order(ctx: ApiContext, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    principal = _principal(ctx, req)
    auth.authorize(principal, auth.ORDERS_DESK)
    desk = _desk(ctx)
    data = parse_body(req.body, required=True)
    only_keys(data, {"category", "district", "street", "address", "summary", "request_text", "urgency",
                     "reply_wanted", "calls", "resolved_on_spot", "kb_article"})
    calls = data.get("calls", [])
    if not isinstance(calls, list) or len(calls) > 20 or not all(isinstance(c, str) and _CALL_ID.match(c)
                                                                   for c in calls):
        raise BadRequest("'calls' must be a list of at most 20 call ids (letters, digits, . _ : -)", field="calls")
    urgency = _text(data, "urgency", 16, required=False, default="ordinary")
    if urgency not in ("urgent", "ordinary"):
        raise BadRequest("'urgency' must be 'urgent' or 'ordinary'", field="urgency")
    kb = data.get("kb_article")
    if kb is not None and not (isinstance(kb, str) and 0 < len(kb) <= 64):
        raise BadRequest("'kb_article' must be an article id", field="kb_article")
    if kb is not None:
        _no_controls(kb, "kb_article")
    order_id = desk.new_id()
    events = desk.run("create", order_id=order_id, category=_text(data, "category", 64, required=True),
                      district=_text(data, "district", 64, required=False),
                      street=_text(data, "street", 64, required=False),
                      address=_text(data, "address", MAX_SHORT, required=False),
                      summary=_text(data, "summary", 500, required=True),
                      request_text=_text(data, "request_text", MAX_TEXT, required=False), urgency=urgency,
                      reply_wanted=_bool(data, "reply_wanted", True), call_ids=tuple(calls),
                      created_by=principal.name, resolved_on_spot=_bool(data, "resolved_on_spot", False),
                      kb_article=kb)
    first = events[0]
    _audit(ctx, principal, "order-created" if first.kind == "created" else "order-linked", first.order_id,
           {"request": order_id})
    o = desk.book.orders[first.order_id]
    return ok({"order": order_view(o), "linked": first.kind == "linked", "events": [e.kind for e in events]},
              201 if first.kind == "created" else 200)


def list_orders(ctx: ApiContext, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    auth.authorize(_principal(ctx, req), auth.ORDERS_READ, unit="")
    book = _desk(ctx).book
    now = ctx.now()
    open_orders = [o for o in book.orders.values() if o.state in st.OPEN_STATES]
    open_orders.sort(key=lambda o: o.deadline)
    return ok({"open": len(open_orders), "overdue": sum(o.deadline < now for o in open_orders),
               "orders": [order_view(o) for o in open_orders[:MAX_LIST]]})


def get_order(ctx: ApiContext, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    auth.authorize(_principal(ctx, req), auth.ORDERS_READ, unit="")
    o = _desk(ctx).book.orders.get(_path(params, "order_id", 64))
    if o is None:
        return error(404, "not_found", f"no order {_path(params, 'order_id', 64)!r}")
    return ok(order_view(o))


def get_clusters(ctx: ApiContext, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    auth.authorize(_principal(ctx, req), auth.ORDERS_READ, unit="")
    found = _desk(ctx).book.clusters()
    return ok({"clusters": [{"order": o.id, "requests": 1 + len(o.linked), "category": o.category,
                             "district": o.district, "street": o.street, "summary": o.summary, "state": o.state}
                            for o in found[:MAX_LIST]]})


def post_dispatch(ctx: ApiContext, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    principal = _principal(ctx, req)
    auth.authorize(principal, auth.ORDERS_DESK)
    data = parse_body(req.body, required=True)
    only_keys(data, {"unit"})
    unit = _text(data, "unit", 140, required=True)
    oid = _path(params, "order_id", 64)
    _desk(ctx).run("dispatch", oid, unit, principal.name)
    _audit(ctx, principal, "order-dispatched", oid, {"unit": unit})
    return ok(order_view(_desk(ctx).book.orders[oid]))


def post_extension_decision(ctx: ApiContext, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    principal = _principal(ctx, req)
    auth.authorize(principal, auth.ORDERS_OFFICE)
    data = parse_body(req.body, required=True)
    only_keys(data, {"approve"})
    approve = _bool(data, "approve")
    oid = _path(params, "order_id", 64)
    _desk(ctx).run("decide_extension", oid, principal.name, approve)
    _audit(ctx, principal, "order-extension-decided", oid, {"approve": approve})
    return ok(order_view(_desk(ctx).book.orders[oid]))


def post_visit(ctx: ApiContext, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    principal = _principal(ctx, req)
    auth.authorize(principal, auth.ORDERS_DESK)
    data = parse_body(req.body, required=True)
    only_keys(data, {"satisfied", "note"})
    oid = _path(params, "order_id", 64)
    satisfied = _bool(data, "satisfied")
    _desk(ctx).run("record_visit", oid, principal.name, satisfied, _text(data, "note", MAX_TEXT, required=False))
    _audit(ctx, principal, "order-visited", oid, {"satisfied": satisfied})
    return ok(order_view(_desk(ctx).book.orders[oid]))


# -- a unit ----------------------------------------------------------------------------------
def list_unit_orders(ctx: ApiContext, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    unit = _path(params, "unit", 140)
    auth.authorize(_principal(ctx, req), auth.ORDERS_READ, unit=unit)
    book = _desk(ctx).book
    mine = sorted((o for o in book.orders.values() if o.owner == unit and o.state in st.OPEN_STATES),
                  key=lambda o: o.deadline)
    return ok({"unit": unit, "orders": [order_view(o) for o in mine[:MAX_LIST]]})


_UNIT_ACTIONS = {
    # action: (book command, body keys, how the body becomes arguments)
    "accept": ("accept", set(), lambda d: ()),
    "progress": ("progress", {"note"}, lambda d: (_text(d, "note", MAX_TEXT, required=True),)),
    "reply": ("reply", {"text"}, lambda d: (_text(d, "text", MAX_TEXT, required=True),)),
    "close": ("close", {"result"}, lambda d: (_text(d, "result", MAX_TEXT, required=True),)),
    "return": ("give_back", {"reason"}, lambda d: (_text(d, "reason", MAX_SHORT, required=True),)),
    "extension": ("request_extension", {"seconds", "reason"},
                  lambda d: (_seconds(d), _text(d, "reason", MAX_SHORT, required=True))),
}


def _seconds(data: dict) -> float:
    v = data.get("seconds")
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(float(v)) or not 0 < v <= 10**8:
        raise BadRequest("'seconds' must be a positive number of seconds", field="seconds")
    return float(v)


def post_unit_action(ctx: ApiContext, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    unit = _path(params, "unit", 140)
    principal = _principal(ctx, req)
    auth.authorize(principal, auth.ORDERS_UNIT, unit=unit)
    action = params["action"]
    if action not in _UNIT_ACTIONS:
        return error(404, "not_found", f"no order action {action!r}; known: {sorted(_UNIT_ACTIONS)}")
    command, keys, args = _UNIT_ACTIONS[action]
    data = parse_body(req.body, required=bool(keys))
    only_keys(data, keys)
    oid = _path(params, "order_id", 64)
    _desk(ctx).run(command, oid, unit, *args(data))
    _audit(ctx, principal, f"order-{action}", oid, {"unit": unit})
    return ok(order_view(_desk(ctx).book.orders[oid]))


def order_error(exc: OrderError | IllegalOrderTransition) -> ApiResponse:
    if isinstance(exc, UnknownOrder):
        return error(404, "not_found", str(exc))
    if isinstance(exc, NotOwner):
        return error(403, "forbidden", str(exc))
    return error(409, "conflict", str(exc))


ORDER_ERRORS = (OrderError, IllegalOrderTransition)

ORDER_ROUTES = (
    (("v1", "orders"), {"GET": list_orders, "POST": post_order}),
    (("v1", "orders", "clusters"), {"GET": get_clusters}),
    (("v1", "orders", "{order_id}"), {"GET": get_order}),
    (("v1", "orders", "{order_id}", "dispatch"), {"POST": post_dispatch}),
    (("v1", "orders", "{order_id}", "extension-decision"), {"POST": post_extension_decision}),
    (("v1", "orders", "{order_id}", "visit"), {"POST": post_visit}),
    (("v1", "units", "{unit}", "orders"), {"GET": list_unit_orders}),
    (("v1", "units", "{unit}", "orders", "{order_id}", "{action}"), {"POST": post_unit_action}),
)
