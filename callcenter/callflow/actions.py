"""What a call flow asks its shell to do (the flow itself does no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Send:
    """Write this AGI command (bytes ending in LF); its reply comes back to the flow in order.

    The flow emits a Send only when no command is in flight (res_agi runs one
    at a time and never reads lines pipelined at idle, callflow.base), except
    ``interrupt``: the line that deliberately stops a running WAIT FOR DIGIT.
    """

    command: bytes
    tag: str
    interrupt: bool = False


@dataclass(frozen=True, slots=True)
class Report:
    """Call ``engine.<input>(**args)``; an EngineError goes back via ``flow.report_refused``."""

    input: str
    args: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Finish:
    """The flow is over: close the AGI session (the dialplan reads ``CC_RESULT``)."""

    result: str


@dataclass(frozen=True, slots=True)
class Note:
    """Something worth a log line (never holds a raw caller number)."""

    message: str
    level: str = "info"
