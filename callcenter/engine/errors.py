"""Distinct error types of the routing engine.

An input the engine rejects raises one of these and changes nothing, so a shell
can reply with an error to the peer that sent it and carry on.
"""


class EngineError(Exception):
    """Base class: an input the engine refused; its state is unchanged."""


class UnknownCall(EngineError):
    pass


class UnknownAgent(EngineError):
    pass


class UnknownQueue(EngineError):
    pass


class UnknownPool(EngineError):
    pass


class DuplicateCall(EngineError):
    pass


class IllegalTransition(EngineError):
    """An agent state change the transition table does not allow."""

    def __init__(self, agent_id: str, state: str, event: str):
        self.agent_id, self.state, self.event = agent_id, state, event
        super().__init__(f"agent {agent_id}: {event!r} is not allowed in state {state!r}")


class StaleOffer(EngineError):
    """A result for an offer that is no longer current (already resolved or superseded)."""


class CallNotWaiting(EngineError):
    pass


class QueueFull(EngineError):
    """The ACD is at its configured capacity; the caller goes to the dialplan fallback."""
