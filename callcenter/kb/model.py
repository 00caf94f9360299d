"""The knowledge-base article as a value: fields, bounds, status rules, roles, differences.

Pure code.  callcenter.kb.store keeps these in SQL; the admin API, the CLI and
import/export all validate through ``ArticleFields`` so a bad article gets one
clear error wherever it comes from.
"""

from __future__ import annotations

import difflib
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

__all__ = ["ArticleFields", "STATUSES", "KbError", "NotFound", "Forbidden", "Conflict", "BadArticle",
           "check_transition", "changed_fields", "in_effect", "allowed", "text_diff", "ROLES", "FIELDS"]

DRAFT, PUBLISHED, RETIRED = "draft", "published", "retired"
STATUSES = (DRAFT, PUBLISHED, RETIRED)
# editor: create and edit its organisation's articles; publisher: also publish and retire them
ROLES = ("editor", "publisher")
_ACTION_ROLE = {"create": "editor", "edit": "editor", "publish": "publisher", "retire": "publisher"}
MAX_BODY_CHARS = 20000

_Key = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
_Short = Annotated[str, StringConstraints(max_length=64, strip_whitespace=True)]


class KbError(Exception):
    """Base of the knowledge base's errors (each maps to one HTTP status / CLI message)."""


class NotFound(KbError):
    pass


class Forbidden(KbError):
    pass


class Conflict(KbError):
    """The article changed since the editor read it, or the status change is not allowed."""


class BadArticle(KbError):
    pass


class ArticleFields(BaseModel):
    """What an editor writes.  Bounded: every string has a maximum length."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    key: _Key | None = None
    title: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    body: Annotated[str, StringConstraints(max_length=MAX_BODY_CHARS)] = ""
    category: _Short = ""
    tags: Annotated[list[Annotated[str, StringConstraints(min_length=1, max_length=40)]], Field(max_length=20)] = []
    org: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    region: _Short = ""
    effective_from: datetime | None = None
    effective_until: datetime | None = None

    @field_validator("tags", mode="before")
    @classmethod
    def _split_tags(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [t for t in re.split(r"[\s,，、]+", v) if t]
        return v

    @field_validator("effective_from", "effective_until")
    @classmethod
    def _naive_utc(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is not None:
            from datetime import UTC

            v = v.astimezone(UTC).replace(tzinfo=None)
        return v

    @model_validator(mode="after")
    def _dates_in_order(self) -> ArticleFields:
        if self.effective_from and self.effective_until and self.effective_until <= self.effective_from:
            raise ValueError("effective_until must be after effective_from")
        return self


FIELDS = tuple(ArticleFields.model_fields)


def snapshot(fields: ArticleFields | dict, status: str) -> dict:
    """A JSON-able copy of every field, as stored in the version history."""
    d = fields.model_dump() if isinstance(fields, ArticleFields) else dict(fields)
    out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in d.items() if k in FIELDS}
    out["status"] = status
    return out


def changed_fields(old: dict | None, new: dict) -> list[str]:
    if old is None:
        return sorted(new)
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def check_transition(status: str, action: str) -> str:
    """The status after ``action`` (edit, publish, retire) from ``status``; Conflict when not allowed."""
    if action == "edit":
        if status == RETIRED:
            raise Conflict("a retired article cannot be edited; create a new one")
        return status
    if action == "publish":
        if status == RETIRED:
            raise Conflict("a retired article cannot be published again; create a new one")
        return PUBLISHED
    if action == "retire":
        if status == RETIRED:
            raise Conflict("the article is already retired")
        return RETIRED
    raise ValueError(f"unknown action {action!r}")


def in_effect(status: str, effective_from: datetime | None, effective_until: datetime | None, now: datetime) -> bool:
    return (status == PUBLISHED and (effective_from is None or effective_from <= now)
            and (effective_until is None or now < effective_until))


def allowed(roles: list[tuple[str, str]], org: str, action: str) -> bool:
    """May someone with ``roles`` [(org, role)] do ``action`` to an article of ``org``?
    Organisation ``*`` is every organisation (the province's knowledge-base office)."""
    need = _ACTION_ROLE[action]
    for r_org, role in roles:
        if r_org in (org, "*") and (role == need or role == "publisher"):
            return True
    return False


def text_diff(old: str, new: str, context: int = 1, max_lines: int = 40) -> list[str]:
    """Line differences of two bodies, ``-``/``+`` prefixed, bounded to ``max_lines``."""
    lines = [ln for ln in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=context)
             if not ln.startswith(("---", "+++", "@@"))]
    return lines[:max_lines] + ([f"… {len(lines) - max_lines} more lines"] if len(lines) > max_lines else [])
