"""Callback origination through Asterisk call files (no AMI needed).

When the engine decides "call this caller back now via this agent"
(``CallOffered`` with ``callback=True``), we drop a call file into Asterisk's
outgoing spool: Asterisk rings the agent's endpoint first (``WaitTime`` = the
ring timeout) and, once the agent answers, runs ``[cc-callback]`` in
dialplan/extensions-callcenter.conf, which dials the caller (the number stays
in Asterisk's AstDB under ``cc-callback/<call id>``; the ACD never stores it),
reports the caller's answer through the Dial ``U()`` gosub and the end through
the ``h`` extension (``callback-done``).  Call files are written to a temporary
name and renamed, as Asterisk requires (it may read a half-written file).
"""

from __future__ import annotations

import os
import re
import tempfile

_SAFE = re.compile(r"^[A-Za-z0-9_./@:+-]{1,128}$")


def callfile_text(ev, *, origin: str, caller_id: str = '"12345" <12345>') -> str:
    for v in (ev.endpoint or "", ev.call_id, ev.agent_id, origin):
        if not _SAFE.match(v):
            raise ValueError(f"unsafe value for a call file: {v[:40]!r}")
    wait = max(1, int(ev.ring_timeout_s))
    return (
        f"Channel: {ev.endpoint}\n"
        f"CallerID: {caller_id}\n"
        f"WaitTime: {wait}\n"
        "MaxRetries: 0\n"
        "Context: cc-callback\n"
        "Extension: s\n"
        "Priority: 1\n"
        f"Setvar: CC_CALL_ID={ev.call_id}\n"
        f"Setvar: CC_AGENT={ev.agent_id}\n"
        f"Setvar: CC_ORIGIN={origin}\n"
        "Archive: no\n"
    )


class CallFileOriginator:
    def __init__(self, spool_dir: str, *, fastagi_url: str = ""):
        self.spool_dir = spool_dir
        self.fastagi_url = fastagi_url
        self.written: list[str] = []

    def __call__(self, ev) -> str:
        if not ev.endpoint:
            raise OSError("the agent has no endpoint to ring")
        # a callback made from an abandoned call has the id "<origin>:cb"
        origin = ev.call_id[:-3] if ev.call_id.endswith(":cb") else ev.call_id
        text = callfile_text(ev, origin=origin)
        fd, tmp = tempfile.mkstemp(prefix=".cc-", suffix=".call", dir=self.spool_dir)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        final = os.path.join(self.spool_dir, f"cc-{ev.call_id.replace(':', '_')}-{ev.attempt}.call")
        os.rename(tmp, final)
        self.written.append(final)
        return final
