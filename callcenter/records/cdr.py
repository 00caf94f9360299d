"""Pure core of the records writer: engine events in, rows to write out.

No I/O, no reactor, no database: :class:`RecordBuilder` keeps the little
memory needed to turn a stream of events into

* one ``cdr`` row per call, emitted when the call ends (CallEnded), with its
  ``cdr_offers`` (every CallOffered + its OfferEnded), answer time, agent,
  pool, tier, emergency plan and callback flag; wrap-up seconds follow as an
  update when the answering agent leaves wrap-up;
* ``agent_state_log`` intervals (one row when an agent *leaves* a state);
* ``emergency_switches`` and ``home_load_reports`` rows;
* Asterisk ``queue_log`` lines (queue_log.py).

It never raises on odd input: a CallEnded for a call it never saw queue (the
process restarted and the engine was restored from a snapshot, or events were
dropped when the buffer overflowed) still gives a complete CDR, its arrival
reconstructed from the wait and talk times.

The caller's number is never given to the engine; call control hands the
records writer the keyed hash with :meth:`RecordBuilder.call_registered`
(before or after the call is queued, even after it ended), and the hash
lands in ``cdr.caller_hash`` for repeat-caller lookups.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from callcenter.bounds import control_free
from callcenter.engine import events as ev
from callcenter.records.db import utc
from callcenter.records.queue_log import QueueLogLine, QueueLogMapper

# Operations the writer carries out, in order, batched in one transaction each.
INSERT = "insert"  # (INSERT, table, row)
UPDATE_CDR = "update_cdr"  # (UPDATE_CDR, call_id, values)
QUEUE_LOG = "queue_log"  # (QUEUE_LOG, QueueLogLine): a line in the file and a row in the table
UPSERT = "upsert"  # (UPSERT, table, row): update the row with that primary key "id", or insert it

Op = tuple


@dataclass
class _OpenCall:
    queue: str
    category: str
    priority: int
    caller_masked: str
    arrived: float
    callback: bool = False
    origin_call_id: str | None = None
    answered: float | None = None
    choices: list[str] = field(default_factory=list)
    offers: list[dict[str, Any]] = field(default_factory=list)
    wrapup_s: float | None = None


class _Lru(OrderedDict):
    def __init__(self, cap: int):
        super().__init__()
        self.cap = cap

    def put(self, k, v) -> None:
        self[k] = v
        self.move_to_end(k)
        while len(self) > self.cap:
            self.popitem(last=False)


class RecordBuilder:
    MAX_OPEN = 200_000  # memory bound for calls whose end never comes (dropped events)
    MAX_REMEMBERED = 20_000  # closed calls remembered for late offers, hashes and wrap-up

    def __init__(self, queues_by_pool: dict[str, list[str]] | None = None):
        self.queue_log = QueueLogMapper(queues_by_pool)
        self.calls: dict[str, _OpenCall] = {}
        self.hashes = _Lru(self.MAX_REMEMBERED)  # call_id -> caller hash (registered, open or recently closed)
        self.masked = _Lru(self.MAX_REMEMBERED)  # call_id -> masked number, for calls this process never saw queue
        self.closed = _Lru(self.MAX_REMEMBERED)  # call_id -> seq of its last offer (CDR already emitted)
        self.late_offers: dict[tuple[str, str], dict] = {}  # (call, agent) -> offer still ringing at CallEnded
        self.agents: dict[str, tuple[str, str, str, float]] = {}  # agent -> (state, pool, reason, since)
        self.last_call: dict[str, str] = {}  # agent -> call id it answered last
        self.wrapup_since: dict[str, tuple[str | None, float]] = {}

    # -- inputs that are not engine events -----------------------------------

    def call_registered(self, call_id: str, caller_hash: str, caller_masked: str = "") -> list[Op]:
        """Call control's caller facts: the keyed hash, and the masked number.

        Call control registers them when the call arrives *and* when an ACD resumes
        it (the channel still carries the number), so a standby that never saw the
        call queue still writes a CDR with both (issue 14).
        """
        self.hashes.put(call_id, caller_hash)
        if caller_masked:
            self.masked.put(call_id, caller_masked)
            c = self.calls.get(call_id)
            if c is not None and not c.caller_masked:
                c.caller_masked = caller_masked
        if call_id in self.closed:
            values = {"caller_hash": caller_hash}
            if caller_masked:
                values["caller_masked"] = caller_masked
            return [(UPDATE_CDR, call_id, values)]
        return []

    def calls_restored(self, snapshot: dict, tiers: dict[str, int]) -> list[Op]:
        """This ACD took over: open the calls of the restored engine state (``Engine.snapshot()``).

        Their CallQueued went to the ACD that died, so without this their CDRs
        would be rebuilt from CallEnded alone: no masked number, arrival guessed
        from the wait, no offer.  The snapshot carries what the CDR needs: the
        masked number, arrival, answer time, choices, callback origin, and the
        offer in progress (earlier offers' details died with the other ACD; the
        current one keeps its attempt number as ``seq``).
        """
        agents = {a.get("id"): a for a in snapshot.get("agents") or []}
        for c in snapshot.get("calls") or []:
            cid = c.get("id")
            if not cid or cid in self.calls or cid in self.closed:
                continue
            oc = _OpenCall(str(c.get("queue") or ""), str(c.get("category") or ""), int(c.get("priority") or 0),
                           str(c.get("caller_masked") or self.masked.get(cid) or ""), float(c.get("arrived") or 0.0),
                           bool(c.get("callback")), c.get("origin"))
            oc.choices = [str(x)[:16] for x in c.get("choices") or []]
            if c.get("answered_at") is not None:
                oc.answered = float(c["answered_at"])
            agent = agents.get(c.get("agent"))
            if agent is not None and c.get("state") in ("offered", "talking") and c.get("offer_at") is not None:
                talking = c.get("state") == "talking" and oc.answered is not None
                oc.offers.append({
                    "seq": max(1, int(c.get("attempt") or 1)), "agent_id": agent["id"], "pool": agent.get("pool"),
                    "tier": int(tiers.get(agent.get("pool"), 0)), "offered_at": utc(float(c["offer_at"])),
                    "result": ev.ANSWERED if talking else None,
                    "ring_s": max(0.0, oc.answered - float(c["offer_at"])) if talking else 0.0,
                })
            self.calls[cid] = oc
        return []

    @staticmethod
    def wrapup_submitted(call_id: str, agent_id: str, pool: str, disposition: str, notes: str,
                         ticket: dict | None, t: float) -> list[Op]:
        """A seat's wrap-up of a call: one ``wrapups`` row (lengths clipped to the columns)."""
        return [(INSERT, "wrapups", {
            "call_id": str(call_id)[:128], "agent_id": str(agent_id)[:64], "pool": str(pool or "")[:64],
            "disposition": str(disposition)[:64], "notes": str(notes or ""),
            "ticket": {str(k): str(v) for k, v in (ticket or {}).items()}, "at": utc(t)})]

    @staticmethod
    def audit_logged(who: str, what: str, details: dict | None, t: float) -> list[Op]:
        return [(INSERT, "audit_log", {"who": str(who)[:200], "what": str(what)[:200], "at": utc(t), "details": details or {}})]

    def open_intervals(self, t: float | None = None) -> list[Op]:
        """At shutdown: agents' current states as rows with ``to`` NULL (still in it)."""
        out = []
        for agent, (state, pool, reason, since) in sorted(self.agents.items()):
            out.append((INSERT, "agent_state_log", {"agent_id": agent, "pool": pool, "state": state, "reason": reason, "from": utc(since), "to": None}))
        self.agents.clear()
        return out

    # -- engine events ---------------------------------------------------------

    def already_closed(self, call_ids) -> None:
        """Calls whose CDR is already in the database (loaded at start): a second end of one of
        them -- a ghost restored from an old snapshot, a late hang-up report -- writes nothing."""
        for call_id in call_ids:
            self.closed.put(call_id, 0)

    def feed(self, e: ev.Event) -> list[Op]:
        if type(e) is ev.CallEnded and e.call_id in self.closed:
            return []  # a call ends once: the first end is kept, with its one terminal queue_log line
        ops: list[Op] = [(QUEUE_LOG, line) for line in self.queue_log.lines(e)]
        handler = getattr(self, "_" + type(e).__name__, None)
        if handler is not None:
            ops.extend(handler(e))
        return ops

    def _CallQueued(self, e: ev.CallQueued) -> list[Op]:
        if len(self.calls) >= self.MAX_OPEN:
            self.calls.pop(next(iter(self.calls)))
        if e.call_id in self.calls:  # re-queued (callback of the same call): keep what we know
            c = self.calls[e.call_id]
            c.callback = c.callback or e.callback
            return []
        self.calls[e.call_id] = _OpenCall(
            e.queue, e.category, e.priority, e.caller_masked, e.t, e.callback, e.origin_call_id
        )
        if e.origin_call_id and e.call_id not in self.hashes and e.origin_call_id in self.hashes:
            self.hashes.put(e.call_id, self.hashes[e.origin_call_id])
        return []

    def _ChoiceMade(self, e: ev.ChoiceMade) -> list[Op]:
        c = self.calls.get(e.call_id)
        if c is not None:
            c.choices.append(str(e.choice)[:16])
        return []

    def _CallbackRequested(self, e: ev.CallbackRequested) -> list[Op]:
        c = self.calls.get(e.call_id)
        if c is not None:
            c.callback = True
        return []

    def _CallOffered(self, e: ev.CallOffered) -> list[Op]:
        c = self.calls.get(e.call_id)
        if c is None:
            return []
        c.offers.append({"seq": len(c.offers) + 1, "agent_id": e.agent_id, "pool": e.pool, "tier": e.tier,
                         "offered_at": utc(e.t), "result": None, "ring_s": 0.0})
        return []

    def _OfferEnded(self, e: ev.OfferEnded) -> list[Op]:
        c = self.calls.get(e.call_id)
        if c is not None:
            for offer in reversed(c.offers):
                if offer["agent_id"] == e.agent_id and offer["result"] is None:
                    offer["result"], offer["ring_s"] = e.result, float(e.ring_s)
                    return []
            return []
        late = self.late_offers.pop((e.call_id, e.agent_id), None)
        if late is None:
            return []
        late["result"], late["ring_s"] = e.result, float(e.ring_s)
        return [(INSERT, "cdr_offers", late)]

    def _CallAnswered(self, e: ev.CallAnswered) -> list[Op]:
        c = self.calls.get(e.call_id)
        if c is not None:
            c.answered = e.t
            c.callback = c.callback or e.callback
        self.last_call[e.agent_id] = e.call_id
        return []

    def _CallEnded(self, e: ev.CallEnded) -> list[Op]:
        c = self.calls.pop(e.call_id, None)
        if c is None:  # never saw it queue: rebuild what the end event tells
            c = _OpenCall(e.queue, e.category, e.priority, self.masked.get(e.call_id) or "",
                          e.t - e.wait_s - e.talk_s, e.callback)
            if e.agent_id and e.outcome in (ev.OUTCOME_ANSWERED, ev.OUTCOME_CALLED_BACK):
                c.answered = e.t - e.talk_s
        row = {
            "call_id": e.call_id,
            "origin_call_id": c.origin_call_id,
            "caller_masked": c.caller_masked,
            "caller_hash": self.hashes.get(e.call_id),
            "queue": e.queue,
            "category": e.category or c.category,
            "priority": e.priority,
            "arrival": utc(c.arrived),
            "answered_at": utc(c.answered),
            "ended_at": utc(e.t),
            "outcome": e.outcome,
            "reason": control_free((e.reason or "")[:200]),
            "wait_s": float(e.wait_s),
            "talk_s": float(e.talk_s),
            "wrapup_s": c.wrapup_s,
            "short_abandon": bool(e.short_abandon),
            "agent_id": e.agent_id,
            "pool": e.pool,
            "tier": e.tier,
            "emergency_plan": e.emergency_plan,
            "callback": bool(e.callback or c.callback),
            "choices": c.choices,
        }
        ops: list[Op] = [(INSERT, "cdr", row)]
        for offer in c.offers:
            offer = dict(offer, call_id=e.call_id)
            if offer["result"] is None:  # still ringing: written when its OfferEnded comes
                self.late_offers[(e.call_id, offer["agent_id"])] = offer
                if len(self.late_offers) > self.MAX_REMEMBERED:
                    self.late_offers.pop(next(iter(self.late_offers)))
            else:
                ops.append((INSERT, "cdr_offers", offer))
        self.closed.put(e.call_id, len(c.offers))
        return ops

    def _AgentStateChanged(self, e: ev.AgentStateChanged) -> list[Op]:
        ops: list[Op] = []
        prev = self.agents.pop(e.agent_id, None)
        if prev is not None:
            state, pool, reason, since = prev
            ops.append((INSERT, "agent_state_log", {"agent_id": e.agent_id, "pool": pool, "state": state,
                                                    "reason": reason, "from": utc(since), "to": utc(e.t)}))
        if e.new != ev.LOGGED_OUT:
            self.agents[e.agent_id] = (e.new, e.pool, control_free((e.reason or "")[:200]), e.t)
        if e.new == ev.WRAPUP:
            self.wrapup_since[e.agent_id] = (self.last_call.get(e.agent_id), e.t)
        elif e.old == ev.WRAPUP:
            call_id, since = self.wrapup_since.pop(e.agent_id, (None, e.t))
            if call_id is not None:
                wrapup_s = round(e.t - since, 3)
                if call_id in self.calls:
                    self.calls[call_id].wrapup_s = wrapup_s
                else:
                    ops.append((UPDATE_CDR, call_id, {"wrapup_s": wrapup_s}))
        if e.new == ev.LOGGED_OUT:
            self.last_call.pop(e.agent_id, None)
        return ops

    def _EmergencyChanged(self, e: ev.EmergencyChanged) -> list[Op]:
        return [(INSERT, "emergency_switches", {"queue": e.queue, "plan": e.plan, "previous": e.previous,
                                                "by": (e.by or "")[:200], "at": utc(e.t)})]

    def _HomeLoadReported(self, e: ev.HomeLoadReported) -> list[Op]:
        return [(INSERT, "home_load_reports", {"pool": e.pool, "waiting": int(e.waiting),
                                               "reported_at": utc(e.reported_at), "received_at": utc(e.t)})]


def queue_log_line(op: Op) -> QueueLogLine | None:
    return op[1] if op[0] == QUEUE_LOG else None
