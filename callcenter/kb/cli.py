"""``callcenter kb``: manage the shared knowledge base from the operator's shell.

    callcenter kb create --org ORG --title T [--body-file F] [--tags ...] [--publish] --as WHO --why WHY
    callcenter kb edit ID [--title ...] [--body-file F] ... --as WHO --why WHY [--expect-version N]
    callcenter kb publish|retire ID --as WHO --why WHY
    callcenter kb show ID | history ID | list [--org ORG] [--status S] | search QUERY [--all]
    callcenter kb import PATH (folder of .md, .csv, .json) --as WHO --why WHY
    callcenter kb export PATH (folder, .csv, .json) [--org ORG] [--status S]
    callcenter kb grant WHO ORG editor|publisher | revoke WHO ORG | seed

The database is found as for ``callcenter migrate`` (--database, env, config).
The shell user is the operator: ``--as`` is recorded in the version history and
the audit log, and with ``--check-roles`` the per-organisation roles of ``--as``
are enforced as the admin API enforces them for its tokens.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["register"]


def register(subparsers) -> None:
    kb = subparsers.add_parser("kb", help="the shared knowledge base: create, edit, publish, retire, import, export")
    sub = kb.add_subparsers(dest="kb_command", metavar="ACTION")
    sub.required = True

    def common(p, who=False):
        p.add_argument("--database", metavar="URL", help="SQLAlchemy URL (sqlite:///file, postgresql://...)")
        p.add_argument("--config", default=None, help="config file to read acd.database_url/state_dir from")
        if who:
            p.add_argument("--as", dest="who", required=True, help="who makes the change (kept in the history)")
            p.add_argument("--why", default="", help="why (kept in the history)")
            p.add_argument("--check-roles", action="store_true", help="enforce --as's per-organisation roles")
        return p

    def fields(p, create: bool):
        p.add_argument("--title", required=create)
        p.add_argument("--org", required=create, help="owning organisation, e.g. 西安市12345, 陕西12333")
        p.add_argument("--key", help="stable id for import/export")
        p.add_argument("--body-file", help="Markdown body from this file ('-': stdin)")
        p.add_argument("--category")
        p.add_argument("--tags", help="space- or comma-separated")
        p.add_argument("--region")
        p.add_argument("--effective-from", help="ISO date/time (UTC)")
        p.add_argument("--effective-until", help="ISO date/time (UTC)")

    p = common(sub.add_parser("create", help="create an article (a draft unless --publish)"), who=True)
    fields(p, True)
    p.add_argument("--publish", action="store_true")
    p.set_defaults(func=_create)
    p = common(sub.add_parser("edit", help="change fields of an article"), who=True)
    p.add_argument("id", type=int)
    fields(p, False)
    p.add_argument("--expect-version", type=int, help="refuse if someone changed the article since this version")
    p.set_defaults(func=_edit)
    for name in ("publish", "retire"):
        p = common(sub.add_parser(name, help=f"{name} an article"), who=True)
        p.add_argument("id", type=int)
        p.set_defaults(func=_status, action=name)
    for name, fn in (("show", _show), ("history", _history)):
        p = common(sub.add_parser(name, help=f"{name} of an article (JSON)"))
        p.add_argument("id", type=int)
        p.set_defaults(func=fn)
    p = common(sub.add_parser("list", help="list articles (JSON lines)"))
    p.add_argument("--org")
    p.add_argument("--status", choices=("draft", "published", "retired"))
    p.set_defaults(func=_list)
    p = common(sub.add_parser("search", help="search as the seats do"))
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--all", action="store_true", help="drafts, retired and not-in-effect articles too")
    p.set_defaults(func=_search)
    p = common(sub.add_parser("import", help="create or update articles by key from a .md folder, .csv or .json"),
               who=True)
    p.add_argument("path")
    p.set_defaults(func=_import)
    p = common(sub.add_parser("export", help="write articles to a folder of .md files, a .csv or a .json"))
    p.add_argument("path")
    p.add_argument("--org")
    p.add_argument("--status", choices=("draft", "published", "retired"))
    p.set_defaults(func=_export)
    p = common(sub.add_parser("grant", help="give WHO a role (editor, publisher) for ORG ('*': every one)"))
    p.add_argument("who")
    p.add_argument("org")
    p.add_argument("role", choices=("editor", "publisher"))
    p.set_defaults(func=_grant)
    p = common(sub.add_parser("revoke", help="take WHO's role for ORG away"))
    p.add_argument("who")
    p.add_argument("org")
    p.set_defaults(func=_revoke)
    p = common(sub.add_parser("seed", help="load the seed corpus (211 made-up articles for tests and demos)"))
    p.set_defaults(func=_seed)


def _run(args, body) -> int:
    from callcenter.records import cli as rcli

    from . import model as m
    from .store import KbStore

    def inner(engine, url):
        return body(KbStore(engine))

    try:
        return rcli._run(args, inner)
    except (m.KbError, ValueError, OSError) as exc:
        print(f"callcenter kb: {exc}", file=sys.stderr)
        return 1


def _print(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=1, default=str))


def _fields(args) -> dict:
    out = {}
    for k in ("title", "org", "key", "category", "tags", "region", "effective_from", "effective_until"):
        v = getattr(args, k, None)
        if v is not None:
            out[k] = v
    if args.body_file:
        out["body"] = sys.stdin.read() if args.body_file == "-" else Path(args.body_file).read_text(encoding="utf-8")
    return out


def _create(args) -> int:
    return _run(args, lambda kb: _print(kb.create(_fields(args), args.who, args.why, publish=args.publish,
                                                  trusted=not args.check_roles)))


def _edit(args) -> int:
    return _run(args, lambda kb: _print(kb.edit(args.id, _fields(args), args.who, args.why,
                                                expected_version=args.expect_version, trusted=not args.check_roles)))


def _status(args) -> int:
    return _run(args, lambda kb: _print(getattr(kb, args.action)(args.id, args.who, args.why,
                                                                 trusted=not args.check_roles)))


def _show(args) -> int:
    return _run(args, lambda kb: _print(kb.get(args.id)))


def _history(args) -> int:
    return _run(args, lambda kb: _print(kb.history(args.id)))


def _list(args) -> int:
    def body(kb):
        offset = 0
        while True:
            page = kb.list(org=args.org, status=args.status, offset=offset, limit=1000)
            for a in page:
                print(json.dumps({k: a[k] for k in ("id", "key", "title", "org", "status", "version")},
                                 ensure_ascii=False))
            if len(page) < 1000:
                return 0
            offset += len(page)
    return _run(args, body)


def _search(args) -> int:
    def body(kb):
        for h in kb.search(args.query, args.limit, everything=args.all):
            print(f"{h['id']:>6}  {h['title']}  [{h['org']}; {h['status']}]\n        {h['snippet']}")
    return _run(args, body)


def _import(args) -> int:
    from .transfer import read_path

    def body(kb):
        counts = kb.import_articles(read_path(args.path), args.who, args.why, trusted=not args.check_roles)
        print(f"imported {args.path}: {counts['created']} created, {counts['updated']} updated,"
              f" {counts['unchanged']} unchanged")
    return _run(args, body)


def _export(args) -> int:
    from .transfer import write_path

    def body(kb):
        arts, offset = [], 0
        while True:
            page = kb.list(org=args.org, status=args.status, offset=offset, limit=1000)
            arts += page
            if len(page) < 1000:
                break
            offset += len(page)
        print(f"exported {write_path(args.path, arts)} articles to {args.path}")
    return _run(args, body)


def _grant(args) -> int:
    return _run(args, lambda kb: (kb.grant(args.who, args.org, args.role),
                                  print(f"{args.who} is {args.role} of {args.org}"))[-1])


def _revoke(args) -> int:
    return _run(args, lambda kb: (kb.revoke(args.who, args.org), print(f"{args.who} has no role in {args.org}"))[-1])


def _seed(args) -> int:
    from .seed import corpus

    def body(kb):
        have = {a["key"] for a in corpus() if kb.get_by_key(a["key"])}
        todo = [a for a in corpus() if a["key"] not in have]
        kb.create_many(todo, "seed", "seed corpus", publish=True, trusted=True)
        print(f"seeded {len(todo)} articles ({len(have)} were there)")
    return _run(args, body)
