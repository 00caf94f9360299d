"""The inbound 12345 call as a pure state machine (no I/O, no clock, no engine).

Inputs: ``start()``, ``reply_received(reply)``, ``hangup_received()``,
``engine_event(event)`` (the engine's decisions about this call),
``report_refused(input, error)`` and ``connection_lost()``.  Each returns a
list of actions (:mod:`callcenter.callflow.actions`) for the shell to carry
out.  The same machine runs for FastAGI and for the classic script (which
relays its pipes to the ACD), so the flow exists once.

The call: ANSWER -> CDR/channel variables -> optional greeting/menu ->
``call_arrived`` -> hold (music on hold started in the background with
``EXEC StartMusicOnHold``, DTMF collected by ``WAIT FOR DIGIT`` chunks) ->
engine decisions: announce place and wait, Dial the offered agent, or the
fallback.  Asterisk 22 behaviours honoured (transcripts in
tests/agi/transcripts):

* ``result=-1`` is not proof of a hang-up: ``EXEC Dial`` without ``g``
  returns -1 when the *agent* hangs up first and the caller is still there
  (06b); ``STREAM FILE`` of a missing file answers ``-1 endpos=0`` (01b).  So
  every -1 is checked with ``CHANNEL STATUS``: ``511`` means the caller is
  gone (02, 03, 05, 06a), ``200 result=6`` means still up (06b).
* The unprompted ``HANGUP`` line (FastAGI, 08b) or a relayed SIGHUP only sets a
  flag; replies still come for everything sent (08b2), then we report.
* ``AGISIGHUP=no`` gives no signal at all (03, 08e): the 511 path covers it.
* Dial outcomes come from ``DIALSTATUS`` (01): ANSWER, NOANSWER, BUSY,
  CONGESTION, CHANUNAVAIL, CANCEL (caller hung up while ringing, 05).
* Dial's ``U()`` gosub on the agent leg reports the answer to the ACD the moment
  the agent picks up (see dialplan [cc-agent-answered]); a missed report is
  made up after Dial returns with ANSWER.
* ``CC_PHASE`` is kept on the channel so another ACD can take the call over
  (``?resume=<call id>``): channel variables outlive one AGI session.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import replace

from callcenter.agi.protocol import Reply, format_command
from callcenter.engine.events import (
    CallAnswered,
    CallEnded,
    CallOffered,
    OfferEnded,
    PositionAnnounced,
)

from .actions import Finish, Note, Report, Send
from .base import INTERRUPT, INTERRUPTIBLE, FlowBase
from .options import FlowOptions

DIAL_RESULTS = {
    "NOANSWER": "no-answer",
    "BUSY": "busy",
    "CONGESTION": "unavailable",
    "CHANUNAVAIL": "unavailable",
    "DONTCALL": "rejected",
    "TORTURE": "rejected",
    "INVALIDARGS": "unavailable",
}

_ENDPOINT_OK = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_/@.:+-")

MAX_STRIKES = 4  # unexplained -1s / impossible replies in a row before the call is given up

# results of the flow, written to CC_RESULT for the dialplan
ANSWERED = "answered"
HANGUP = "hangup"
FALLBACK = "fallback"
SHED = "shed"
CALLBACK = "callback"


class _PendingOffer:
    """An offer the engine made while no AGI session held the call (found on resume)."""

    def __init__(self, agent_id: str, endpoint: str, ring_timeout_s: float):
        self.agent_id, self.endpoint, self.ring_timeout_s = agent_id, endpoint, ring_timeout_s


MAX_DIAL_TIMEOUT_S = 600.0


def dial_timeout(ring_timeout_s: float, margin_s: float) -> str:
    """Dial's ring timeout, fraction kept: ``14.5`` for 15 s less 0.5 s.

    Asterisk 22's Dial reads it with ``sscanf("%30lf")`` and needs it > 0
    (apps/app_dial.c, dial_exec_full; its doc: "The timeouts need not be whole
    numbers; both arguments accept fractional seconds").  Bounded to
    [1 s, 600 s] and to milliseconds, which is what Dial keeps (``tmp * 1000``).
    """
    t = ring_timeout_s - margin_s
    if not math.isfinite(t):
        t = MAX_DIAL_TIMEOUT_S
    t = min(MAX_DIAL_TIMEOUT_S, max(1.0, round(t, 3)))
    return f"{t:.3f}".rstrip("0").rstrip(".")


def dial_data(endpoint: str, timeout_s, moh: str, call_id: str, agent_id: str, extra: str = "") -> str:
    """``Dial`` data: ring with music on hold for the caller, U() reports the answer."""
    return f"{endpoint},{timeout_s},m({moh})U(cc-agent-answered^{call_id}^{agent_id}){extra}"


class InboundCall(FlowBase):
    def __init__(
        self,
        options: FlowOptions,
        *,
        call_id: str,
        caller_masked: str = "",
        caller_number: str = "",
        known: dict | None = None,
        admitted: bool = True,
    ) -> None:
        super().__init__()
        self.opts = options
        self.call_id = call_id
        self.caller_masked = caller_masked
        self._caller_number = caller_number  # only ever written to AstDB for a callback; never logged
        self.known = known
        self.admitted = admitted
        self.stage = "new"
        self.call_live = False  # the engine holds this call and expects its outcome from us
        self.moh_on = False
        self.playlist: deque[tuple] = deque()
        self.offer: CallOffered | None = None
        self.announce: PositionAnnounced | None = None
        self.choice: str | None = None
        self.fallback_decided = False
        self.callback_chosen = False
        self.dial_agent: str | None = None
        self.dial_live = False
        self.answered_reported = False
        self.outcome: str | None = None
        # an engine has (or had) this call, so its end is recorded there; until then an end here
        # must be reported with call_not_queued, or the call would have no CDR
        self.accounted = False
        self.strikes = 0  # consecutive replies real Asterisk would not give (bounded: MAX_STRIKES)
        self.moh_failed = False
        self._missing_file = False
        self.gave_up: str | None = None

    # ------------------------------------------------------------ inputs

    def on_start(self) -> list:
        self.stage = "answer"
        return [self._send("answer", "ANSWER")]

    def on_engine_event(self, ev) -> list:
        if isinstance(ev, CallOffered):
            if ev.callback:
                return []  # a callback is placed by the callback flow, not on this line
            self.offer = ev
            self.call_live = True
            return self._interrupt()
        if isinstance(ev, PositionAnnounced):
            self.announce = ev
            return []
        if isinstance(ev, CallAnswered):
            if ev.agent_id == self.dial_agent:
                self.answered_reported = True
            return []
        if isinstance(ev, OfferEnded):
            if self.offer is not None and self.offer.agent_id == ev.agent_id:
                self.offer = None  # ended before we dialled (agent logged out, engine ring timer)
            if ev.agent_id == self.dial_agent and ev.result != "answered":
                self.dial_live = False
            return []
        if isinstance(ev, CallEnded):
            self.call_live = False
            self.outcome = ev.outcome
            if ev.outcome == "fallback":
                self.fallback_decided = True
                self.offer = None
                return self._interrupt()
            return []
        return []

    def on_report_refused(self, input_name: str, error: Exception) -> list:
        """The engine refused one of our reports (its state is unchanged)."""
        acts: list = [Note(f"engine refused {input_name} for {self.call_id}: {error}", "warn")]
        if input_name == "call_arrived":
            self.call_live = False
            self.fallback_decided = True
        elif input_name == "callback_requested":
            self.callback_chosen = False
        elif input_name in ("caller_hung_up", "call_completed"):
            self.call_live = False
        if self.idle and not self.finishing and not self.finished and self.stage != "answer":
            acts.extend(self.advance())
        return acts

    def give_up(self, why: str) -> list:
        """The peer keeps answering what Asterisk never would: end the call, bounded (issue 16 item 7).

        The link can no longer be trusted to pair replies with commands, so no more
        round trips: report the end (``call_dropped``: the fallback takes the caller),
        write ``CC_RESULT=fallback`` without waiting for its reply, and close.
        """
        if self.finished:
            return []
        acts: list = [Note(f"giving up on the AGI link of {self.call_id}: {why}", "warn")]
        if self.call_live and not self.callback_chosen:
            self.call_live = False
            acts.append(Report("call_dropped", {"call_id": self.call_id, "reason": "agi-error"}))
        self.finishing = self.result = FALLBACK
        self.finished = True
        self.gave_up = why
        self._queued.clear()
        acts += [Send(format_command("SET VARIABLE", "CC_RESULT", FALLBACK), "final", interrupt=True),
                 Finish(FALLBACK)]
        return acts

    def _strike(self, what: str) -> list:
        """One reply Asterisk would not send here; MAX_STRIKES in a row end the call."""
        self.strikes += 1
        if self.strikes >= MAX_STRIKES:
            return self.give_up(f"{self.strikes} unexpected replies in a row (last: {what})")
        return []

    def connection_lost(self) -> list:
        """The AGI link is gone for good (after any resume grace): settle the outcome."""
        self.finished = True
        if self.call_live and not self.callback_chosen:
            self.call_live = False
            return [Report("caller_hung_up", {"call_id": self.call_id})]
        return self._not_queued()

    def _not_queued(self) -> list:
        """The call ends before any engine took it: report that, once (one CDR per call)."""
        if self.accounted:
            return []
        self.accounted = True
        if not self.admitted:
            return [Report("call_not_queued", {"call_id": self.call_id, "queue": self.opts.queue,
                                               "outcome": "shed", "reason": "admission"})]
        return [Report("call_not_queued", {"call_id": self.call_id, "queue": self.opts.queue,
                                           "outcome": "abandoned", "reason": "before-queue"})]

    @property
    def resumable(self) -> bool:
        """A broken link may be resumed (by call id) while the engine holds the call, or before
        it was queued at all (its end, if it does not come back, is then reported once)."""
        return (self.call_live or (not self.accounted and self.admitted)) and not self.finished and not self.hung_up

    # ------------------------------------------------------------ replies

    def on_reply(self, tag: str, r: Reply) -> list:
        if r.code in (510, 520):  # we only write valid commands: the peer is not in step with us
            return self._strike(f"{tag} answered {r.code}")
        handler = getattr(self, f"_r_{tag}", None)
        return handler(r) if handler else []

    def _r_answer(self, r: Reply) -> list:
        if not self.admitted:
            self.stage = "shed"
            self.playlist.append(("prompt", "STREAM FILE", self.opts.apology, ""))
            return []
        acts = [
            self._send("ignore", "SET VARIABLE", "CC_CALL_ID", self.call_id),
            self._send("ignore", "SET VARIABLE", "CC_QUEUE", self.opts.queue),
            self._send("ignore", "SET VARIABLE", "CDR(userfield)", f"call={self.call_id};queue={self.opts.queue}"),
        ]
        if self.opts.resume:
            self.stage = "resume"
            acts.append(self._send("phase", "GET VARIABLE", "CC_PHASE"))
            return acts
        if self.opts.store_number and self._caller_number:
            acts.append(self._send("ignore", "DATABASE PUT", "cc-callback", self.call_id, self._caller_number))
        self.stage = "greeting"
        if self.opts.greeting:
            self.playlist.append(("prompt", "STREAM FILE", self.opts.greeting, ""))
        return acts

    def _r_phase(self, r: Reply) -> list:
        phase = r.data or ""
        k = self.known
        if k is not None:
            self.accounted = True  # this engine has the call: its end is recorded there
        if phase.startswith("dialing:") and k is not None and k.get("state") in ("offered", "talking"):
            agent = phase.split(":", 1)[1]
            if k.get("agent_id") == agent:
                self.call_live = True
                self.stage = "dial"
                self.dial_agent = agent
                self.dial_live = True
                self.answered_reported = k.get("state") == "talking"
                return [self._send("dialstatus", "GET VARIABLE", "DIALSTATUS")]
        if k is not None and k.get("state") == "waiting" and not k.get("callback"):
            self.call_live = True
            self.stage = "hold"
            return [self._send("ignore", "SET VARIABLE", "CC_PHASE", "holding")]
        if k is not None and k.get("state") == "offered" and k.get("endpoint"):
            # the engine offered the call while no AGI session held it: ring that agent now
            self.call_live = True
            self.stage = "hold"
            self.offer = _PendingOffer(k["agent_id"], k["endpoint"], float(k.get("ring_timeout_s") or 15.0))
            return [self._send("ignore", "SET VARIABLE", "CC_PHASE", "holding")]
        if k is not None and k.get("state") in ("offered", "talking"):
            # the engine thinks an agent is ringing but no Dial ran on this channel: withdraw the
            # offer without holding it against the agent (no miss counted)
            self.call_live = True
            self.stage = "hold"
            return [Report("offer_failed", {"call_id": self.call_id, "agent_id": k.get("agent_id"),
                                            "result": "cancelled"}),
                    self._send("ignore", "SET VARIABLE", "CC_PHASE", "holding")]
        if phase.startswith("dialing:"):
            # a Dial ran while no ACD held the call, and this ACD cannot settle it from its state:
            # if it was answered the conversation is over, and must not be queued again
            return [self._send("orphan_dial", "GET VARIABLE", "DIALSTATUS")]
        self.stage = "greeting"  # unknown to this ACD: join again (the place is lost)
        return [Note(f"resume of {self.call_id}: not known here, joining the queue again")]

    def _r_orphan_dial(self, r: Reply) -> list:
        if (r.data or "").strip().upper() == "ANSWER":
            self.stage = "done"
            return [Note(f"resume of {self.call_id}: its conversation took place while no ACD held it; "
                         "done")] + self._finish(ANSWERED)
        self.stage = "greeting"
        return [Note(f"resume of {self.call_id}: not known here, joining the queue again")]

    def _minus_one(self, tag: str, r: Reply) -> list:
        """Every -1 is confirmed with CHANNEL STATUS (06b: -1 is not always a hang-up)."""
        # STREAM FILE of a missing file answers -1 endpos=0 with the caller still there (01b)
        self._missing_file = tag == "prompt" and r.extra.get("endpos") == "0"
        return [self._send("probe", "CHANNEL STATUS")]

    def _clean(self) -> list:
        self.strikes = 0
        return []

    def _r_prompt(self, r: Reply) -> list:
        if r.result_int == -1:
            return self._minus_one("prompt", r)
        if r.digit:
            self.playlist.clear()
            self.choice = r.digit
        return self._clean()

    _r_say = _r_prompt

    def _r_menu(self, r: Reply) -> list:
        if r.result_int == -1:
            return self._minus_one("menu", r)
        digits = (r.result or "").strip()
        cat = self.opts.menu_map.get(digits[:1]) if digits else None
        if cat:
            self.opts = replace(self.opts, category=cat)
        return self._clean()

    def _r_wfd(self, r: Reply) -> list:
        if r.result_int == -1:  # 07a: a hang-up during WAIT FOR DIGIT; confirm like every -1
            return self._minus_one("wfd", r)
        if r.result_int == 1 and INTERRUPT not in self.in_flight:
            # 01b: result=1 only when a line cut the wait short, and we wrote none: the replies
            # are out of step with our commands (an extra reply earlier)
            return self._strike("WAIT FOR DIGIT answered 1 though not interrupted")
        if r.digit:
            self.choice = r.digit
        return self._clean() if r.ok else self._strike(f"WAIT FOR DIGIT answered {r.code}")

    def _r_moh(self, r: Reply) -> list:
        self.moh_on = r.ok and r.result_int != -1
        if not self.moh_on:
            self.moh_failed = True  # hold in silence rather than ask again and again
            return self._strike(f"StartMusicOnHold answered {r.code} {r.result}")
        return []

    def _r_probe(self, r: Reply) -> list:
        # 511 already set hung_up in FlowBase; 200 result=6 means the caller is still here
        if r.dead_channel:
            return self._clean()
        if not r.ok or r.result_int is None or not 0 <= r.result_int <= 7:
            return self._strike(f"CHANNEL STATUS answered {r.code} {r.result}")
        if self._missing_file:
            return []  # a missing prompt: carry on (the playlist moves on)
        return self._strike("-1 with the channel still up")

    def _r_dial(self, r: Reply) -> list:
        if not r.ok or r.result_int == -1:
            return [self._send("dial_probe", "CHANNEL STATUS"), self._send("dialstatus", "GET VARIABLE", "DIALSTATUS")]
        return [self._send("dialstatus", "GET VARIABLE", "DIALSTATUS")]

    def _r_dialstatus(self, r: Reply) -> list:
        status = (r.data or "").strip().upper()
        agent = self.dial_agent
        acts: list = []
        if status == "ANSWER":
            if self.call_live:
                if not self.answered_reported:
                    acts.append(Report("offer_answered", {"call_id": self.call_id, "agent_id": agent}))
                    self.answered_reported = True
                if self.hung_up:
                    acts.append(Report("caller_hung_up", {"call_id": self.call_id}))
                else:
                    acts.append(Report("call_completed", {"call_id": self.call_id, "by": "agent"}))
                self.call_live = False
            self.dial_agent = None
            self.stage = "done"
            return acts + self._finish(HANGUP if self.hung_up else ANSWERED)
        if status == "CANCEL":
            self.hung_up = True  # 05: the caller hung up while the agent's phone rang
        if not self.hung_up and self.call_live and self.dial_live:
            acts.append(Report("offer_failed", {"call_id": self.call_id, "agent_id": agent,
                                                "result": DIAL_RESULTS.get(status, "unavailable")}))
        self.dial_agent = None
        self.dial_live = False
        self.stage = "hold"
        if not self.hung_up:
            acts.append(self._send("ignore", "SET VARIABLE", "CC_PHASE", "holding"))
        return acts

    # ------------------------------------------------------------ decisions

    def advance(self) -> list:
        if self.finished or self.finishing:
            return []
        if self.hung_up:
            acts: list = []
            if self.call_live and not self.callback_chosen:
                acts.append(Report("caller_hung_up", {"call_id": self.call_id}))
                self.call_live = False
            elif self.stage != "done":
                acts.extend(self._not_queued())
            return acts + self._finish(HANGUP)
        if self.stage == "shed":
            if self.playlist:
                return self._play_next()
            return self._not_queued() + self._finish(SHED)
        if self.stage in ("greeting", "menu"):
            if self.playlist:
                return self._play_next()
            if self.stage == "greeting" and self.opts.menu:
                self.stage = "menu"
                return [self._send("menu", "GET DATA", self.opts.menu, 5000, 1)]
            self.choice = None  # digits during a greeting are not hold options
            self.stage = "hold"
            self.call_live = True
            self.accounted = True
            return [
                Report("call_arrived", {"call_id": self.call_id, "queue": self.opts.queue,
                                        "caller_masked": self.caller_masked, "category": self.opts.category,
                                        "priority": self.opts.priority}),
                self._send("ignore", "SET VARIABLE", "CC_PHASE", "holding"),
            ]
        if self.stage == "ending":
            if self.playlist:
                return self._play_next()
            return self._finish(self.outcome_result)
        if self.stage != "hold":
            return []
        # ---- holding
        if self.fallback_decided:
            self.stage = "ending"
            self.outcome_result = FALLBACK
            self.playlist.clear()
            if self.moh_on:
                self.playlist.append(("moh", "EXEC", "StopMusicOnHold"))
                self.moh_on = False
            self.playlist.append(("prompt", "STREAM FILE", self.opts.apology, ""))
            return self._play_next()
        if self.callback_chosen and not self.playlist:
            self.stage = "ending"
            self.outcome_result = CALLBACK
            self.playlist.append(("prompt", "STREAM FILE", self.opts.callback_confirm, ""))
            return self._play_next()
        if self.offer is not None and not self.playlist:
            return self._dial()
        if self.choice is not None:
            return self._chosen()
        if self.playlist:
            return self._play_next()
        if self.announce is not None:
            ann, self.announce = self.announce, None
            pos, ewt = ann.position, ann.ewt_s
            if self.moh_on:
                self.playlist.append(("moh", "EXEC", "StopMusicOnHold"))
                self.moh_on = False
            if ann.announcement:  # the emergency plan's message comes first
                self.playlist.append(("prompt", "STREAM FILE", ann.announcement, "12"))
            self.playlist.extend([
                ("prompt", "STREAM FILE", self.opts.position_prompt, "12"),
                ("say", "SAY NUMBER", max(1, pos), "12"),
            ])
            if math.isfinite(ewt) and ewt >= 0:  # no expected wait when nobody is staffed
                self.playlist.extend([
                    ("prompt", "STREAM FILE", self.opts.wait_prompt, "12"),
                    ("say", "SAY NUMBER", max(1, int((ewt + 59) // 60)), "12"),
                    ("prompt", "STREAM FILE", self.opts.minutes_prompt, "12"),
                ])
            if ann.callback_offered and self.opts.callback_offer:
                self.playlist.append(("prompt", "STREAM FILE", self.opts.callback_prompt, "12"))
            return self._play_next()
        if not self.moh_on and not self.moh_failed:
            return [self._send("moh", "EXEC", "StartMusicOnHold", self.opts.moh)]
        return [self._send(INTERRUPTIBLE, "WAIT FOR DIGIT", self.opts.wait_ms)]

    outcome_result = FALLBACK

    def _play_next(self) -> list:
        item = self.playlist.popleft()
        tag, words = item[0], item[1:]
        if tag == "moh":
            return [self._send("moh_stop", *words)]
        return [self._send(tag, *words)]

    def _r_moh_stop(self, r: Reply) -> list:
        return []

    def _chosen(self) -> list:
        digit, self.choice = self.choice, None
        if digit == "1":
            acts: list = [Report("choice_made", {"call_id": self.call_id, "choice": "1"})]
            if self.moh_on:
                self.playlist.append(("moh", "EXEC", "StopMusicOnHold"))
                self.moh_on = False
            self.playlist.append(("prompt", "STREAM FILE", self.opts.notice, "2"))
            return acts + self._play_next()
        if digit == "2" and self.opts.callback_offer:
            self.callback_chosen = True
            acts = [Report("callback_requested", {"call_id": self.call_id})]
            if self._caller_number:
                acts.append(self._send("ignore", "DATABASE PUT", "cc-callback", self.call_id, self._caller_number))
            if self.moh_on:
                self.playlist.append(("moh", "EXEC", "StopMusicOnHold"))
                self.moh_on = False
            return acts + (self._play_next() if self.playlist else self.advance_after_reports())
        return self.advance()

    def advance_after_reports(self) -> list:
        # the callback report is carried out before the next command; re-check then
        return [self._send("sync", "NOOP", "callback")]

    def _dial(self) -> list:
        ev, self.offer = self.offer, None
        acts: list = []
        endpoint = ev.endpoint or ""
        if not endpoint or not set(endpoint) <= _ENDPOINT_OK or len(endpoint) > 120:
            return [Report("offer_failed", {"call_id": self.call_id, "agent_id": ev.agent_id,
                                            "result": "unavailable"}),
                    Note(f"agent {ev.agent_id} has no usable endpoint", "warn"),
                    self._send("sync", "NOOP", "no-endpoint")]
        self.stage = "dial"
        self.dial_agent = ev.agent_id
        self.dial_live = True
        self.answered_reported = False
        timeout = dial_timeout(ev.ring_timeout_s, self.opts.dial_margin_s)
        if self.moh_on:
            acts.append(self._send("ignore", "EXEC", "StopMusicOnHold"))
            self.moh_on = False
        acts += [
            self._send("ignore", "SET VARIABLE", "CC_AGENT", ev.agent_id),
            self._send("ignore", "SET VARIABLE", "CC_PHASE", f"dialing:{ev.agent_id}"),
            self._send("ignore", "SET VARIABLE", "CDR(userfield)",
                       f"call={self.call_id};queue={self.opts.queue};agent={ev.agent_id}"),
            self._send("dial", "EXEC", "Dial",
                       dial_data(endpoint, timeout, self.opts.moh, self.call_id, ev.agent_id, self.opts.dial_options)),
        ]
        return acts
