"""Repeated requests (共性诉求): is a new order the same request as an open or recent one?

Same category, same place (district and street, or the same address), and similar words: the
Dice coefficient of the two texts' token sets (2|A∩B| / (|A|+|B|): kinder than Jaccard to a
short repeat of a longer request).  Tokens are Chinese character bigrams plus
ASCII words, which needs no dictionary; a segmenter (the knowledge base's jieba) can be passed
in instead.  Pure: the caller keeps the index and says what "recent" means.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

__all__ = ["tokens", "similarity"]

_CJK_RUN = re.compile(r"[\u3400-\u9fff]+")
_WORD = re.compile(r"[A-Za-z0-9]+")
MAX_TEXT = 2000  # characters looked at: a summary, not an essay


def tokens(text: str, segment: Callable[[str], Iterable[str]] | None = None) -> frozenset[str]:
    text = text[:MAX_TEXT]
    if segment is not None:
        return frozenset(t for t in segment(text) if t.strip())
    out: set[str] = set()
    for run in _CJK_RUN.findall(text):
        if len(run) == 1:
            out.add(run)
        out.update(run[i:i + 2] for i in range(len(run) - 1))
    out.update(w.lower() for w in _WORD.findall(text))
    return frozenset(out)


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return 2 * len(a & b) / (len(a) + len(b))
