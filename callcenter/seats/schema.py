"""The seat wire schema: every message between a seat and the ACD, in one place.

A message is one JSON object in one WebSocket text frame::

    {"v": 1, "type": "ready", "id": "c7"}

``v`` is the protocol version (only :data:`PROTOCOL_VERSION` is spoken),
``type`` names the message, ``id`` is an optional client reference echoed in
the reply (``ref``) so a client can pair an error with its request; the other
keys are the message's fields, validated by the pydantic models below (unknown
keys are refused).  docs/seat-protocol.md describes each message; keep the two
in step.

Decoding is pure: :func:`decode_client` / :func:`decode_server` turn bytes into
a model or raise one of the distinct :class:`SchemaError` subclasses (bad JSON,
unsupported version, unknown type, bad field, too large), each carrying the
error ``code`` sent back to the peer.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from callcenter.bounds import LINE_PATTERN, TEXT_PATTERN

__all__ = [
    "PROTOCOL_VERSION",
    "MAX_MESSAGE_BYTES",
    "MAX_JSON_DEPTH",
    "json_depth",
    "SchemaError",
    "BadJson",
    "UnsupportedVersion",
    "UnknownType",
    "BadField",
    "TooLarge",
    "CLIENT_MESSAGES",
    "SERVER_MESSAGES",
    "decode_client",
    "decode_server",
    "encode",
    "error",
]

PROTOCOL_VERSION = 1
# Largest message a seat may send; the transport closes the connection (1009)
# at twice this, smaller oversized messages get a ``too-large`` error reply.
MAX_MESSAGE_BYTES = 16 * 1024
# Deepest nesting of JSON arrays/objects a message may have.  Checked before
# json.loads, whose recursive descent raises RecursionError near 1,000 levels
# (and costs a C stack frame per level); our messages need 3.
MAX_JSON_DEPTH = 16
# Client ``id`` references: strings up to 64 characters or integers a JSON
# double holds exactly (JavaScript's Number.MAX_SAFE_INTEGER + 1).
MAX_REF_INT = 2**53

AgentId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")]
CallId = Annotated[str, Field(min_length=1, max_length=128)]
Ref = Annotated[StrictStr, Field(max_length=64)] | Annotated[int, Field(strict=True, ge=0, lt=MAX_REF_INT)]
# Free text without control characters (callcenter/bounds.py): a NUL in a reason reached queue_log.
Short = Annotated[StrictStr, Field(max_length=200, pattern=LINE_PATTERN)]
Text = Annotated[StrictStr, Field(max_length=4000, pattern=TEXT_PATTERN)]


# -- error codes (the ``code`` of an ``error`` message) -----------------------
BAD_JSON = "bad-json"
UNSUPPORTED_VERSION = "unsupported-version"
UNKNOWN_TYPE = "unknown-type"
BAD_FIELD = "bad-field"
TOO_LARGE = "too-large"
RATE_LIMITED = "rate-limited"
NOT_LOGGED_IN = "not-logged-in"
ALREADY_LOGGED_IN = "already-logged-in"
BAD_CREDENTIALS = "bad-credentials"
LOGIN_THROTTLED = "login-throttled"
BAD_TOKEN = "bad-token"
FORBIDDEN = "forbidden"
NOT_YOUR_CALL = "not-your-call"
ILLEGAL_STATE = "illegal-state"
NOT_ENABLED = "not-enabled"
UNAVAILABLE = "unavailable"
BUSY = "busy"  # too many password checks waiting: retry after retry_after_s
SERVER_ERROR = "server-error"
ERROR_CODES = (
    BAD_JSON, UNSUPPORTED_VERSION, UNKNOWN_TYPE, BAD_FIELD, TOO_LARGE, RATE_LIMITED,
    NOT_LOGGED_IN, ALREADY_LOGGED_IN, BAD_CREDENTIALS, LOGIN_THROTTLED, BAD_TOKEN,
    FORBIDDEN, NOT_YOUR_CALL, ILLEGAL_STATE, NOT_ENABLED, UNAVAILABLE, BUSY, SERVER_ERROR,
)


class SchemaError(Exception):
    """A message that does not fit the schema; ``code`` goes back to the peer."""

    code = BAD_FIELD

    def __init__(self, message: str, ref: Any = None):
        super().__init__(message)
        self.message = message
        self.ref = ref


class BadJson(SchemaError):
    code = BAD_JSON


class UnsupportedVersion(SchemaError):
    code = UNSUPPORTED_VERSION


class UnknownType(SchemaError):
    code = UNKNOWN_TYPE


class BadField(SchemaError):
    code = BAD_FIELD


class TooLarge(SchemaError):
    code = TOO_LARGE


class Message(BaseModel):
    """Base of every message; ``TYPE`` is its wire ``type``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    TYPE: ClassVar[str] = ""
    id: Ref | None = None


class AgentAction(Message):
    """A message acting for an agent.  ``agent_id`` is optional; when given it
    must be the session's own agent (a session acts only as its own agent)."""

    agent_id: AgentId | None = None


# -- seat -> ACD ---------------------------------------------------------------
class Login(Message):
    TYPE: ClassVar[str] = "login"
    agent_id: AgentId
    password: Annotated[StrictStr, Field(min_length=1, max_length=256)]


class Resume(Message):
    TYPE: ClassVar[str] = "resume"
    token: Annotated[StrictStr, Field(min_length=16, max_length=256)]


class Ready(AgentAction):
    TYPE: ClassVar[str] = "ready"


class NotReady(AgentAction):
    TYPE: ClassVar[str] = "not_ready"
    reason: Short = ""


class Logout(AgentAction):
    TYPE: ClassVar[str] = "logout"


class Accept(AgentAction):
    TYPE: ClassVar[str] = "accept"
    call_id: CallId


class Reject(AgentAction):
    TYPE: ClassVar[str] = "reject"
    call_id: CallId


class Wrapup(AgentAction):
    """Disposition of a finished call: saved to the records, does not end wrap-up."""

    TYPE: ClassVar[str] = "wrapup"
    call_id: CallId
    disposition: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    notes: Text = ""
    ticket: Annotated[dict[Annotated[str, Field(min_length=1, max_length=64)], Annotated[StrictStr, Field(max_length=2000)]], Field(max_length=20)] = {}


class EndWrapup(AgentAction):
    TYPE: ClassVar[str] = "end_wrapup"


class KbSearch(AgentAction):
    TYPE: ClassVar[str] = "kb_search"
    query: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    limit: Annotated[int, Field(ge=1, le=50)] = 10


class KbGet(AgentAction):
    """Open one knowledge-base article (the current version). Reply: ``kb_article``."""

    TYPE: ClassVar[str] = "kb_get"
    article_id: Annotated[int, Field(ge=1, lt=2**31)]


class Heartbeat(Message):
    TYPE: ClassVar[str] = "heartbeat"


class Hangup(AgentAction):
    """Demo call control only: the agent ends the conversation (no Asterisk)."""

    TYPE: ClassVar[str] = "hangup"
    call_id: CallId


# -- ACD -> seat ---------------------------------------------------------------
class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_message_bytes: int
    messages_per_s: float
    burst: int
    grace_s: float
    heartbeat_s: float


class Hello(Message):
    TYPE: ClassVar[str] = "hello"
    server: str
    versions: list[int]
    limits: Limits
    demo_call_control: bool = False


class LoginOk(Message):
    TYPE: ClassVar[str] = "login_ok"
    ref: Ref | None = None
    agent_id: str
    pool: str
    token: str
    state: str
    reason: str = ""
    took_over: bool = False


class Offer(Message):
    """Ring: a call for this agent, with the caller's context."""

    TYPE: ClassVar[str] = "offer"
    call_id: str
    queue: str
    category: str
    priority: int
    caller: str  # masked, e.g. 138********
    waited_s: float
    choices: list[str] = []
    contacts: list[dict[str, Any]] | None = None  # last 7 days; None: records unavailable
    ring_timeout_s: float
    offered_at: float  # ACD clock (epoch seconds in production)
    pool: str = ""
    tier: int = 0
    callback: bool = False


class CallView(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    call_id: str
    phase: str  # offered | on-call | wrap-up


class Resumed(Message):
    TYPE: ClassVar[str] = "resumed"
    ref: Ref | None = None
    agent_id: str
    pool: str
    token: str
    state: str
    reason: str = ""
    offer: Offer | None = None
    call: CallView | None = None


class State(Message):
    TYPE: ClassVar[str] = "state"
    state: str
    old: str = ""
    reason: str = ""
    since: float = 0.0
    call_id: str | None = None


class OfferEnded(Message):
    TYPE: ClassVar[str] = "offer_ended"
    call_id: str
    result: str


class CallAnswered(Message):
    TYPE: ClassVar[str] = "call_answered"
    call_id: str
    wait_s: float = 0.0


class CallEnded(Message):
    TYPE: ClassVar[str] = "call_ended"
    call_id: str
    outcome: str
    talk_s: float = 0.0


class WrapupSaved(Message):
    TYPE: ClassVar[str] = "wrapup_saved"
    ref: Ref | None = None
    call_id: str
    stored: bool = True  # False: no records database configured


class Article(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: int | str
    title: str
    snippet: str = ""
    tags: list[str] = []


class KbResults(Message):
    TYPE: ClassVar[str] = "kb_results"
    ref: Ref | None = None
    query: str
    articles: list[Article]


class ArticleFull(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: int
    key: str | None = None
    title: str
    body: str = ""  # Markdown
    category: str = ""
    tags: list[str] = []
    org: str = ""  # owning organisation: a city's 12345, 12333, 12315, a department
    region: str = ""
    effective_from: str | None = None  # ISO 8601, UTC
    effective_until: str | None = None
    status: str = "published"
    version: int = 1
    updated: str | None = None


class KbArticle(Message):
    TYPE: ClassVar[str] = "kb_article"
    ref: Ref | None = None
    article: ArticleFull


class KbUpdated(Message):
    """An article was published, changed while published, or retired: pushed to every logged-in seat.
    A seat showing it fetches the new version (``kb_get``) and shows what changed."""

    TYPE: ClassVar[str] = "kb_updated"
    article_id: int
    key: str | None = None
    title: str
    version: int
    status: str
    change: str  # published | edited | retired
    changed: list[str] = []  # field names
    org: str = ""
    why: str = ""
    at: str = ""  # ISO 8601, UTC: when the change was saved


class HeartbeatAck(Message):
    TYPE: ClassVar[str] = "heartbeat_ack"
    ref: Ref | None = None
    server_time: float


class Error(Message):
    TYPE: ClassVar[str] = "error"
    ref: Ref | None = None
    code: str
    message: str
    retry_after_s: float | None = None


class Token(Message):
    """A fresh session token (sent every third of the token lifetime while attached):
    resume with the newest one; older ones stop working (docs/seat-protocol.md)."""

    TYPE: ClassVar[str] = "token"
    token: str
    expires_in_s: float


class SessionEnded(Message):
    """The session is over (``logged-out``, ``taken-over``, ``grace-expired``); the
    server closes the connection after it."""

    TYPE: ClassVar[str] = "session_ended"
    reason: str


def _table(*classes: type[Message]) -> dict[str, type[Message]]:
    return {c.TYPE: c for c in classes}


CLIENT_MESSAGES: dict[str, type[Message]] = _table(
    Login, Resume, Ready, NotReady, Logout, Accept, Reject, Wrapup, EndWrapup, KbSearch, Heartbeat, Hangup,
    KbGet,
)
SERVER_MESSAGES: dict[str, type[Message]] = _table(
    Hello, LoginOk, Resumed, State, Offer, OfferEnded, CallAnswered, CallEnded, WrapupSaved, KbResults,
    HeartbeatAck, Error, SessionEnded, Token, KbArticle, KbUpdated,
)


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)


def json_depth(data: bytes) -> int:
    """How deeply ``data``'s arrays and objects nest (brackets inside strings do not count).

    A scan in Python; :func:`_decode` runs it only on a message with more
    brackets than the depth limit (a message with fewer cannot nest deeper),
    after the size check."""
    depth = deepest = 0
    for ch in _STRING.sub(b"", data):
        if ch in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in b"]}":
            depth -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):
        raise ValueError(f"number {text[:20]} is out of range")
    return x


def _ref_of(obj: dict) -> Any:
    """The message's ``id`` if it could be echoed back as ``ref`` (it fits :data:`Ref`), else None."""
    ref = obj.get("id")
    if isinstance(ref, str) and len(ref) <= 64:
        return ref
    if isinstance(ref, int) and not isinstance(ref, bool) and 0 <= ref < MAX_REF_INT:
        return ref
    return None


def _decode(data: bytes | str, table: dict[str, type[Message]], max_bytes: int | None) -> Message:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    size = len(raw)
    if max_bytes is not None and size > max_bytes:
        raise TooLarge(f"message is {size} bytes; the limit is {max_bytes}")
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and json_depth(raw) > MAX_JSON_DEPTH:
        raise BadJson(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        # NaN/Infinity (a Python extension) and numbers beyond a double are refused;
        # integers over 4,300 digits already are (ValueError, sys.int_info)
        obj = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadJson(f"not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(obj, dict):
        raise BadJson(f"expected a JSON object, got {type(obj).__name__}")
    ref = _ref_of(obj)
    v = obj.pop("v", None)
    if v != PROTOCOL_VERSION or isinstance(v, bool):
        raise UnsupportedVersion(f"protocol version {v!r} is not spoken here; use \"v\": {PROTOCOL_VERSION}", ref)
    typ = obj.pop("type", None)
    cls = table.get(typ) if isinstance(typ, str) else None
    if cls is None:
        raise UnknownType(f"unknown message type {typ!r}; known: {', '.join(sorted(table))}", ref)
    try:
        return cls.model_validate(obj)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(message)'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise BadField(f"{typ}: {problems}", ref) from None


def decode_client(data: bytes | str, max_bytes: int | None = MAX_MESSAGE_BYTES) -> Message:
    """Validate one message from a seat; raise a :class:`SchemaError` subclass."""
    return _decode(data, CLIENT_MESSAGES, max_bytes)


def decode_server(data: bytes | str) -> Message:
    """Validate one message from the ACD (used by the seat client)."""
    return _decode(data, SERVER_MESSAGES, None)


def encode(msg: Message) -> bytes:
    """The wire form of a message: compact JSON, ``v`` and ``type`` first, nulls of
    optional client ``id``/``ref`` left out."""
    body = msg.model_dump(mode="json")
    for k in ("id", "ref"):
        if body.get(k) is None:
            body.pop(k, None)
    if isinstance(msg, AgentAction) and body.get("agent_id") is None:
        body.pop("agent_id", None)
    return json.dumps({"v": PROTOCOL_VERSION, "type": msg.TYPE, **body}, separators=(",", ":"), ensure_ascii=False).encode()


def error(code: str, message: str, ref: Any = None, retry_after_s: float | None = None) -> Error:
    return Error(code=code, message=message, ref=ref, retry_after_s=retry_after_s)
