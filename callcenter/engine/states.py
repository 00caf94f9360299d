"""Agent state machine as a data table (like h11's _state.py).

Rows are (state, event) -> new state.  Anything not in the table is illegal
and raises :class:`IllegalTransition` without changing the agent.
"""

from __future__ import annotations

from .errors import IllegalTransition
from .events import LOGGED_OUT, NOT_READY, OFFERED, ON_CALL, READY, WRAPUP

# events
LOGIN = "login"
GO_READY = "ready"
GO_NOT_READY = "not-ready"
LOGOUT = "logout"
OFFER = "offer"
OFFER_ANSWERED = "answered"
OFFER_FAILED = "offer-failed"  # no answer, rejected, busy, unavailable, caller hung up
CALL_DONE = "call-done"
WRAPUP_DONE = "wrapup-done"

TRANSITIONS: dict[tuple[str, str], str] = {
    (LOGGED_OUT, LOGIN): NOT_READY,
    (NOT_READY, GO_READY): READY,
    (NOT_READY, GO_NOT_READY): NOT_READY,  # change of reason
    (NOT_READY, LOGOUT): LOGGED_OUT,
    (READY, GO_NOT_READY): NOT_READY,
    (READY, GO_READY): READY,  # idempotent
    (READY, LOGOUT): LOGGED_OUT,
    (READY, OFFER): OFFERED,
    (OFFERED, OFFER_ANSWERED): ON_CALL,
    (OFFERED, OFFER_FAILED): READY,  # the engine may then move it to not-ready (max_no_answer)
    (OFFERED, LOGOUT): LOGGED_OUT,
    (ON_CALL, CALL_DONE): WRAPUP,
    (WRAPUP, WRAPUP_DONE): READY,
    (WRAPUP, GO_READY): READY,
    (WRAPUP, GO_NOT_READY): NOT_READY,
    (WRAPUP, LOGOUT): LOGGED_OUT,
}


def next_state(agent_id: str, state: str, event: str) -> str:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(agent_id, state, event) from None
