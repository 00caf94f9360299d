"""The seat client library: one agent's session with the ACD, kept alive across drops.

Two layers:

* :class:`SeatSession` -- the protocol logic with no transport: what the agent
  sees (state, timer start, the offer, the call), the commands (ready, accept,
  wrap-up, ...), logging in on a fresh connection and *resuming* with the
  session token after a drop.  A transport calls ``connection_made(send,
  close)``, ``message_received(data)`` and ``connection_lost(why)``.
* :class:`SeatClient` -- that logic over a real ``wss://`` connection (autobahn
  on Twisted), reconnecting with exponential backoff and jitter through
  :class:`twisted.application.internet.ClientService`; clock and jitter source
  are injectable.

``seat_agent.testing.LoopbackSeat`` connects a :class:`SeatSession` to an
in-process seat server without sockets, for integrators' tests (like
treq.testing's StubTreq).

Listeners: ``session.add_listener(fn)``; ``fn(kind, msg)`` is called with
``kind`` one of ``"connected"``, ``"disconnected"``, ``"unreachable"`` (msg
None) or a server message type (``"offer"``, ``"state"``, ``"error"``, ...).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from twisted.internet import defer
from twisted.logger import Logger

from callcenter.seats import schema as s

__all__ = ["SeatSession", "SeatClient", "SeatError"]

log = Logger(namespace="seat_agent")

# Session endings after which reconnecting would be wrong.
FINAL_ENDINGS = ("taken-over", "logged-out", "bad-credentials", "login-refused")


class SeatError(Exception):
    """The ACD answered a request with an error message."""

    def __init__(self, msg: s.Error):
        super().__init__(f"{msg.code}: {msg.message}")
        self.code, self.message, self.retry_after_s = msg.code, msg.message, msg.retry_after_s


class SeatSession:
    """One agent's view of their seat and the commands they can give (no I/O)."""

    def __init__(self, agent_id: str, password: str, *, clock: Any):
        self.agent_id = agent_id
        self._password = password
        self.clock = clock
        self.token: str | None = None
        self.pool = ""
        self.connected = False  # a WebSocket is open
        self.logged_in = False  # ... and our session is attached to it
        self.state = "logged-out"
        self.reason = ""
        self.state_since = clock.seconds()  # local clock: the seat's timer
        self.offer: s.Offer | None = None
        self.offer_seen_at: float | None = None
        self.call_id: str | None = None
        self.call_phase: str | None = None  # on-call | wrap-up
        self.last_call_id: str | None = None
        self.last_error: s.Error | None = None
        self.ended: str | None = None  # why the session is over, when it is
        self.hello: s.Hello | None = None
        self.status = "not connected"
        self._listeners: list[Callable[[str, s.Message | None], None]] = []
        self.kb_open: dict[int, s.ArticleFull] = {}  # articles the agent opened, at the version opened
        self.kb_changed: dict[int, s.KbUpdated] = {}  # ...of those, the ones changed since
        self.kb_updates: list[s.KbUpdated] = []  # the last 50 updates pushed
        self._send: Callable[[bytes], None] | None = None
        self._close: Callable[[], None] | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, defer.Deferred] = {}
        self._login_retry = None

    # -- observers -----------------------------------------------------------
    def add_listener(self, fn: Callable[[str, s.Message | None], None]) -> None:
        self._listeners.append(fn)

    def _tell(self, kind: str, msg: s.Message | None = None) -> None:
        for fn in list(self._listeners):
            try:
                fn(kind, msg)
            except Exception:
                log.failure("seat listener failed on {kind}", kind=kind)

    @property
    def timer_s(self) -> float:
        """Seconds in the current state (what the seat shows)."""
        return max(0.0, self.clock.seconds() - self.state_since)

    # -- transport side ------------------------------------------------------
    def connection_made(self, send: Callable[[bytes], None], close: Callable[[], None]) -> None:
        self._send, self._close = send, close
        self.connected = True
        self.status = "connected"
        self._tell("connected")
        self._authenticate()

    def _authenticate(self) -> None:
        if self.token:
            self.status = "resuming session"
            self._send_msg(s.Resume(token=self.token, id=self._next_id()))
        else:
            self.status = "logging in"
            self._send_msg(s.Login(agent_id=self.agent_id, password=self._password, id=self._next_id()))

    def connection_lost(self, why: str = "") -> None:
        was = self.connected
        self._send = self._close = None
        self.connected = self.logged_in = False
        if self._login_retry is not None and self._login_retry.active():
            self._login_retry.cancel()
        for d in list(self._waiting.values()):
            d.errback(ConnectionError(f"connection to the ACD lost {why}".strip()))
        self._waiting.clear()
        if self.ended is None:
            self.status = "connection lost; reconnecting" if was else "cannot reach the server; retrying"
        if was:
            self._tell("disconnected")

    def unreachable(self, why: str) -> None:
        """A connection attempt failed (the transport says why)."""
        if self.ended is None:
            self.status = f"cannot reach the server ({why}); retrying"
        self._tell("unreachable")

    def message_received(self, data: bytes | str) -> None:
        try:
            msg = s.decode_server(data)
        except s.SchemaError as exc:
            log.warn("ignored a message the ACD should not have sent: {why}", why=exc.message)
            return
        handler = getattr(self, "_on_" + msg.TYPE, None)
        if handler is not None:
            handler(msg)
        ref = getattr(msg, "ref", None)
        if ref is not None and ref in self._waiting:
            d = self._waiting.pop(ref)
            if isinstance(msg, s.Error):
                d.errback(SeatError(msg))
            else:
                d.callback(msg)
        self._tell(msg.TYPE, msg)

    # -- server messages -------------------------------------------------------
    def _set_state(self, state: str, reason: str = "") -> None:
        if state != self.state:
            self.state_since = self.clock.seconds()
        self.state, self.reason = state, reason

    def _on_hello(self, msg: s.Hello) -> None:
        self.hello = msg

    def _on_token(self, msg: s.Token) -> None:
        self.token = msg.token  # the ACD rotates tokens; only the newest resumes

    def _on_login_ok(self, msg: s.LoginOk) -> None:
        self.token, self.pool, self.logged_in = msg.token, msg.pool, True
        self.status = "logged in" + (" (took over the session from another seat)" if msg.took_over else "")
        self._set_state(msg.state, msg.reason)

    def _on_resumed(self, msg: s.Resumed) -> None:
        self.token, self.pool, self.logged_in = msg.token, msg.pool, True
        self.status = "session resumed"
        self._set_state(msg.state, msg.reason)
        self.offer = msg.offer
        if msg.offer is not None:
            self.offer_seen_at = self.clock.seconds()
        if msg.call is not None:
            self.call_id, self.call_phase = msg.call.call_id, msg.call.phase

    def _on_state(self, msg: s.State) -> None:
        self._set_state(msg.state, msg.reason)
        if msg.state in ("ready", "not-ready", "logged-out"):
            self.call_id = self.call_phase = None
        if msg.state != "offered":
            self.offer = None if msg.state != "on-call" else self.offer

    def _on_offer(self, msg: s.Offer) -> None:
        self.offer, self.offer_seen_at = msg, self.clock.seconds()

    def _on_offer_ended(self, msg: s.OfferEnded) -> None:
        if self.offer is not None and self.offer.call_id == msg.call_id:
            self.offer = None

    def _on_call_answered(self, msg: s.CallAnswered) -> None:
        self.offer = None
        self.call_id, self.call_phase, self.last_call_id = msg.call_id, "on-call", msg.call_id

    def _on_call_ended(self, msg: s.CallEnded) -> None:
        if self.call_id == msg.call_id:
            self.call_phase = "wrap-up"
        self.last_call_id = msg.call_id

    def _on_error(self, msg: s.Error) -> None:
        self.last_error = msg
        if msg.code == s.BAD_TOKEN:  # the session expired: start a new one
            self.token = None
            if self._send is not None:
                self._authenticate()
        elif msg.code == s.BAD_CREDENTIALS:
            self._end("bad-credentials")
        elif msg.code in (s.LOGIN_THROTTLED, s.UNAVAILABLE, s.BUSY) and not self.logged_in and self._send is not None:
            self.status = f"{msg.message} (retrying in {msg.retry_after_s or 5:g} s)"
            self._login_retry = self.clock.callLater(msg.retry_after_s or 5.0, self._retry_login)

    def _retry_login(self) -> None:
        self._login_retry = None
        if self._send is not None and not self.logged_in:
            self._authenticate()

    def _on_session_ended(self, msg: s.SessionEnded) -> None:
        self._end(msg.reason)

    def _end(self, reason: str) -> None:
        self.ended = reason
        self.logged_in = False
        if reason in FINAL_ENDINGS:
            self.token = None
        self.status = {
            "taken-over": "this agent logged in on another seat; this seat is closed",
            "logged-out": "logged out",
            "bad-credentials": "unknown agent or wrong password",
        }.get(reason, f"session ended: {reason}")
        self.session_ended(reason)

    def session_ended(self, reason: str) -> None:
        """Hook: the transport stops reconnecting here."""

    def retry_login(self, password: str) -> None:
        """Log in again with another password (after ``bad-credentials``)."""
        self._password = password
        self.ended = None
        self.status = "logging in again"
        if self._send is not None:
            self._authenticate()
        else:
            self.reconnect()

    def reconnect(self) -> None:
        """Hook: a transport that stopped (final ending) starts again here."""

    # -- commands --------------------------------------------------------------
    def _next_id(self) -> int:
        return next(self._ids)

    def _send_msg(self, msg: s.Message) -> None:
        if self._send is None:
            raise ConnectionError("not connected to the ACD")
        self._send(s.encode(msg))

    def _request(self, msg: s.Message) -> defer.Deferred:
        """Send and wait for the reply carrying our id (errback with SeatError)."""
        d: defer.Deferred = defer.Deferred()
        self._waiting[msg.id] = d  # before sending: a loopback reply comes back at once
        try:
            self._send_msg(msg)
        except ConnectionError as exc:
            self._waiting.pop(msg.id, None)
            return defer.fail(exc)
        return d

    def ready(self) -> None:
        self._send_msg(s.Ready(id=self._next_id()))

    def not_ready(self, reason: str = "") -> None:
        self._send_msg(s.NotReady(reason=reason, id=self._next_id()))

    def logout(self) -> None:
        self._send_msg(s.Logout(id=self._next_id()))

    def accept(self, call_id: str | None = None) -> None:
        call_id = call_id or (self.offer.call_id if self.offer else None)
        if call_id is None:
            raise ValueError("no call is being offered")
        self._send_msg(s.Accept(call_id=call_id, id=self._next_id()))

    def reject(self, call_id: str | None = None) -> None:
        call_id = call_id or (self.offer.call_id if self.offer else None)
        if call_id is None:
            raise ValueError("no call is being offered")
        self._send_msg(s.Reject(call_id=call_id, id=self._next_id()))

    def hangup(self, call_id: str | None = None) -> None:
        """Demo call control only (the ACD says so in ``hello.demo_call_control``)."""
        self._send_msg(s.Hangup(call_id=call_id or self.call_id or "", id=self._next_id()))

    def wrapup(self, disposition: str, notes: str = "", ticket: dict[str, str] | None = None,
               call_id: str | None = None) -> defer.Deferred:
        """Save the disposition of the last call; fires with ``wrapup_saved``."""
        call_id = call_id or self.last_call_id
        if call_id is None:
            return defer.fail(ValueError("no call to wrap up"))
        return self._request(s.Wrapup(call_id=call_id, disposition=disposition, notes=notes,
                                      ticket=ticket or {}, id=self._next_id()))

    def end_wrapup(self) -> None:
        self._send_msg(s.EndWrapup(id=self._next_id()))

    def kb_search(self, query: str, limit: int = 10) -> defer.Deferred:
        """Fires with a ``kb_results`` message."""
        return self._request(s.KbSearch(query=query, limit=limit, id=self._next_id()))

    def kb_get(self, article_id: int) -> defer.Deferred:
        """Open an article: fires with a ``kb_article`` message; the article is remembered as
        open, so a later ``kb_updated`` for it marks it changed (``kb_changed``)."""
        return self._request(s.KbGet(article_id=article_id, id=self._next_id()))

    def _on_kb_article(self, msg: s.KbArticle) -> None:
        a = msg.article
        if a.id not in self.kb_open or self.kb_open[a.id].version <= a.version:
            self.kb_open.setdefault(a.id, a)  # the version the agent opened first stays the baseline

    def _on_kb_updated(self, msg: s.KbUpdated) -> None:
        self.kb_updates = (self.kb_updates + [msg])[-50:]
        opened = self.kb_open.get(msg.article_id)
        if opened is not None and msg.version > opened.version:
            self.kb_changed[msg.article_id] = msg

    def kb_close(self, article_id: int) -> None:
        self.kb_open.pop(article_id, None)
        self.kb_changed.pop(article_id, None)

    def kb_difference(self, article_id: int) -> defer.Deferred:
        """The open article against its newest version: fires with (opened, newest, diff lines)
        and makes the newest one the baseline ("changed since you opened it", then acknowledged)."""
        from callcenter.kb.model import text_diff

        opened = self.kb_open.get(article_id)

        def got(msg: s.KbArticle):
            new = msg.article
            old = opened or new
            lines = []
            if old.title != new.title:
                lines += [f"-标题 {old.title}", f"+标题 {new.title}"]
            if new.status != old.status:
                lines += [f"-状态 {old.status}", f"+状态 {new.status}"]
            lines += text_diff(old.body, new.body)
            self.kb_open[article_id] = new
            self.kb_changed.pop(article_id, None)
            return old, new, lines

        return self.kb_get(article_id).addCallback(got)

    def heartbeat(self) -> defer.Deferred:
        return self._request(s.Heartbeat(id=self._next_id()))

    def disconnect(self) -> None:
        if self._close is not None:
            self._close()


class SeatClient(SeatSession):
    """A :class:`SeatSession` over ``wss://``, reconnecting with backoff (ClientService).

    ``url``: one ``wss://`` URL, or a list of them (the ACDs of a failover
    cluster): a failed connection attempt (refused, TLS or WebSocket handshake
    failed) moves on to the next URL, round robin, with the usual backoff.
    ``url`` is the URL in use; ``urls`` all of them.

    ``cafile``: PEM of the certificate(s) to trust (a development ACD's
    ``.state/tls/dev-cert.pem``); without it the platform's trust store is used.
    """

    def __init__(self, url: str | list[str], agent_id: str, password: str, *, reactor: Any, clock: Any = None,
                 cafile: str | None = None, trust_root: Any = None, rng: random.Random | None = None,
                 initial_delay: float = 0.5, max_delay: float = 30.0, factor: float = 2.0,
                 ping_interval: float = 15.0):
        super().__init__(agent_id, password, clock=clock or reactor)
        self.urls = [url] if isinstance(url, str) else list(url)
        if not self.urls:
            raise ValueError("SeatClient needs at least one URL")
        self.url_index = 0
        self.url = self.urls[0]
        self.reactor = reactor
        self.cafile = cafile
        self.trust_root = trust_root
        self.rng = rng or random.Random()
        self.initial_delay, self.max_delay, self.factor = initial_delay, max_delay, factor
        self.ping_interval = ping_interval
        self._service = None
        self._factory = None
        self.protocol = None

    def rotate_url(self) -> None:
        """Use the next URL for the next connection attempt (no-op with one URL)."""
        if len(self.urls) > 1:
            self.url_index = (self.url_index + 1) % len(self.urls)
            self.url = self.urls[self.url_index]

    def _endpoint(self, url: str | None = None):
        from twisted.internet import ssl
        from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS

        url = url or self.url
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss"):
            raise ValueError(f"{url}: expected a wss:// (or ws://) URL")
        host = parts.hostname or "localhost"
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        endpoint = HostnameEndpoint(self.reactor, host, port, timeout=10)
        if parts.scheme == "wss":
            # one TLS context per (host, trust): building one costs milliseconds, and
            # a robot process may run thousands of seats
            key = (host, self.cafile, id(self.trust_root))
            options = _TLS_OPTIONS.get(key)
            if options is None:
                trust = self.trust_root
                if trust is None and self.cafile:
                    with open(self.cafile, "rb") as f:
                        trust = ssl.trustRootFromCertificates(
                            [ssl.Certificate.loadPEM(b) for b in _pem_blocks(f.read())])
                options = _TLS_OPTIONS[key] = ssl.optionsForClientTLS(host, trustRoot=trust)
            endpoint = wrapClientTLS(options, endpoint)
        return endpoint

    def start(self) -> None:
        from autobahn.twisted.websocket import WebSocketClientFactory
        from twisted.application.internet import ClientService, backoffPolicy

        factory = WebSocketClientFactory(self.url, reactor=self.reactor)
        factory.protocol = _SeatClientProtocol
        factory.seat = self
        factory.noisy = False
        self._factory = factory
        factory.setProtocolOptions(autoPingInterval=self.ping_interval, autoPingTimeout=10.0,
                                   openHandshakeTimeout=10.0, closeHandshakeTimeout=2.0)
        policy = backoffPolicy(self.initial_delay, self.max_delay, self.factor, jitter=self.rng.random)
        endpoint = _RotatingEndpoint(self, [self._endpoint(u) for u in self.urls])
        self._service = ClientService(endpoint, factory, retryPolicy=policy, clock=self.clock)
        self._service.startService()
        self.status = f"connecting to {self.url}"

    def stop(self) -> defer.Deferred:
        """Stop reconnecting and close the connection (the session stays in its grace period)."""
        service, self._service = self._service, None
        if service is None or not service.running:
            return defer.succeed(None)
        return service.stopService()

    def session_ended(self, reason: str) -> None:
        if reason in FINAL_ENDINGS and self._service is not None:
            self.stop()

    def reconnect(self) -> None:
        if self._service is None:
            self.start()


_TLS_OPTIONS: dict = {}


class _RotatingEndpoint:
    """Connects to the seat's current URL; a failed attempt moves the seat on to the next
    URL and tells the session (``unreachable``)."""

    def __init__(self, seat: SeatClient, endpoints: list):
        self.seat, self.endpoints = seat, endpoints

    def connect(self, factory):
        seat = self.seat
        i = seat.url_index % len(self.endpoints)
        if factory.url != seat.urls[i]:
            factory.setSessionParameters(url=seat.urls[i])  # Host header and path of this ACD

        def failed(f):
            seat.rotate_url()
            seat.unreachable(f.getErrorMessage())
            return f

        return self.endpoints[i].connect(factory).addErrback(failed)


def _pem_blocks(data: bytes) -> list[bytes]:
    import re

    return re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\s*", data, re.S)


def _protocol_class():
    from autobahn.twisted.websocket import WebSocketClientProtocol

    class SeatClientProtocol(WebSocketClientProtocol):
        def onOpen(self):
            seat = self.factory.seat
            seat.protocol = self
            seat.connection_made(lambda data: self.sendMessage(data, isBinary=False),
                                 lambda: self.sendClose(1000))

        def onMessage(self, payload, isBinary):
            if not isBinary:
                self.factory.seat.message_received(payload)

        def onClose(self, wasClean, code, reason):
            seat = self.factory.seat
            if seat.protocol is self:
                seat.protocol = None
                seat.connection_lost(f"(code {code}: {reason})" if code else "")
            else:  # TLS or WebSocket handshake never completed: try the next ACD
                seat.rotate_url()
                seat.unreachable(reason or "handshake failed")

    return SeatClientProtocol


_SeatClientProtocol = _protocol_class()
