"""Pure parts of the knowledge base: segmentation, queries, snippets, the article model."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.kb import model as km
from callcenter.kb.text import MAX_ALTERNATIVES, fts5_match, parse_query, pg_tsquery, segment, snippet


def test_hotline_terms_are_words_and_synonyms_widen_the_query():
    assert "发热门诊" in segment("发热门诊在哪里")
    assert "核酸检测" in segment("我想做核酸检测") and "核酸" in segment("我想做核酸检测")
    q = parse_query("我的绿码变黄了怎么办")
    words = {w for g in q.groups for w in g}
    assert {"绿码", "健康码"} <= words
    assert not words & {"我", "的", "了", "怎么办"}  # filler words are dropped
    assert {"核酸检测", "核酸"} <= set(parse_query("核酸").words)


def test_queries_are_bounded_and_never_carry_syntax():
    q = parse_query("词语" * 1000)
    assert sum(len(g) for g in q.groups) <= MAX_ALTERNATIVES
    m = fts5_match(parse_query('a" OR b NEAR(c) *'))
    assert m.count('"') % 2 == 0 and "NEAR(" not in m.replace('"near"', "")
    assert fts5_match(parse_query("")) is None and pg_tsquery(parse_query("   ")) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_into_a_bounded_query(text):
    q = parse_query(text)
    assert sum(len(g) for g in q.groups) <= MAX_ALTERNATIVES
    m = fts5_match(q)
    assert m is None or m.count('"') % 2 == 0


def test_snippets_mark_the_words_where_they_cluster():
    body = "很多无关的文字。" * 20 + "雁塔区**发热门诊**设在区人民医院，24小时接诊。" + "更多无关的文字。" * 20
    s = snippet(body, parse_query("发热门诊在哪里"), width=40)
    assert s.startswith("…") and s.endswith("…") and "**发热门诊**" in s
    assert "****" not in snippet("发热门诊就诊", parse_query("发热门诊 就诊"))
    assert snippet("短文", parse_query("无关")) == "短文"


def test_article_fields_are_bounded_and_status_changes_follow_rules():
    f = km.ArticleFields.model_validate({"title": " 标题 ", "org": "o", "tags": "a，b、c d"})
    assert f.title == "标题" and f.tags == ["a", "b", "c", "d"]
    with pytest.raises(ValueError):
        km.ArticleFields.model_validate({"title": "t", "org": "o", "tags": ["x"] * 21})
    with pytest.raises(ValueError):
        km.ArticleFields.model_validate({"title": "t", "org": "o", "key": "../etc"})
    with pytest.raises(ValueError):
        km.ArticleFields.model_validate({"title": "t", "org": "o", "extra": 1})
    assert km.check_transition("draft", "publish") == "published"
    assert km.check_transition("published", "retire") == "retired"
    for action in ("edit", "publish", "retire"):
        with pytest.raises(km.Conflict):
            km.check_transition("retired", action)
    now = datetime(2026, 6, 1)
    assert km.in_effect("published", None, None, now)
    assert not km.in_effect("published", now, None, datetime(2026, 5, 31))
    assert not km.in_effect("published", None, now, now)
    assert not km.in_effect("draft", None, None, now)


def test_roles_and_differences():
    roles = [("西安市12345", "editor"), ("*", "publisher")]
    assert km.allowed(roles[:1], "西安市12345", "edit") and not km.allowed(roles[:1], "西安市12345", "publish")
    assert not km.allowed(roles[:1], "陕西12333", "edit") and km.allowed(roles, "陕西12333", "retire")
    assert km.changed_fields({"a": 1, "b": 2}, {"a": 1, "b": 3}) == ["b"]
    d = km.text_diff("第一行\n旧的第二行\n第三行", "第一行\n新的第二行\n第三行")
    assert "-旧的第二行" in d and "+新的第二行" in d
    assert len(km.text_diff("\n".join(map(str, range(500))), "", max_lines=10)) == 11
