"""Chinese text for the knowledge base: segmentation, synonyms, queries, snippets.

Pure code (no database, no reactor).  Callers ask in their own words
(``发热门诊在哪里``, ``绿码变黄了怎么办``) while answers use official ones
(``发热门诊``, ``健康码``), and Chinese has no spaces between words, so both the
article and the query are cut into words by jieba (its search mode also emits the
shorter words inside a long one: 公积金 -> 公积, 积金, 公积金), with a user
dictionary of hotline terms (data/userdict.txt).  The index stores the words
joined by spaces; a query becomes an OR of its words, each widened to its
synonym group (data/synonyms.txt), so BM25 ranks articles sharing more and
rarer words first instead of requiring every word as LIKE did.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["segment", "index_text", "Query", "parse_query", "fts5_match", "pg_tsquery", "snippet", "plain_text"]

DATA = Path(__file__).with_name("data")
MAX_QUERY_CHARS = 200
MAX_QUERY_WORDS = 12
MAX_ALTERNATIVES = 48  # words in one expanded query, synonyms included

# Words that carry no meaning for retrieval in a caller's question.
STOP_WORDS = frozenset("""
的 了 在 我 你 他 她 它 吗 呢 啊 吧 呀 嘛 是 有 要 想 请问 问 问一下 一下 怎么 怎样 怎么样 什么 啥 哪 能 能不能 可以 可不可以
去 到 和 与 及 或 这个 那个 这 那 我们 你们 他们 现在 还 就 都 也 会 被 给 让 把 个 些 里 上 下 没 没有 不 吗? 对 为 为什么
在哪 在哪里 哪里 哪儿 哪个 怎么办 如何 找 谁 弄 搞 咋 呗 啦 哦 喂 您好 你好 谢谢 麻烦 帮 帮忙 一 请 多久 该 应该 需不需要 得 地 着 过 又 再 跟 家 咱 咱们 如果 可能 知道 告诉
""".split())

_lock = threading.Lock()
_jieba = None


def _tokenizer():
    """jieba's tokenizer with our dictionary, loaded once (about 1 s) and shared by threads."""
    global _jieba
    with _lock:
        if _jieba is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            tok = jieba.Tokenizer()
            tok.initialize()
            tok.load_userdict(str(DATA / "userdict.txt"))
            for group in synonym_groups():
                for word in group:
                    if len(word) > 1 and tok.FREQ.get(word, 0) == 0:
                        tok.add_word(word, freq=500)
            _jieba = tok
        return _jieba


@lru_cache(maxsize=1)
def synonym_groups() -> tuple[tuple[str, ...], ...]:
    groups = []
    for line in (DATA / "synonyms.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            groups.append(tuple(w.lower() for w in line.split()))
    return tuple(groups)


@lru_cache(maxsize=1)
def _synonyms() -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for group in synonym_groups():
        for w in group:
            out.setdefault(w, [])
            out[w] += [g for g in group if g not in out[w]]
    return {k: tuple(v) for k, v in out.items()}


def _is_word(tok: str) -> bool:
    return any(unicodedata.category(ch)[0] in "LN" for ch in tok)


def segment(text: str) -> list[str]:
    """The words of ``text`` in search mode (long words and the words inside them), lower-cased."""
    text = unicodedata.normalize("NFKC", text or "")
    return [t.lower() for t in _tokenizer().cut_for_search(text) if _is_word(t)]


def index_text(text: str) -> str:
    """What the full-text index stores for ``text``: its words separated by spaces."""
    return " ".join(segment(plain_text(text)))


_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_EMPH = re.compile(r"[*_`~]+")
_MD_BLOCK = re.compile(r"(?m)[>#|]+|^\s*[-+]\s+")


def plain_text(markdown: str) -> str:
    """Markdown without its markup (links keep their text): for indexing and snippets."""
    return _MD_BLOCK.sub(" ", _MD_EMPH.sub("", _MD_LINK.sub(r"\1", markdown or "")))


@dataclass(frozen=True)
class Query:
    """A parsed query: ``groups`` is one tuple of alternative words per query word."""

    text: str
    groups: tuple[tuple[str, ...], ...]

    @property
    def words(self) -> list[str]:
        """Every word the query may match (for highlighting), longest first."""
        return sorted({w for g in self.groups for w in g}, key=lambda w: (-len(w), w))


def _query_words(text: str) -> list[str]:
    """The query's words in precise mode: the index holds the words inside long words too
    (search mode), so the query need not; fewer, rarer words keep ranking cheap at scale."""
    text = unicodedata.normalize("NFKC", text or "")
    return [t.lower() for t in _tokenizer().cut(text) if _is_word(t)]


def parse_query(text: str) -> Query:
    """Cut the caller's question into words, drop filler words, add synonyms.

    Bounded: at most MAX_QUERY_CHARS characters, MAX_QUERY_WORDS words and
    MAX_ALTERNATIVES alternatives in all, whatever the input.
    """
    text = (text or "")[:MAX_QUERY_CHARS]
    words: list[str] = []
    for w in _query_words(text):
        if w not in STOP_WORDS and w not in words:
            words.append(w)
    if not words:  # a query of filler words only: search them rather than nothing
        words = list(dict.fromkeys(segment(text)))
    syn = _synonyms()
    groups: list[tuple[str, ...]] = []
    budget = MAX_ALTERNATIVES
    for w in words[:MAX_QUERY_WORDS]:
        alts = [w] + [s for s in syn.get(w, ()) if s != w]
        if len(w) >= 3:  # the words inside a long word: 违章罚款 also finds 违章 ... 罚款
            alts += [p for p in segment(w) if p != w and p not in alts and len(p) > 1]
        alts = alts[:max(1, min(len(alts), budget))]
        budget -= len(alts)
        groups.append(tuple(alts))
        if budget <= 0:
            break
    return Query(text, tuple(groups))


def _alt_tokens(word: str) -> list[str]:
    """A synonym of several words (不发工资) must match all of them: its precise-mode words."""
    toks = [t.lower() for t in _tokenizer().cut(word) if _is_word(t)]
    return toks or [word]


def fts5_match(q: Query) -> str | None:
    """An FTS5 MATCH expression: OR over every alternative; each alternative an AND of its words."""
    parts = []
    for alts in q.groups:
        for a in alts:
            toks = _alt_tokens(a)
            parts.append(" AND ".join('"' + t.replace('"', '""') + '"' for t in toks) if len(toks) > 1
                         else '"' + toks[0].replace('"', '""') + '"')
    if not parts:
        return None
    return " OR ".join(f"({p})" if " AND " in p else p for p in dict.fromkeys(parts))


_TSQ_SAFE = re.compile(r"[^\w]+", re.UNICODE)


def pg_tsquery(q: Query) -> str | None:
    """The same query for PostgreSQL's ``to_tsquery('simple', ...)``."""
    parts = []
    for alts in q.groups:
        for a in alts:
            toks = [_TSQ_SAFE.sub("", t) for t in _alt_tokens(a)]
            toks = [t for t in toks if t]
            if toks:
                parts.append("(" + " & ".join(toks) + ")" if len(toks) > 1 else toks[0])
    return " | ".join(dict.fromkeys(parts)) or None


def snippet(body: str, q: Query, width: int = 80, mark: tuple[str, str] = ("**", "**")) -> str:
    """About ``width`` characters of ``body`` around where the query's words cluster, words marked.

    The marks are Markdown bold by default (the body is Markdown); the public
    page escapes the text first and marks with <mark>.
    """
    text = " ".join(plain_text(body).split())
    low = text.lower()
    words = [w for w in q.words if len(w) > 1 or not w.isascii()]
    hits: list[tuple[int, int]] = []
    for w in words:
        start = 0
        while len(hits) < 200:
            i = low.find(w, start)
            if i < 0:
                break
            hits.append((i, i + len(w)))
            start = i + len(w)
    hits.sort()
    merged: list[tuple[int, int]] = []
    for a, b in hits:  # longest words were found first; overlaps join
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    start = 0
    if merged:  # the window holding the most hits
        best, best_n = merged[0][0], 0
        for i, (a, _) in enumerate(merged):
            n = sum(1 for x, y in merged[i:] if y <= a + width)
            if n > best_n:
                best, best_n = a, n
        start = max(0, best - width // 5)
    end = min(len(text), start + width)
    out, pos = [], start
    for a, b in merged:
        if b <= start or a >= end:
            continue
        a, b = max(a, start), min(b, end)
        out += [text[pos:a], mark[0], text[a:b], mark[1]]
        pos = b
    out.append(text[pos:end])
    return ("…" if start else "") + "".join(out) + ("…" if end < len(text) else "")
