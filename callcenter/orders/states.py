"""A work order's state machine as a data table (like callcenter/engine/states.py).

Rows are (state, command) -> new state.  Anything not in the table is illegal and raises
:class:`IllegalOrderTransition` without changing the order.

    new --dispatch--> dispatched --accept--> accepted --progress--> accepted
     |                  |   ^                   |  \\--close--> closed --visit(satisfied)--> done
     |                  |   |                   |                  \\--visit(dissatisfied)--> dispatched (reopened)
     |                  |   +--reassign-- returned <--return-- (dispatched or accepted)
     +--resolve-on-spot--> done

``new`` orders are owned by the hotline's dispatch desk until dispatched; every other state has
exactly one owning unit, and ``returned`` gives the order back to the dispatch desk.
"""

from __future__ import annotations

NEW = "new"
DISPATCHED = "dispatched"
ACCEPTED = "accepted"
RETURNED = "returned"
CLOSED = "closed"
DONE = "done"

STATES = (NEW, DISPATCHED, ACCEPTED, RETURNED, CLOSED, DONE)
OPEN_STATES = frozenset({NEW, DISPATCHED, ACCEPTED, RETURNED})  # the deadline runs

# commands
DISPATCH = "dispatch"
REASSIGN = "reassign"
ACCEPT = "accept"
PROGRESS = "progress"
REPLY = "reply"
RETURN = "return"
CLOSE = "close"
VISIT_SATISFIED = "visit-satisfied"
VISIT_DISSATISFIED = "visit-dissatisfied"
RESOLVE_ON_SPOT = "resolve-on-spot"
REQUEST_EXTENSION = "request-extension"
DECIDE_EXTENSION = "decide-extension"


class IllegalOrderTransition(Exception):
    """A command the order's state does not allow (the caller's mistake: HTTP 409)."""

    def __init__(self, order_id: str, state: str, command: str):
        super().__init__(f"order {order_id}: {command!r} is not allowed in state {state!r}")
        self.order_id, self.state, self.command = order_id, state, command


TRANSITIONS: dict[tuple[str, str], str] = {
    (NEW, DISPATCH): DISPATCHED,
    (NEW, RESOLVE_ON_SPOT): DONE,
    (DISPATCHED, ACCEPT): ACCEPTED,
    (DISPATCHED, RETURN): RETURNED,
    (DISPATCHED, REQUEST_EXTENSION): DISPATCHED,
    (DISPATCHED, DECIDE_EXTENSION): DISPATCHED,
    (ACCEPTED, PROGRESS): ACCEPTED,
    (ACCEPTED, REPLY): ACCEPTED,
    (ACCEPTED, RETURN): RETURNED,
    (ACCEPTED, REQUEST_EXTENSION): ACCEPTED,
    (ACCEPTED, DECIDE_EXTENSION): ACCEPTED,
    (ACCEPTED, CLOSE): CLOSED,
    (RETURNED, REASSIGN): DISPATCHED,
    (RETURNED, DECIDE_EXTENSION): RETURNED,
    (CLOSED, VISIT_SATISFIED): DONE,
    (CLOSED, VISIT_DISSATISFIED): DISPATCHED,
}


def next_state(order_id: str, state: str, command: str) -> str:
    try:
        return TRANSITIONS[(state, command)]
    except KeyError:
        raise IllegalOrderTransition(order_id, state, command) from None
