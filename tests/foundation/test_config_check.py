"""`callcenter config check` and env overrides: every problem with its key path, at once."""

from __future__ import annotations

from pathlib import Path

import yaml

from callcenter.cli import main
from callcenter.config import load_config, parse_config

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO_ROOT / "deploy" / "callcenter.yaml"


def _example() -> dict:
    return yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))


def test_three_mistakes_are_all_reported_with_key_paths(tmp_path, capsys):
    raw = _example()
    raw["pools"][2]["tier"] = "x"  # not an integer
    raw["queues"][0]["default_category"] = "nobody"  # unknown category
    raw["acd"]["listen"]["admin_prot"] = 8081  # misspelt key
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw), encoding="utf-8")

    assert main(["config", "check", str(bad)]) == 1

    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"{bad}: 3 problem(s)"
    assert 'pools[2].tier: expected an integer >= 0 and <= 9, got "x"' in out
    assert "queues[0].default_category: unknown category 'nobody'" in out
    assert "acd.listen.admin_prot: unknown key" in out
    assert len(out.splitlines()) == 4


def test_valid_file_prints_a_summary_and_exits_0(capsys):
    assert main(["config", "check", str(EXAMPLE_CONFIG)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert "ok: 1 queue(s), 4 pool(s)" in lines[0]
    assert "warning: acd.dev_mode is on" in lines[1]  # the example is a development config


def test_unreadable_and_non_yaml_files_are_one_clear_error(tmp_path, capsys):
    assert main(["config", "check", str(tmp_path / "nope.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().out
    broken = tmp_path / "broken.yaml"
    broken.write_text("acd: [unclosed\n", encoding="utf-8")
    assert main(["config", "check", str(broken)]) == 1
    assert "not valid YAML: line 2" in capsys.readouterr().out


def test_env_overrides_replace_secrets_and_urls():
    env = {
        "CALLCENTER_REDIS_URL": "redis://10.0.0.5:6379/2",
        "CALLCENTER_DATABASE_URL": "postgresql+psycopg://acd@db/acd",
        "CALLCENTER_AGI_SECRET": "from-env",
    }
    config = load_config(EXAMPLE_CONFIG, env=env)
    assert config.acd.redis_url == "redis://10.0.0.5:6379/2"
    assert config.acd.database_url == "postgresql+psycopg://acd@db/acd"
    assert config.acd.agi_secret == "from-env"
    plain = load_config(EXAMPLE_CONFIG, env={})
    assert plain.acd.redis_url is None and plain.acd.agi_secret == "dev-agi-secret"


def test_empty_env_values_do_not_override():
    config = parse_config(_example(), env={"CALLCENTER_STATE_DIR": "", "CALLCENTER_AGI_SECRET": "s3"})
    assert config.acd.state_dir == ".state"
    assert config.acd.agi_secret == "s3"


def test_abandoned_to_callback_without_a_call_file_spool_is_an_error_naming_the_field(tmp_path, capsys):
    raw = _example()
    raw["queues"][0]["callback"]["abandoned_to_callback"] = True
    raw["acd"]["callfile_dir"] = None
    bad = tmp_path / "no-spool.yaml"
    bad.write_text(yaml.safe_dump(raw), encoding="utf-8")

    assert main(["config", "check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"{bad}: 1 problem(s)"
    assert "queues[0].callback.abandoned_to_callback: needs acd.callfile_dir" in out
    # serve refuses it too, before starting anything
    assert main(["serve", "--config", str(bad)]) == 1
    assert "queues[0].callback.abandoned_to_callback" in capsys.readouterr().err

    raw["acd"]["callfile_dir"] = str(tmp_path / "outgoing")
    good = tmp_path / "spool.yaml"
    good.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert main(["config", "check", str(good)]) == 0
    # the engine and the simulator model callbacks without placing them: still a valid config there
    raw["acd"]["callfile_dir"] = None
    assert parse_config(raw, env={}).queues[0].callback.abandoned_to_callback is True


def test_the_shipped_config_passes_config_check(capsys):
    assert main(["config", "check", str(EXAMPLE_CONFIG)]) == 0
    assert "problem" not in capsys.readouterr().out
