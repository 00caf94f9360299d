"""Call flows as pure state machines: AGI replies and engine decisions in, AGI commands out.

:class:`InboundCall` is the 12345 caller's path (both transports run it);
:mod:`.notify` holds the tiny flows for the Dial ``U()`` answer report and the
``h`` extension's hang-up report.  docs/agi.md explains the design.
"""

from .actions import Finish, Note, Report, Send
from .inbound import InboundCall
from .options import BadRequest, FlowOptions

__all__ = ["InboundCall", "FlowOptions", "BadRequest", "Send", "Report", "Finish", "Note"]
