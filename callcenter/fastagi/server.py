"""The FastAGI server: one Twisted protocol per AGI session, one registry of calls.

:class:`AgiSession` is a thin shell: bytes go into
:class:`callcenter.agi.protocol.AgiReader`, its events into the call's flow
(:class:`callcenter.callflow.InboundCall`), the flow's actions out to the
socket and the engine.  :class:`CallControl` owns the registry of calls, the
engine subscription (decisions routed to the call they name), admission
control, the resume-by-call-id hand-over and callback origination.

The same session class serves two ports: the FastAGI port Asterisk connects
to, and the relay port where classic pyst2 scripts connect after the
shared-secret handshake (:mod:`callcenter.fastagi.handshake`).
"""

from __future__ import annotations

import random
import re
from collections import deque

from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from callcenter import metrics
from callcenter.agi.protocol import AgiReader, EnvironmentReceived, HangupReceived, ProtocolError, Reply
from callcenter.callflow import BadRequest, Finish, FlowOptions, InboundCall, Note, Report, Send
from callcenter.callflow.base import INTERRUPT, INTERRUPT_GUARD_S, INTERRUPTIBLE, NUDGE_AFTER_S
from callcenter.engine import EngineError
from callcenter.engine.events import CallEnded, CallOffered
from callcenter.masking import caller_hash, mask_number

from . import handshake
from .admission import Admission

log = Logger(namespace="callcenter.fastagi")

_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
IDLE_ENV_TIMEOUT_S = 10.0  # a peer that connects and never sends its environment is dropped
# A call writes a few commands a second at most (the hold loop one per WAIT FOR DIGIT); a peer that
# answers everything at once would otherwise spin a flow at full speed (issue 16 item 7).
MAX_COMMANDS_PER_S = 100


class AgiSession(Protocol):
    """One AGI session (FastAGI from Asterisk, or a relayed classic AGI)."""

    def __init__(self, control: CallControl, *, secret: str | None = None, rng: random.Random | None = None):
        self.control = control
        self.secret = secret
        self.rng = rng
        self.reader = AgiReader()
        self.flow = None
        self.call_id: str | None = None
        self.saw_hangup = False
        self.closed = False
        self._pending: deque = deque()
        self._running = False
        self._authed = secret is None
        self._nonce = b""
        self._pre = b""
        self._env_timer = None
        self._wfd_written_at: float | None = None
        self._held_interrupt = None  # a delayed call writing the interrupt (INTERRUPT_GUARD_S)
        self._nudge_timer = None
        self._window_start = 0.0
        self._window_count = 0

    # ------------------------------------------------------------ Twisted

    def connectionMade(self) -> None:
        try:
            self.transport.setTcpNoDelay(True)
        except Exception:
            pass
        clock = self.control.clock
        self._env_timer = clock.callLater(IDLE_ENV_TIMEOUT_S, self._env_timed_out)
        if not self._authed:
            self._nonce = (self.rng or random.SystemRandom()).getrandbits(128).to_bytes(16, "big")
            self.transport.write(handshake.greeting(self._nonce))

    def dataReceived(self, data: bytes) -> None:
        if self.closed:
            return
        if not self._authed:
            self._pre += data
            nl = self._pre.find(b"\n")
            if nl < 0:
                if len(self._pre) > 512:
                    self._abort("relay handshake line too long")
                return
            line, data = self._pre[: nl + 1], self._pre[nl + 1 :]
            self._pre = b""
            if not handshake.check(self.secret or "", self._nonce, line):
                self.control.auth_failures += 1
                metrics.AGI_AUTH_FAILURES.inc()
                self._abort("relay handshake failed (wrong shared secret?)")
                return
            self._authed = True
            if not data:
                return
        try:
            events = self.reader.receive_data(data)
        except ProtocolError as exc:
            self._abort(f"peer broke the AGI protocol: {exc}")
            return
        for ev in events:
            if self.closed:
                return
            try:
                if isinstance(ev, Reply):
                    if self.flow is None:
                        raise ProtocolError("a reply before any command")
                    self.run(self.flow.reply_received(ev))
                elif isinstance(ev, HangupReceived):
                    self.saw_hangup = True
                    if self.flow is not None:
                        self.run(self.flow.hangup_received())
                elif isinstance(ev, EnvironmentReceived):
                    self._cancel_env_timer()
                    self.control.session_started(self, ev.env)
            except ProtocolError as exc:
                self._abort(f"peer broke the AGI protocol: {exc}")
                return
            except Exception:  # our bug: never let it take the reactor's read loop down
                log.failure("call control bug in call {call}; closing its session", call=self.call_id or "-")
                self.control.bugs += 1
                self._abort("internal error")
                return

    def connectionLost(self, reason=None) -> None:
        self.closed = True
        self._cancel_env_timer()
        self._cancel_timers()
        self.control.session_lost(self)

    # ------------------------------------------------------------ shell

    def run(self, actions) -> None:
        """Carry out a flow's actions in order; actions produced meanwhile queue behind."""
        self._pending.extend(actions)
        if self._running:
            return
        self._running = True
        try:
            while self._pending:
                act = self._pending.popleft()
                if isinstance(act, Send):
                    self._write(act)
                elif isinstance(act, Report):
                    self.control.report(self, act)
                elif isinstance(act, Finish):
                    self.close()
                elif isinstance(act, Note):
                    self.control.note(self, act)
        finally:
            self._running = False
        self._watch_interrupt()

    def _write(self, act: Send) -> None:
        """Write one command.  The flow sends one at a time (callflow.base); an interrupt is held
        back until the WAIT FOR DIGIT it cuts has been out INTERRUPT_GUARD_S, so Asterisk has
        read() that line first (else both land in its stdio buffer and the interrupt is stranded)."""
        if self.closed:
            return
        now = self.control.clock.seconds()
        if act.tag == INTERRUPT and self._wfd_written_at is not None:
            wait = self._wfd_written_at + INTERRUPT_GUARD_S - now
            if wait > 0:
                self._held_interrupt = self.control.clock.callLater(wait, self._write_held, act)
                return
        if act.tag == INTERRUPTIBLE:
            self._wfd_written_at = now
        self.transport.write(act.command)
        self._count_command(now)

    def _count_command(self, now: float) -> None:
        """The backstop bound on every flow: more than MAX_COMMANDS_PER_S in a second ends the call."""
        if now - self._window_start >= 1.0:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        if self._window_count > MAX_COMMANDS_PER_S and self.flow is not None and not self.flow.finished:
            metrics.AGI_PROTOCOL_ERRORS.inc()
            self.control.protocol_errors += 1
            self.run(self.flow.give_up(f"more than {MAX_COMMANDS_PER_S} commands in a second"))

    def _write_held(self, act: Send) -> None:
        self._held_interrupt = None
        if not self.closed:
            self.transport.write(act.command)

    def _watch_interrupt(self) -> None:
        """Arm the nudge timer while the wait has answered and its interrupt has not (callflow.base)."""
        flow = self.flow
        want = flow is not None and not self.closed and not flow.finished and flow.needs_nudge
        if want and self._nudge_timer is None:
            self._nudge_timer = self.control.clock.callLater(NUDGE_AFTER_S, self._nudge)
        elif not want and self._nudge_timer is not None:
            if self._nudge_timer.active():
                self._nudge_timer.cancel()
            self._nudge_timer = None

    def _nudge(self) -> None:
        self._nudge_timer = None
        if self.flow is not None and not self.closed:
            self.run(self.flow.nudge())

    def _cancel_timers(self) -> None:
        for name in ("_held_interrupt", "_nudge_timer"):
            t = getattr(self, name)
            if t is not None and t.active():
                t.cancel()
            setattr(self, name, None)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._cancel_timers()
            self.transport.loseConnection()

    def _abort(self, why: str) -> None:
        self.control.protocol_errors += 1
        metrics.AGI_PROTOCOL_ERRORS.inc()
        log.warn("AGI session {call}: {why}; closing", call=self.call_id or "-", why=why)
        self.closed = True
        self._cancel_timers()
        self.transport.loseConnection()

    def _cancel_env_timer(self) -> None:
        if self._env_timer is not None and self._env_timer.active():
            self._env_timer.cancel()
        self._env_timer = None

    def _env_timed_out(self) -> None:
        self._env_timer = None
        if self.flow is None and not self.closed:
            self._abort("no AGI environment received in time")


class CallControl:
    """The ACD's call-control state: sessions by call id, engine decisions routed to them."""

    def __init__(
        self,
        engine,
        clock,
        *,
        default_queue: str,
        max_calls: int = 5000,
        max_setups_per_s: float = 400.0,
        resume_grace_s: float = 5.0,
        options: FlowOptions | None = None,
        caller_hash_key: str | None = None,
        records=None,
        originator=None,
        rng: random.Random | None = None,
    ):
        self.engine = engine
        self.clock = clock
        self.options = options or FlowOptions(queue=default_queue)
        if self.options.queue != default_queue and options is None:
            self.options = FlowOptions(queue=default_queue)
        self.admission = Admission(clock, max_calls=max_calls, max_setups_per_s=max_setups_per_s)
        self.resume_grace_s = resume_grace_s
        self.caller_hash_key = caller_hash_key
        self.records = records
        self.originator = originator
        self.rng = rng or random.Random()
        self.sessions: dict[str, AgiSession] = {}
        self.orphans: dict[str, tuple] = {}  # call id -> (flow, delayed call)
        # callbacks offered while their caller was still on the line (between pressing 2 and the
        # goodbye): placed when that session ends
        self.pending_callbacks: dict[str, CallOffered] = {}
        self.stopping = False
        self.protocol_errors = 0
        self.auth_failures = 0
        self.bugs = 0
        self.setups = 0
        self._unsubscribe = engine.subscribe(self._engine_event)

    def end_calls(self, outcome: str = "acd-shutdown", reason: str = "clean stop") -> int:
        """A clean stop that hands nothing over: every call the engine has ends now (one CDR
        each, outcome ``acd-shutdown``), before :meth:`close` drops the sessions."""
        n = len(self.engine.calls())
        if n:
            self.engine.end_all_calls(outcome, reason)
        return n

    def close(self) -> None:
        """Stop: drop every session without reporting (another ACD takes the calls over)."""
        self.stopping = True
        for entry in list(self.orphans.values()):
            if entry[1].active():
                entry[1].cancel()
        self.orphans.clear()
        for s in list(self.sessions.values()):
            s.close()
        try:
            self._unsubscribe()
        except ValueError:
            pass

    # ------------------------------------------------------------ sessions

    def session_started(self, session: AgiSession, env) -> None:
        name = env.script_name
        q = env.query
        if name == "hotline":
            self._start_inbound(session, env)
        elif name == "answered":
            self._one_shot(session, "offer_answered", call_id=q.get("call", ""), agent_id=q.get("agent", ""))
        elif name == "hangup":
            self._hangup_report(session, q.get("call", ""))
        elif name == "callback-done":
            self._callback_done(session, q.get("call", ""), q.get("agent", ""), q.get("status", ""))
        else:
            log.warn("unknown AGI script {name!r}; closing (the dialplan continues)", name=name[:40])
            session.close()

    def _start_inbound(self, session: AgiSession, env) -> None:
        try:
            opts = self.options.with_request(env)
        except BadRequest as exc:
            log.warn("bad hotline request: {err}", err=str(exc))
            session.close()
            return
        known = None
        if opts.resume:
            call_id = opts.resume
            self._take_over(call_id)
            known = self.engine.call_info(call_id)
            if known is not None:
                # the switch still has the call: a restored (provisional) call is real
                self._confirm(call_id)
            if known is not None and known.get("agent_id"):
                agent = self.engine.agent_info(known["agent_id"]) or {}
                known = dict(known, endpoint=agent.get("endpoint"),
                             ring_timeout_s=self._ring_timeout(agent.get("pool")))
            admitted = True
        else:
            uid = env.uniqueid
            call_id = uid if _ID.match(uid or "") else f"c{self.rng.getrandbits(48):012x}"
            admitted = self.admission.admit(len(self.sessions))
            (metrics.AGI_SETUPS if admitted else metrics.AGI_SHED).inc()
        number = env.callerid
        masked = mask_number(number)
        if admitted and not opts.resume:
            self.setups += 1
        if admitted:
            # on a resume too: the channel still carries the number, and this ACD's records may
            # never have seen the call queue (a standby's CDR needs the hash and the masked number)
            self._register_caller(call_id, number, masked)
        flow = InboundCall(opts, call_id=call_id, caller_masked=masked, caller_number=number, known=known,
                           admitted=admitted)
        session.flow = flow
        session.call_id = call_id
        if admitted:
            old = self.sessions.get(call_id)
            if old is not None and old is not session:
                old.flow = None  # superseded: its link is dead or dying
                old.close()
            self.sessions[call_id] = session
        session.run(flow.start())

    def _ring_timeout(self, pool: str | None) -> float:
        try:
            return float(self.engine.config.pool(pool).ring_timeout_s)
        except (StopIteration, AttributeError, TypeError):
            return 15.0

    def _register_caller(self, call_id: str, number: str, masked: str = "") -> None:
        rec = self.records
        fn = None
        if rec is not None:  # the records writer (issue 5) names it call_registered
            fn = getattr(rec, "call_registered", None)
        if fn is None or not number or not self.caller_hash_key:
            return
        try:
            fn(call_id, caller_hash(number, self.caller_hash_key), masked)
        except Exception:
            log.failure("records: call_registered failed for {call}", call=call_id)

    def _take_over(self, call_id: str) -> None:
        orphan = self.orphans.pop(call_id, None)
        if orphan is not None and orphan[1].active():
            orphan[1].cancel()

    def _confirm(self, call_id: str) -> None:
        confirm = getattr(self.engine, "call_confirmed", None)
        if confirm is not None:
            self._report_engine("call_confirmed", {"call_id": call_id}, None)

    def _one_shot(self, session: AgiSession, input_name: str, **args) -> None:
        """The Dial U() gosub: report the agent's answer, close at once (08c: the dialplan goes on)."""
        if all(_ID.match(v or "") for v in args.values()):
            self._confirm(args["call_id"])  # the agent answered it: the switch has the call
            self._report_engine(input_name, args, None)
        session.close()

    def _hangup_report(self, session: AgiSession, call_id: str) -> None:
        """The h extension's safety net: a call whose hang-up no flow reported ends now."""
        if _ID.match(call_id or "") and call_id not in self.sessions:
            self._take_over(call_id)
            info = self.engine.call_info(call_id)
            # a caller who chose a callback hangs up on purpose: the call lives on as the callback
            # (waiting, or already being placed: its own leg reports through callback-done)
            if info is not None and not info.get("callback"):
                self._report_engine("caller_hung_up", {"call_id": call_id}, None)
        session.close()

    def _callback_done(self, session: AgiSession, call_id: str, agent_id: str, status: str) -> None:
        """The callback leg ended (its h extension): completed if the caller answered, else a failed try."""
        from callcenter.callflow.inbound import DIAL_RESULTS

        info = self.engine.call_info(call_id) if _ID.match(call_id or "") else None
        if info is not None and info.get("agent_id") == agent_id:
            if info.get("state") == "talking":
                self._report_engine("call_completed", {"call_id": call_id, "by": "caller"}, None)
            elif info.get("state") == "offered":
                result = DIAL_RESULTS.get(status.upper(), "no-answer")
                self._report_engine("offer_failed", {"call_id": call_id, "agent_id": agent_id, "result": result}, None)
        session.close()

    def session_lost(self, session: AgiSession) -> None:
        flow, call_id = session.flow, session.call_id
        if call_id is not None and self.sessions.get(call_id) is session:
            del self.sessions[call_id]
        pending = self.pending_callbacks.pop(call_id, None) if call_id is not None else None
        if pending is not None:
            info = self.engine.call_info(call_id)
            if info is not None and info.get("agent_id") == pending.agent_id and info.get("state") == "offered":
                self._originate_callback(pending)
        if flow is None or flow.finished:
            return
        if self.stopping:
            return  # hand-over: the next ACD resumes the call by its id
        if session.saw_hangup or flow.hung_up or not flow.resumable:
            session.run(flow.connection_lost())
            return
        # The link broke without a hang-up: the relay (or the dialplan's next AGI) may resume it.
        timer = self.clock.callLater(self.resume_grace_s, self._orphan_expired, call_id)
        self.orphans[call_id] = (flow, timer, session)

    def _orphan_expired(self, call_id: str) -> None:
        entry = self.orphans.pop(call_id, None)
        if entry is None:
            return
        flow, _timer, session = entry
        session.run(flow.connection_lost())

    # ------------------------------------------------------------ engine

    def report(self, session: AgiSession, act: Report) -> None:
        self._report_engine(act.input, act.args, session)

    def _report_engine(self, input_name: str, args: dict, session: AgiSession | None) -> None:
        try:
            getattr(self.engine, input_name)(**args)
        except EngineError as exc:
            if session is not None and session.flow is not None:
                session.run(session.flow.report_refused(input_name, exc))
            else:
                log.info("engine refused {input} {args}: {err}", input=input_name, args=args, err=str(exc))
        except TypeError as exc:  # our bug, never the peer's: say so loudly
            log.failure("call control passed bad arguments to engine.{input}", input=input_name)
            raise exc

    def _engine_event(self, ev) -> None:
        call_id = getattr(ev, "call_id", None)
        if call_id is None:
            return
        s = self.sessions.get(call_id)
        if s is not None and s.flow is not None and not s.closed:
            s.run(s.flow.engine_event(ev))
        elif call_id in self.orphans and isinstance(ev, CallEnded):
            self._take_over(call_id)
        if isinstance(ev, CallOffered) and ev.callback:
            if s is None:
                self._originate_callback(ev)
            elif s.flow is not None and getattr(s.flow, "callback_chosen", False):
                self.pending_callbacks[call_id] = ev

    def _originate_callback(self, ev: CallOffered) -> None:
        if self.originator is None:
            log.warn("callback {call} offered to {agent} but no call-file spool is configured",
                     call=ev.call_id, agent=ev.agent_id)
            self._report_engine("offer_failed", {"call_id": ev.call_id, "agent_id": ev.agent_id,
                                                 "result": "unavailable"}, None)
            return
        try:
            self.originator(ev)
        except OSError:
            log.failure("callback origination failed for {call}", call=ev.call_id)
            self._report_engine("offer_failed", {"call_id": ev.call_id, "agent_id": ev.agent_id,
                                                 "result": "unavailable"}, None)

    def note(self, session: AgiSession, act: Note) -> None:
        getattr(log, act.level if act.level in ("info", "warn", "error", "debug") else "info")(
            "call {call}: {msg}", call=session.call_id or "-", msg=act.message)


class AgiFactory(Factory):
    def __init__(self, control: CallControl, *, secret: str | None = None):
        self.control = control
        self.secret = secret

    def buildProtocol(self, addr):
        return AgiSession(self.control, secret=self.secret)

