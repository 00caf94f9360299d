"""``callcenter migrate``, ``callcenter agents add|list|disable|enable|set-password``, ``callcenter cdr export``.

The database is ``--database URL``, else env CALLCENTER_DATABASE_URL, else the
config file's ``acd.database_url``, else the SQLite file under its state_dir
(the same one ``callcenter serve`` uses).  Every command migrates first, so a
fresh database just works.  Passwords are never taken on the command line
(``ps`` would show them): they are prompted for, or read from stdin with
``--password-stdin``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from datetime import UTC, datetime

from sqlalchemy.engine import make_url

from callcenter.records import accounts
from callcenter.records.db import make_engine, migrate, normalize_url
from callcenter.records.export import DEFAULT_ZONE


def register(subparsers) -> None:
    def db_args(p):
        p.add_argument("--database", metavar="URL", help="SQLAlchemy URL (sqlite:///file, postgresql://...)")
        p.add_argument("--config", default=None, help="config file to read acd.database_url/state_dir from "
                       "(default: $CALLCENTER_CONFIG or deploy/callcenter.yaml)")

    p = subparsers.add_parser("migrate", help="create or upgrade the records database schema")
    db_args(p)
    p.set_defaults(func=_migrate)

    agents = subparsers.add_parser("agents", help="agent accounts")
    sub = agents.add_subparsers(dest="agents_command", metavar="ACTION")
    sub.required = True

    a = sub.add_parser("add", help="add an agent account")
    a.add_argument("agent_id")
    a.add_argument("--pool", required=True, help="pool name from the config (own-12345, lender-12333, ...)")
    a.add_argument("--name", default="", help="display name")
    a.add_argument("--endpoint", help="dial string: PJSIP/1001, PJSIP/xian-trunk/8021, Local/1001@agents")
    a.add_argument("--skills", default="", help="skill=level,... e.g. epidemic=3,medical=1")
    a.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    a.add_argument("--no-password", action="store_true", help="create without a password (cannot log in yet)")
    a.add_argument("--disabled", action="store_true", help="create disabled")
    db_args(a)
    a.set_defaults(func=_agents_add)

    ls = sub.add_parser("list", help="list agent accounts")
    ls.add_argument("--pool")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    db_args(ls)
    ls.set_defaults(func=_agents_list)

    for name, enabled in (("disable", False), ("enable", True)):
        d = sub.add_parser(name, help=f"{name} an agent account")
        d.add_argument("agent_id")
        db_args(d)
        d.set_defaults(func=_agents_enable, enabled=enabled)

    sp = sub.add_parser("set-password", help="set an agent's password (prompted, or --password-stdin)")
    sp.add_argument("agent_id")
    sp.add_argument("--password-stdin", action="store_true")
    db_args(sp)
    sp.set_defaults(func=_agents_set_password)

    cdr = subparsers.add_parser("cdr", help="call detail records")
    csub = cdr.add_subparsers(dest="cdr_command", metavar="ACTION")
    csub.required = True
    ex = csub.add_parser("export", help="export CDRs whose arrival is in [--from, --to)")
    ex.add_argument("--from", dest="start", help="ISO date/time, in --zone unless it has an offset (2026-11-28, "
                    "2026-11-28T08:00+08:00)")
    ex.add_argument("--to", dest="end", help="ISO date/time (exclusive)")
    ex.add_argument("--zone", default=os.environ.get("CALLCENTER_DISPLAY_ZONE", DEFAULT_ZONE),
                    help="time zone of the times shown and of --from/--to without an offset "
                    f"(default: $CALLCENTER_DISPLAY_ZONE or {DEFAULT_ZONE})")
    ex.add_argument("--excel", "--bom", dest="excel", action="store_true",
                    help="UTF-8 with a byte-order mark and CRLF line ends, so Excel shows Chinese text")
    ex.add_argument("--raw", action="store_true",
                    help="every stored column as stored (UTC, caller hash, offers): for reconciliation, "
                    "not for supervisors")
    ex.add_argument("--format", default="csv", choices=["csv"])
    ex.add_argument("--output", "-o", default="-", help="file (default: stdout)")
    db_args(ex)
    ex.set_defaults(func=_cdr_export)


# -- helpers ------------------------------------------------------------------------


class _UsageError(Exception):
    pass


def resolve_url(args) -> str:
    if getattr(args, "database", None):
        return normalize_url(args.database)
    if os.environ.get("CALLCENTER_DATABASE_URL"):
        return normalize_url(os.environ["CALLCENTER_DATABASE_URL"])
    from pathlib import Path

    from callcenter.app import default_database_url
    from callcenter.config import ConfigError, load_config

    path = args.config or os.environ.get("CALLCENTER_CONFIG", "deploy/callcenter.yaml")
    try:
        config = load_config(path)
    except ConfigError as exc:
        raise _UsageError(f"{exc.source}: {exc}; or give --database URL") from None
    if config.acd.database_url:
        return normalize_url(config.acd.database_url)
    return default_database_url(Path(config.acd.state_dir).expanduser().resolve())


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _run(args, body) -> int:
    try:
        url = resolve_url(args)
        engine = make_engine(url)
        try:
            migrate(url, engine=engine)
            return body(engine, url) or 0
        finally:
            engine.dispose()
    except (_UsageError, accounts.AccountError) as exc:
        print(f"callcenter: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a database that cannot be reached: one clear line, not a traceback
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, SQLAlchemyError):
            print(f"callcenter: database error: {str(getattr(exc, 'orig', exc)).strip().splitlines()[0]}",
                  file=sys.stderr)
            return 1
        raise


def _read_password(args) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise _UsageError("no password on stdin")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise _UsageError("no terminal to prompt for the password: use --password-stdin")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise _UsageError("the passwords differ")
    return first


def _session(engine):
    from sqlalchemy.orm import Session

    return Session(engine)


# -- commands -------------------------------------------------------------------------


def _migrate(args) -> int:
    def body(engine, url):
        from callcenter.records.db import current_revision

        print(f"{_shown(url)}: schema at revision {current_revision(url)}")

    return _run(args, body)


def _config_pools(args) -> list[str]:
    """The pool names of the config (``--config``, $CALLCENTER_CONFIG or the default file)."""
    from callcenter.config import ConfigError, load_config

    path = args.config or os.environ.get("CALLCENTER_CONFIG", "deploy/callcenter.yaml")
    try:
        return [p.name for p in load_config(path).pools]
    except ConfigError as exc:
        first = exc.issues[0] if exc.issues else ""
        raise _UsageError(f"cannot check --pool against {path}: {first}; give --config FILE") from None


def _agents_add(args) -> int:
    def body(engine, url):
        skills = accounts.parse_skills(args.skills)
        known_pools = _config_pools(args)
        password = None if args.no_password else _read_password(args)
        with _session(engine) as s, s.begin():
            acct = accounts.add_agent(s, args.agent_id, pool=args.pool, name=args.name, endpoint=args.endpoint,
                                      skills=skills, password=password, enabled=not args.disabled,
                                      known_pools=known_pools)
        print(f"added agent {acct.id} (pool {acct.pool}, endpoint {acct.endpoint or '-'}"
              f"{', disabled' if not acct.enabled else ''}{', no password' if not acct.has_password else ''})")

    return _run(args, body)


def _agents_list(args) -> int:
    def body(engine, url):
        with _session(engine) as s:
            rows = accounts.list_agents(s, args.pool)
        if args.json:
            for a in rows:
                print(json.dumps({"id": a.id, "name": a.name, "pool": a.pool, "skills": a.skills,
                                  "endpoint": a.endpoint, "enabled": a.enabled, "has_password": a.has_password,
                                  "created": a.created.isoformat()}, ensure_ascii=False))
            return
        print(f"{'ID':<16} {'POOL':<16} {'ENABLED':<8} {'ENDPOINT':<28} {'SKILLS':<24} NAME")
        for a in rows:
            skills = ",".join(f"{k}={v}" for k, v in sorted(a.skills.items()))
            print(f"{a.id:<16} {a.pool:<16} {'yes' if a.enabled else 'no':<8} {a.endpoint or '-':<28} "
                  f"{skills or '-':<24} {a.name}")
        print(f"{len(rows)} agent(s)")

    return _run(args, body)


def _agents_enable(args) -> int:
    def body(engine, url):
        with _session(engine) as s, s.begin():
            acct = accounts.set_enabled(s, args.agent_id, args.enabled)
        print(f"agent {acct.id} {'enabled' if acct.enabled else 'disabled'}")

    return _run(args, body)


def _agents_set_password(args) -> int:
    def body(engine, url):
        password = _read_password(args)
        with _session(engine) as s, s.begin():
            accounts.set_password(s, args.agent_id, password)
        print(f"password of agent {args.agent_id} set")

    return _run(args, body)


def parse_when(text: str | None, zone=UTC) -> datetime | None:
    """ISO date or date-time -> naive UTC (as stored); without an offset it is a time in ``zone``."""
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise _UsageError(f"{text!r}: expected an ISO date or date-time like 2026-11-28 or "
                          "2026-11-28T08:00+08:00") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone)
    return dt.astimezone(UTC).replace(tzinfo=None)


def _cdr_export(args) -> int:
    from callcenter.records.export import SUPERVISOR_COLUMNS, UnknownZone, display_zone, supervisor_row
    from callcenter.records.queries import CDR_COLUMNS, agent_names, cdr_rows, write_csv

    def body(engine, url):
        try:
            zone = display_zone(args.zone)
        except UnknownZone as exc:
            raise _UsageError(f"--zone: {exc}") from None
        start, end = parse_when(args.start, zone), parse_when(args.end, zone)
        if start and end and end <= start:
            raise _UsageError("--to must be after --from")
        with _session(engine) as s:
            rows = cdr_rows(s, start, end)
            if args.raw:
                columns = CDR_COLUMNS
            else:
                names = agent_names(s)
                rows = (supervisor_row(r, zone, names) for r in rows)
                columns = SUPERVISOR_COLUMNS
            # Excel opens a CSV as UTF-8 only when it starts with a BOM; it expects CRLF line ends.
            encoding, ends = ("utf-8-sig", "\r\n") if args.excel else ("utf-8", "\n")
            if args.output == "-":
                out = sys.stdout
                if args.excel:
                    out.write("\ufeff")
                n = write_csv(rows, out, columns, ends)
            else:
                try:
                    f = open(args.output, "w", encoding=encoding, newline="")  # noqa: SIM115 - closed below
                except OSError as exc:
                    raise _UsageError(f"cannot write {args.output}: {exc.strerror or exc}; give a writable "
                                      "file in an existing folder (-o FILE), or -o - for stdout") from None
                with f:
                    n = write_csv(rows, f, columns, ends)
        print(f"exported {n} call record(s)", file=sys.stderr)

    return _run(args, body)


def main(argv=None) -> int:  # python -m callcenter.records.cli (without the main CLI)
    parser = argparse.ArgumentParser(prog="callcenter")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
