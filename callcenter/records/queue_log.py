"""Our engine events as Asterisk ``queue_log`` lines, so existing queue-report tools read our history.

Pure code: :class:`QueueLogMapper` turns events into :class:`QueueLogLine`
values and keeps the little per-call memory the format needs (original
position, ring start); the writer thread appends the lines to
``<state_dir>/queue_log`` and inserts them into the ``queue_log`` table.

Line format (Asterisk, docs.asterisk.org "Queue Logs")::

    epoch|callid|queuename|agent|EVENT|data1|data2|...

Data fields of each event, as Asterisk's app_queue.c writes them (its
``ast_queue_log()`` format strings) and as the Queue Logs page documents them:

===================  =============================================  ===========================
event                data fields                                    our source
===================  =============================================  ===========================
ENTERQUEUE           url | callerid | position  (app_queue: %s|%s|%d) CallQueued
CONNECT              holdtime | bridged channel uniqueid | ringtime  CallAnswered
                     (%ld|%s|%ld; seconds)
COMPLETECALLER       holdtime | calltime | origposition (%ld|%ld|%d) CallEnded answered/called-back
COMPLETEAGENT        holdtime | calltime | origposition               ... ended by the agent
ABANDON              position | origposition | waittime (%d|%d|%ld)  CallEnded abandoned
EXITWITHTIMEOUT      position | origposition | waittime (%d|%d|%ld)  CallEnded fallback
RINGNOANSWER         ringtime in *milliseconds* (%d)                  OfferEnded not answered
RINGCANCELED         ringtime in milliseconds                         OfferEnded caller-hung-up
ADDMEMBER            "PAUSED" when added paused, else ""              agent logged in
REMOVEMEMBER         ""                                               agent logged out
PAUSE                reason                                           agent -> not-ready
UNPAUSE              reason                                           not-ready -> ready
===================  =============================================  ===========================

Our ids stand in for Asterisk's: ``callid`` is our call id (the caller
channel's uniqueid when call control passes it as the call id), ``agent`` is
our agent id (Asterisk's member name), and the "bridged channel uniqueid" of
CONNECT is ``<call_id>-<agent_id>``.  Member events are written once per
queue the agent's pool serves, as Asterisk writes them per queue.  The
callerid of ENTERQUEUE is the *masked* number: caller numbers are personal
data and never leave the call-control layer unmasked.
"""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.bounds import control_free
from callcenter.engine import events as ev

NONE = "NONE"


def _clean(value: object) -> str:
    """A field may not break the line format: no '|', no newline, no control character (a NUL in a
    reason was written raw; PostgreSQL refuses NUL in text).  The edges refuse them too; this is the sink."""
    s = value if type(value) is str else str(value if value is not None else "")
    if "|" in s:
        s = s.replace("|", "/")
    return control_free(s[:200])


@dataclass(frozen=True, slots=True)
class QueueLogLine:
    epoch: int
    callid: str
    queuename: str
    agent: str
    event: str
    data: tuple[str, ...] = ()

    def format(self) -> str:
        parts = [str(self.epoch), self.callid, self.queuename, self.agent, self.event, *self.data]
        return "|".join(_clean(p) for p in parts)

    def row(self) -> dict:
        """The ``queue_log`` table row (Asterisk realtime layout: data and data1..data5)."""
        from callcenter.records.db import utc

        data = [_clean(d) for d in self.data]
        row = {
            "time": utc(self.epoch),
            "callid": _clean(self.callid),
            "queuename": _clean(self.queuename),
            "agent": _clean(self.agent),
            "event": self.event,
            "data": "|".join(data)[:400],
        }
        for i in range(5):
            row[f"data{i + 1}"] = data[i] if i < len(data) else ""
        return row


def parse_line(line: str) -> QueueLogLine:
    """Inverse of :meth:`QueueLogLine.format` (tests, and tools reading our file)."""
    parts = line.rstrip("\n").split("|")
    if len(parts) < 5:
        raise ValueError(f"not a queue_log line: {line!r}")
    return QueueLogLine(int(parts[0]), parts[1], parts[2], parts[3], parts[4], tuple(parts[5:]))


def queues_by_pool(config) -> dict[str, list[str]]:
    """Which queues each pool serves (member events are per queue, as in Asterisk)."""
    out: dict[str, list[str]] = {}
    for q in config.queues:
        for p in q.pools:
            out.setdefault(p, []).append(q.name)
    return out


@dataclass
class _Call:
    queue: str
    origpos: int
    position: int
    arrived: float
    offered_at: dict[str, float]


class QueueLogMapper:
    """Engine events in, queue_log lines out.  Never raises on odd input: unknown calls are skipped."""

    MAX_CALLS = 200_000  # memory bound if CallEnded events were lost (buffer overflow)

    def __init__(self, queues_by_pool: dict[str, list[str]] | None = None):
        self.queues_by_pool = dict(queues_by_pool or {})
        self.calls: dict[str, _Call] = {}

    def _queues(self, pool: str) -> list[str]:
        return self.queues_by_pool.get(pool) or [pool or NONE]

    def lines(self, e: ev.Event) -> list[QueueLogLine]:
        handler = getattr(self, "_" + type(e).__name__, None)
        return handler(e) if handler else []

    # -- calls -------------------------------------------------------------

    def _CallQueued(self, e: ev.CallQueued) -> list[QueueLogLine]:
        if len(self.calls) >= self.MAX_CALLS:
            self.calls.pop(next(iter(self.calls)))
        self.calls[e.call_id] = _Call(e.queue, e.position, e.position, e.t, {})
        return [QueueLogLine(int(e.t), e.call_id, e.queue, NONE, "ENTERQUEUE", ("", e.caller_masked or "", str(e.position)))]

    def _PositionAnnounced(self, e: ev.PositionAnnounced) -> list[QueueLogLine]:
        c = self.calls.get(e.call_id)
        if c:
            c.position = e.position
        return []

    def _CallbackRequested(self, e: ev.CallbackRequested) -> list[QueueLogLine]:
        c = self.calls.get(e.call_id)
        if not c:
            return []
        c.position = e.position
        # No line: the caller keeps their place as a virtual call, so for report tools the call is
        # still in the queue; its one terminal line (COMPLETE*/ABANDON/...) comes with CallEnded.
        return []

    def _CallOffered(self, e: ev.CallOffered) -> list[QueueLogLine]:
        c = self.calls.get(e.call_id)
        if c:
            c.offered_at[e.agent_id] = e.t
        return []

    def _OfferEnded(self, e: ev.OfferEnded) -> list[QueueLogLine]:
        c = self.calls.get(e.call_id)
        if e.result == ev.ANSWERED or not c:
            return []
        ms = str(int(round(e.ring_s * 1000)))
        event = "RINGCANCELED" if e.result == ev.CALLER_HUNG_UP else "RINGNOANSWER"
        return [QueueLogLine(int(e.t), e.call_id, c.queue, e.agent_id, event, (ms,))]

    def _CallAnswered(self, e: ev.CallAnswered) -> list[QueueLogLine]:
        c = self.calls.get(e.call_id)
        offered = c.offered_at.get(e.agent_id, e.t) if c else e.t
        ring = max(0, int(round(e.t - offered)))
        return [QueueLogLine(int(e.t), e.call_id, e.queue, e.agent_id, "CONNECT", (str(int(e.wait_s)), f"{e.call_id}-{e.agent_id}", str(ring)))]

    def _CallEnded(self, e: ev.CallEnded) -> list[QueueLogLine]:
        c = self.calls.pop(e.call_id, None)
        origpos = c.origpos if c else 1
        pos = c.position if c else origpos
        if e.outcome in (ev.OUTCOME_ANSWERED, ev.OUTCOME_CALLED_BACK) and e.agent_id:
            event = "COMPLETEAGENT" if "agent" in (e.reason or "").lower() else "COMPLETECALLER"
            return [QueueLogLine(int(e.t), e.call_id, e.queue, e.agent_id, event, (str(int(e.wait_s)), str(int(e.talk_s)), str(origpos)))]
        if e.outcome == ev.OUTCOME_FALLBACK:
            event = "EXITWITHTIMEOUT"
        elif e.outcome == ev.OUTCOME_ABANDONED:
            event = "ABANDON"
        else:  # a callback that ended without an agent: the caller's place was given up
            event = "ABANDON"
        return [QueueLogLine(int(e.t), e.call_id, e.queue, NONE, event, (str(pos), str(origpos), str(int(e.wait_s))))]

    # -- agents ------------------------------------------------------------

    def _AgentStateChanged(self, e: ev.AgentStateChanged) -> list[QueueLogLine]:
        old, new = e.old, e.new
        if old == ev.LOGGED_OUT and new != ev.LOGGED_OUT:
            event, data = "ADDMEMBER", ("PAUSED" if new == ev.NOT_READY else "",)
        elif new == ev.LOGGED_OUT and old != ev.LOGGED_OUT:
            event, data = "REMOVEMEMBER", ("",)
        elif new == ev.NOT_READY:
            event, data = "PAUSE", (e.reason or "",)
        elif new == ev.READY and old == ev.NOT_READY:
            event, data = "UNPAUSE", (e.reason or "",)
        else:
            return []
        return [QueueLogLine(int(e.t), NONE, q, e.agent_id, event, data) for q in self._queues(e.pool)]


def queue_log_lines(events, queues_by_pool: dict[str, list[str]] | None = None) -> list[str]:
    """A whole event stream as queue_log file lines (tests, replaying a journal into a report tool)."""
    mapper = QueueLogMapper(queues_by_pool)
    return [line.format() for e in events for line in mapper.lines(e)]
