"""Hostile and careless config files (issue 16, items 5 and 10): one clear line each, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from callcenter.cli import main
from callcenter.config import ConfigError, load_config

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "deploy" / "callcenter.yaml"


def _example_text() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


def _issues(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    return [str(i) for i in info.value.issues]


@pytest.mark.parametrize(("old", "new", "where"), [
    ("ring_timeout_s: 15,", "ring_timeout_s: .inf,", "pools[0].ring_timeout_s"),
    ("ring_timeout_s: 15,", "ring_timeout_s: 1e400,", "pools[0].ring_timeout_s"),
    ("ring_timeout_s: 15,", "ring_timeout_s: 1.0e400,", "pools[0].ring_timeout_s"),
    ("max_wait_s: 600", "max_wait_s: .inf", "queues[0].max_wait_s"),
    ("max_wait_s: 600", "max_wait_s: .nan", "queues[0].max_wait_s"),
    ("max_wait_s: 600", "max_wait_s: -.inf", "queues[0].max_wait_s"),
    ("aht_s: 240", "aht_s: 1" + "0" * 400, "queues[0].aht_s"),
    ("tier: 0,", "tier: 1" + "0" * 400 + ",", "pools[0].tier"),
    ("max_share: 0.5 ", "max_share: .nan ", "pools[2].max_share"),
    ("home_waiting_max: 5 ", "home_waiting_max: 1" + "0" * 30 + " ", "pools[2].home_waiting_max"),
    ("announce_every_s: 20", "announce_every_s: .inf", "queues[0].emergency_plans.surge.announce_every_s"),
])
def test_non_finite_or_huge_numbers_are_refused_with_their_key_path(tmp_path, old, new, where):
    text = _example_text()
    assert old in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(old, new, 1), encoding="utf-8")
    issues = _issues(bad)
    assert any(i.startswith(where + ": expected") for i in issues), issues


def test_every_numeric_config_field_has_both_bounds_and_refuses_infinity():
    """The shared bounded type is used everywhere: no numeric field is open-ended."""
    import typing

    from pydantic import BaseModel

    from callcenter import config as cfg

    seen = 0
    todo: list[type[BaseModel]] = [cfg.Config]
    done: set[type] = set()
    while todo:
        model = todo.pop()
        if model in done:
            continue
        done.add(model)
        for name, info in model.model_fields.items():
            ann = info.annotation
            args = [a for a in (typing.get_args(ann) or (ann,)) if a is not type(None)]
            for a in args:
                for inner in (typing.get_args(a) or (a,)):
                    if isinstance(inner, type) and issubclass(inner, BaseModel):
                        todo.append(inner)
            base = args[0] if len(args) == 1 else None
            if base in (int, float) and name not in ("fastagi_port", "seat_port", "admin_port", "agi_relay_port"):
                seen += 1
                metas = info.metadata
                assert any(getattr(m, "le", None) is not None or getattr(m, "lt", None) is not None
                           for m in metas), f"{model.__name__}.{name} has no upper bound"
                assert any(getattr(m, "ge", None) is not None or getattr(m, "gt", None) is not None
                           for m in metas), f"{model.__name__}.{name} has no lower bound"
                if base is float:
                    assert any(getattr(m, "allow_inf_nan", None) is False for m in metas), f"{model.__name__}.{name}"
    assert seen >= 14


def test_duplicate_keys_are_refused_naming_the_key_path(tmp_path):
    bad = tmp_path / "dup.yaml"
    bad.write_text(_example_text().replace("    max_wait_s: 600\n", "    max_wait_s: 600\n    max_wait_s: 60\n"),
                   encoding="utf-8")
    issues = _issues(bad)
    assert len(issues) == 1
    assert issues[0].startswith("queues[0].max_wait_s: duplicate key 'max_wait_s'"), issues


def test_duplicate_top_level_section_is_refused(tmp_path):
    bad = tmp_path / "dup.yaml"
    bad.write_text(_example_text() + "\ncategories:\n  - {name: other}\n", encoding="utf-8")
    assert _issues(bad)[0].startswith("categories: duplicate key")


@pytest.mark.parametrize("content", [
    b"acd:\n  name: \xff\xfeacd\n",  # latin-1 / UTF-16 bytes
    bytes(range(256)) * 4,  # binary
    "acd:\n  name: 呼叫中心\n".encode("gbk"),  # a Chinese editor saving GBK
])
def test_non_utf8_or_binary_config_is_one_clear_error(tmp_path, capsys, content):
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(content)
    assert main(["config", "check", str(bad)]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert "UTF-8" in out.out


def test_nul_and_control_characters_are_a_yaml_error(tmp_path, capsys):
    bad = tmp_path / "nul.yaml"
    bad.write_bytes(b"acd:\n  name: a\x00b\n")
    assert main(["config", "check", str(bad)]) == 1
    assert "not valid YAML" in capsys.readouterr().out


def test_deep_nesting_and_alias_bombs_are_refused_quickly(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 50_000 + "]" * 50_000 + "\n", encoding="utf-8")
    assert "nested deeper" in _issues(deep)[0]
    bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 10):
        bomb += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n"
    f = tmp_path / "bomb.yaml"
    f.write_text(bomb, encoding="utf-8")
    assert "aliases expanded" in _issues(f)[0]


def test_oversized_file_is_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (2 << 20) + "\n", encoding="utf-8")
    assert "larger than" in _issues(big)[0]


def test_a_few_shared_anchors_still_work(tmp_path):
    raw = yaml.safe_load(_example_text())
    text = yaml.safe_dump(raw)  # safe_dump writes anchors for shared objects only; add one by hand
    text = "x-common: &ring {ring_timeout_s: 15}\n" + text
    f = tmp_path / "anchors.yaml"
    f.write_text(text, encoding="utf-8")
    issues = _issues(f)  # x-common is not a config key: the one problem
    assert issues == ["x-common: unknown key (check the spelling; see docs/config.md)"]


@pytest.mark.parametrize(("field", "value", "words"), [
    ("role", "root", "expected admin, supervisor, viewer, lender:NAME or unit:ID"),
    ("token_sha256", "notahash", "expected 64 lowercase hex digits"),
])
def test_admin_token_mistakes_say_what_is_expected(tmp_path, field, value, words):
    raw = yaml.safe_load(_example_text())
    raw["acd"]["admin_tokens"][0][field] = value
    f = tmp_path / "tok.yaml"
    f.write_text(yaml.safe_dump(raw), encoding="utf-8")
    issues = _issues(f)
    assert issues == [f'acd.admin_tokens[0].{field}: {words}' + issues[0].split(words, 1)[1]]
    assert "a name of" not in issues[0]
