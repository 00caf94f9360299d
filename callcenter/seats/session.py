"""Seat sessions as a pure state machine: messages and engine events in, effects out.

No sockets, threads or reactor here (like h11): :class:`SeatCore` is fed

* what a connection sent (:meth:`SeatCore.received`), its opening and its drop;
* the engine's events (:meth:`SeatCore.engine_event`);
* the results of the slow work it asked for (a password check, a records
  look-up) and of its timers;

and answers with a list of *effects* (:class:`Send`, :class:`Close`,
:class:`EngineInput`, :class:`VerifyLogin`, :class:`StartTimer`, ...) that the
shell in server.py carries out in order.  Every call takes ``now`` (seconds on
the shell's injected clock), so rate limits and grace periods are testable
without waiting.

Policies (docs/seat-protocol.md):

* A session acts only as its own agent: a message naming another ``agent_id``,
  or answering a call that was not offered to it, gets ``forbidden`` /
  ``not-your-call`` and changes nothing.
* One live session per agent; **a second login takes over**: the agent proved
  who they are with the password, and an agent whose PC froze must be able to
  continue from another PC at once rather than wait out the grace period.  The
  old connection gets ``session_ended`` (``taken-over``) and is closed; the
  engine state (an offered or active call) carries over to the new session.
* A dropped connection leaves the session *detached* for ``grace_s`` (30 s):
  a ``resume`` with the session token within that time re-attaches it and
  re-sends the pending offer and the call in progress; past it the agent is
  logged out of the engine (an offered call goes to the next agent).
* Each connection has a token bucket on messages; failed logins are counted
  per agent and per address (token buckets too) and throttled.  Bad resume
  tokens have their own per-address bucket: they are not failed password
  logins (after a failover every seat of a site may present one at once).
* Tokens are HMAC-signed (tokens.py) with a secret the ACDs of a cluster
  share: a token another ACD issued resumes the session here when the
  (restored) engine still has the agent and no newer session exists here.
* Agents the engine has without a seat session (restored after a failover)
  get the normal grace period (:meth:`SeatCore.agents_restored`).
"""

from __future__ import annotations

import hmac
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from callcenter.engine import events as ev

from . import schema as s
from .tokens import TokenSigner

__all__ = [
    "Account",
    "SeatLimits",
    "SeatCore",
    "TokenBucket",
    "Send",
    "Close",
    "EngineInput",
    "VerifyLogin",
    "StartTimer",
    "CancelTimer",
    "SearchKb",
    "GetKbArticle",
    "SaveWrapup",
    "LookupContacts",
]

# WebSocket close codes we use (RFC 6455 section 7.4.1).
CLOSE_NORMAL = 1000
CLOSE_POLICY = 4008  # private-use twin of 1008 (autobahn lets an application send only 1000 and 3000-4999)


@dataclass(frozen=True)
class Account:
    """What a successful password check tells us about an agent."""

    agent_id: str
    pool: str
    skills: dict[str, int] | None = None
    endpoint: str | None = None
    name: str = ""


@dataclass(frozen=True)
class SeatLimits:
    max_message_bytes: int = s.MAX_MESSAGE_BYTES
    messages_per_s: float = 20.0  # sustained, per connection
    burst: int = 40
    flood_close_after: int = 200  # dropped messages in a row before the connection is closed
    grace_s: float = 30.0
    heartbeat_s: float = 15.0  # a connection quiet this long gets a WebSocket ping
    pong_timeout_s: float = 10.0  # ... and is dropped when silent this much longer
    login_failures_per_agent: int = 5  # per login_window_s
    login_failures_per_address: int = 20
    login_window_s: float = 60.0
    bad_tokens_per_address: int = 100  # per login_window_s; a separate bucket from failed logins
    # A token resumes (here or on another ACD of the cluster) until it expires; the server
    # sends a fresh one every third of this while the seat is attached, and rotates it
    # (new session id, older tokens dead everywhere) at every login and resume.
    token_ttl_s: float = 1800.0


class TokenBucket:
    """Classic token bucket on caller-supplied time (no clock of its own)."""

    __slots__ = ("rate", "capacity", "tokens", "updated")

    def __init__(self, rate: float, capacity: float, now: float):
        self.rate, self.capacity, self.tokens, self.updated = rate, capacity, float(capacity), now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = max(self.updated, now)

    def take(self, now: float, n: float = 1.0) -> bool:
        self._refill(now)
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

    def has(self, now: float, n: float = 1.0) -> bool:
        self._refill(now)
        return self.tokens >= n

    def retry_after(self, now: float, n: float = 1.0) -> float:
        self._refill(now)
        return 0.0 if self.tokens >= n else (n - self.tokens) / self.rate

    def give_back(self, now: float, n: float = 1.0) -> None:
        """Return a reservation that turned out not to count (a login that succeeded)."""
        self._refill(now)
        self.tokens = min(self.capacity, self.tokens + n)

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.capacity


# -- effects ------------------------------------------------------------------
@dataclass(frozen=True)
class Send:
    conn: int
    msg: s.Message


@dataclass(frozen=True)
class Close:
    conn: int
    code: int = CLOSE_NORMAL
    reason: str = ""


@dataclass(frozen=True)
class EngineInput:
    """Call ``engine.<op>(*args, **kwargs)``; if the engine refuses (EngineError),
    report it with :meth:`SeatCore.engine_refused`."""

    op: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    conn: int | None = None
    ref: Any = None


@dataclass(frozen=True)
class VerifyLogin:
    """Check the password off the reactor; report with :meth:`SeatCore.login_verified`."""

    conn: int
    agent_id: str
    password: str
    ref: Any = None

    def __repr__(self) -> str:  # never log a password
        return f"VerifyLogin(conn={self.conn}, agent_id={self.agent_id!r})"


@dataclass(frozen=True)
class StartTimer:
    key: tuple
    delay: float


@dataclass(frozen=True)
class CancelTimer:
    key: tuple


@dataclass(frozen=True)
class SearchKb:
    conn: int
    query: str
    limit: int
    ref: Any = None


@dataclass(frozen=True)
class GetKbArticle:
    conn: int
    article_id: int
    ref: Any = None


@dataclass(frozen=True)
class SaveWrapup:
    conn: int
    agent_id: str
    pool: str
    call_id: str
    disposition: str
    notes: str
    ticket: dict
    ref: Any = None


@dataclass(frozen=True)
class LookupContacts:
    """Fetch the caller's recent contacts; report with :meth:`SeatCore.contacts_found`."""

    agent_id: str
    call_id: str


# -- state --------------------------------------------------------------------
@dataclass
class _Conn:
    id: int
    address: str
    bucket: TokenBucket
    agent_id: str | None = None
    login_pending: bool = False
    dropped_in_a_row: int = 0
    limited_reported_at: float = float("-inf")


@dataclass
class _Session:
    agent_id: str
    pool: str
    token: str
    conn: int | None
    state: str = ev.LOGGED_OUT
    reason: str = ""
    since: float = 0.0
    offer: s.Offer | None = None
    offer_waiting_context: bool = False
    call_id: str | None = None
    call_phase: str | None = None  # on-call | wrap-up
    recent_calls: deque = field(default_factory=lambda: deque(maxlen=5))
    detached_at: float | None = None
    sid: str = ""  # the session id its tokens carry; the engine holds the current one
    previous_token: str | None = None  # still resumes here until the next renewal (a lost ``token`` message)


def _grace_key(agent_id: str) -> tuple:
    return ("grace", agent_id)


def _renew_key(agent_id: str) -> tuple:
    return ("renew", agent_id)


class SeatCore:
    """Every seat session of one ACD; pure (see the module docstring).

    ``agent_info`` is the engine's pure query (``engine.agent_info``), used at
    login to adopt an agent the engine already knows (after a takeover, a
    failover restore or a login while a grace period runs).
    """

    def __init__(
        self,
        limits: SeatLimits | None = None,
        *,
        agent_info: Callable[[str], dict | None] = lambda agent_id: None,
        call_info: Callable[[str], dict | None] = lambda call_id: None,
        ring_timeout_of: Callable[[str], float] = lambda pool: 0.0,
        token_factory: Callable[[], str] | None = None,
        token_signer: TokenSigner | None = None,
        lookup_contacts: bool = False,
        demo_call_control: bool = False,
        server_name: str = "callcenter",
    ):
        self.limits = limits or SeatLimits()
        self.agent_info = agent_info
        self.call_info = call_info
        self.ring_timeout_of = ring_timeout_of
        self.token_factory = token_factory  # unsigned tokens (tests); default: signed by token_signer
        self.token_signer = token_signer or TokenSigner(None)
        self.lookup_contacts = lookup_contacts
        self.demo_call_control = demo_call_control
        self.server_name = server_name
        self.conns: dict[int, _Conn] = {}
        self.sessions: dict[str, _Session] = {}
        self.tokens: dict[str, str] = {}  # token -> agent id
        self._agent_failures: dict[str, TokenBucket] = {}
        self._address_failures: dict[str, TokenBucket] = {}
        self._bad_tokens: dict[str, TokenBucket] = {}
        self._checking: dict[int, tuple[str, str]] = {}  # conn -> (agent, address) of a password check in flight
        self._orphans: set[str] = set()  # engine agents without a session, in their grace period

    # -- queries ---------------------------------------------------------------
    def session_of(self, agent_id: str) -> dict | None:
        sess = self.sessions.get(agent_id)
        if sess is None:
            return None
        return {
            "agent_id": sess.agent_id,
            "pool": sess.pool,
            "state": sess.state,
            "attached": sess.conn is not None,
            "offer": sess.offer.call_id if sess.offer else None,
            "call_id": sess.call_id,
        }

    # -- connections -------------------------------------------------------------
    def connected(self, conn: int, address: str, now: float) -> list:
        lim = self.limits
        self.conns[conn] = _Conn(conn, address, TokenBucket(lim.messages_per_s, lim.burst, now))
        hello = s.Hello(
            server=self.server_name,
            versions=[s.PROTOCOL_VERSION],
            limits=s.Limits(
                max_message_bytes=lim.max_message_bytes,
                messages_per_s=lim.messages_per_s,
                burst=lim.burst,
                grace_s=lim.grace_s,
                heartbeat_s=lim.heartbeat_s,
            ),
            demo_call_control=self.demo_call_control,
        )
        return [Send(conn, hello)]

    def disconnected(self, conn: int, now: float) -> list:
        c = self.conns.pop(conn, None)
        if c is None or c.agent_id is None:
            return []
        sess = self.sessions.get(c.agent_id)
        if sess is None or sess.conn != conn:
            return []
        sess.conn = None
        sess.detached_at = now
        return [StartTimer(_grace_key(sess.agent_id), self.limits.grace_s)]

    def timer_fired(self, key: tuple, now: float) -> list:
        if key[0] == "renew":
            return self._renew(key[1], now)
        if key[0] == "grace":
            sess = self.sessions.get(key[1])
            if sess is None and key[1] in self._orphans:
                self._orphans.discard(key[1])
                info = self.agent_info(key[1])
                if info is None or info.get("state", ev.LOGGED_OUT) == ev.LOGGED_OUT:
                    return []
                return [EngineInput("agent_logged_out", (key[1],), {"reason": "grace-expired"})]
            if sess is None or sess.conn is not None:
                return []
            self._forget(sess)
            return [EngineInput("agent_logged_out", (sess.agent_id,), {"reason": "grace-expired"})]
        return []

    def agents_restored(self, agent_ids: list[str], now: float) -> list:
        """The engine has these agents (restored after a failover): each one without a
        seat session here gets the normal grace period to resume or log in."""
        out: list = []
        for agent_id in agent_ids:
            if agent_id in self.sessions or agent_id in self._orphans:
                continue
            info = self.agent_info(agent_id)
            if info is None or info.get("state", ev.LOGGED_OUT) == ev.LOGGED_OUT:
                continue
            self._orphans.add(agent_id)
            out.append(StartTimer(_grace_key(agent_id), self.limits.grace_s))
        return out

    def _claim_orphan(self, agent_id: str) -> list:
        if agent_id in self._orphans:
            self._orphans.discard(agent_id)
            return [CancelTimer(_grace_key(agent_id))]
        return []

    def _new_token(self, agent_id: str, now: float, sid: str) -> str:
        if self.token_factory is not None:
            return self.token_factory()
        return self.token_signer.issue(agent_id, now, self.limits.token_ttl_s, sid)

    def _rotate(self, sess: _Session, now: float) -> list:
        """A new session id and token for ``sess``; every older token of the agent stops
        resuming, here at once and on any ACD that restores the engine's state (which
        holds the current session id: EngineInput below, journaled to Redis)."""
        for old in (sess.token, sess.previous_token):
            if old:
                self.tokens.pop(old, None)
        sess.previous_token = None
        sess.sid = self.token_signer.new_session_id()
        sess.token = self._new_token(sess.agent_id, now, sess.sid)
        self.tokens[sess.token] = sess.agent_id
        return [StartTimer(_renew_key(sess.agent_id), self.limits.token_ttl_s / 3)]

    def _renew(self, agent_id: str, now: float) -> list:
        """A fresh token with the same session id for an attached seat (expiry pushed back)."""
        sess = self.sessions.get(agent_id)
        if sess is None or sess.conn is None:
            return []  # detached: its resume rotates the token
        if sess.previous_token:
            self.tokens.pop(sess.previous_token, None)
        sess.previous_token, sess.token = sess.token, self._new_token(agent_id, now, sess.sid)
        self.tokens[sess.token] = agent_id
        return [Send(sess.conn, s.Token(token=sess.token, expires_in_s=self.limits.token_ttl_s)),
                StartTimer(_renew_key(agent_id), self.limits.token_ttl_s / 3)]

    # -- messages ----------------------------------------------------------------
    def received(self, conn: int, data: bytes | str, now: float) -> list:
        c = self.conns.get(conn)
        if c is None:
            return []
        if not c.bucket.take(now):
            c.dropped_in_a_row += 1
            if c.dropped_in_a_row >= self.limits.flood_close_after:
                return [Close(conn, CLOSE_POLICY, "message flood")]
            # one error per second at most: a flooder must not get an amplifier
            if now - c.limited_reported_at >= 1.0:
                c.limited_reported_at = now
                return [
                    Send(
                        conn,
                        s.error(
                            s.RATE_LIMITED,
                            f"more than {self.limits.messages_per_s:g} messages/s; message dropped",
                            retry_after_s=round(c.bucket.retry_after(now), 3),
                        ),
                    )
                ]
            return []
        c.dropped_in_a_row = 0
        try:
            msg = s.decode_client(data, self.limits.max_message_bytes)
        except s.SchemaError as exc:
            return [Send(conn, s.error(exc.code, exc.message, exc.ref))]
        handler = getattr(self, "_on_" + msg.TYPE)
        return handler(c, msg, now)

    def _err(self, c: _Conn, code: str, message: str, msg: s.Message | None = None, **kw) -> list:
        return [Send(c.id, s.error(code, message, msg.id if msg else None, **kw))]

    def _on_heartbeat(self, c: _Conn, msg: s.Heartbeat, now: float) -> list:
        return [Send(c.id, s.HeartbeatAck(ref=msg.id, server_time=now))]

    # login / resume -------------------------------------------------------------
    def _failure_buckets(self, agent_id: str, address: str, now: float) -> tuple[TokenBucket, TokenBucket]:
        lim = self.limits
        for table in (self._agent_failures, self._address_failures):
            if len(table) > 10_000:  # forget buckets that have refilled (bounded memory)
                for k in [k for k, b in table.items() if b.full(now)]:
                    del table[k]
        a = self._agent_failures.get(agent_id)
        if a is None:
            n = lim.login_failures_per_agent
            a = self._agent_failures[agent_id] = TokenBucket(n / lim.login_window_s, n, now)
        b = self._address_failures.get(address)
        if b is None:
            n = lim.login_failures_per_address
            b = self._address_failures[address] = TokenBucket(n / lim.login_window_s, n, now)
        return a, b

    def _bad_token_bucket(self, address: str, now: float) -> TokenBucket:
        table = self._bad_tokens
        if len(table) > 10_000:
            for k in [k for k, b in table.items() if b.full(now)]:
                del table[k]
        b = table.get(address)
        if b is None:
            n = self.limits.bad_tokens_per_address
            b = table[address] = TokenBucket(n / self.limits.login_window_s, n, now)
        return b

    def _on_login(self, c: _Conn, msg: s.Login, now: float) -> list:
        if c.agent_id is not None:
            return self._err(c, s.ALREADY_LOGGED_IN, f"this connection is already logged in as {c.agent_id}", msg)
        if c.login_pending:
            return self._err(c, s.ALREADY_LOGGED_IN, "a login is already being checked", msg)
        # Reserve before the (expensive) password check: a check in flight counts as a
        # failure until it succeeds, so parallel connections cannot all get checked at once.
        by_agent, by_address = self._failure_buckets(msg.agent_id, c.address, now)
        if not by_agent.take(now):
            return self._throttled(c, msg, by_agent, by_address, now)
        if not by_address.take(now):
            by_agent.give_back(now)
            return self._throttled(c, msg, by_agent, by_address, now)
        c.login_pending = True
        self._checking[c.id] = (msg.agent_id, c.address)
        return [VerifyLogin(c.id, msg.agent_id, msg.password, msg.id)]

    def _throttled(self, c: _Conn, msg: s.Login, by_agent: TokenBucket, by_address: TokenBucket, now: float) -> list:
        wait = max(by_agent.retry_after(now), by_address.retry_after(now))
        return self._err(c, s.LOGIN_THROTTLED, "too many failed or pending logins; try again later", msg,
                         retry_after_s=round(wait, 1))

    def _release(self, conn: int, now: float) -> None:
        """Give a login's reservation back: it did not fail (it succeeded, or was never checked)."""
        agent_id, address = self._checking.pop(conn, (None, None))
        a, b = self._agent_failures.get(agent_id), self._address_failures.get(address)
        if a is not None:
            a.give_back(now)
        if b is not None:
            b.give_back(now)

    def login_verified(self, conn: int, agent_id: str, account: Account | None, now: float, ref: Any = None) -> list:
        ok = account is not None and account.agent_id == agent_id
        if ok:
            self._release(conn, now)
        else:  # a failed login: the reservation taken in _on_login stays
            self._checking.pop(conn, None)
        c = self.conns.get(conn)
        if c is None:
            return []
        c.login_pending = False
        if not ok:
            return [Send(conn, s.error(s.BAD_CREDENTIALS, "unknown agent or wrong password", ref))]
        out: list = self._claim_orphan(agent_id)
        sess = self.sessions.get(agent_id)
        took_over = sess is not None
        if sess is not None:
            out += self._detach_for_takeover(sess)
        else:
            sess = _Session(agent_id, account.pool, "", None)
            self.sessions[agent_id] = sess
        out += self._rotate(sess, now)
        sess.conn, sess.detached_at = conn, None
        c.agent_id = agent_id
        info = None if took_over else self.agent_info(agent_id)
        if info is not None and info.get("state", ev.LOGGED_OUT) != ev.LOGGED_OUT:
            # the engine already has this agent (failover restore, or a session
            # whose grace timer just ran out here): adopt its state
            took_over = True
            self._adopt(sess, info, now)
        if took_over:  # the engine already has the agent: tell it the new session first
            out.append(EngineInput("agent_session_changed", (agent_id, sess.sid)))
        out.append(Send(conn, s.LoginOk(
            ref=ref, agent_id=agent_id, pool=sess.pool, token=sess.token,
            state=sess.state if took_over else ev.NOT_READY, reason=sess.reason if took_over else "",
            took_over=took_over,
        )))
        if took_over:
            out += self._replay(sess)
        else:
            out.append(EngineInput(
                "agent_logged_in", (agent_id,),
                {"pool": account.pool, "skills": account.skills, "endpoint": account.endpoint, "session": sess.sid},
                conn=conn, ref=ref,
            ))
        return out

    def _adopt(self, sess: _Session, info: dict, now: float) -> None:
        """Take the engine's view of an agent this core has no session history for."""
        sess.pool = info.get("pool", sess.pool)
        sess.state, sess.reason = info["state"], info.get("reason", "") or ""
        sess.since = now - float(info.get("since_s", 0.0) or 0.0)
        call_id = info.get("call_id")
        if call_id and sess.state in (ev.ON_CALL, ev.WRAPUP):
            sess.call_id, sess.call_phase = call_id, sess.state
            sess.recent_calls.append(call_id)
        elif call_id and sess.state == ev.OFFERED:
            call = self.call_info(call_id)
            if call is not None and call.get("agent_id") == sess.agent_id:
                sess.offer = s.Offer(
                    call_id=call_id, queue=call["queue"], category=call["category"], priority=call["priority"],
                    caller=call.get("caller_masked", ""), waited_s=round(float(call.get("waited_s", 0.0)), 3),
                    choices=list(call.get("choices") or []), contacts=[] if not self.lookup_contacts else None,
                    ring_timeout_s=float(self.ring_timeout_of(sess.pool)), offered_at=sess.since,
                    pool=sess.pool, tier=int(call.get("tier", 0) or 0), callback=bool(call.get("callback")),
                )
                sess.offer_waiting_context = False

    def _resume_signed(self, token: str, now: float) -> _Session | None:
        """A session for a signed token issued by any ACD of the cluster, or None.

        Only when this core has no session for the agent (a local session has its
        own, newer token) and the engine still has the agent (restored after a
        failover): an agent logged out since, or unknown, needs a password."""
        claims = self.token_signer.verify(token, now)
        if claims is None or claims.agent_id in self.sessions:
            return None
        info = self.agent_info(claims.agent_id)
        if info is None or info.get("state", ev.LOGGED_OUT) == ev.LOGGED_OUT or info.get("logout_pending"):
            return None  # (logout pending: its grace period already ran out here)
        if not hmac.compare_digest(claims.session_id, info.get("session") or ""):
            return None  # an older session's token (logged out, taken over or resumed since)
        sess = _Session(claims.agent_id, info.get("pool", ""), token, None, sid=claims.session_id)
        self._adopt(sess, info, now)
        self.sessions[sess.agent_id] = sess
        self.tokens[token] = sess.agent_id
        return sess

    def _detach_for_takeover(self, sess: _Session) -> list:
        out: list = [CancelTimer(_grace_key(sess.agent_id))] if sess.conn is None else []
        if sess.conn is not None:
            old = self.conns.get(sess.conn)
            if old is not None:
                old.agent_id = None
            out += [Send(sess.conn, s.SessionEnded(reason="taken-over")), Close(sess.conn, CLOSE_NORMAL, "taken over")]
            sess.conn = None
        return out

    def _replay(self, sess: _Session) -> list:
        """What an attaching connection must see: the state, then the pending offer."""
        out: list = [Send(sess.conn, s.State(state=sess.state, reason=sess.reason, since=sess.since, call_id=sess.call_id))]
        if sess.offer is not None and not sess.offer_waiting_context:
            out.append(Send(sess.conn, sess.offer))
        return out

    def _on_resume(self, c: _Conn, msg: s.Resume, now: float) -> list:
        if c.agent_id is not None:
            return self._err(c, s.ALREADY_LOGGED_IN, f"this connection is already logged in as {c.agent_id}", msg)
        agent_id = self.tokens.get(msg.token)
        if agent_id and self.token_factory is None and self.token_signer.verify(msg.token, now) is None:
            agent_id = None  # expired (a seat detached for longer than the token lives)
        sess = self.sessions.get(agent_id) if agent_id else None
        if sess is None:
            sess = self._resume_signed(msg.token, now)
        if sess is None:
            # not a failed password login: its own bucket (see the module docstring)
            if not self._bad_token_bucket(c.address, now).take(now):
                return [Close(c.id, CLOSE_POLICY, "too many bad tokens")]
            return self._err(c, s.BAD_TOKEN, "no such session (expired or logged out); log in again", msg)
        out = self._claim_orphan(sess.agent_id) + self._detach_for_takeover(sess)
        # the seat is back: the call the engine has it ringing or talking on is real (a restored
        # call is provisional until the switch or the seat confirms it; docs/failover.md)
        out.append(EngineInput("agent_confirmed", (sess.agent_id,), {}))
        sess.conn, sess.detached_at = c.id, None
        c.agent_id = sess.agent_id
        # rotate: the token just used (and any copy of it) never resumes again
        out += self._rotate(sess, now)
        out.append(EngineInput("agent_session_changed", (sess.agent_id, sess.sid)))
        call = s.CallView(call_id=sess.call_id, phase=sess.call_phase) if sess.call_id and sess.call_phase else None
        offer = sess.offer if not sess.offer_waiting_context else None
        out.append(Send(c.id, s.Resumed(
            ref=msg.id, agent_id=sess.agent_id, pool=sess.pool, token=sess.token,
            state=sess.state, reason=sess.reason, offer=offer, call=call,
        )))
        return out

    # agent actions --------------------------------------------------------------
    def _session(self, c: _Conn, msg: s.AgentAction) -> tuple[_Session | None, list]:
        if c.agent_id is None:
            return None, self._err(c, s.NOT_LOGGED_IN, "log in (or resume) first", msg)
        if msg.agent_id is not None and msg.agent_id != c.agent_id:
            return None, self._err(c, s.FORBIDDEN, f"this session acts only as agent {c.agent_id}", msg)
        return self.sessions[c.agent_id], []

    def _engine(self, c: _Conn, msg: s.Message, op: str, *args, **kwargs) -> EngineInput:
        return EngineInput(op, args, kwargs, conn=c.id, ref=msg.id)

    def _on_ready(self, c: _Conn, msg: s.Ready, now: float) -> list:
        sess, err = self._session(c, msg)
        return err or [self._engine(c, msg, "agent_ready", sess.agent_id)]

    def _on_not_ready(self, c: _Conn, msg: s.NotReady, now: float) -> list:
        sess, err = self._session(c, msg)
        return err or [self._engine(c, msg, "agent_not_ready", sess.agent_id, reason=msg.reason)]

    def _on_logout(self, c: _Conn, msg: s.Logout, now: float) -> list:
        sess, err = self._session(c, msg)
        if err:
            return err
        # the session ends when the engine reports logged-out (at once, or after
        # the call in progress)
        return [self._engine(c, msg, "agent_logged_out", sess.agent_id, reason="logout")]

    def _offered(self, c: _Conn, sess: _Session, msg: s.Accept | s.Reject) -> list:
        if sess.offer is None or sess.offer.call_id != msg.call_id:
            return self._err(c, s.NOT_YOUR_CALL, f"call {msg.call_id} is not being offered to {sess.agent_id}", msg)
        return []

    def _on_accept(self, c: _Conn, msg: s.Accept, now: float) -> list:
        sess, err = self._session(c, msg)
        err = err or self._offered(c, sess, msg)
        if err:
            return err
        out = [self._engine(c, msg, "offer_accepted", msg.call_id, sess.agent_id)]
        if self.demo_call_control:  # no phone: the seat's accept is the answer
            out.append(self._engine(c, msg, "offer_answered", msg.call_id, sess.agent_id))
        return out

    def _on_reject(self, c: _Conn, msg: s.Reject, now: float) -> list:
        sess, err = self._session(c, msg)
        err = err or self._offered(c, sess, msg)
        return err or [self._engine(c, msg, "offer_failed", msg.call_id, sess.agent_id, ev.REJECTED)]

    def _on_hangup(self, c: _Conn, msg: s.Hangup, now: float) -> list:
        sess, err = self._session(c, msg)
        if err:
            return err
        if not self.demo_call_control:
            return self._err(c, s.NOT_ENABLED, "hangup is for demo call control only; hang up on the phone", msg)
        if sess.call_id != msg.call_id or sess.call_phase != ev.ON_CALL:
            return self._err(c, s.NOT_YOUR_CALL, f"{sess.agent_id} is not talking on call {msg.call_id}", msg)
        return [self._engine(c, msg, "call_completed", msg.call_id, by="agent")]

    def _on_wrapup(self, c: _Conn, msg: s.Wrapup, now: float) -> list:
        sess, err = self._session(c, msg)
        if err:
            return err
        if msg.call_id not in sess.recent_calls:
            return self._err(c, s.NOT_YOUR_CALL, f"{sess.agent_id} has no recent call {msg.call_id}", msg)
        return [SaveWrapup(c.id, sess.agent_id, sess.pool, msg.call_id, msg.disposition, msg.notes, dict(msg.ticket), msg.id)]

    def _on_end_wrapup(self, c: _Conn, msg: s.EndWrapup, now: float) -> list:
        sess, err = self._session(c, msg)
        return err or [self._engine(c, msg, "wrapup_ended", sess.agent_id)]

    def _on_kb_search(self, c: _Conn, msg: s.KbSearch, now: float) -> list:
        sess, err = self._session(c, msg)
        return err or [SearchKb(c.id, msg.query, msg.limit, msg.id)]

    def _on_kb_get(self, c: _Conn, msg: s.KbGet, now: float) -> list:
        sess, err = self._session(c, msg)
        return err or [GetKbArticle(c.id, msg.article_id, msg.id)]

    def kb_listeners(self) -> list[int]:
        """Connections of logged-in seats: where a knowledge-base update goes."""
        return [sess.conn for sess in self.sessions.values() if sess.conn is not None]

    # -- results of slow work ------------------------------------------------------
    def login_unavailable(self, conn: int, ref: Any = None, *, now: float = 0.0,
                          busy_retry_s: float | None = None) -> list:
        """The password was not checked: the account store could not answer (database
        down), or ``busy_retry_s`` is set because the password checks were full.  Not a
        failed login: its reservation is given back (the connection may be gone by now)."""
        self._release(conn, now)
        c = self.conns.get(conn)
        if c is None:
            return []
        c.login_pending = False
        if busy_retry_s is not None:
            return [Send(conn, s.error(s.BUSY, "the ACD is busy checking other logins; retry shortly", ref,
                                       retry_after_s=round(busy_retry_s, 1)))]
        return [Send(conn, s.error(s.UNAVAILABLE, "the account store is not reachable; try again shortly", ref, retry_after_s=5.0))]

    def engine_refused(self, effect: EngineInput, exc: Exception, now: float) -> list:
        out: list = []
        if effect.op == "agent_logged_in":
            sess = self.sessions.get(effect.args[0])
            if sess is not None and sess.state == ev.LOGGED_OUT:
                conn = sess.conn
                self._forget(sess)
                if conn is not None and conn in self.conns:
                    return [
                        Send(conn, s.error(s.ILLEGAL_STATE, f"the ACD refused the login: {exc}", effect.ref)),
                        Send(conn, s.SessionEnded(reason="login-refused")),
                        Close(conn, CLOSE_NORMAL, "login refused"),
                    ]
                return []
        if effect.conn is not None and effect.conn in self.conns:
            out.append(Send(effect.conn, s.error(s.ILLEGAL_STATE, str(exc), effect.ref)))
        return out

    def contacts_found(self, agent_id: str, call_id: str, contacts: list[dict] | None) -> list:
        sess = self.sessions.get(agent_id)
        if sess is None or sess.offer is None or sess.offer.call_id != call_id or not sess.offer_waiting_context:
            return []  # offer over before the records answered
        sess.offer = sess.offer.model_copy(update={"contacts": contacts})
        sess.offer_waiting_context = False
        return [Send(sess.conn, sess.offer)] if sess.conn is not None else []

    # -- engine events ---------------------------------------------------------------
    def engine_event(self, event: ev.Event, now: float) -> list:
        agent_id = getattr(event, "agent_id", None)
        sess = self.sessions.get(agent_id) if agent_id else None
        if sess is None:
            return []
        send = (lambda m: [Send(sess.conn, m)]) if sess.conn is not None else (lambda m: [])
        if isinstance(event, ev.AgentStateChanged):
            sess.state, sess.reason, sess.since = event.new, event.reason, event.t
            if event.new == ev.LOGGED_OUT:
                conn = sess.conn
                self._forget(sess)
                if conn is None:
                    return [CancelTimer(_grace_key(agent_id))]
                return [
                    Send(conn, s.State(state=event.new, old=event.old, reason=event.reason, since=event.t)),
                    Send(conn, s.SessionEnded(reason="logged-out")),
                    Close(conn, CLOSE_NORMAL, "logged out"),
                ]
            if event.new in (ev.READY, ev.NOT_READY, ev.LOGGED_OUT):
                sess.call_id = sess.call_phase = None
            elif event.new == ev.WRAPUP and sess.call_id:
                sess.call_phase = ev.WRAPUP
            return send(s.State(state=event.new, old=event.old, reason=event.reason, since=event.t, call_id=sess.call_id))
        if isinstance(event, ev.CallOffered):
            sess.offer = s.Offer(
                call_id=event.call_id, queue=event.queue, category=event.category, priority=event.priority,
                caller=event.caller_masked, waited_s=round(event.waited_s, 3), choices=list(event.choices),
                contacts=[] if not self.lookup_contacts else None, ring_timeout_s=event.ring_timeout_s,
                offered_at=event.t, pool=event.pool, tier=event.tier, callback=event.callback,
            )
            if self.lookup_contacts:
                sess.offer_waiting_context = True
                return [LookupContacts(agent_id, event.call_id)]
            sess.offer_waiting_context = False
            return send(sess.offer)
        if isinstance(event, ev.OfferEnded):
            if sess.offer is not None and sess.offer.call_id == event.call_id:
                waiting = sess.offer_waiting_context
                sess.offer, sess.offer_waiting_context = None, False
                if waiting:  # the seat never saw it
                    return []
            return send(s.OfferEnded(call_id=event.call_id, result=event.result))
        if isinstance(event, ev.CallAnswered):
            sess.call_id, sess.call_phase = event.call_id, ev.ON_CALL
            sess.recent_calls.append(event.call_id)
            return send(s.CallAnswered(call_id=event.call_id, wait_s=round(event.wait_s, 3)))
        if isinstance(event, ev.CallEnded):
            if sess.call_id == event.call_id:
                sess.call_phase = ev.WRAPUP
            return send(s.CallEnded(call_id=event.call_id, outcome=event.outcome, talk_s=round(event.talk_s, 3)))
        return []

    # -- helpers -----------------------------------------------------------------------
    def _forget(self, sess: _Session) -> None:
        self.sessions.pop(sess.agent_id, None)
        self.tokens.pop(sess.token, None)
        if sess.previous_token:
            self.tokens.pop(sess.previous_token, None)
        if sess.conn is not None and sess.conn in self.conns:
            self.conns[sess.conn].agent_id = None
