"""``callcenter admin ...``: the admin API for people on a terminal.

A blocking HTTP client (urllib) is fine here: the CLI is a short-lived
process, not the reactor.  ``--url`` and ``--token`` default to the
environment variables CALLCENTER_ADMIN_URL and CALLCENTER_ADMIN_TOKEN.

    callcenter admin status                      # queues and pools as tables
    callcenter admin emergency hotline-12345 on surge
    callcenter admin emergency hotline-12345 off
    callcenter admin lender-report lender-12333 4
    callcenter admin logout agent-1001 --reason "seat frozen" [--force]
    callcenter admin end-call CALL_ID --reason "no such channel on the switch"
    callcenter admin reload
    callcenter admin token-hash TOKEN            # sha256 for acd.admin_tokens
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .auth import hash_token

__all__ = ["register", "AdminClient", "ApiError"]

DEFAULT_URL = "http://127.0.0.1:8080/api/v1"
TIMEOUT_S = 10.0


class ApiError(Exception):
    """The API answered with an error (``status`` > 0) or could not be reached (``status`` 0)."""

    def __init__(self, status: int, message: str, body: dict | None = None):
        super().__init__(message)
        self.status = status
        self.body = body or {}


class AdminClient:
    """A small blocking client of /api/v1 (for the CLI and scripts)."""

    def __init__(self, url: str, token: str | None, timeout: float = TIMEOUT_S):
        self.url = url.rstrip("/")
        if not self.url.endswith("/api/v1"):  # the admin port's address is enough
            self.url += "/api/v1"
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode("utf-8") if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = {}
            message = payload.get("message") if isinstance(payload, dict) else None
            raise ApiError(
                exc.code, message or f"HTTP {exc.code} {exc.reason}", payload if isinstance(payload, dict) else None
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(0, f"cannot reach {self.url}: {reason}") from None

    def status(self) -> dict:
        return self.request("GET", "/status")

    def emergency(self, queue: str, plan: str | None) -> dict:
        return self.request("PUT", f"/queues/{_q(queue)}/emergency", {"plan": plan})

    def lender_report(self, pool: str, waiting: int, at: float | None = None) -> dict:
        return self.request(
            "POST", f"/lenders/{_q(pool)}/home-load", {"waiting": waiting, "at": time.time() if at is None else at}
        )

    def logout(self, agent_id: str, reason: str = "", force: bool = False) -> dict:
        body: dict = {"reason": reason} if reason else {}
        if force:
            body["force"] = True
        return self.request("POST", f"/agents/{_q(agent_id)}/logout", body)

    def end_call(self, call_id: str, reason: str) -> dict:
        return self.request("POST", f"/calls/{_q(call_id)}/end", {"reason": reason})

    def reload(self) -> dict:
        return self.request("POST", "/config/reload")


def _q(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


# ---------------------------------------------------------------------------
# argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=os.environ.get("CALLCENTER_ADMIN_URL", DEFAULT_URL),
        help="admin API base URL (default: %(default)s; env CALLCENTER_ADMIN_URL)",
    )
    common.add_argument(
        "--token", default=os.environ.get("CALLCENTER_ADMIN_TOKEN"), help="bearer token (env CALLCENTER_ADMIN_TOKEN)"
    )
    common.add_argument("--json", action="store_true", help="print the API's JSON answer instead of text")

    admin = subparsers.add_parser("admin", help="call the admin API: status, emergency plans, lender reports")
    sub = admin.add_subparsers(dest="admin_command", metavar="ACTION")
    sub.required = True

    p = sub.add_parser("status", parents=[common], help="queues and pools as tables")
    p.set_defaults(func=_status)

    p = sub.add_parser("emergency", parents=[common], help="switch a queue's emergency plan: on PLAN | off")
    p.add_argument("queue")
    p.add_argument("switch", choices=["on", "off"])
    p.add_argument("plan", nargs="?", help="plan name (with 'on')")
    p.set_defaults(func=_emergency)

    p = sub.add_parser("lender-report", parents=[common], help="report a lender's waiting callers on its own line")
    p.add_argument("pool", help="borrowed pool name, e.g. lender-12333")
    p.add_argument("waiting", type=int)
    p.add_argument("--at", type=float, default=None, help="when measured, epoch seconds (default: now)")
    p.set_defaults(func=_lender_report)

    p = sub.add_parser("logout", parents=[common], help="force an agent's seat out (its offered call goes on)")
    p.add_argument("agent")
    p.add_argument("--reason", default="")
    p.add_argument("--force", action="store_true",
                   help="free an agent on a call at once: its call ends (outcome admin-ended)")
    p.set_defaults(func=_logout)

    p = sub.add_parser("end-call", parents=[common],
                       help="end a stuck call the switch no longer has (one CDR, outcome admin-ended; audited)")
    p.add_argument("call")
    p.add_argument("--reason", required=True, help="why (kept in the audit log and the CDR)")
    p.set_defaults(func=_end_call)

    p = sub.add_parser("reload", parents=[common], help="reload and validate the ACD's config file")
    p.set_defaults(func=_reload)

    p = sub.add_parser("token-hash", help="print the sha256 of a token for acd.admin_tokens ('-' reads stdin)")
    p.add_argument("token")
    p.set_defaults(func=_token_hash)


def _client(args: argparse.Namespace) -> AdminClient:
    return AdminClient(args.url, args.token)


def _call(args: argparse.Namespace, fn, render) -> int:
    try:
        result = fn(_client(args))
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for issue in exc.body.get("issues") or ():
            where = issue.get("path") or "(file)"
            print(f"  {where}: {issue.get('message')}", file=sys.stderr)
        if exc.status == 401:
            print("  (set --token or CALLCENTER_ADMIN_TOKEN)", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        render(result)
    return 0


def _status(args: argparse.Namespace) -> int:
    return _call(args, lambda c: c.status(), _print_status)


def _emergency(args: argparse.Namespace) -> int:
    if args.switch == "on" and not args.plan:
        print("error: 'on' needs a plan name: callcenter admin emergency QUEUE on PLAN", file=sys.stderr)
        return 2
    if args.switch == "off" and args.plan:
        print("error: 'off' takes no plan name", file=sys.stderr)
        return 2
    plan = args.plan if args.switch == "on" else None

    def render(r: dict) -> None:
        now = r["plan"] or "off"
        if r["changed"]:
            print(f"{r['queue']}: emergency plan {now} (was {r['previous'] or 'off'})")
        else:
            print(f"{r['queue']}: emergency plan already {now}")

    return _call(args, lambda c: c.emergency(args.queue, plan), render)


def _lender_report(args: argparse.Namespace) -> int:
    def render(r: dict) -> None:
        note = "" if r.get("applied", True) else " (older than the last report: ignored)"
        print(f"{r['pool']}: {r['waiting']} waiting on the lender's own line, reported{note}")

    return _call(args, lambda c: c.lender_report(args.pool, args.waiting, args.at), render)


def _logout(args: argparse.Namespace) -> int:
    def render(r: dict) -> None:
        if r["logout_pending"]:
            print(f"{r['agent_id']}: on a call; logged out when it ends")
        else:
            print(f"{r['agent_id']}: logged out (was {r['previous_state']})")
        call = r.get("call")
        if call:
            print(
                f"  call {call['call_id']}: {call['state']}"
                + (f" -> {call['agent_id']}" if call.get("agent_id") else "")
            )

    return _call(args, lambda c: c.logout(args.agent, args.reason, args.force), render)


def _end_call(args: argparse.Namespace) -> int:
    def render(r: dict) -> None:
        agent = f"; agent {r['agent_id']} freed" if r.get("agent_id") else ""
        print(f"{r['call_id']}: ended ({r['outcome']}, was {r['previous_state']}) by {r['by']}{agent}")

    return _call(args, lambda c: c.end_call(args.call, args.reason), render)


def _reload(args: argparse.Namespace) -> int:
    def render(r: dict) -> None:
        print(f"reloaded {r['path']}: {len(r['queues'])} queue(s), {len(r['pools'])} pool(s)")
        if r["needs_restart"]:
            print(f"  changed, but only at the next start: {', '.join(r['needs_restart'])}")

    return _call(args, lambda c: c.reload(), render)


def _token_hash(args: argparse.Namespace) -> int:
    token = sys.stdin.readline().strip() if args.token == "-" else args.token
    if not token:
        print("error: empty token", file=sys.stderr)
        return 2
    print(hash_token(token))
    return 0


# ---------------------------------------------------------------------------
# rendering


def _secs(v: float | None) -> str:
    if v is None:
        return "∞"
    v = int(round(v))
    if v < 60:
        return f"{v}s"
    if v < 3600:
        return f"{v // 60}m{v % 60:02d}s"
    return f"{v // 3600}h{v % 3600 // 60:02d}m"


def _ago(at: float | None) -> str:
    if at is None:
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def _print_status(s: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    # piped or captured output is not cut to 80 columns
    console = Console() if sys.stdout.isatty() else Console(width=200)
    q = Table(title=f"{s.get('acd', '')} queues", title_justify="left")
    for col in ("queue", "waiting", "callbacks", "oldest wait", "expected wait", "emergency", "overflow tier"):
        q.add_column(col, justify="left" if col in ("queue", "emergency") else "right")
    for row in s["queues"]:
        q.add_row(
            row["name"],
            str(row["waiting"]),
            str(row.get("callbacks_waiting", 0)),
            _secs(row["oldest_wait_s"]),
            _secs(row["ewt_s"]),
            (f"[bold red]{row['emergency']}[/]" + (f" (by {row['emergency_by']}, {_ago(row.get('emergency_since'))})"
                                                   if row.get("emergency_by") else "")) if row["emergency"] else "-",
            str(row.get("overflow_tier", 0)),
        )
    console.print(q)

    p = Table(title="pools", title_justify="left")
    for col in (
        "pool",
        "kind",
        "tier",
        "ready",
        "not-ready",
        "offered",
        "on-call",
        "wrap-up",
        "busy/cap",
        "share",
        "home load",
        "gate",
    ):
        p.add_column(col, justify="left" if col in ("pool", "kind", "home load", "gate") else "right")
    for row in s["pools"]:
        agents = row.get("agents", {})
        cap = row.get("cap")
        busy_cap = f"{row['busy']}/{cap}" if cap is not None else str(row["busy"])
        share = f"{row.get('share', 0):.0%}"
        if row.get("max_share") is not None:
            share += f" of {row['max_share']:.0%}"
        if row.get("kind") == "borrowed":
            if row.get("home_waiting") is None:
                home = "never reported"
            else:
                home = f"{row['home_waiting']} waiting, {_secs(row.get('home_report_age_s'))} ago"
            gate = "[green]open[/]" if row.get("gate_open") else "[red]closed[/]"
        else:
            home, gate = "-", "-"
        p.add_row(
            row["name"],
            row.get("kind", ""),
            str(row.get("tier", "")),
            *(str(agents.get(k, 0)) for k in ("ready", "not-ready", "offered", "on-call", "wrap-up")),
            busy_cap,
            share,
            home,
            gate,
        )
    console.print(p)
