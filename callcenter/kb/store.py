"""The knowledge base in SQL: articles, versions, roles, the full-text index (blocking I/O).

Every call here blocks on the database: on the reactor, run them in a thread
(callcenter.kb.service does; the seat server runs ``search`` in its pool).
Writes keep the index in the same transaction as the article, so a search
never sees an article without its words or words without their article.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, bindparam, delete, func, insert, select, text, update

from callcenter.records.models import Article, ArticleVersion, AuditLog, KbFeedback, KbRole

from . import model as m
from .text import Query, fts5_match, index_text, parse_query, pg_tsquery, snippet

__all__ = ["KbStore", "reindex_all", "index_article", "index_articles", "is_index_table"]

# Column weights of the ranking: a word in the title counts most, then tags, then the body.
W_TITLE, W_TAGS, W_BODY = 6.0, 3.0, 1.0
MAX_LIMIT = 50
# A word found in more than this share of the articles is left out of the query: its IDF is near
# zero, so it barely moves the ranking, but BM25 would have to score every article holding it.
COMMON_SHARE = 0.05
COMMON_MIN = 500  # ...and never below this many articles (a small knowledge base keeps every word)


def prune_common(q: Query, doc_freq: dict[str, int], total: int) -> Query:
    """``q`` without its words found in most articles (pure).  When every word is that common,
    the rarest one is kept, so a query never becomes empty because of this."""
    cap = max(COMMON_MIN, int(total * COMMON_SHARE))
    groups = tuple(g2 for g in q.groups if (g2 := tuple(w for w in g if doc_freq.get(w, 0) <= cap)))
    if groups:
        return Query(q.text, groups)
    present = [w for g in q.groups for w in g if doc_freq.get(w, 0) > 0]
    return Query(q.text, ((min(present, key=lambda w: doc_freq[w]),),) if present else q.groups)


def is_index_table(name: str) -> bool:
    """The full-text index's tables (FTS5 makes kb_fts_data, kb_fts_idx...): made by the migration
    with raw SQL, not in the models, so Alembic's autogenerate must leave them alone."""
    return name == "kb_index" or name == "kb_fts" or name.startswith("kb_fts_")


def _index_rows(rows: list[tuple[int, str, str, str]]) -> list[dict]:
    return [{"id": aid, "t": index_text(t), "g": index_text(g.replace(",", " ")), "b": index_text(b)}
            for aid, t, g, b in rows]


def index_articles(conn: Connection, rows: list[tuple[int, str, str, str]]) -> None:
    """(Re)write the index rows of articles given as (id, title, tags, body)."""
    if not rows:
        return
    params = _index_rows(rows)
    if conn.dialect.name == "sqlite":
        conn.execute(text("DELETE FROM kb_fts WHERE rowid = :id"), [{"id": p["id"]} for p in params])
        conn.execute(text("INSERT INTO kb_fts(rowid, title, tags, body) VALUES (:id, :t, :g, :b)"), params)
    else:
        conn.execute(text(
            "INSERT INTO kb_index(article_id, doc) VALUES (:id, setweight(to_tsvector('simple', :t), 'A')"
            " || setweight(to_tsvector('simple', :g), 'B') || setweight(to_tsvector('simple', :b), 'D'))"
            " ON CONFLICT (article_id) DO UPDATE SET doc = EXCLUDED.doc"), params)


def index_article(conn: Connection, article_id: int, title: str, tags: str, body: str) -> None:
    index_articles(conn, [(article_id, title, tags, body)])


def reindex_all(conn: Connection) -> int:
    """Index every article (migration, or after changing the dictionary)."""
    rows = conn.execute(text("SELECT id, title, tags, body FROM articles")).all()
    for i in range(0, len(rows), 500):
        index_articles(conn, [(r.id, r.title or "", r.tags or "", r.body or "") for r in rows[i:i + 500]])
    return len(rows)


def _row_dict(a: Any) -> dict:
    def iso(d):  # raw SQL on SQLite returns the stored text
        return (d if isinstance(d, str) else d.isoformat()).replace(" ", "T") if d else None

    return {"id": a.id, "key": a.key, "title": a.title, "body": a.body, "category": a.category,
            "tags": [t for t in (a.tags or "").replace(",", " ").split() if t], "org": a.org, "region": a.region,
            "effective_from": iso(a.effective_from), "effective_until": iso(a.effective_until),
            "status": a.status, "version": a.version, "updated": iso(a.updated), "updated_by": a.updated_by}


class KbStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    # -- reading -----------------------------------------------------------------
    def search(self, query: str, limit: int = 10, now: datetime | None = None, *, everything: bool = False,
               org: str | None = None) -> list[dict]:
        """Best articles for ``query``; only published ones in effect at ``now`` unless ``everything``."""
        from callcenter.records.db import utcnow

        now = now or utcnow()
        limit = max(1, min(int(limit), MAX_LIMIT))
        q = parse_query(query)
        conds, params = [], {"now": now, "limit": limit}
        if not everything:
            conds.append("a.status = 'published' AND (a.effective_from IS NULL OR a.effective_from <= :now)"
                         " AND (a.effective_until IS NULL OR a.effective_until > :now)")
        if org:
            conds.append("a.org = :org")
            params["org"] = org
        where = "".join(" AND " + c for c in conds)
        cols = ("a.id, a.key, a.title, a.body, a.tags, a.category, a.org, a.region, a.effective_from,"
                " a.effective_until, a.status, a.version, a.updated, a.updated_by")
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                words = sorted({w for g in q.groups for w in g})
                if words:
                    df = dict(conn.execute(text("SELECT term, doc FROM kb_fts_vocab WHERE term IN :w")
                                           .bindparams(bindparam("w", expanding=True)), {"w": words}).all())
                    total = conn.execute(text("SELECT max(id) FROM articles")).scalar() or 0
                    q_run = prune_common(q, df, total)
                match = fts5_match(q_run if words else q)
                if not match:
                    return []
                params["match"] = match
                # rank inside FTS5 first and look only the best candidates up in ``articles``
                # (joining first would fetch every matching article); bm25(): lower is better
                # (https://sqlite.org/fts5.html#the_bm25_function).  Too few candidates in effect:
                # widen, at most three times, the last time without a limit.
                sql = (f"SELECT {cols}, f.score FROM (SELECT rowid, bm25(kb_fts, {W_TITLE}, {W_TAGS}, {W_BODY})"
                       " AS score FROM kb_fts WHERE kb_fts MATCH :match ORDER BY score LIMIT :cand) f"
                       f" JOIN articles a ON a.id = f.rowid WHERE 1 = 1{where} ORDER BY f.score, a.id LIMIT :limit")
                stmt = text(sql)
                if not everything:
                    stmt = stmt.bindparams(bindparam("now", type_=DateTime()))
                else:
                    params.pop("now")
                for cand in (max(50, limit * 5), max(1000, limit * 100), -1):
                    rows = conn.execute(stmt, {**params, "cand": cand}).all()
                    if len(rows) >= limit or cand < 0:
                        break
                    n = conn.execute(text("SELECT count(*) FROM (SELECT rowid FROM kb_fts WHERE kb_fts MATCH :match"
                                          " LIMIT :cand)"), {"match": match, "cand": cand}).scalar()
                    if n < cand:  # every match was a candidate already
                        break
            else:
                tsq = pg_tsquery(q)
                if not tsq:
                    return []
                params["tsq"] = tsq
                # weights {D, C, B, A} (https://www.postgresql.org/docs/current/textsearch-controls.html)
                sql = (f"SELECT {cols}, -ts_rank('{{{W_BODY / W_TITLE}, 0.2, {W_TAGS / W_TITLE}, 1.0}}',"
                       " k.doc, to_tsquery('simple', :tsq), 1) AS score FROM kb_index k"
                       f" JOIN articles a ON a.id = k.article_id WHERE k.doc @@ to_tsquery('simple', :tsq){where}"
                       " ORDER BY score, a.id LIMIT :limit")
                # typed: SQLite stores datetimes as text, and the comparison must use the same format
                stmt = text(sql)
                if not everything:
                    stmt = stmt.bindparams(bindparam("now", type_=DateTime()))
                else:
                    params.pop("now")
                rows = conn.execute(stmt, params).all()
        out = []
        for r in rows:
            d = _row_dict(r)
            d["snippet"] = snippet(r.body, q)
            d["score"] = round(-float(r.score), 4)
            del d["body"]
            out.append(d)
        return out

    def optimize(self) -> None:
        """Merge the full-text index's segments (after a bulk load: searches get faster)."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.execute(text("INSERT INTO kb_fts(kb_fts) VALUES ('optimize')"))
            else:
                conn.execute(text("ANALYZE kb_index"))

    def get(self, article_id: int) -> dict:
        with self.engine.connect() as conn:
            a = conn.execute(select(Article).where(Article.id == article_id)).first()
        if a is None:
            raise m.NotFound(f"no article {article_id}")
        return _row_dict(a)

    def get_by_key(self, key: str) -> dict | None:
        with self.engine.connect() as conn:
            a = conn.execute(select(Article).where(Article.key == key)).first()
        return _row_dict(a) if a is not None else None

    def list(self, org: str | None = None, status: str | None = None, offset: int = 0, limit: int = 100) -> list[dict]:
        stmt = select(Article).order_by(Article.id)
        if org:
            stmt = stmt.where(Article.org == org)
        if status:
            stmt = stmt.where(Article.status == status)
        stmt = stmt.offset(max(0, offset)).limit(max(1, min(limit, 1000)))
        with self.engine.connect() as conn:
            return [_row_dict(a) for a in conn.execute(stmt).all()]

    def history(self, article_id: int) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(ArticleVersion).where(ArticleVersion.article_id == article_id)
                                .order_by(ArticleVersion.version)).all()
        return [{"version": v.version, "who": v.who, "why": v.why, "at": v.at.isoformat(), "changed": v.changed,
                 "snapshot": v.snapshot} for v in rows]

    def version(self, article_id: int, version: int) -> dict:
        for v in self.history(article_id):
            if v["version"] == version:
                return v
        raise m.NotFound(f"article {article_id} has no version {version}")

    # -- roles -----------------------------------------------------------------------
    def roles_of(self, who: str) -> list[tuple[str, str]]:
        with self.engine.connect() as conn:
            return [(r.org, r.role) for r in conn.execute(select(KbRole.org, KbRole.role).where(KbRole.who == who))]

    def grant(self, who: str, org: str, role: str) -> None:
        if role not in m.ROLES:
            raise m.BadArticle(f"role must be one of {', '.join(m.ROLES)}")
        with self.engine.begin() as conn:
            conn.execute(delete(KbRole).where(KbRole.who == who, KbRole.org == org))
            conn.execute(insert(KbRole).values(who=who, org=org, role=role))

    def revoke(self, who: str, org: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(KbRole).where(KbRole.who == who, KbRole.org == org))

    def _check(self, who: str, org: str, action: str, trusted: bool) -> None:
        if not trusted and not m.allowed(self.roles_of(who), org, action):
            raise m.Forbidden(f"{who} may not {action} articles of {org}")

    # -- writing ---------------------------------------------------------------------
    def create(self, fields: m.ArticleFields | dict, who: str, why: str = "", *, publish: bool = False,
               now: datetime | None = None, trusted: bool = False) -> dict:
        """A new article (draft unless ``publish``), version 1.  ``trusted``: skip the role check
        (the operator's own CLI, seeding)."""
        return self.get(self.create_many([fields], who, why, publish=publish, now=now, trusted=trusted)[0])

    def create_many(self, items: list, who: str, why: str = "", *, publish: bool = False,
                    now: datetime | None = None, trusted: bool = False) -> list[int]:
        """Several new articles in one transaction (import, seeding): all or none."""
        from callcenter.records.db import utcnow

        fs = [f if isinstance(f, m.ArticleFields) else m.ArticleFields.model_validate(f) for f in items]
        roles = None if trusted else self.roles_of(who)
        for f in fs:
            if roles is not None and not m.allowed(roles, f.org, "publish" if publish else "create"):
                raise m.Forbidden(f"{who} may not {'publish' if publish else 'create'} articles of {f.org}")
        keys = [f.key for f in fs if f.key]
        if len(keys) != len(set(keys)):
            raise m.Conflict("the same key appears twice")
        now = now or utcnow()
        status = m.PUBLISHED if publish else m.DRAFT
        ids = []
        with self.engine.begin() as conn:
            for i in range(0, len(keys), 500):
                taken = conn.execute(select(Article.key).where(Article.key.in_(keys[i:i + 500]))).scalars().all()
                if taken:
                    raise m.Conflict(f"an article with key {taken[0]!r} exists")
            art_insert, ver_insert = insert(Article), insert(ArticleVersion)  # one compiled statement each
            for f in fs:
                values = f.model_dump()
                values["tags"] = " ".join(f.tags)
                values.update(status=status, version=1, updated=now, updated_by=who)
                aid = conn.execute(art_insert, values).inserted_primary_key[0]
                if not f.key:  # every article gets a stable key, so an export imports back onto it
                    key, n = f"kb-{aid}", 1
                    while conn.execute(select(Article.id).where(Article.key == key)).first():  # an imported "kb-7"
                        key, n = f"kb-{aid}-{n}", n + 1
                    f = f.model_copy(update={"key": key})
                    conn.execute(update(Article).where(Article.id == aid).values(key=f.key))
                snap = m.snapshot(f, status)
                conn.execute(ver_insert, {"article_id": aid, "version": 1, "who": who, "why": why[:500], "at": now,
                                          "changed": m.changed_fields(None, snap), "snapshot": snap})
                ids.append(aid)
            index_articles(conn, [(aid, f.title, " ".join(f.tags), f.body) for aid, f in zip(ids, fs, strict=True)])
            conn.execute(insert(AuditLog).values(who=who[:200], what="kb.publish" if publish else "kb.create", at=now,
                                                 details={"articles": ids[:100], "count": len(ids), "why": why[:500]}))
        return ids

    def _change(self, article_id: int, who: str, why: str, action: str, now: datetime | None, trusted: bool,
                fields: dict | None = None, expected_version: int | None = None) -> dict:
        from callcenter.records.db import utcnow

        now = now or utcnow()
        with self.engine.begin() as conn:
            a = conn.execute(select(Article).where(Article.id == article_id)).first()
            if a is None:
                raise m.NotFound(f"no article {article_id}")
            if expected_version is not None and a.version != expected_version:
                raise m.Conflict(f"article {article_id} is at version {a.version}, not {expected_version}:"
                                 " someone changed it; reload and edit again")
            cur = _row_dict(a)
            old_fields = {k: cur[k] for k in m.FIELDS}
            new = m.ArticleFields.model_validate({**old_fields, **(fields or {})})
            # an edit may move an article to another organisation: it needs the right on both
            self._check(who, a.org, action, trusted)
            if new.org != a.org:
                self._check(who, new.org, action, trusted)
            status = m.check_transition(a.status, action)
            old_snap = m.snapshot(m.ArticleFields.model_validate(old_fields), a.status)
            snap = m.snapshot(new, status)
            changed = m.changed_fields(old_snap, snap)
            if not changed:
                return cur
            if new.key != a.key and new.key and conn.execute(
                    select(Article.id).where(Article.key == new.key, Article.id != article_id)).first():
                raise m.Conflict(f"an article with key {new.key!r} exists")
            values = new.model_dump()
            values["tags"] = " ".join(new.tags)
            version = a.version + 1
            res = conn.execute(update(Article).where(Article.id == article_id, Article.version == a.version)
                               .values(**values, status=status, version=version, updated=now, updated_by=who))
            if res.rowcount != 1:
                raise m.Conflict(f"article {article_id} changed while saving; reload and edit again")
            conn.execute(insert(ArticleVersion).values(article_id=article_id, version=version, who=who,
                                                       why=why[:500], at=now, changed=changed, snapshot=snap))
            conn.execute(insert(AuditLog).values(who=who[:200], what=f"kb.{action}", at=now, details={
                "article": article_id, "version": version, "changed": changed, "why": why[:500]}))
            if {"title", "tags", "body"} & set(changed):
                index_article(conn, article_id, new.title, " ".join(new.tags), new.body)
        return self.get(article_id)

    def edit(self, article_id: int, fields: dict, who: str, why: str = "", *, expected_version: int | None = None,
             now: datetime | None = None, trusted: bool = False) -> dict:
        return self._change(article_id, who, why, "edit", now, trusted, fields, expected_version)

    def publish(self, article_id: int, who: str, why: str = "", *, now: datetime | None = None,
                trusted: bool = False) -> dict:
        return self._change(article_id, who, why, "publish", now, trusted)

    def retire(self, article_id: int, who: str, why: str = "", *, now: datetime | None = None,
               trusted: bool = False) -> dict:
        return self._change(article_id, who, why, "retire", now, trusted)

    def import_articles(self, items: list[dict], who: str, why: str = "", *, now: datetime | None = None,
                        trusted: bool = False) -> dict:
        """Create or update articles by ``key``; each item's ``status`` (default draft) is applied.

        Every item is validated before anything is written, so a bad file changes nothing.
        """
        parsed: list[tuple[m.ArticleFields, str]] = []
        for i, item in enumerate(items):
            item = dict(item)
            status = item.pop("status", None) or m.DRAFT
            if status not in m.STATUSES:
                raise m.BadArticle(f"article {i + 1}: status must be one of {', '.join(m.STATUSES)}")
            try:
                f = m.ArticleFields.model_validate(item)
            except ValueError as exc:
                raise m.BadArticle(f"article {i + 1} ({item.get('key') or item.get('title')!r}): {exc}") from None
            if not f.key:
                raise m.BadArticle(f"article {i + 1}: import needs a key to match articles on")
            parsed.append((f, status))
        counts = {"created": 0, "updated": 0, "unchanged": 0}
        new = [(f, st) for f, st in parsed if self.get_by_key(f.key) is None]
        for st in m.STATUSES:
            batch = [f for f, s2 in new if s2 == st]
            if batch:
                ids = self.create_many(batch, who, why, publish=st != m.DRAFT, now=now, trusted=trusted)
                if st == m.RETIRED:
                    for aid in ids:
                        self.retire(aid, who, why, now=now, trusted=trusted)
                counts["created"] += len(batch)
        for f, st in parsed:
            if any(f is g for g, _ in new):
                continue
            cur = self.get_by_key(f.key)
            after = self.edit(cur["id"], f.model_dump(), who, why, now=now, trusted=trusted) if cur["status"] != m.RETIRED else cur
            if st != after["status"] and st != m.DRAFT:
                after = (self.publish if st == m.PUBLISHED else self.retire)(cur["id"], who, why, now=now, trusted=trusted)
            counts["updated" if after["version"] != cur["version"] else "unchanged"] += 1
        return counts

    def changes_since(self, after_id: int, limit: int = 500) -> list[dict]:
        """Versions saved after version-row ``after_id``, oldest first (what the seats must hear of)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(ArticleVersion.id, ArticleVersion.article_id, ArticleVersion.version,
                                       ArticleVersion.who, ArticleVersion.why, ArticleVersion.at,
                                       ArticleVersion.changed, ArticleVersion.snapshot)
                                .where(ArticleVersion.id > after_id).order_by(ArticleVersion.id).limit(limit)).all()
        return [{"seq": r.id, "article_id": r.article_id, "version": r.version, "who": r.who, "why": r.why,
                 "at": r.at, "changed": r.changed, "title": r.snapshot.get("title", ""),
                 "status": r.snapshot.get("status", ""), "effective_from": r.snapshot.get("effective_from"),
                 "key": r.snapshot.get("key"), "org": r.snapshot.get("org", "")}
                for r in rows]

    def last_change(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(ArticleVersion.id))).scalar() or 0

    def feedback(self, article_id: int, helpful: bool, now: datetime | None = None) -> dict:
        from callcenter.records.db import utcnow

        with self.engine.begin() as conn:
            if conn.execute(select(Article.id).where(Article.id == article_id)).first() is None:
                raise m.NotFound(f"no article {article_id}")
            conn.execute(insert(KbFeedback).values(article_id=article_id, helpful=bool(helpful), at=now or utcnow()))
            rows = conn.execute(select(KbFeedback.helpful, func.count()).where(KbFeedback.article_id == article_id)
                                .group_by(KbFeedback.helpful)).all()
        counts = {bool(h): n for h, n in rows}
        return {"helpful": counts.get(True, 0), "not_helpful": counts.get(False, 0)}
