"""What the routing engine tells the world.

Every change inside the engine is one of these small frozen records, emitted in
order to every subscriber (metrics, records, queue_log, Redis state, call
control, seats).  Some are *decisions* a shell must carry out:

* :class:`CallOffered`   -- ring this agent for this call (or, with
  ``callback=True``, call this caller back now through this agent);
* :class:`PositionAnnounced` -- tell the caller their place and expected wait;
* :class:`CallEnded` with ``outcome == "fallback"`` -- stop waiting and run
  the dialplan fallback (max wait reached, or shed at overload);
* :class:`OfferEnded` with a result other than ``answered`` -- stop ringing
  that agent (the seat pop-up closes; call control hangs up the leg if it can).

All times ``t`` are seconds on the engine's injected clock.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields

# Agent states (see states.py for the transition table).
LOGGED_OUT = "logged-out"
READY = "ready"
NOT_READY = "not-ready"
OFFERED = "offered"
ON_CALL = "on-call"
WRAPUP = "wrap-up"
AGENT_STATES = (LOGGED_OUT, READY, NOT_READY, OFFERED, ON_CALL, WRAPUP)

# Results of one offer.
ANSWERED = "answered"
NO_ANSWER = "no-answer"
REJECTED = "rejected"
BUSY = "busy"
UNAVAILABLE = "unavailable"
CALLER_HUNG_UP = "caller-hung-up"
AGENT_LOGGED_OUT = "agent-logged-out"
CANCELLED = "cancelled"  # call control withdrew the offer before it could ring (no fault of the agent's)
OFFER_RESULTS = (ANSWERED, NO_ANSWER, REJECTED, BUSY, UNAVAILABLE, CALLER_HUNG_UP, AGENT_LOGGED_OUT, CANCELLED)

# Outcomes of a call: each call ends in exactly one.
OUTCOME_ANSWERED = "answered"
OUTCOME_ABANDONED = "abandoned"
OUTCOME_CALLED_BACK = "called-back"
OUTCOME_FALLBACK = "fallback"
# Outcomes the switch did not decide: the ACD ended the call itself (docs/routing.md, *Reconciliation*).
OUTCOME_SHED = "shed"  # refused by admission control before it reached a queue
OUTCOME_LOST = "lost-on-restart"  # restored after a takeover or restart; nothing confirmed it within the grace
OUTCOME_SHUTDOWN = "acd-shutdown"  # in progress when the ACD stopped cleanly
OUTCOME_ADMIN = "admin-ended"  # ended by a supervisor through the admin API
# a callback whose attempts all failed: a row of the callback (origin_call_id: the abandoned call
# it calls back), not one more abandoned call
OUTCOME_CALLBACK_FAILED = "callback-failed"
OUTCOMES = (OUTCOME_ANSWERED, OUTCOME_ABANDONED, OUTCOME_CALLED_BACK, OUTCOME_FALLBACK,
            OUTCOME_SHED, OUTCOME_LOST, OUTCOME_SHUTDOWN, OUTCOME_ADMIN, OUTCOME_CALLBACK_FAILED)

SHORT_ABANDON_S = 5.0


@dataclass(frozen=True, slots=True)
class Event:
    t: float

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kind"] = self.kind
        return d


@dataclass(frozen=True, slots=True)
class CallQueued(Event):
    call_id: str
    queue: str
    category: str
    priority: int
    caller_masked: str
    position: int
    callback: bool = False
    origin_call_id: str | None = None  # set for a callback made from an abandoned call


@dataclass(frozen=True, slots=True)
class TierUnlocked(Event):
    """A waiting call may now go to pools of ``tier`` (cause: after, ewt, urgent, emergency)."""

    call_id: str
    queue: str
    tier: int
    cause: str


@dataclass(frozen=True, slots=True)
class PositionAnnounced(Event):
    call_id: str
    queue: str
    position: int
    ewt_s: float
    callback_offered: bool = False
    announcement: str | None = None  # the emergency plan's sound file, played before the position


@dataclass(frozen=True, slots=True)
class CallbackRequested(Event):
    call_id: str
    queue: str
    position: int


@dataclass(frozen=True, slots=True)
class ChoiceMade(Event):
    call_id: str
    choice: str


@dataclass(frozen=True, slots=True)
class CallOffered(Event):
    call_id: str
    queue: str
    agent_id: str
    pool: str
    tier: int
    ring_timeout_s: float
    endpoint: str | None
    category: str
    priority: int
    caller_masked: str
    waited_s: float
    choices: tuple[str, ...] = ()
    callback: bool = False
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class OfferEnded(Event):
    """Exactly one per CallOffered."""

    call_id: str
    agent_id: str
    pool: str
    tier: int
    result: str
    ring_s: float


@dataclass(frozen=True, slots=True)
class CallAnswered(Event):
    call_id: str
    queue: str
    agent_id: str
    pool: str
    tier: int
    wait_s: float
    category: str
    callback: bool = False


@dataclass(frozen=True, slots=True)
class CallEnded(Event):
    """Exactly one per call: its outcome."""

    call_id: str
    queue: str
    category: str
    priority: int
    outcome: str
    wait_s: float
    agent_id: str | None = None
    pool: str | None = None
    tier: int | None = None
    talk_s: float = 0.0
    short_abandon: bool = False
    reason: str = ""
    emergency_plan: str | None = None
    callback: bool = False


@dataclass(frozen=True, slots=True)
class AgentStateChanged(Event):
    agent_id: str
    pool: str
    old: str
    new: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class EmergencyChanged(Event):
    queue: str
    plan: str | None
    previous: str | None
    by: str


@dataclass(frozen=True, slots=True)
class HomeLoadReported(Event):
    pool: str
    waiting: int
    reported_at: float


@dataclass(frozen=True, slots=True)
class QueueOverflowChanged(Event):
    """The queue-wide overflow level moved: every waiting call may go to tiers <= ``tier``.

    Raised by the expected wait crossing a tier's ``ewt_over_s`` or by an
    emergency plan opening all tiers; ``tier`` 0 means no queue-wide overflow.
    """

    queue: str
    tier: int
    ewt_s: float
    cause: str


@dataclass(frozen=True, slots=True)
class ConfigReplaced(Event):
    queues: tuple[str, ...] = field(default_factory=tuple)
    pools: tuple[str, ...] = field(default_factory=tuple)


def _fast_init(cls: type[Event]) -> type[Event]:
    """Give a frozen slots dataclass an ``__init__`` that stores through its slot descriptors.

    The generated frozen ``__init__`` calls ``object.__setattr__`` once per field; the engine
    builds about ten events per call, so that was a noticeable share of a simulated call.  This
    one has the same signature and defaults and builds the same object (still frozen: assigning
    a field afterwards raises ``FrozenInstanceError``), about 40% faster.  Classes with a
    ``default_factory`` keep the generated one.
    """
    flds = [f for f in fields(cls) if f.init]
    if any(f.default_factory is not MISSING for f in flds):
        return cls
    setters = {}
    for f in flds:
        for klass in cls.__mro__:
            if f.name in klass.__dict__:
                setters[f"_set_{f.name}"] = klass.__dict__[f.name].__set__
                break
    defaults = {f"_dflt_{f.name}": f.default for f in flds if f.default is not MISSING}
    params = ", ".join(f.name if f.default is MISSING else f"{f.name}=_dflt_{f.name}" for f in flds)
    body = "".join(f"        _set_{f.name}(self, {f.name})\n" for f in flds)
    names = ", ".join([*setters, *defaults])
    src = f"def _make({names}):\n    def __init__(self, {params}):\n{body}    return __init__\n"
    namespace: dict = {}
    # generated from the dataclass's own field names, as dataclasses does; a file name per class
    # keeps profiles (benchmarks/simulate.py) from merging every event's __init__ into one line
    exec(compile(src, f"<string>:{cls.__name__}", "exec"), namespace)  # noqa: S102
    init = namespace["_make"](**setters, **defaults)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    init.__annotations__ = dict(cls.__init__.__annotations__)
    cls.__init__ = init
    return cls


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        CallQueued,
        TierUnlocked,
        PositionAnnounced,
        CallbackRequested,
        ChoiceMade,
        CallOffered,
        OfferEnded,
        CallAnswered,
        CallEnded,
        AgentStateChanged,
        EmergencyChanged,
        HomeLoadReported,
        QueueOverflowChanged,
        ConfigReplaced,
    )
}
for _cls in EVENT_TYPES.values():
    _fast_init(_cls)


def event_from_dict(d: dict) -> Event:
    d = dict(d)
    cls = EVENT_TYPES[d.pop("kind")]
    names = {f.name for f in fields(cls)}
    if "choices" in d and isinstance(d["choices"], list):
        d["choices"] = tuple(d["choices"])
    for k in ("queues", "pools"):
        if k in d and isinstance(d[k], list):
            d[k] = tuple(d[k])
    return cls(**{k: v for k, v in d.items() if k in names})
