"""Command bookkeeping shared by every call flow.

A flow sends AGI commands and gets their replies back in the same order
(Asterisk answers commands one by one, README "summary table").  The one
exception it must know: a command written while ``WAIT FOR DIGIT`` runs stops
it, and the interrupted command still answers ``200 result=1`` (01b), so a
``NOOP`` pipelined behind a ``WAIT FOR DIGIT`` is how a flow cuts a hold short
when the engine decides something.  ``STREAM FILE``/``GET DATA`` would be
aborted *without* a reply (01b), so a flow never pipelines behind those.
"""

from __future__ import annotations

from collections import deque

from callcenter.agi.protocol import ProtocolError, Reply, format_command

from .actions import Finish, Note, Send

INTERRUPTIBLE = "wfd"  # the tag of the hold-loop WAIT FOR DIGIT


class FlowBase:
    """Outstanding-command FIFO, hang-up flag and the finishing handshake."""

    def __init__(self) -> None:
        self._outstanding: deque[str] = deque()
        self._interrupted = False
        self.hung_up = False
        self.finishing: str | None = None
        self.finished = False
        self.result: str | None = None

    # ------------------------------------------------------------ helpers

    def _send(self, tag: str, *words, raw_tail: str | None = None) -> Send:
        self._outstanding.append(tag)
        return Send(format_command(*words, raw_tail=raw_tail), tag)

    @property
    def idle(self) -> bool:
        return not self._outstanding

    @property
    def outstanding(self) -> tuple[str, ...]:
        return tuple(self._outstanding)

    def _interrupt(self) -> list:
        """Cut a running hold wait short (only WAIT FOR DIGIT can be, see module doc)."""
        if self.finished or self.finishing or self._interrupted:
            return []
        if len(self._outstanding) == 1 and self._outstanding[0] == INTERRUPTIBLE:
            self._interrupted = True
            return [self._send("sync", "NOOP", "interrupt")]
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

    def reply_received(self, reply: Reply) -> list:
        if not self._outstanding:
            raise ProtocolError(f"a reply with no command outstanding: {reply.code} {reply.text[:60]!r}")
        tag = self._outstanding.popleft()
        if tag == INTERRUPTIBLE:
            self._interrupted = False
        if reply.dead_channel:
            # 511: a media/channel command on a hung-up channel (02, 03, 08b)
            self.hung_up = True
        if tag == "final":
            self.finished = True
            self.result = self.finishing
            return [Finish(self.finishing or "done")]
        actions: list = []
        if tag != "sync":
            actions.extend(self.on_reply(tag, reply))
        if reply.code in (510, 520) and tag != "sync":
            actions.append(Note(f"Asterisk refused {tag!r}: {reply.code} {reply.text[:80]}", "warn"))
        if not self._outstanding and not self.finished and not self.finishing:
            actions.extend(self.advance())
        return actions

    def hangup_received(self) -> list:
        """The unprompted HANGUP line (or a relayed SIGHUP): act once idle."""
        self.hung_up = True
        if self._outstanding or self.finished or self.finishing:
            return []
        return self.advance()

    # ------------------------------------------------------------ subclass API

    def on_reply(self, tag: str, reply: Reply) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def advance(self) -> list:  # pragma: no cover - abstract
        raise NotImplementedError
