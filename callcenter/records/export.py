"""The CDR export a supervisor opens in Excel: local times, whole seconds, names, no hashes.

Pure formatting (no I/O): ``cdr_rows`` (queries.py) reads the records;
:func:`supervisor_row` turns one into what a 12345 duty supervisor reads:

* times in ISO 8601 **with their offset** in a display zone (default
  ``Asia/Shanghai``: "2026-11-28T08:00:05+08:00"), never naive UTC;
* durations rounded to whole seconds (half up: 14.5 s -> 15 s);
* ``within_15s``: answered after a wait of at most 15 s, the GB/T 33358 /
  Asterisk service-level threshold ("within" is <= 15 s, as in the recording
  rules, deploy/prometheus/rules/callcenter-recording.yml);
* the agent's display name from the accounts table, and the ticket reference
  of the newest wrap-up;
* the masked caller number only: no caller hash (a stable pseudonym is still
  personal data; the raw export, ``--raw``, keeps it for reconciliation).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["DEFAULT_ZONE", "SUPERVISOR_COLUMNS", "SERVICE_LEVEL_S", "supervisor_row", "ticket_reference",
           "display_zone"]

DEFAULT_ZONE = "Asia/Shanghai"
SERVICE_LEVEL_S = 15.0
# Ticket fields that name the ticket, most specific first; else its title.
TICKET_REF_FIELDS = ("ref", "ticket", "ticket_id", "id", "number", "no", "title")

SUPERVISOR_COLUMNS = [
    "call_id", "queue", "category", "caller_masked", "arrival", "answered_at", "ended_at", "outcome", "reason",
    "wait_s", "talk_s", "wrapup_s", "within_15s", "short_abandon", "agent_id", "agent_name", "pool", "tier",
    "emergency_plan", "callback", "disposition", "ticket",
]


class UnknownZone(ValueError):
    """The display zone is not an IANA time zone name."""


def display_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownZone(f"{name!r} is not a time zone name (like Asia/Shanghai or UTC)") from None


def _when(value: datetime | None, zone: ZoneInfo) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:  # stored naive UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone).isoformat(timespec="seconds")


def _secs(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return str(math.floor(value + 0.5))


def _yes(value: Any) -> str:
    return "yes" if value else "no"


def ticket_reference(ticket: dict | None) -> str:
    """The field that names the ticket (``ref``, ``id``, ``number``, ..., else ``title``); "" for none."""
    if not isinstance(ticket, dict):
        return ""
    for key in TICKET_REF_FIELDS:
        value = ticket.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def supervisor_row(row: dict, zone: ZoneInfo, agent_names: dict[str, str]) -> dict:
    """One CDR (a ``cdr_rows`` dict plus ``ticket``) as the supervisor export shows it."""
    wait = row.get("wait_s")
    answered = row.get("answered_at") is not None
    agent = row.get("agent_id") or ""
    return {
        "call_id": row.get("call_id", ""),
        "queue": row.get("queue", ""),
        "category": row.get("category") or "",
        "caller_masked": row.get("caller_masked") or "",
        "arrival": _when(row.get("arrival"), zone),
        "answered_at": _when(row.get("answered_at"), zone),
        "ended_at": _when(row.get("ended_at"), zone),
        "outcome": row.get("outcome") or "",
        "reason": row.get("reason") or "",
        "wait_s": _secs(wait),
        "talk_s": _secs(row.get("talk_s")),
        "wrapup_s": _secs(row.get("wrapup_s")),
        "within_15s": _yes(answered and wait is not None and wait <= SERVICE_LEVEL_S),
        "short_abandon": _yes(row.get("short_abandon")),
        "agent_id": agent,
        "agent_name": agent_names.get(agent, "") if agent else "",
        "pool": row.get("pool") or "",
        "tier": "" if row.get("tier") is None else str(row["tier"]),
        "emergency_plan": row.get("emergency_plan") or "",
        "callback": _yes(row.get("callback")),
        "disposition": row.get("disposition") or "",
        "ticket": ticket_reference(row.get("ticket")),
    }
