"""The pure routing engine: events in, decisions out, timers on an injected clock.

Public API (all a shell needs)::

    from callcenter.engine import Engine
    engine = Engine(config, clock)            # clock: any IReactorTime (reactor, task.Clock, sim clock)
    engine.subscribe(listener)                # listener(event) for every Event, in order
    engine.call_arrived(call_id, queue, caller_masked="138****5678", category="other")
    engine.agent_logged_in("a1", pool="own-12345", skills={"epidemic": 3}, endpoint="PJSIP/1001")
    engine.agent_ready("a1")
    ...

See engine.py for every input and query, events.py for every output.
"""

from .engine import Engine
from .errors import (
    CallNotWaiting,
    DuplicateCall,
    EngineError,
    IllegalTransition,
    QueueFull,
    StaleOffer,
    UnknownAgent,
    UnknownCall,
    UnknownPool,
    UnknownQueue,
)

__all__ = [
    "Engine",
    "EngineError",
    "IllegalTransition",
    "UnknownCall",
    "UnknownAgent",
    "UnknownQueue",
    "UnknownPool",
    "DuplicateCall",
    "StaleOffer",
    "CallNotWaiting",
    "QueueFull",
]
