"""Import and export of articles: a Markdown folder, CSV, JSON.

Pure conversions (``to_markdown``/``from_markdown``, ``to_csv``/``from_csv``,
``to_json``/``from_json``) between text and article dicts; ``read_path`` and
``write_path`` do the file I/O.  Every format carries the same fields
(model.FIELDS plus ``status``); an article is matched on ``key`` on import.
Bounded: at most MAX_ARTICLES articles and MAX_FILE_BYTES per file.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

import yaml

from .model import FIELDS, BadArticle

__all__ = ["to_markdown", "from_markdown", "to_csv", "from_csv", "to_json", "from_json", "read_path", "write_path",
           "MAX_ARTICLES"]

MAX_ARTICLES = 100_000
MAX_FILE_BYTES = 64 * 1024 * 1024
COLUMNS = (*FIELDS, "status")


def _out(a: dict) -> dict:
    d = {k: a.get(k) for k in COLUMNS}
    for k in ("effective_from", "effective_until"):
        if isinstance(d[k], datetime):
            d[k] = d[k].isoformat()
    d["tags"] = list(d.get("tags") or [])
    return d


def to_markdown(a: dict) -> str:
    d = _out(a)
    body = d.pop("body") or ""
    meta = {k: v for k, v in d.items() if v not in (None, "", [])}
    return "---\n" + yaml.safe_dump(meta, allow_unicode=True, sort_keys=False) + "---\n\n" + body.rstrip() + "\n"


def from_markdown(text: str, default_key: str | None = None) -> dict:
    if not text.startswith("---\n"):
        raise BadArticle("a Markdown article starts with a '---' front-matter block (title, org, ...)")
    end = text.find("\n---", 4)
    if end < 0:
        raise BadArticle("the front-matter block has no closing '---'")
    meta = yaml.safe_load(text[4:end]) or {}
    if not isinstance(meta, dict):
        raise BadArticle("the front matter must be a mapping of field: value")
    unknown = set(meta) - set(COLUMNS)
    if unknown:
        raise BadArticle(f"unknown front-matter field(s): {', '.join(sorted(map(str, unknown)))}")
    meta["body"] = text[end + 4:].lstrip("\n").rstrip() if len(text) > end + 4 else ""
    if default_key and not meta.get("key"):
        meta["key"] = default_key
    return meta


def to_csv(articles: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS)
    w.writeheader()
    for a in articles:
        d = _out(a)
        d["tags"] = " ".join(d["tags"])
        w.writerow({k: "" if v is None else v for k, v in d.items()})
    return buf.getvalue()


def from_csv(text: str) -> list[dict]:
    csv.field_size_limit(1_000_000)
    reader = csv.DictReader(io.StringIO(text))
    missing = {"title", "org"} - set(reader.fieldnames or [])
    if missing:
        raise BadArticle(f"the CSV needs column(s) {', '.join(sorted(missing))}")
    unknown = set(reader.fieldnames or []) - set(COLUMNS)
    if unknown:
        raise BadArticle(f"unknown CSV column(s): {', '.join(sorted(unknown))}")
    out = []
    for i, row in enumerate(reader):
        if i >= MAX_ARTICLES:
            raise BadArticle(f"more than {MAX_ARTICLES} articles")
        out.append({k: (v if v != "" else None) if k in ("key", "effective_from", "effective_until", "status") else v
                    for k, v in row.items() if k is not None})
    return out


def to_json(articles: list[dict]) -> str:
    return json.dumps({"articles": [_out(a) for a in articles]}, ensure_ascii=False, indent=1)


def from_json(text: str) -> list[dict]:
    data = json.loads(text)
    arts = data.get("articles") if isinstance(data, dict) else data
    if not isinstance(arts, list) or not all(isinstance(a, dict) for a in arts):
        raise BadArticle('JSON import wants {"articles": [{...}, ...]} or a list of articles')
    if len(arts) > MAX_ARTICLES:
        raise BadArticle(f"more than {MAX_ARTICLES} articles")
    return arts


def _read(p: Path) -> str:
    if p.stat().st_size > MAX_FILE_BYTES:
        raise BadArticle(f"{p} is larger than {MAX_FILE_BYTES} bytes")
    return p.read_text(encoding="utf-8-sig")


def read_path(path: str | Path) -> list[dict]:
    """Articles from a folder of ``*.md`` files, a ``.csv`` or a ``.json`` file."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.md"))
        if len(files) > MAX_ARTICLES:
            raise BadArticle(f"more than {MAX_ARTICLES} articles")
        out = []
        for f in files:
            try:
                out.append(from_markdown(_read(f), default_key=f.stem))
            except (BadArticle, yaml.YAMLError) as exc:
                raise BadArticle(f"{f.name}: {exc}") from None
        return out
    if p.suffix.lower() == ".csv":
        return from_csv(_read(p))
    if p.suffix.lower() == ".json":
        try:
            return from_json(_read(p))
        except json.JSONDecodeError as exc:
            raise BadArticle(f"{p}: not valid JSON: {exc}") from None
    raise BadArticle(f"{p}: import a folder of .md files, a .csv or a .json file")


def write_path(path: str | Path, articles: list[dict]) -> int:
    p = Path(path)
    if p.suffix.lower() == ".csv":
        p.write_text(to_csv(articles), encoding="utf-8")
    elif p.suffix.lower() == ".json":
        p.write_text(to_json(articles), encoding="utf-8")
    else:  # a folder of Markdown files named by key (or id)
        p.mkdir(parents=True, exist_ok=True)
        for a in articles:
            (p / f"{a.get('key') or a['id']}.md").write_text(to_markdown(a), encoding="utf-8")
    return len(articles)
