"""The seat WebSocket server: a thin autobahn/Twisted shell around session.SeatCore.

It turns WebSocket frames and engine events into calls on the pure core and
carries out the effects it returns: sending messages, closing connections,
calling engine inputs, scheduling grace timers on the injected ``clock``, and
running the slow work (argon2 password checks, knowledge-base search, the
caller's recent contacts, saving a wrap-up) in the reactor's thread pool so
the reactor never waits on a database.

Transport limits (autobahn protocol options): a message over twice the
schema limit closes the connection (1009).

Liveness: a connection that sent nothing for ``heartbeat_s`` (15 s) gets a
WebSocket ping; one that has not answered it ``pong_timeout_s`` (10 s) later,
at the sweep's next visit, is dropped, which starts its grace period.  The sweep visits an even slice of
the connections every ``SWEEP_TICK_S`` instead of using autobahn's auto-ping:
autobahn batches its timers into whole-second buckets (txaio), so with
thousands of seats every second's pings went out in one burst and stalled the
reactor for ~170 ms (benchmarks/seats.py: offer-to-seat p99 168 ms -> ~30 ms).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import defer, threads
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from callcenter.engine import EngineError
from callcenter.engine import events as ev

from . import schema as s
from .passwords import Busy, PasswordChecks
from .session import (
    CancelTimer,
    Close,
    EngineInput,
    GetKbArticle,
    LookupContacts,
    SaveWrapup,
    SearchKb,
    SeatCore,
    SeatLimits,
    Send,
    StartTimer,
    VerifyLogin,
)
from .tokens import TokenSigner

__all__ = ["SeatServer", "SeatProtocol", "SeatFactory", "SEAT_PATH"]

SEAT_PATH = "/seat"
SWEEP_TICK_S = 0.1
log = Logger(namespace="callcenter.seats")

_AGENT_EVENTS = (ev.AgentStateChanged, ev.CallOffered, ev.OfferEnded, ev.CallAnswered, ev.CallEnded)


class SeatProtocol(WebSocketServerProtocol):
    """One seat connection; everything it hears goes to the :class:`SeatServer`."""

    conn_id: int | None = None
    last_heard: float = 0.0
    pinged_at: float | None = None

    def onConnect(self, request):
        if request.path.rstrip("/") != SEAT_PATH:
            raise ConnectionDeny(404, f"no WebSocket here; seats connect to {SEAT_PATH}")
        return None

    def onOpen(self):
        self.last_heard = self.factory.seats.reactor.seconds()
        self.conn_id = self.factory.seats.connection_opened(self)

    def onPong(self, payload):
        self.last_heard = self.factory.seats.reactor.seconds()

    def onMessage(self, payload, isBinary):
        if self.conn_id is None:
            return
        self.last_heard = self.factory.seats.reactor.seconds()
        if isBinary:
            self.factory.seats.send(self.conn_id, s.error(s.BAD_JSON, "binary frames are not accepted; send JSON text"))
            return
        self.factory.seats.received(self.conn_id, payload)

    def onClose(self, wasClean, code, reason):
        if self.conn_id is not None:
            self.factory.seats.connection_lost(self.conn_id)
            self.conn_id = None


class SeatFactory(WebSocketServerFactory):
    protocol = SeatProtocol

    def __init__(self, seats: SeatServer, url: str, reactor=None):
        super().__init__(url, reactor=reactor)
        self.seats = seats
        self.noisy = False
        lim = seats.core.limits
        self.setProtocolOptions(
            maxMessagePayloadSize=2 * lim.max_message_bytes,
            maxFramePayloadSize=2 * lim.max_message_bytes,
            autoPingInterval=None,  # SeatServer sweeps pings evenly (module docstring)
            openHandshakeTimeout=10.0,
            closeHandshakeTimeout=2.0,
            perMessageCompressionAccept=lambda offers: None,  # no compression bombs
        )


class SeatServer:
    """All seat sessions of one ACD.

    ``accounts.verify(agent_id, password) -> Account | None``, ``kb.search(query,
    limit) -> list[dict]``, ``contacts(call_id) -> list[dict]`` and
    ``save_wrapup(record: dict) -> bool`` are blocking callables run in threads;
    any of the last three may be None (not available).
    """

    def __init__(
        self,
        engine: Any,
        *,
        reactor: Any,
        clock: Any = None,
        accounts: Any,
        kb: Any = None,
        contacts: Callable[[str], list[dict]] | None = None,
        save_wrapup: Callable[[dict], bool] | None = None,
        limits: SeatLimits | None = None,
        demo_call_control: bool = False,
        server_name: str = "callcenter",
        token_factory: Callable[[], str] | None = None,
        token_secret: str | bytes | None = None,
        contacts_timeout_s: float = 1.0,
        run_blocking: Callable[..., defer.Deferred] | None = None,
        password_checks: Callable[..., defer.Deferred] | None = None,
    ):
        self.engine = engine
        self.reactor = reactor
        self.clock = clock or reactor
        self.accounts = accounts
        self.kb = kb
        self.contacts = contacts
        self.save_wrapup = save_wrapup
        self.contacts_timeout_s = contacts_timeout_s
        self._run_blocking = run_blocking or (
            lambda fn, *args: threads.deferToThreadPool(reactor, reactor.getThreadPool(), fn, *args))
        # password checks never share the pool above (passwords.py); a test's inline runner serves both
        self.password_checks = password_checks or (PasswordChecks(reactor) if run_blocking is None else run_blocking)
        self.core = SeatCore(
            limits, agent_info=engine.agent_info, call_info=getattr(engine, "call_info", lambda call_id: None),
            ring_timeout_of=self._ring_timeout_of, token_factory=token_factory,
            token_signer=TokenSigner(token_secret), lookup_contacts=contacts is not None,
            demo_call_control=demo_call_control, server_name=server_name,
        )
        self.protocols: dict[int, SeatProtocol] = {}
        self._ids = itertools.count(1)
        self._timers: dict[tuple, Any] = {}
        self._unsubscribe = engine.subscribe(self._engine_event)
        self._pending: set[defer.Deferred] = set()
        self._stopped = False
        self.counts = {"connections": 0, "pings": 0, "silent_drops": 0}  # for status pages and benchmarks
        self._sweep: LoopingCall | None = None
        self._sweep_order: list[int] = []
        self._sweep_index = 0

    def _ring_timeout_of(self, pool: str) -> float:
        for p in getattr(getattr(self.engine, "config", None), "pools", ()):
            if p.name == pool:
                return float(p.ring_timeout_s)
        return 0.0

    def agents_restored(self) -> int:
        """Start the grace period of every engine agent without a seat session (call it when
        this ACD becomes active on a restored engine); returns how many got one."""
        effects = self.core.agents_restored(list(self.engine.agents()), self.clock.seconds())
        if effects:
            log.info("{n} restored agent(s) without a seat session: logged out unless they resume "
                     "within {grace:g} s", n=len(effects), grace=self.core.limits.grace_s)
        self._do(effects)
        return len(effects)

    # -- transport side ------------------------------------------------------
    def factory(self, url: str) -> SeatFactory:
        """The WebSocket factory to listen with; starts the liveness sweep."""
        self.ws_factory = SeatFactory(self, url, reactor=self.reactor)
        if self._sweep is None:
            self._sweep = LoopingCall(self._sweep_tick)
            self._sweep.clock = self.reactor
            self._sweep.start(SWEEP_TICK_S, now=False)
        return self.ws_factory

    def _sweep_tick(self) -> None:
        """Visit the next slice of connections: ping the quiet ones, drop the silent ones."""
        if not self.protocols:
            return
        every = self.core.limits.heartbeat_s
        if self._sweep_index >= len(self._sweep_order):
            self._sweep_order, self._sweep_index = list(self.protocols), 0
        per_tick = max(1, math.ceil(len(self._sweep_order) * SWEEP_TICK_S / every))
        batch = self._sweep_order[self._sweep_index:self._sweep_index + per_tick]
        self._sweep_index += per_tick
        now = self.reactor.seconds()
        for conn in batch:
            proto = self.protocols.get(conn)
            if proto is None or proto.state != proto.STATE_OPEN:
                continue
            pinged = proto.pinged_at is not None and proto.pinged_at >= proto.last_heard
            if pinged and now - proto.pinged_at >= self.core.limits.pong_timeout_s:
                # only ever after a ping went unanswered: a slow sweep must not drop live seats
                log.info("seat connection {conn}: no pong for {s:.0f} s; dropping it", conn=conn,
                         s=now - proto.pinged_at)
                self.counts["silent_drops"] += 1
                proto.dropConnection(abort=True)
            elif not pinged and now - proto.last_heard >= every:
                self.counts["pings"] += 1
                proto.pinged_at = now
                proto.sendPing()

    def connection_opened(self, proto: SeatProtocol) -> int:
        conn = next(self._ids)
        self.counts["connections"] += 1
        self.protocols[conn] = proto
        peer = proto.transport.getPeer()
        self._do(self.core.connected(conn, getattr(peer, "host", str(peer)), self.clock.seconds()))
        return conn

    def received(self, conn: int, payload: bytes) -> None:
        try:
            effects = self.core.received(conn, payload, self.clock.seconds())
        except Exception:
            # our bug, not the seat's: answer it and keep this seat and every other one going
            log.failure("seat connection {conn}: handling a message failed", conn=conn)
            effects = []
            self.send(conn, s.error(s.SERVER_ERROR, "the ACD could not handle this message; it was dropped"))
        self._do(effects)

    def connection_lost(self, conn: int) -> None:
        self.protocols.pop(conn, None)
        self._do(self.core.disconnected(conn, self.clock.seconds()))

    def send(self, conn: int, msg: s.Message) -> None:
        proto = self.protocols.get(conn)
        if proto is not None and proto.state == proto.STATE_OPEN:
            proto.sendMessage(s.encode(msg), isBinary=False)

    def _engine_event(self, event: ev.Event) -> None:
        if isinstance(event, _AGENT_EVENTS) and getattr(event, "agent_id", None) in self.core.sessions:
            self._do(self.core.engine_event(event, self.clock.seconds()))

    def stop(self) -> defer.Deferred:
        """Close every connection and timer; wait for thread work in flight."""
        self._stopped = True
        self._unsubscribe()
        if self._sweep is not None and self._sweep.running:
            self._sweep.stop()
        for call in self._timers.values():
            if call.active():
                call.cancel()
        self._timers.clear()
        for proto in list(self.protocols.values()):
            proto.dropConnection(abort=True)
        d = defer.DeferredList(list(self._pending), consumeErrors=True)
        stop_checks = getattr(self.password_checks, "stop", None)
        if stop_checks is not None:
            d.addBoth(lambda _: stop_checks())
        return d

    # -- effects -------------------------------------------------------------
    def _do(self, effects: list) -> None:
        for e in effects:
            try:
                self._carry_out(e)
            except Exception:
                log.failure("seat effect {effect!r} failed", effect=e)

    def _carry_out(self, e: Any) -> None:
        if isinstance(e, Send):
            self.send(e.conn, e.msg)
            if isinstance(e.msg, (s.LoginOk, s.Resumed, s.SessionEnded)):
                self._log_session(e)
        elif isinstance(e, EngineInput):
            try:
                getattr(self.engine, e.op)(*e.args, **e.kwargs)
            except EngineError as exc:
                self._do(self.core.engine_refused(e, exc, self.clock.seconds()))
        elif isinstance(e, Close):
            proto = self.protocols.get(e.conn)
            if proto is not None:
                proto.sendClose(e.code, e.reason)
        elif isinstance(e, StartTimer):
            if self._stopped:  # connections closed by stop() start no grace periods
                return
            old = self._timers.pop(e.key, None)
            if old is not None and old.active():
                old.cancel()
            self._timers[e.key] = self.clock.callLater(e.delay, self._timer_fired, e.key)
        elif isinstance(e, CancelTimer):
            old = self._timers.pop(e.key, None)
            if old is not None and old.active():
                old.cancel()
        elif isinstance(e, VerifyLogin):
            self._verify_login(e)
        elif isinstance(e, SearchKb):
            self._kb_search(e)
        elif isinstance(e, GetKbArticle):
            self._kb_get(e)
        elif isinstance(e, SaveWrapup):
            self._save_wrapup(e)
        elif isinstance(e, LookupContacts):
            self._lookup_contacts(e)
        else:  # pragma: no cover - a new effect without a handler is our bug
            raise TypeError(f"unknown effect {e!r}")

    def _verify_login(self, e: VerifyLogin) -> None:
        try:
            d = self.password_checks(self.accounts.verify, e.agent_id, e.password)
        except Busy as busy:
            self._do(self.core.login_unavailable(e.conn, e.ref, now=self.clock.seconds(), busy_retry_s=busy.retry_after_s))
            return
        self._pending.add(d)
        d.addBoth(lambda result: (self._pending.discard(d), result)[1])
        d.addCallbacks(
            lambda account: self._do(self.core.login_verified(e.conn, e.agent_id, account, self.clock.seconds(), e.ref)),
            lambda f: (log.failure("account check failed", f),
                       self._do(self.core.login_unavailable(e.conn, e.ref, now=self.clock.seconds()))),
        )

    def _log_session(self, e: Send) -> None:
        proto = self.protocols.get(e.conn)
        peer = proto.transport.getPeer() if proto is not None and proto.transport is not None else None
        where = getattr(peer, "host", "?")
        if isinstance(e.msg, s.LoginOk):
            log.info("seat {agent} logged in from {where}{how}", agent=e.msg.agent_id, where=where,
                     how=" (took over its session)" if e.msg.took_over else "")
        elif isinstance(e.msg, s.Resumed):
            log.info("seat {agent} resumed its session from {where}", agent=e.msg.agent_id, where=where)
        else:
            log.info("seat session on {where} ended: {reason}", where=where, reason=e.msg.reason)

    def _timer_fired(self, key: tuple) -> None:
        self._timers.pop(key, None)
        if key[0] == "grace":
            log.info("seat {agent}: no resume within the grace period; logging it out", agent=key[1])
        self._do(self.core.timer_fired(key, self.clock.seconds()))

    def _in_thread(self, fn, *args) -> defer.Deferred:
        d = self._run_blocking(fn, *args)
        self._pending.add(d)

        def done(result):
            self._pending.discard(d)
            return result

        return d.addBoth(done)

    def _kb_search(self, e: SearchKb) -> None:
        if self.kb is None:
            self.send(e.conn, s.error(s.UNAVAILABLE, "no knowledge base is configured", e.ref))
            return

        def found(rows):
            arts = [s.Article(id=r["id"], title=r["title"], snippet=r.get("snippet", ""), tags=r.get("tags", []))
                    for r in rows]
            self.send(e.conn, s.KbResults(ref=e.ref, query=e.query, articles=arts))

        def failed(f):
            log.failure("knowledge-base search failed", f)
            self.send(e.conn, s.error(s.UNAVAILABLE, "the knowledge base is not reachable; try again", e.ref))

        self._in_thread(self.kb.search, e.query, e.limit).addCallbacks(found, failed)

    def _kb_get(self, e: GetKbArticle) -> None:
        if self.kb is None or not hasattr(self.kb, "get"):
            self.send(e.conn, s.error(s.UNAVAILABLE, "no knowledge base is configured", e.ref))
            return

        def found(a):
            if a is None or a.get("status") == "draft":
                self.send(e.conn, s.error(s.BAD_FIELD, f"no article {e.article_id}", e.ref))
                return
            fields = {k: a.get(k) for k in s.ArticleFull.model_fields if k in a}
            self.send(e.conn, s.KbArticle(ref=e.ref, article=s.ArticleFull(**fields)))

        def failed(f):
            log.failure("knowledge-base read failed", f)
            self.send(e.conn, s.error(s.UNAVAILABLE, "the knowledge base is not reachable; try again", e.ref))

        self._in_thread(self.kb.get, e.article_id).addCallbacks(found, failed)

    KB_FANOUT_CHUNK = 250  # seats per reactor turn: a fan-out to thousands must not stall offers

    def kb_changed(self, msg: s.KbUpdated) -> defer.Deferred:
        """Push a knowledge-base update to every logged-in seat; fires with how many got it.

        The message is encoded and framed once (autobahn's ``prepareMessage``) and
        sent ``KB_FANOUT_CHUNK`` seats per reactor turn, so calls keep flowing
        while thousands of seats are told."""
        data = s.encode(msg)
        conns = self.core.kb_listeners()
        done: defer.Deferred = defer.Deferred()
        prepared: dict[int, Any] = {}
        sent = [0]

        def send_chunk(start: int) -> None:
            for conn in conns[start:start + self.KB_FANOUT_CHUNK]:
                proto = self.protocols.get(conn)
                if proto is None or proto.state != proto.STATE_OPEN:
                    continue
                factory = getattr(proto, "factory", None)
                if hasattr(proto, "sendPreparedMessage") and hasattr(factory, "prepareMessage"):
                    pm = prepared.get(id(factory))
                    if pm is None:
                        pm = prepared[id(factory)] = factory.prepareMessage(data, isBinary=False)
                    proto.sendPreparedMessage(pm)
                else:
                    proto.sendMessage(data, isBinary=False)
                sent[0] += 1
            if start + self.KB_FANOUT_CHUNK < len(conns):
                self.clock.callLater(0, send_chunk, start + self.KB_FANOUT_CHUNK)
            else:
                done.callback(sent[0])

        send_chunk(0)
        return done

    def _save_wrapup(self, e: SaveWrapup) -> None:
        record = {"call_id": e.call_id, "agent_id": e.agent_id, "pool": e.pool, "disposition": e.disposition,
                  "notes": e.notes, "ticket": e.ticket, "at": self.clock.seconds()}
        if self.save_wrapup is None:
            log.info("wrap-up for {call_id} by {agent_id}: {disposition} (no records store)",
                     call_id=e.call_id, agent_id=e.agent_id, disposition=e.disposition)
            self.send(e.conn, s.WrapupSaved(ref=e.ref, call_id=e.call_id, stored=False))
            return

        def failed(f):
            log.failure("saving the wrap-up of {call_id} failed", f, call_id=e.call_id)
            self.send(e.conn, s.error(s.UNAVAILABLE, "the records store did not take the wrap-up; send it again", e.ref))

        self._in_thread(self.save_wrapup, record).addCallbacks(
            lambda ok: self.send(e.conn, s.WrapupSaved(ref=e.ref, call_id=e.call_id, stored=ok is not False)), failed)

    def _lookup_contacts(self, e: LookupContacts) -> None:
        d = self._in_thread(self.contacts, e.call_id)
        d.addTimeout(self.contacts_timeout_s, self.clock)

        def failed(f):
            log.warn("recent contacts for {call_id} unavailable: {why}", call_id=e.call_id, why=f.getErrorMessage())
            return None  # the offer goes out without them

        d.addErrback(failed)
        d.addCallback(lambda contacts: self._do(self.core.contacts_found(e.agent_id, e.call_id, contacts)))

    # -- queries -------------------------------------------------------------
    @property
    def session_count(self) -> int:
        return len(self.core.sessions)
