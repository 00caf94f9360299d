"""deploy/prometheus: config and rule files pass promtool, and every alert is unit-tested both ways."""

from __future__ import annotations

import itertools
import re
from fractions import Fraction
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


# promtool (2.42, Debian's) compares expected samples with exact float equality, and PromQL
# adds the members of a `sum by` group in no fixed order (rangeEval collects series in a Go
# map).  A sum of two or more inexact floats then differs in the last bit from run to run
# (this made dashboards_test.yml fail 4 times in 30).  The cure is inputs whose per-series
# rate()/increase() is a dyadic rational (k / 2^n): those add exactly in any order.  Under
# 2.42 a range selector includes its left end, so a window that is a whole number of sample
# intervals, ending on a sample, sees exactly window/interval increments: increase() is then
# (increment x count) and rate() is increment / interval, with no extrapolation factor.
_SUMMED = re.compile(r"\b(?:sum|avg)\s*(?:by\s*\(([^)]*)\))?\s*\(\s*(rate|increase)\(\s*([a-zA-Z_:][\w:]*)"
                     r"(?:\{[^}]*\})?\[(\d+)([smhd])\]")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _dyadic(x: Fraction) -> bool:
    d = x.denominator
    return d & (d - 1) == 0


def _duration_s(text: str) -> int:
    return int(text[:-1]) * _UNIT_S[text[-1]]


def _expand(values: str) -> list[Fraction | None]:
    """promtool's expanding notation: `a+bxN`, `a-bxN`, `axN`, plain numbers, `_` (missing),
    `_xN`, `stale`."""
    out: list[Fraction | None] = []
    for tok in values.split():
        if tok in ("_", "stale"):
            out.append(None)
            continue
        if re.fullmatch(r"_x\d+", tok):
            out.extend([None] * int(tok[2:]))
            continue
        m = re.fullmatch(r"(-?[\d.]+)(?:([+-])([\d.]+))?x(\d+)", tok)
        if m is None:
            out.append(Fraction(tok))
            continue
        start, sign, step, n = Fraction(m[1]), m[2], Fraction(m[3] or 0), int(m[4])
        step = -step if sign == "-" else step
        out.extend(start + step * i for i in range(n + 1))
    return out


def _summed_terms(exprs: list[str]) -> list[tuple[frozenset[str], str, str, int]]:
    """(by-labels, rate|increase, metric, window s) of every sum over rate/increase in exprs."""
    out = []
    for expr in exprs:
        for by, fn, metric, n, unit in _SUMMED.findall(expr):
            labels = frozenset(x.strip() for x in by.split(",") if x.strip()) if by else frozenset()
            out.append((labels, fn, metric, int(n) * _UNIT_S[unit]))
    return out


def test_summed_rates_in_unit_tests_are_exact_in_binary():
    """Every sum over rate()/increase() in the rules and dashboard queries meets input series
    whose per-series results are dyadic, so the sum does not depend on the order of its terms."""
    rule_terms = _summed_terms([r["expr"] for r in rules_of("record") + rules_of("alert")])
    assert any(m == "callcenter_agent_state_seconds_total" for _, _, m, _ in rule_terms), "pattern found nothing"
    checked = 0
    for f in ALERT_TESTS + DASHBOARD_TESTS:
        for test in yaml.safe_load(f.read_text(encoding="utf-8"))["tests"]:
            terms = rule_terms + _summed_terms([c["expr"] for c in test.get("promql_expr_test", [])])
            interval = _duration_s(test.get("interval", "1m"))
            evals = [c["eval_time"] for c in test.get("promql_expr_test", []) + test.get("alert_rule_test", [])]
            series = []
            for s in test["input_series"]:
                name, _, rest = s["series"].partition("{")
                labels = dict(re.findall(r'(\w+)="([^"]*)"', rest))
                series.append((name.strip(), labels, _expand(s["values"])))
            for by, fn, metric, window in terms:
                groups: dict[tuple, list] = {}
                for name, labels, values in series:
                    if name == metric:
                        groups.setdefault(tuple(labels.get(k) for k in sorted(by)), []).append(values)
                for members in groups.values():
                    if len(members) < 2:
                        continue  # one term: no order to depend on
                    where = f"{f.name} / {test.get('name')}: {fn}({metric}[{window}s]) summed by {sorted(by)}"
                    assert window % interval == 0, f"{where}: window not a whole number of intervals"
                    for e in evals:
                        assert _duration_s(e) % interval == 0, f"{where}: eval_time {e} not on a sample"
                    for values in members:
                        steps = {b - a for a, b in itertools.pairwise(values) if a is not None and b is not None}
                        per = {st / interval if fn == "rate" else st for st in steps}
                        assert all(_dyadic(x) for x in per), f"{where}: per-series {fn} {sorted(per)} not dyadic"
                        checked += 1
    assert checked > 0
