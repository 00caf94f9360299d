"""The public knowledge base over real HTTP on loopback, and in a real headless Chromium.

Chromium (Debian's package, /usr/bin/chromium) loads the search page and an
article page at a phone's width; the DOM it built is checked and the
screenshots are kept under test-artifacts/kb-public/ (CALLCENTER_TEST_ARTIFACTS
to put them elsewhere).  Without Chromium the browser test skips, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path

from twisted.internet import reactor, task, threads
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Site

from callcenter.kb.public import PublicKbResource, RateLimiter, TtlCache, mark_html, render_article
from callcenter.kb.seed import corpus
from callcenter.kb.store import KbStore
from callcenter.records.db import make_engine, migrate

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("CALLCENTER_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "kb-public"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def test_rate_limiter_and_cache_are_bounded():
    clock = task.Clock()
    rl = RateLimiter(clock, rate=1.0, burst=3, max_clients=2)
    assert [rl.allow("a") for _ in range(4)] == [True, True, True, False]
    clock.advance(1.0)
    assert rl.allow("a") and not rl.allow("a")
    rl.allow("b"), rl.allow("c")
    assert len(rl._buckets) == 2  # "a" forgotten
    cache = TtlCache(clock, ttl_s=10, max_entries=2)
    cache.put(1, "x")
    clock.advance(9.9)
    assert cache.get(1) == "x"
    clock.advance(0.2)
    assert cache.get(1) is None
    for k in range(5):
        cache.put(k, k)
    assert len(cache._d) == 2


def test_pages_escape_everything():
    assert mark_html("<b>**发热门诊**</b>") == "&lt;b&gt;<mark>发热门诊</mark>&lt;/b&gt;"
    page = render_article({"id": 1, "title": "<script>x</script>", "body": "**粗**<img src=x>", "org": "o&o",
                           "version": 2, "effective_from": "2026-01-01T00:00:00"})
    assert "<script>x" not in page and "<img" not in page and "<strong>粗</strong>" in page
    assert "o&amp;o" in page and "2026-01-01" in page


class PublicKbTests(unittest.TestCase):
    timeout = 120

    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="kb-public-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)
        url = f"sqlite:///{self.tmp / 'kb.sqlite3'}"
        migrate(url)
        self.db = make_engine(url)
        self.addCleanup(self.db.dispose)
        self.kb = KbStore(self.db)
        self.kb.create_many(corpus(), "seed", publish=True, trusted=True, now=datetime(2026, 1, 1))
        self.draft = self.kb.create({"title": "发热门诊内部草稿", "body": "未发布", "org": "x"}, "x", trusted=True)
        root = Resource()
        self.resource = PublicKbResource(self.kb, reactor)
        root.putChild(b"kb", self.resource)
        self.port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.base = f"http://127.0.0.1:{self.port.getHost().port}/kb"

    def fetch(self, path: str, data: bytes | None = None, headers: dict | None = None):
        def go():
            req = urllib.request.Request(self.base + path, data=data, headers=headers or {})
            try:
                with urllib.request.urlopen(req, timeout=20) as r:
                    return r.status, dict(r.headers), r.read().decode("utf-8")
            except urllib.error.HTTPError as e:
                return e.code, dict(e.headers), e.read().decode("utf-8")
        return threads.deferToThread(go)

    async def test_json_api_and_feedback(self):
        status, headers, body = await self.fetch("/api/search?q=" + urllib.parse.quote("发热门诊在哪里"))
        hits = json.loads(body)["articles"]
        assert status == 200 and "max-age" in headers["Cache-Control"]
        assert hits and all(h["id"] != self.draft["id"] for h in hits) and "**发热门诊**" in hits[0]["snippet"]
        status, _, body = await self.fetch(f"/api/articles/{hits[0]['id']}")
        assert status == 200 and json.loads(body)["org"]
        assert (await self.fetch(f"/api/articles/{self.draft['id']}"))[0] == 404  # drafts are not public
        status, _, body = await self.fetch(f"/api/articles/{hits[0]['id']}/feedback", b'{"helpful": true}',
                                           {"Content-Type": "application/json"})
        assert status == 200 and json.loads(body) == {"helpful": 1, "not_helpful": 0}
        assert (await self.fetch(f"/api/articles/{hits[0]['id']}/feedback", b'{"helpful": 1}'))[0] == 400
        assert (await self.fetch("/api/search?q=x&limit=999"))[0] == 400
        assert (await self.fetch("/api/articles/99999999999"))[0] == 404
        # the same client asking too fast is told to slow down
        codes = [(await self.fetch("/api/search?q=" + urllib.parse.quote("公积金")))[0] for _ in range(25)]
        assert 429 in codes and codes[0] == 200

    async def test_in_a_real_browser(self):
        if not Path(CHROMIUM).exists():
            raise unittest.SkipTest("Chromium is not installed (/usr/bin/chromium: apt-get install chromium)")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

        def chromium(url: str, name: str) -> str:
            profile = tempfile.mkdtemp(prefix="chromium-", dir=self.tmp)
            common = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=390,844",
                      "--hide-scrollbars", "--lang=zh-CN"]
            shot = subprocess.run([*common, f"--screenshot={ARTIFACTS / name}.png", url],
                                  capture_output=True, timeout=60)
            assert shot.returncode == 0, shot.stderr[-2000:]
            dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, timeout=60)
            assert dom.returncode == 0, dom.stderr[-2000:]
            text = dom.stdout.decode("utf-8")
            (ARTIFACTS / f"{name}.html").write_text(text, encoding="utf-8")
            return text

        q = urllib.parse.quote("发热门诊在哪里")
        search = await threads.deferToThread(chromium, f"{self.base}/?q={q}", "search")
        assert "找到" in search and "<mark>发热门诊</mark>" in search and "内部草稿" not in search
        first = search.split('href="/kb/a/', 1)[1].split('"', 1)[0]
        page = await threads.deferToThread(chromium, f"{self.base}/a/{first}", "article")
        assert "来源部门" in page and "生效日期" in page and "2026-01-01" in page
        assert "这条答案对您有帮助吗" in page and 'class="yes"' in page
        home = await threads.deferToThread(chromium, f"{self.base}/", "home")
        assert 'type="search"' in home
        for name in ("search", "article", "home"):
            assert (ARTIFACTS / f"{name}.png").stat().st_size > 5000
        status, _, body = await self.fetch(f"/a/{first}/feedback", b"helpful=0",
                                           {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200 and "感谢反馈" in body  # redirected back to the article, thanked
