"""Per-call options, read from the AGI request the dialplan made.

The dialplan names everything a call needs (dialplan/extensions-callcenter.conf)::

    AGI(agi://acd1:4573/hotline?queue=hotline-12345&moh=cc-hold,${CC_CATEGORY},${CC_PRIORITY})

Query keys: ``queue``, ``resume`` (a call id to take over), ``moh``,
``greeting``, ``menu`` (a prompt; its digit maps through ``menu_map=1:medical;2:labour``),
``notice``, ``apology``, ``wait_ms``.  Arguments: 1 category, 2 priority.
Sound names are validated (letters, digits, ``/ _ - .``) so a query cannot
inject AGI syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from callcenter.agi.protocol import Environment

_SOUND = re.compile(r"^[A-Za-z0-9_./-]{1,120}$")
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class BadRequest(ValueError):
    """The AGI request (query or arguments) is unusable."""


@dataclass(frozen=True)
class FlowOptions:
    queue: str = "hotline-12345"
    category: str | None = None
    priority: int | None = None
    resume: str | None = None
    moh: str = "cc-hold"
    greeting: str | None = None  # no front menu by default (GB/T 33358: do not force an IVR)
    menu: str | None = None
    menu_map: dict = field(default_factory=dict)  # digit -> category
    notice: str = "cc-policy-notice"
    apology: str = "cc-sorry-busy"
    callback_confirm: str = "cc-callback-confirmed"
    position_prompt: str = "cc-your-position"
    wait_prompt: str = "cc-expected-wait"
    minutes_prompt: str = "cc-minutes"
    callback_prompt: str = "cc-press-2-for-callback"  # played after the position when callback is offered
    wait_ms: int = 2000  # one hold-loop WAIT FOR DIGIT; engine decisions cut it short
    callback_offer: bool = True
    store_number: bool = False  # keep the raw number in AstDB for a later callback
    dial_options: str = ""  # extra Dial options, e.g. "g"
    dial_margin_s: float = 0.5  # Dial gives up a little before the engine's ring timer

    def with_request(self, env: Environment) -> FlowOptions:
        q = env.query
        args = env.args
        kw: dict = {}
        for key in ("moh", "greeting", "menu", "notice", "apology"):
            if key in q and q[key] != "":
                if not _SOUND.match(q[key]):
                    raise BadRequest(f"bad sound name for {key}: {q[key][:40]!r}")
                kw[key] = q[key]
        if q.get("queue"):
            if not _ID.match(q["queue"]):
                raise BadRequest("bad queue name")
            kw["queue"] = q["queue"]
        if q.get("resume"):
            if not _ID.match(q["resume"]):
                raise BadRequest("bad call id to resume")
            kw["resume"] = q["resume"]
        if q.get("menu_map"):  # "1:medical;2:labour"
            mm = {}
            for part in q["menu_map"].split(";"):
                digit, _, cat = part.partition(":")
                if len(digit) != 1 or digit not in "0123456789*#" or not _ID.match(cat):
                    raise BadRequest(f"bad menu_map entry {part[:20]!r}")
                mm[digit] = cat
            kw["menu_map"] = mm
        if q.get("wait_ms"):
            try:
                kw["wait_ms"] = max(200, min(30000, int(q["wait_ms"])))
            except ValueError:
                raise BadRequest("wait_ms must be an integer") from None
        if len(args) >= 1 and args[0]:
            if not _ID.match(args[0]):
                raise BadRequest("bad category")
            kw["category"] = args[0]
        if len(args) >= 2 and args[1]:
            try:
                kw["priority"] = int(args[1])
            except ValueError:
                raise BadRequest("priority must be an integer") from None
        return replace(self, **kw)
