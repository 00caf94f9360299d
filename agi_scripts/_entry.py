"""Shared start-up of the classic entry points (argument handling, secret, exit status).

Dialplan arguments: ``AGI(<venv python>,<script>,<ACD relay addresses>,<request>[,category[,priority]])``,
e.g. ``AGI(/opt/callcenter/.venv/bin/python,/opt/callcenter/agi_scripts/hotline_inbound.py,10.0.0.5:4574\\,10.0.0.6:4574,hotline?queue=hotline-12345,${CC_CATEGORY},${CC_PRIORITY})``.
The interpreter is named as the program because the scripts need the virtualenv's packages
(pyst2's ``asterisk``, ``callcenter``); run as themselves, ``#!/usr/bin/env python3`` finds the
system Python and fails with ``No module named 'asterisk'`` (docs/agi.md).
The shared secret comes from ``CALLCENTER_AGI_SECRET`` or the file named by
``CALLCENTER_AGI_SECRET_FILE`` (default /etc/callcenter/agi-secret), never the dialplan.
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a file by Asterisk: make the repo importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read_secret() -> str:
    s = os.environ.get("CALLCENTER_AGI_SECRET")
    if s:
        return s
    path = os.environ.get("CALLCENTER_AGI_SECRET_FILE", "/etc/callcenter/agi-secret")
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


def run(default_request: str, *, resumable: bool) -> int:
    from callcenter.agi import relay_client
    from callcenter.agi.pyst2_compat import open_agi, safe_execute

    agi = open_agi()
    argv = sys.argv[1:]
    addresses = relay_client.parse_addresses(argv[0] if argv else os.environ.get("CALLCENTER_ACD_RELAY", ""))
    request = argv[1] if len(argv) > 1 and argv[1] else default_request
    env = {k: v for k, v in agi.env.items() if not k.startswith("agi_arg_")}
    for i, value in enumerate(argv[2:], 1):  # category, priority: renumbered for the ACD's flow
        env[f"agi_arg_{i}"] = value
    relay = relay_client.Relay(addresses=addresses, secret=read_secret(), env=env, script=request,
                               hung_up=lambda: agi._got_sighup)
    if not resumable:
        relay.result = "one-shot"  # the ACD closes at once; that is the normal end
    status = relay.run()
    if status == relay_client.EXIT_NO_ACD and resumable and relay.call_id is None:
        # no ACD at call start: tell the dialplan why (AGISTATUS=FAILURE comes from the exit status)
        safe_execute(agi, "SET VARIABLE", "CC_RESULT", "noacd")
    return status
