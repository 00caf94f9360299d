"""The admin API's request -> response logic, over the engine, with no I/O.

:func:`handle` takes an :class:`ApiRequest` (method, path segments under
``/api``, the Authorization header, the body bytes) and returns an
:class:`ApiResponse` (status, JSON-able body, extra headers).  The one
request that needs I/O, ``POST /v1/config/reload``, returns
:class:`ReloadRequested` instead: the shell (resource.py) reads and
validates the file off the reactor thread and hands the result to
:func:`config_loaded`, which swaps it in.

Order of checks: route (404/405), body size (413), token (401), role (403),
body (400, naming the bad field), then the engine (404/409/400).  Engine
errors never escape as 500s; anything else that does is our bug.

Every change that succeeds is handed to ``ctx.audit`` as an
:class:`AuditEntry` saying who, what and when.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callcenter.bounds import LINE_PATTERN, MAX_INT_DIGITS, BadText, NumberOutOfBounds, check_number, check_text
from callcenter.config import Config, ConfigError, shipped_secret_issues
from callcenter.engine import errors as engine_errors

from . import auth

__all__ = [
    "MAX_BODY_BYTES",
    "ApiRequest",
    "ApiResponse",
    "ReloadRequested",
    "AuditEntry",
    "ApiContext",
    "handle",
    "config_loaded",
    "load_openapi",
]

_LINE_RE = re.compile(LINE_PATTERN)
API_VERSION = "v1"
MAX_BODY_BYTES = 64 * 1024  # above the largest valid request (a work order: ~40 KB JSON-escaped)
MAX_WAITING = 1_000_000
MAX_REASON_CHARS = 200
# A lender's clock may run a little ahead of ours; more than this is a bad report.
MAX_CLOCK_SKEW_S = 60.0
OPENAPI_PATH = Path(__file__).with_name("openapi.json")

JSON_TYPE = "application/json; charset=utf-8"


@dataclass(frozen=True, slots=True)
class ApiRequest:
    method: str
    path: tuple[str, ...]  # segments after /api, e.g. ("v1", "calls", "1700000000.12")
    authorization: str | None = None
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class ApiResponse:
    status: int
    body: Any
    headers: tuple[tuple[str, str], ...] = ()

    def json_bytes(self) -> bytes:
        return json.dumps(jsonable(self.body), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(
            "utf-8"
        )


@dataclass(frozen=True, slots=True)
class ReloadRequested:
    """``POST /v1/config/reload`` was allowed: the shell must load the file, then call :func:`config_loaded`."""

    principal: auth.Principal


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change made through the API: who, what, when."""

    at: float  # clock seconds (epoch in production)
    who: str  # token name
    role: str
    action: str  # emergency-set | home-load-reported | agent-logged-out | call-ended | config-reloaded
    target: str  # queue, pool, agent id, or the config path
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "who": self.who,
            "role": self.role,
            "action": self.action,
            "target": self.target,
            "detail": self.detail,
        }


@dataclass
class ApiContext:
    """What the handlers read and call: the engine, the running config, the clock, the audit sink."""

    engine: Any
    clock: Any  # IReactorTime
    get_config: Callable[[], Config]
    audit: Callable[[AuditEntry], None]
    acd_name: str = ""
    config_path: str | None = None
    openapi: bytes = b""
    orders: Any = None  # the work-order desk (callcenter/orders/desk.py); None: no orders subsystem

    def now(self) -> float:
        return float(self.clock.seconds())


class BadRequest(Exception):
    """A request body we refuse; ``field`` names the offending key when there is one."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


# ---------------------------------------------------------------------------
# responses


def error(status: int, code: str, message: str, **extra: Any) -> ApiResponse:
    body = {"error": code, "message": message}
    body.update({k: v for k, v in extra.items() if v is not None})
    headers: tuple[tuple[str, str], ...] = ()
    if status == 401:
        headers = (("WWW-Authenticate", 'Bearer realm="callcenter"'),)
    return ApiResponse(status, body, headers)


def ok(body: Any, status: int = 200) -> ApiResponse:
    return ApiResponse(status, body)


_NOT_FOUND = (
    engine_errors.UnknownCall,
    engine_errors.UnknownAgent,
    engine_errors.UnknownQueue,
    engine_errors.UnknownPool,
)
_CONFLICT = (
    engine_errors.DuplicateCall,
    engine_errors.IllegalTransition,
    engine_errors.StaleOffer,
    engine_errors.CallNotWaiting,
    engine_errors.QueueFull,
)


def engine_error(exc: engine_errors.EngineError) -> ApiResponse:
    """The HTTP answer to an input the engine refused (its state is unchanged)."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, _NOT_FOUND):
        return error(404, "not_found", message)
    if isinstance(exc, _CONFLICT):
        return error(409, "conflict", message)
    return error(400, "refused", message)


def jsonable(value: Any) -> Any:
    """JSON-safe copy: tuples and sets to lists, non-finite floats (an infinite wait) to null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(jsonable(v) for v in value)
    if value is None or isinstance(value, str | int | bool):
        return value
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    return str(value)


# ---------------------------------------------------------------------------
# body parsing


def parse_body(body: bytes, *, required: bool) -> dict[str, Any]:
    if not body.strip():
        if required:
            raise BadRequest("a JSON object body is required")
        return {}
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant, parse_int=_parse_int,
                          parse_float=_parse_float)
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"the body must be a JSON object, got {_json_type(data)}")
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_int(text: str) -> int:
    """JSON integers of at most 20 digits: ``1`` and 400 zeros once overflowed float() in a handler."""
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"a number of {len(text)} digits is too large")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:30]} is too large for a number")
    return value


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


def only_keys(data: dict[str, Any], allowed: set[str]) -> None:
    for key in data:
        if key not in allowed:
            raise BadRequest(f"unknown field {key!r}; allowed: {sorted(allowed)}", field=key)


def _int_field(data: dict[str, Any], key: str, lo: int, hi: int) -> int:
    if key not in data:
        raise BadRequest(f"{key!r} is required", field=key)
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise BadRequest(f"{key!r} must be an integer, got {_json_type(v)}", field=key)
    try:
        return int(check_number(v, lo=lo, hi=hi, integer=True))
    except NumberOutOfBounds as exc:
        raise BadRequest(f"{key!r} {exc}", field=key) from None


# Epoch seconds a report may carry: 2001-09-09 .. 2286-11-20 (10 digits, like Asterisk's unique ids).
MIN_EPOCH_S = 1_000_000_000
MAX_EPOCH_S = 9_999_999_999


def _number_field(data: dict[str, Any], key: str) -> float | None:
    if key not in data or data[key] is None:
        return None
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise BadRequest(f"{key!r} must be a number, got {_json_type(v)}", field=key)
    try:
        return float(check_number(v, lo=MIN_EPOCH_S, hi=MAX_EPOCH_S))
    except NumberOutOfBounds:
        raise BadRequest(f"{key!r} must be seconds since the epoch, between {MIN_EPOCH_S} and {MAX_EPOCH_S}",
                         field=key) from None


def _str_field(data: dict[str, Any], key: str, max_chars: int, *, nullable: bool, required: bool,
               one_line: bool = False) -> str | None:
    """A string field of at most ``max_chars``; ``one_line``: no control character at all
    (callcenter/bounds.py LINE_PATTERN, as openapi.json declares for such fields)."""
    if key not in data:
        if required:
            raise BadRequest(f"{key!r} is required" + (" (null for none)" if nullable else ""), field=key)
        return None
    v = data[key]
    if v is None and nullable:
        return None
    if not isinstance(v, str):
        raise BadRequest(f"{key!r} must be a string{' or null' if nullable else ''}, got {_json_type(v)}", field=key)
    if len(v) > max_chars:
        raise BadRequest(f"{key!r} is longer than {max_chars} characters", field=key)
    if one_line:
        try:
            check_text(v, what=repr(key), max_chars=max_chars)
        except BadText as exc:
            raise BadRequest(str(exc), field=key) from None
    return v


# ---------------------------------------------------------------------------
# endpoints


def get_openapi(ctx: ApiContext, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    return ok(json.loads(ctx.openapi or load_openapi()))


def get_status(ctx: ApiContext, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    principal = _principal(ctx, req)
    auth.authorize(principal, auth.READ)
    status = dict(ctx.engine.status())
    return ok(
        {"acd": ctx.acd_name, "at": ctx.now(), "queues": status.get("queues", []), "pools": status.get("pools", [])}
    )


def get_call(ctx: ApiContext, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    auth.authorize(_principal(ctx, req), auth.READ)
    info = ctx.engine.call_info(params["call_id"])
    if info is None:
        return error(404, "not_found", f"no call {params['call_id']!r}")
    return ok({"call_id": params["call_id"], **info})


def get_agent(ctx: ApiContext, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    auth.authorize(_principal(ctx, req), auth.READ)
    info = ctx.engine.agent_info(params["agent_id"])
    if info is None:
        return error(404, "not_found", f"no agent {params['agent_id']!r}")
    return ok({"agent_id": params["agent_id"], **info})


def put_emergency(ctx: ApiContext, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    principal = _principal(ctx, req)
    auth.authorize(principal, auth.EMERGENCY)
    name = params["queue"]
    config = ctx.get_config()
    queue = next((q for q in config.queues if q.name == name), None)
    if queue is None:
        return error(404, "not_found", f"no queue {name!r}; known: {sorted(q.name for q in config.queues)}")
    data = parse_body(req.body, required=True)
    only_keys(data, {"plan"})
    plan = _str_field(data, "plan", 64, nullable=True, required=True, one_line=True)
    if plan is not None and plan not in queue.emergency_plans:
        known = sorted(queue.emergency_plans)
        raise BadRequest(
            f"queue {name!r} has no emergency plan {plan!r}; its plans: {known} (null switches the plan off)",
            field="plan",
        )
    events = ctx.engine.emergency_set(name, plan, by=principal.name)
    previous = plan
    for ev in events or ():
        if type(ev).__name__ == "EmergencyChanged" and getattr(ev, "queue", name) == name:
            previous = ev.previous
    now = ctx.now()
    changed = previous != plan
    ctx.audit(
        AuditEntry(now, principal.name, principal.role, "emergency-set", name, {"plan": plan, "previous": previous})
    )
    return ok({"queue": name, "plan": plan, "previous": previous, "changed": changed, "by": principal.name, "at": now})


def post_home_load(ctx: ApiContext, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    principal = _principal(ctx, req)
    pool_name = params["pool"]
    config = ctx.get_config()
    pool = next((p for p in config.pools if p.name == pool_name), None)
    auth.authorize(principal, auth.HOME_LOAD, pool=pool_name, lender=pool.lender if pool else None)
    if pool is None:
        return error(404, "not_found", f"no pool {pool_name!r}")
    if pool.kind != "borrowed":
        lenders = sorted(p.name for p in config.pools if p.kind == "borrowed")
        return error(404, "not_found", f"pool {pool_name!r} is of kind {pool.kind!r}, not a borrowed pool: only "
                     f"lenders report their home load; borrowed pools: {lenders}")
    data = parse_body(req.body, required=True)
    only_keys(data, {"waiting", "at"})
    waiting = _int_field(data, "waiting", 0, MAX_WAITING)
    at = _number_field(data, "at")
    now = ctx.now()
    if at is None:
        at = now
    elif at > now + MAX_CLOCK_SKEW_S:
        raise BadRequest(f"'at' is {at - now:.0f} s in the future: check the reporting clock", field="at")
    at = min(at, now)
    applied = bool(ctx.engine.home_load_reported(pool_name, waiting, at))  # no event: older than the last report
    detail = {"waiting": waiting, "reported_at": at, "applied": applied}
    ctx.audit(AuditEntry(now, principal.name, principal.role, "home-load-reported", pool_name, detail))
    return ok(
        {
            "pool": pool_name,
            "waiting": waiting,
            "at": at,
            "age_s": max(0.0, now - at),
            "applied": applied,
            "by": principal.name,
        }
    )


def post_logout(ctx: ApiContext, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    principal = _principal(ctx, req)
    auth.authorize(principal, auth.FORCE_LOGOUT)
    agent_id = params["agent_id"]
    data = parse_body(req.body, required=False)
    only_keys(data, {"reason", "force"})
    reason = _str_field(data, "reason", MAX_REASON_CHARS, nullable=True, required=False, one_line=True) or ""
    force = data.get("force", False) if isinstance(data, dict) else False
    if not isinstance(force, bool):
        return error(400, "bad_request", "force must be true or false")
    before = ctx.engine.agent_info(agent_id)
    if before is None:
        return error(404, "not_found", f"no agent {agent_id!r}")
    full_reason = f"forced by {principal.name}" + (f": {reason}" if reason else "")
    # force: an agent on a call is freed at once, its call ends admin-ended (a stuck ghost call)
    ctx.engine.agent_logged_out(agent_id, reason=full_reason, force=force)
    after = ctx.engine.agent_info(agent_id)  # None once the agent is out
    now = ctx.now()
    call_id = before.get("call_id")
    detail = {"reason": reason, "previous_state": before.get("state"), "call_id": call_id, "force": force}
    ctx.audit(AuditEntry(now, principal.name, principal.role, "agent-logged-out", agent_id, detail))
    body = {
        "agent_id": agent_id,
        "state": after["state"] if after else "logged-out",
        "previous_state": before.get("state"),
        "logout_pending": bool(after and after.get("logout_pending")),
        "by": principal.name,
        "at": now,
    }
    call = ctx.engine.call_info(call_id) if call_id else None
    if call is not None:
        body["call"] = call
    return ok(body)


def post_end_call(ctx: ApiContext, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    """End a stuck call (the switch no longer has it): one CDR, outcome ``admin-ended``; its agent
    goes to wrap-up.  Audited: who, when, why (audit_log, the CDR's reason, the log)."""
    principal = _principal(ctx, req)
    auth.authorize(principal, auth.FORCE_LOGOUT)
    call_id = params["call_id"]
    data = parse_body(req.body, required=True)
    only_keys(data, {"reason"})
    reason = _str_field(data, "reason", MAX_REASON_CHARS, nullable=False, required=True)
    before = ctx.engine.call_info(call_id)
    if before is None:
        return error(404, "not_found", f"no call {call_id!r} (it may have ended already)")
    ctx.engine.end_call(call_id, "admin-ended", f"by {principal.name}: {reason}")
    now = ctx.now()
    detail = {"reason": reason, "previous_state": before.get("state"), "agent_id": before.get("agent_id")}
    ctx.audit(AuditEntry(now, principal.name, principal.role, "call-ended", call_id, detail))
    return ok({"call_id": call_id, "outcome": "admin-ended", "previous_state": before.get("state"),
               "agent_id": before.get("agent_id"), "by": principal.name, "at": now, "reason": reason})


def post_reload(ctx: ApiContext, req: ApiRequest, params: dict[str, str]) -> ReloadRequested:
    principal = _principal(ctx, req)
    auth.authorize(principal, auth.RELOAD)
    data = parse_body(req.body, required=False)
    only_keys(data, set())
    return ReloadRequested(principal)


# Settings read only at start: a reload reports them when they differ.
_RESTART_ONLY = ("name", "state_dir", "listen", "redis_url", "database_url", "tls", "lease_ttl_s", "dev_mode")


def config_loaded(
    ctx: ApiContext, principal: auth.Principal, loaded: Config | ConfigError
) -> tuple[ApiResponse, Config | None]:
    """Second half of a reload: swap ``loaded`` in, or answer with every issue.

    Returns the response and the config now running (None when unchanged).
    The swap is one call on the reactor thread, so no call is dropped and no
    request sees half a config.
    """
    path = ctx.config_path or ""
    if isinstance(loaded, ConfigError):
        issues = [{"path": i.path, "message": i.message} for i in loaded.issues]
        return error(
            400,
            "invalid_config",
            f"{path or 'the config file'} has {len(issues)} error(s); the running config is unchanged",
            issues=issues,
        ), None
    old = ctx.get_config()
    secrets = shipped_secret_issues(loaded)
    if secrets and not (old.acd.dev_mode and loaded.acd.dev_mode):
        issues = [{"path": i.path, "message": i.message} for i in secrets]
        return error(400, "invalid_config", f"{path or 'the config file'} uses {len(issues)} shipped secret(s) "
                     "outside dev mode; the running config is unchanged", issues=issues), None
    try:
        ctx.engine.replace_config(loaded)
    except engine_errors.EngineError as exc:
        return error(
            409,
            "incompatible_config",
            f"the running ACD cannot take this config: {exc}; the running config is unchanged",
        ), None
    restart = [k for k in _RESTART_ONLY if getattr(old.acd, k) != getattr(loaded.acd, k)]
    now = ctx.now()
    detail = {
        "queues": [q.name for q in loaded.queues],
        "pools": [p.name for p in loaded.pools],
        "needs_restart": [f"acd.{k}" for k in restart],
    }
    ctx.audit(AuditEntry(now, principal.name, principal.role, "config-reloaded", path, detail))
    body = {"reloaded": True, "path": path, **detail, "by": principal.name, "at": now}
    return ok(body), loaded


# ---------------------------------------------------------------------------
# routing

Handler = Callable[[ApiContext, ApiRequest, dict[str, str]], "ApiResponse | ReloadRequested"]

# Path patterns under /api; "{name}" segments are parameters.
ROUTES: tuple[tuple[tuple[str, ...], dict[str, Handler]], ...] = (
    (("v1", "openapi.json"), {"GET": get_openapi}),
    (("v1", "status"), {"GET": get_status}),
    (("v1", "queues", "{queue}", "emergency"), {"PUT": put_emergency}),
    (("v1", "lenders", "{pool}", "home-load"), {"POST": post_home_load}),
    (("v1", "calls", "{call_id}"), {"GET": get_call}),
    (("v1", "calls", "{call_id}", "end"), {"POST": post_end_call}),
    (("v1", "agents", "{agent_id}"), {"GET": get_agent}),
    (("v1", "agents", "{agent_id}", "logout"), {"POST": post_logout}),
    (("v1", "config", "reload"), {"POST": post_reload}),
)


def route(path: tuple[str, ...], routes=ROUTES) -> tuple[dict[str, Handler], dict[str, str]] | None:
    if len(path) > 1 and path[-1] == "":
        path = path[:-1]  # tolerate one trailing slash
    for pattern, methods in routes:
        if len(pattern) != len(path):
            continue
        params: dict[str, str] = {}
        for want, got in zip(pattern, path, strict=True):
            if want.startswith("{"):
                if not got:
                    break
                params[want[1:-1]] = got
            elif want != got:
                break
        else:
            return methods, params
    return None


# Path parameters, checked at the edge as openapi.json declares them: names as in the config,
# ids of at most 128 characters without control characters.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_PARAM_RULES: dict[str, Callable[[str], bool]] = {
    "queue": lambda v: bool(_NAME_RE.match(v)),
    "pool": lambda v: bool(_NAME_RE.match(v)),
    "call_id": lambda v: 0 < len(v) <= 128 and bool(_LINE_RE.match(v)),
    "agent_id": lambda v: 0 < len(v) <= 128 and bool(_LINE_RE.match(v)),
}


def handle(ctx: ApiContext, req: ApiRequest) -> ApiResponse | ReloadRequested:
    """Answer one request; never raises for anything a client can send."""
    found = route(req.path, _ALL_ROUTES)
    if found is None:
        return error(404, "not_found", "no such endpoint; see /api/v1/openapi.json")
    methods, params = found
    for name, value in params.items():
        if not _PARAM_RULES.get(name, lambda v: True)(value):
            return error(400, "bad_request", f"invalid {name} in the path: see /api/v1/openapi.json", field=name)
    method = "GET" if req.method == "HEAD" else req.method
    handler = methods.get(method)
    if handler is None:
        allow = ", ".join(sorted(methods))
        resp = error(405, "method_not_allowed", f"{req.method} is not allowed here; allowed: {allow}")
        return ApiResponse(resp.status, resp.body, (("Allow", allow),))
    if len(req.body) > MAX_BODY_BYTES:
        return error(413, "too_large", f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        return handler(ctx, req, params)
    except auth.Unauthorized as exc:
        return error(401, "unauthorized", str(exc))
    except auth.Forbidden as exc:
        return error(403, "forbidden", str(exc))
    except BadRequest as exc:
        return error(400, "bad_request", str(exc), field=exc.field)
    except engine_errors.EngineError as exc:
        return engine_error(exc)
    except orders.ORDER_ERRORS as exc:
        return orders.order_error(exc)


def _principal(ctx: ApiContext, req: ApiRequest) -> auth.Principal:
    return auth.authenticate(req.authorization, ctx.get_config().acd.admin_tokens)


def load_openapi() -> bytes:
    return OPENAPI_PATH.read_bytes()


# The work-order endpoints live in their own module, which imports this one: bound here, once this
# module is complete.
from . import orders  # noqa: E402

_ALL_ROUTES = ROUTES + orders.ORDER_ROUTES
