"""Command bookkeeping shared by every call flow: one AGI command in flight, always.

res_agi reads the AGI descriptor through a stdio stream (``fdopen`` +
``setlinebuf``) and calls ``fgets`` only when ``poll()`` finds the *raw*
descriptor readable (res/res_agi.c ``run_agi``).  Two lines written together
while no command runs land in the stdio buffer on the first ``fgets``; the
second is never read, and the call hangs in ``AGI()`` (transcripts README
point 14, seen on a real Asterisk 22.10.1).  So a flow *decides* commands in
any number but they are queued here and written one at a time, each after the
previous reply (:meth:`FlowBase._gate`).

The one line written before a reply is the deliberate interrupt: a line
arriving while ``WAIT FOR DIGIT`` runs stops it, and the interrupted command
still answers ``200 result=1`` before the new line is run (01b, point 7), so a
``NOOP`` written behind the hold loop's ``WAIT FOR DIGIT`` is how a flow cuts
a hold short when the engine decides something.  ``STREAM FILE``/``GET DATA``
would be aborted *without* a reply (01b), so a flow never interrupts those.

The interrupt has one race, inherent to the stdio buffer: if it reaches
Asterisk before Asterisk has ``read()`` the ``WAIT FOR DIGIT`` line, both land
in the stdio buffer, the wait runs to its end (``result=0``) and the ``NOOP``
is stranded like any pipelined line.  The shell makes that rare (it holds the
interrupt back until the wait has been out ``INTERRUPT_GUARD_S``) and the flow
recovers from it: once the wait has answered, a missing ``NOOP`` reply after
``NUDGE_AFTER_S`` gets one more ``NOOP`` (:meth:`FlowBase.nudge`).  New bytes
wake ``poll()``, ``fgets`` returns the stranded line, then the new one: two
replies, exactly what the flow then expects.  A ``NOOP`` that was merely slow
costs one extra reply, also expected.  Bounded by ``MAX_NUDGES``.
"""

from __future__ import annotations

from collections import deque

from callcenter.agi.protocol import ProtocolError, Reply, format_command

from .actions import Finish, Note, Send

INTERRUPTIBLE = "wfd"  # the tag of the hold-loop WAIT FOR DIGIT
INTERRUPT = "interrupt"  # the tag of the line that cuts it short (and of a nudge)
INTERRUPT_GUARD_S = 0.05  # the shell writes an interrupt no sooner after the WAIT FOR DIGIT it cuts
NUDGE_AFTER_S = 0.5  # the wait answered but the interrupt did not: it may be stranded, nudge
MAX_NUDGES = 4


class FlowBase:
    """One-in-flight command queue, hang-up flag and the finishing handshake.

    Subclasses implement ``on_start``, ``on_reply``, ``on_engine_event``,
    ``on_report_refused`` and ``advance``; every Send they return goes through
    the queue, so none of them can pipeline by mistake.
    """

    def __init__(self) -> None:
        self._inflight: deque[str] = deque()  # tags written, reply not back yet (2 only while interrupting)
        self._queued: deque[Send] = deque()  # decided, not written yet
        self._interrupted = False
        self.hung_up = False
        self.finishing: str | None = None
        self.finished = False
        self.result: str | None = None
        self.commands_sent = 0
        self._nudges = 0

    # ------------------------------------------------------------ helpers

    def _send(self, tag: str, *words, raw_tail: str | None = None) -> Send:
        """A command the flow wants run; :meth:`_gate` decides when it is written."""
        return Send(format_command(*words, raw_tail=raw_tail), tag)

    def _gate(self, actions) -> list:
        """Queue the Sends in ``actions``; write the next one only when nothing is in flight.

        Other actions (reports, notes, finish) keep their order and come first:
        a Send emitted here is written by the shell right after them.
        """
        out: list = []
        for act in actions:
            if isinstance(act, Send) and not act.interrupt:
                self._queued.append(act)
            else:
                out.append(act)
        if not self._inflight and self._queued:
            nxt = self._queued.popleft()
            self._inflight.append(nxt.tag)
            self.commands_sent += 1
            out.append(nxt)
        return out

    @property
    def idle(self) -> bool:
        """No command in flight and none queued."""
        return not self._inflight and not self._queued

    @property
    def outstanding(self) -> tuple[str, ...]:
        """Tags of the commands in flight, then of those queued."""
        return tuple(self._inflight) + tuple(s.tag for s in self._queued)

    @property
    def in_flight(self) -> tuple[str, ...]:
        return tuple(self._inflight)

    def _interrupt(self) -> list:
        """Cut a running hold wait short (only WAIT FOR DIGIT can be, see module doc)."""
        if self.finished or self.finishing or self._interrupted:
            return []
        if tuple(self._inflight) == (INTERRUPTIBLE,) and not self._queued:
            self._interrupted = True
            self._inflight.append(INTERRUPT)
            self.commands_sent += 1
            return [Send(format_command("NOOP", "interrupt"), INTERRUPT, interrupt=True)]
        return []

    @property
    def needs_nudge(self) -> bool:
        """The interrupted wait has answered, the interrupt line has not (yet): maybe stranded."""
        return bool(self._inflight) and all(tag == INTERRUPT for tag in self._inflight)

    def nudge(self) -> list:
        """The shell's timer: no reply to the interrupt ``NUDGE_AFTER_S`` after the wait's (module doc)."""
        if not self.needs_nudge or self.finished:
            return []
        if self._nudges >= MAX_NUDGES:
            return self._gate(self.give_up(f"no reply to {len(self._inflight)} interrupt line(s)"))
        self._nudges += 1
        self._inflight.append(INTERRUPT)
        self.commands_sent += 1
        return [Send(format_command("NOOP", "nudge"), INTERRUPT, interrupt=True),
                Note(f"no reply to the hold interrupt after {NUDGE_AFTER_S} s; nudged", "info")]

    def give_up(self, why: str) -> list:  # pragma: no cover - overridden
        return [Finish("error")]

    def _finish(self, result: str) -> list:
        """Tell the dialplan how the call left us (``CC_RESULT``), then close.

        SET VARIABLE works on a dead channel too (02, 03, 08b), so this is the
        same after a hang-up.
        """
        if self.finishing or self.finished:
            return []
        self.finishing = result
        return [self._send("final", "SET VARIABLE", "CC_RESULT", result)]

    # ------------------------------------------------------------ inputs

    def start(self) -> list:
        return self._gate(self.on_start())

    def engine_event(self, ev) -> list:
        if self.finished:
            return []
        return self._gate(self.on_engine_event(ev))

    def report_refused(self, input_name: str, error: Exception) -> list:
        return self._gate(self.on_report_refused(input_name, error))

    def reply_received(self, reply: Reply) -> list:
        if not self._inflight:
            raise ProtocolError(f"a reply with no command outstanding: {reply.code} {reply.text[:60]!r}")
        tag = self._inflight.popleft()
        if tag == INTERRUPTIBLE:
            self._interrupted = False
        elif tag == INTERRUPT:
            self._nudges = 0 if INTERRUPT not in self._inflight else self._nudges
        if reply.dead_channel:
            # 511: a media/channel command on a hung-up channel (02, 03, 08b)
            self.hung_up = True
        if tag == "final":
            self.finished = True
            self.result = self.finishing
            self._queued.clear()
            return [Finish(self.finishing or "done")]
        actions: list = []
        if tag not in ("sync", INTERRUPT):
            actions.extend(self.on_reply(tag, reply))
        if reply.code in (510, 520) and tag not in ("sync", INTERRUPT):
            actions.append(Note(f"Asterisk refused {tag!r}: {reply.code} {reply.text[:80]}", "warn"))
        out = self._gate(actions)
        if self.idle and not self.finished and not self.finishing:
            out.extend(self._gate(self.advance()))
        return out

    def hangup_received(self) -> list:
        """The unprompted HANGUP line (or a relayed SIGHUP): act once idle."""
        self.hung_up = True
        if not self.idle or self.finished or self.finishing:
            return []
        return self._gate(self.advance())

    # ------------------------------------------------------------ subclass API

    def on_start(self) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def on_engine_event(self, ev) -> list:  # pragma: no cover - abstract
        return []

    def on_report_refused(self, input_name: str, error: Exception) -> list:  # pragma: no cover - abstract
        return []

    def on_reply(self, tag: str, reply: Reply) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def advance(self) -> list:  # pragma: no cover - abstract
        raise NotImplementedError
