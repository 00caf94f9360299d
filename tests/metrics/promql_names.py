"""Pull metric names and label matchers out of PromQL expressions (enough for our rules and panels).

Not a PromQL parser: it strips strings, ranges and label-list clauses, then
takes every identifier that is not a function, keyword or aggregation.  The
tests use it to prove the ACD exports every series a rule or panel reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

IDENT = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group",
    "inf", "nan", "atan2",
}
_SELECTOR = re.compile(rf"({IDENT})?\s*\{{([^}}]*)\}}")
_MATCHER = re.compile(rf'\s*({IDENT})\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')
_CLAUSE = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


@dataclass(frozen=True)
class Matcher:
    metric: str | None
    label: str
    op: str
    value: str


def matchers(expr: str) -> list[Matcher]:
    out = []
    for m in _SELECTOR.finditer(expr):
        for mm in _MATCHER.finditer(m.group(2)):
            out.append(Matcher(m.group(1), mm.group(1), mm.group(2), mm.group(3)))
    return out


def metric_names(expr: str) -> set[str]:
    e = _SELECTOR.sub(lambda m: (m.group(1) or "") + " ", expr)  # drop label matchers (and their strings)
    e = re.sub(r'"(?:[^"\\]|\\.)*"', " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)  # ranges and subqueries
    e = _CLAUSE.sub(" ", e)
    names = set()
    for m in re.finditer(rf"(?<![\w:.]){IDENT}", e):
        ident = m.group(0)
        rest = e[m.end():].lstrip()
        if rest.startswith("(") or ident.lower() in KEYWORDS:
            continue  # a function call or a keyword
        names.add(ident)
    return names
