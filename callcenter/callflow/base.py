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
"""

from __future__ import annotations

from collections import deque

from callcenter.agi.protocol import ProtocolError, Reply, format_command

from .actions import Finish, Note, Send

INTERRUPTIBLE = "wfd"  # the tag of the hold-loop WAIT FOR DIGIT


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
            self._inflight.append("sync")
            self.commands_sent += 1
            return [Send(format_command("NOOP", "interrupt"), "sync", interrupt=True)]
        return []

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
        if reply.dead_channel:
            # 511: a media/channel command on a hung-up channel (02, 03, 08b)
            self.hung_up = True
        if tag == "final":
            self.finished = True
            self.result = self.finishing
            self._queued.clear()
            return [Finish(self.finishing or "done")]
        actions: list = []
        if tag != "sync":
            actions.extend(self.on_reply(tag, reply))
        if reply.code in (510, 520) and tag != "sync":
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
