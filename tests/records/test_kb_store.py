"""The knowledge base on a real SQLite and a real PostgreSQL: model, versions, roles, search."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from callcenter.kb import model as km
from callcenter.kb.evaluate import evaluate
from callcenter.kb.seed import corpus
from callcenter.kb.store import KbStore

T0 = datetime(2026, 6, 1, 8, 0)


def art(**kw) -> dict:
    base = {"title": "发热门诊地址", "body": "雁塔区**发热门诊**设在区人民医院门诊楼一层，24小时接诊。",
            "org": "西安市12345", "tags": "发热门诊 疫情", "category": "卫生健康", "region": "西安市雁塔区"}
    return {**base, **kw}


def test_articles_have_a_life_cycle_and_a_history(migrated_db):
    kb = KbStore(migrated_db.engine)
    a = kb.create(art(key="fever-yanta"), "alice", "new clinic", now=T0, trusted=True)
    assert (a["status"], a["version"], a["tags"]) == ("draft", 1, ["发热门诊", "疫情"])
    assert kb.search("发热门诊在哪里", now=T0) == []  # drafts are not searchable
    assert [h["id"] for h in kb.search("发热门诊", now=T0, everything=True)] == [a["id"]]

    kb.publish(a["id"], "bob", "checked with the hospital", now=T0 + timedelta(minutes=1), trusted=True)
    hits = kb.search("发热门诊在哪里", now=T0 + timedelta(minutes=2))
    assert [h["key"] for h in hits] == ["fever-yanta"]
    assert "**发热门诊**" in hits[0]["snippet"]

    with pytest.raises(km.Conflict):  # an editor working from version 1 would overwrite bob's publish
        kb.edit(a["id"], {"body": "改到区中医院。"}, "carol", "moved", expected_version=1, trusted=True)
    kb.edit(a["id"], {"body": "发热门诊改到区中医院急诊楼。"}, "carol", "moved", expected_version=2,
            now=T0 + timedelta(minutes=3), trusted=True)
    assert "中医院" in kb.search("发热门诊", now=T0 + timedelta(minutes=4))[0]["snippet"]
    assert kb.search("接诊", now=T0 + timedelta(minutes=4)) == []  # the index follows the edit

    kb.retire(a["id"], "bob", "clinic closed", now=T0 + timedelta(minutes=5), trusted=True)
    assert kb.search("发热门诊", now=T0 + timedelta(minutes=6)) == []
    with pytest.raises(km.Conflict):
        kb.publish(a["id"], "bob", trusted=True)

    hist = kb.history(a["id"])
    assert [(v["version"], v["who"], v["why"], v["snapshot"]["status"]) for v in hist] == [
        (1, "alice", "new clinic", "draft"), (2, "bob", "checked with the hospital", "published"),
        (3, "carol", "moved", "published"), (4, "bob", "clinic closed", "retired")]
    assert hist[2]["changed"] == ["body"] and hist[3]["changed"] == ["status"]


def test_only_articles_in_effect_are_found(migrated_db):
    kb = KbStore(migrated_db.engine)
    kb.create(art(title="旧版医保报销比例", tags="医保", body="住院报销比例70%。", effective_until=T0), "a",
              publish=True, trusted=True, now=T0 - timedelta(days=30))
    kb.create(art(title="新版医保报销比例", tags="医保", body="住院报销比例75%。", effective_from=T0), "a",
              publish=True, trusted=True, now=T0 - timedelta(days=1))
    assert [h["title"] for h in kb.search("医保报销", now=T0 - timedelta(seconds=1))] == ["旧版医保报销比例"]
    assert [h["title"] for h in kb.search("医保报销", now=T0)] == ["新版医保报销比例"]


def test_organisations_edit_only_their_own_articles(migrated_db):
    kb = KbStore(migrated_db.engine)
    kb.grant("wang", "西安市12345", "editor")
    kb.grant("li", "陕西12333", "publisher")
    kb.grant("office", "*", "publisher")
    a = kb.create(art(), "wang", "draft", now=T0)
    with pytest.raises(km.Forbidden):
        kb.publish(a["id"], "wang")  # an editor drafts; a publisher publishes
    with pytest.raises(km.Forbidden):
        kb.edit(a["id"], {"title": "x"}, "li")  # another organisation's article
    with pytest.raises(km.Forbidden):
        kb.edit(a["id"], {"org": "陕西12333"}, "wang")  # moving it to an organisation wang has no role in
    with pytest.raises(km.Forbidden):
        kb.create(art(org="陕西12333"), "wang")
    assert kb.publish(a["id"], "office", "province office")["status"] == "published"
    with pytest.raises(km.BadArticle):
        kb.grant("x", "y", "owner")


def test_bad_articles_get_a_clear_error(migrated_db):
    kb = KbStore(migrated_db.engine)
    with pytest.raises(ValueError, match="effective_until"):
        kb.create(art(effective_from=T0, effective_until=T0), "a", trusted=True)
    with pytest.raises(ValueError):
        kb.create(art(title=""), "a", trusted=True)
    with pytest.raises(ValueError):
        kb.create(art(body="长" * 20001), "a", trusted=True)
    kb.create(art(key="k1"), "a", trusted=True)
    with pytest.raises(km.Conflict):
        kb.create(art(key="k1"), "a", trusted=True)
    with pytest.raises(km.NotFound):
        kb.publish(999, "a", trusted=True)
    assert kb.search("", now=T0) == [] and kb.search("的了吗", now=T0) == []
    assert kb.search('" OR * NEAR( ) -- \x00 ' + "词" * 500, now=T0) == []  # query syntax is never passed through


def test_the_labelled_queries_find_their_articles(migrated_db):
    """Retrieval quality on the seed corpus (benchmarks/kb.py prints the same figures)."""
    kb = KbStore(migrated_db.engine)
    for a in corpus():
        kb.create(a, "seed", publish=True, trusted=True, now=T0)
    result = evaluate(lambda q, k: [h["key"] for h in kb.search(q, k, now=T0)])
    assert result["queries"] >= 60
    floor = 0.9 if migrated_db.kind == "sqlite" else 0.8  # PostgreSQL's ts_rank is not BM25
    assert result["recall@5"] >= floor, result["misses"]
    top = kb.search("发热门诊在哪里", 5, now=T0)
    assert sum(h["key"].startswith("fever-clinic-") for h in top) >= 3 and "**发热门诊**" in top[0]["snippet"]
