"""The public, read-only knowledge base: a JSON API and small server-rendered pages in Chinese.

Citizens look answers up instead of calling (the study's suggestion 6).  No
login; only published articles in effect; answers cached for ``CACHE_S``
seconds (searches and articles alike, so a burst of the same question costs one
database query); each client address limited to ``RATE_PER_S`` requests per
second (burst ``BURST``; the limiter also counts requests still in flight).

    GET  /kb/                        search page (?q=...)
    GET  /kb/a/<id>                  article page
    POST /kb/a/<id>/feedback         "was this helpful" (form: helpful=1|0), then back to the article
    GET  /kb/api/search?q=&limit=    JSON: {"query", "articles": [...]}
    GET  /kb/api/articles/<id>       JSON: the article
    POST /kb/api/articles/<id>/feedback   JSON body {"helpful": true|false}

Pure parts (``render_*``, ``RateLimiter``, ``TtlCache``) have no I/O; ``PublicKbResource``
runs the store in the reactor's thread pool.
"""

from __future__ import annotations

import html
import json
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from twisted.internet import threads
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

__all__ = ["PublicKbResource", "RateLimiter", "TtlCache", "render_search", "render_article", "mark_html"]

log = Logger(namespace="callcenter.kb.public")

CACHE_S = 30.0
CACHE_ENTRIES = 2000
RATE_PER_S = 5.0
BURST = 20
MAX_QUERY = 100
MAX_BODY = 1024


class RateLimiter:
    """A token bucket per client address (bounded: the least recently seen addresses are forgotten)."""

    def __init__(self, clock: Any, rate: float = RATE_PER_S, burst: int = BURST, max_clients: int = 10000):
        self.clock, self.rate, self.burst, self.max_clients = clock, rate, burst, max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, who: str) -> bool:
        now = self.clock.seconds()
        tokens, last = self._buckets.pop(who, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        ok = tokens >= 1.0
        self._buckets[who] = (tokens - 1.0 if ok else tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return ok


class TtlCache:
    def __init__(self, clock: Any, ttl_s: float = CACHE_S, max_entries: int = CACHE_ENTRIES):
        self.clock, self.ttl_s, self.max_entries = clock, ttl_s, max_entries
        self._d: OrderedDict[Any, tuple[float, Any]] = OrderedDict()

    def get(self, key: Any) -> Any:
        hit = self._d.get(key)
        if hit is None or hit[0] <= self.clock.seconds():
            self._d.pop(key, None)
            return None
        return hit[1]

    def put(self, key: Any, value: Any) -> None:
        self._d.pop(key, None)
        self._d[key] = (self.clock.seconds() + self.ttl_s, value)
        while len(self._d) > self.max_entries:
            self._d.popitem(last=False)


def mark_html(snippet: str) -> str:
    """A snippet's Markdown-bold words as <mark>, everything else escaped."""
    parts = snippet.split("**")
    return "".join(f"<mark>{html.escape(p)}</mark>" if i % 2 else html.escape(p) for i, p in enumerate(parts))


_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font-family:"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif;margin:0;background:#f5f6f8;color:#222;line-height:1.6}}
header{{background:#c8161d;color:#fff;padding:12px 16px}} header a{{color:#fff;text-decoration:none;font-weight:bold}}
main{{max-width:720px;margin:0 auto;padding:12px 16px}}
form.search{{display:flex;gap:8px}} form.search input{{flex:1;font-size:16px;padding:8px;border:1px solid #bbb;border-radius:6px}}
button{{font-size:16px;padding:8px 14px;border:0;border-radius:6px;background:#c8161d;color:#fff}}
.hit{{background:#fff;border-radius:8px;padding:10px 12px;margin:10px 0}} .hit a{{font-size:17px;color:#0b57d0}}
.meta{{color:#666;font-size:13px}} mark{{background:#ffe58a}} article{{background:#fff;border-radius:8px;padding:12px 16px}}
.feedback form{{display:inline}} .feedback button.no{{background:#666}}
</style></head>
<body><header><a href="/kb/">12345 政务服务知识库</a></header><main>
{content}
</main></body></html>
"""


def _search_form(q: str) -> str:
    return ('<form class="search" method="get" action="/kb/" role="search">'
            f'<input type="search" name="q" value="{html.escape(q)}" placeholder="请输入您的问题，如：发热门诊在哪里" '
            f'maxlength="{MAX_QUERY}" aria-label="搜索"><button type="submit">搜索</button></form>')


def _date(iso: str | None) -> str:
    return iso[:10] if iso else ""


def render_search(q: str, hits: list[dict] | None) -> str:
    parts = [_search_form(q)]
    if hits is not None:
        if not hits:
            parts.append(f'<p class="none">没有找到与“{html.escape(q)}”相关的答案。您可以换个说法，或拨打 12345 咨询。</p>')
        else:
            parts.append(f'<p class="meta">找到 {len(hits)} 条相关答案</p>')
        for h in hits:
            parts.append(f'<div class="hit"><a href="/kb/a/{h["id"]}">{html.escape(h["title"])}</a>'
                         f'<div class="meta">{html.escape(h.get("org") or "")}'
                         f'{" · " + html.escape(h["region"]) if h.get("region") else ""}</div>'
                         f'<div class="snippet">{mark_html(h.get("snippet") or "")}</div></div>')
    else:
        parts.append('<p class="meta">这里是全省共享的政务服务知识库，12345、12333、12315 的话务员用的也是这些答案。</p>')
    title = f"{q} - 知识库搜索" if q else "12345 政务服务知识库"
    return _PAGE.format(title=html.escape(title), content="\n".join(parts))


def _markdown_html(md: str) -> str:
    """A small, safe subset of Markdown (headings, lists, bold, paragraphs); everything escaped."""
    out, in_list = [], False
    for line in md.splitlines():
        s = line.strip()
        bold = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(s))
        if s.startswith(("- ", "* ")):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{bold[2:]}</li>")
            continue
        if in_list:
            out.append("</ul>")
            in_list = False
        if s.startswith("#"):
            level = min(6, len(s) - len(s.lstrip("#")) + 1)
            out.append(f"<h{level}>{bold.lstrip('#').strip()}</h{level}>")
        elif s:
            out.append(f"<p>{bold}</p>")
    if in_list:
        out.append("</ul>")
    return "\n".join(out)


def render_article(a: dict, voted: str = "") -> str:
    until = f"，有效期至 {_date(a.get('effective_until'))}" if a.get("effective_until") else ""
    since = _date(a.get("effective_from")) or _date(a.get("updated"))
    thanks = {"1": "感谢您的反馈！", "0": "感谢反馈，我们会改进这条答案。"}.get(voted, "")
    content = (f'{_search_form("")}<article><h1>{html.escape(a["title"])}</h1>'
               f'<p class="meta">来源部门：<span class="org">{html.escape(a.get("org") or "")}</span>'
               f'{" · 适用范围：" + html.escape(a["region"]) if a.get("region") else ""}<br>'
               f'生效日期：<span class="effective">{html.escape(since)}</span>{html.escape(until)}'
               f' · 第 {int(a.get("version") or 1)} 版</p>'
               f'{_markdown_html(a.get("body") or "")}</article>'
               '<div class="feedback"><p>这条答案对您有帮助吗？</p>'
               + (f'<p class="thanks">{thanks}</p>' if thanks else
                  f'<form method="post" action="/kb/a/{a["id"]}/feedback"><input type="hidden" name="helpful" value="1">'
                  '<button type="submit" class="yes">有帮助</button></form> '
                  f'<form method="post" action="/kb/a/{a["id"]}/feedback"><input type="hidden" name="helpful" value="0">'
                  '<button type="submit" class="no">没帮助</button></form>')
               + '</div>')
    return _PAGE.format(title=html.escape(a["title"]) + " - 12345 知识库", content=content)


def public_article(a: dict) -> dict:
    return {k: a.get(k) for k in ("id", "key", "title", "body", "category", "tags", "org", "region",
                                   "effective_from", "effective_until", "version", "updated")}


class PublicKbResource(Resource):
    """Everything under ``/kb`` (one leaf; routing below)."""

    isLeaf = True

    def __init__(self, store: Any, reactor: Any, *, clock: Any = None,
                 run_blocking: Callable[..., Any] | None = None, in_effect: Callable[[dict], bool] | None = None):
        super().__init__()
        self.store, self.reactor = store, reactor
        clock = clock or reactor
        self.limiter, self.cache = RateLimiter(clock), TtlCache(clock)
        self.run_blocking = run_blocking or (
            lambda fn, *a, **kw: threads.deferToThreadPool(reactor, reactor.getThreadPool(), fn, *a, **kw))
        self.in_effect = in_effect

    # -- plumbing ----------------------------------------------------------------
    def _send(self, request, status: int, body: str | bytes, ctype: str, cache: bool = True) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        request.setResponseCode(status)
        request.setHeader(b"content-type", ctype.encode())
        request.setHeader(b"cache-control", f"public, max-age={int(CACHE_S)}".encode() if cache else b"no-store")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
        request.write(data)
        request.finish()

    def _json(self, request, status: int, obj: Any, cache: bool = True) -> None:
        self._send(request, status, json.dumps(obj, ensure_ascii=False), "application/json; charset=utf-8", cache)

    def _html(self, request, status: int, page: str, cache: bool = True) -> None:
        self._send(request, status, page, "text/html; charset=utf-8", cache)

    def _cached(self, key: Any, fn: Callable[..., Any], *args):
        from twisted.internet import defer

        hit = self.cache.get(key)
        if hit is not None:
            return defer.succeed(hit)
        return self.run_blocking(fn, *args).addCallback(lambda v: (self.cache.put(key, v), v)[1])

    def _search(self, q: str, limit: int) -> list[dict]:
        return self.store.search(q, limit)

    def _article(self, aid: int) -> dict | None:
        from .model import NotFound, in_effect

        try:
            a = self.store.get(aid)
        except NotFound:
            return None
        from datetime import datetime

        from callcenter.records.db import utcnow

        def parse(v):
            return datetime.fromisoformat(v) if v else None

        if not in_effect(a["status"], parse(a["effective_from"]), parse(a["effective_until"]), utcnow()):
            return None
        return public_article(a)

    # -- requests ------------------------------------------------------------------
    def render(self, request):
        who = request.getClientAddress().host if hasattr(request, "getClientAddress") else "?"
        path = [p.decode("utf-8", "replace") for p in request.postpath if p != b""]
        is_api = path[:1] == ["api"]
        if not self.limiter.allow(who):
            request.setHeader(b"retry-after", b"1")
            if is_api:
                self._json(request, 429, {"error": "rate_limited", "message": "请求过于频繁，请稍后再试"}, cache=False)
            else:
                self._html(request, 429, _PAGE.format(title="请稍后再试", content="<p>请求过于频繁，请稍后再试。</p>"),
                           cache=False)
            return NOT_DONE_YET
        method = request.method.decode("ascii", "replace")
        try:
            d = self._route(request, method, path, is_api)
        except _BadRequest as exc:
            if is_api:
                self._json(request, exc.status, {"error": "bad_request", "message": str(exc)}, cache=False)
            else:
                self._html(request, exc.status, _PAGE.format(title="出错了", content=f"<p>{html.escape(str(exc))}</p>"),
                           cache=False)
            return NOT_DONE_YET
        if d is not None:
            d.addErrback(lambda f: (log.failure("public knowledge base failed", f),
                                    self._json(request, 503, {"error": "unavailable",
                                                              "message": "知识库暂时不可用，请稍后再试"}, cache=False)))
        return NOT_DONE_YET

    def _arg(self, request, name: str, max_len: int) -> str:
        v = (request.args or {}).get(name.encode(), [b""])[0]
        if len(v) > max_len * 4:
            raise _BadRequest(f"{name} is too long")
        return v.decode("utf-8", "replace").strip()[:max_len]

    def _route(self, request, method: str, path: list[str], is_api: bool):
        def article_id(s: str) -> int:
            if not s.isdigit() or len(s) > 9:
                raise _BadRequest("no such article", 404)
            return int(s)

        if method in ("GET", "HEAD"):
            if not path:
                q = self._arg(request, "q", MAX_QUERY)
                if not q:
                    self._html(request, 200, render_search("", None))
                    return None
                return self._cached(("s", q, 20), self._search, q, 20).addCallback(
                    lambda hits: self._html(request, 200, render_search(q, hits)))
            if len(path) == 2 and path[0] == "a":
                aid = article_id(path[1])
                voted = self._arg(request, "voted", 1)
                return self._cached(("a", aid), self._article, aid).addCallback(
                    lambda a: self._html(request, 200, render_article(a, voted)) if a else
                    self._html(request, 404, _PAGE.format(title="没有这条答案",
                                                          content="<p>这条答案不存在或已失效。</p>")))
            if path == ["api", "search"]:
                q = self._arg(request, "q", MAX_QUERY)
                lim = self._arg(request, "limit", 2) or "10"
                if not q:
                    raise _BadRequest("q is required")
                if not lim.isdigit() or not 1 <= int(lim) <= 50:
                    raise _BadRequest("limit must be 1..50")
                return self._cached(("s", q, int(lim)), self._search, q, int(lim)).addCallback(
                    lambda hits: self._json(request, 200, {"query": q, "articles": [
                        {k: h.get(k) for k in ("id", "key", "title", "snippet", "tags", "org", "region",
                                               "effective_from", "effective_until", "version")} for h in hits]}))
            if len(path) == 3 and path[:2] == ["api", "articles"]:
                aid = article_id(path[2])
                return self._cached(("a", aid), self._article, aid).addCallback(
                    lambda a: self._json(request, 200, a) if a else
                    self._json(request, 404, {"error": "not_found", "message": "no such article in effect"}))
        if method == "POST":
            if len(path) == 3 and path[0] == "a" and path[2] == "feedback":
                aid = article_id(path[1])
                helpful = self._arg(request, "helpful", 1) == "1"
                return self._feedback(aid, helpful).addCallback(lambda counts: (
                    request.redirect(f"/kb/a/{aid}?{urlencode({'voted': '1' if helpful else '0'})}".encode()),
                    request.finish()) if counts is not None else self._html(
                        request, 404, _PAGE.format(title="没有这条答案", content="<p>这条答案不存在或已失效。</p>"),
                        cache=False))
            if len(path) == 4 and path[:2] == ["api", "articles"] and path[3] == "feedback":
                aid = article_id(path[2])
                request.content.seek(0)
                raw = request.content.read(MAX_BODY + 1)
                try:
                    body = json.loads(raw) if len(raw) <= MAX_BODY else None
                except ValueError:
                    body = None
                if not isinstance(body, dict) or not isinstance(body.get("helpful"), bool) or len(body) != 1:
                    raise _BadRequest('the body must be {"helpful": true} or {"helpful": false}')
                return self._feedback(aid, body["helpful"]).addCallback(
                    lambda counts: self._json(request, 200, counts, cache=False) if counts is not None else
                    self._json(request, 404, {"error": "not_found", "message": "no such article in effect"}, cache=False))
        raise _BadRequest(f"nothing at /kb/{quote('/'.join(path))} for {method}", 404)

    def _feedback(self, aid: int, helpful: bool):
        def vote():  # None: no such article in effect
            return None if self._article(aid) is None else self.store.feedback(aid, helpful)

        return self.run_blocking(vote)


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status
