"""deploy/prometheus: config and rule files pass promtool, and every alert is unit-tested both ways."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from .conftest import PROMTOOL_DIR, REPO_ROOT, RULES_DIR, run_promtool

RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
ALERT_TESTS = sorted(PROMTOOL_DIR.glob("alerts*_test.yml"))
DASHBOARD_TESTS = sorted(PROMTOOL_DIR.glob("dashboards*_test.yml"))


def rules_of(kind: str) -> list[dict]:
    out = []
    for f in RULE_FILES:
        for group in yaml.safe_load(f.read_text(encoding="utf-8"))["groups"]:
            out.extend(r for r in group["rules"] if kind in r)
    return out


def test_prometheus_config_and_its_rule_files_are_valid(promtool):
    out = run_promtool(promtool, "check", "config", str(REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"))
    for f in RULE_FILES:
        assert f.name in out, f"prometheus.yml does not load {f.name}:\n{out}"


def test_rule_files_are_valid(promtool):
    assert {f.name for f in RULE_FILES} == {"callcenter-recording.yml", "callcenter-alerts.yml"}
    run_promtool(promtool, "check", "rules", *map(str, RULE_FILES))


@pytest.mark.parametrize("test_file", ALERT_TESTS + DASHBOARD_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(promtool, test_file: Path):
    out = run_promtool(promtool, "test", "rules", test_file.name, cwd=PROMTOOL_DIR)
    assert "SUCCESS" in out


def test_every_alert_has_a_firing_and_a_quiet_case():
    alerts = {r["alert"] for r in rules_of("alert")}
    assert len(alerts) >= 6
    fires, quiet = set(), set()
    for f in ALERT_TESTS:
        for test in yaml.safe_load(f.read_text(encoding="utf-8"))["tests"]:
            for case in test.get("alert_rule_test", []):
                (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert alerts - fires == set(), "alerts never shown to fire"
    assert alerts - quiet == set(), "alerts never shown to stay quiet"
    assert (fires | quiet) - alerts == set(), "tests of alerts that do not exist"


def test_alerts_say_what_to_do():
    ops = (REPO_ROOT / "docs" / "operations.md").read_text(encoding="utf-8").lower()
    for rule in rules_of("alert"):
        assert rule["labels"]["severity"] in ("warning", "critical")
        url = rule["annotations"]["runbook_url"]
        anchor = url.split("#", 1)[1]
        assert url.startswith("docs/operations.md#") and anchor == rule["alert"].lower()
        assert f"### {rule['alert'].lower()}" in ops, f"docs/operations.md has no section for {rule['alert']}"


def test_recording_rule_names_follow_level_metric_operation():
    for rule in rules_of("record"):
        level, metric, operation = rule["record"].split(":")
        assert level and operation and metric.startswith("callcenter_"), rule["record"]
