"""Grafana dashboards: well-formed, provisioned, every panel query unit-tested, every series exported."""

from __future__ import annotations

import json

import yaml

from .conftest import DASHBOARD_DIR, PROMTOOL_DIR, REPO_ROOT, RULES_DIR, exported_samples
from .promql_names import matchers, metric_names

# Values of the dashboards' template variables in the promtool tests ("All").
VARIABLES = {"$queue": ".*", "$pool": ".*"}
# Series made by Prometheus itself, not by the ACD.
PROMETHEUS_SERIES = {"up"}
PROVISIONING = REPO_ROOT / "deploy" / "grafana" / "provisioning"


def dashboards() -> dict[str, dict]:
    return {f.name: json.loads(f.read_text(encoding="utf-8")) for f in sorted(DASHBOARD_DIR.glob("*.json"))}


def panel_exprs() -> list[tuple[str, str, str]]:
    out = []
    for name, dash in dashboards().items():
        for panel in dash["panels"]:
            for target in panel.get("targets", []):
                out.append((name, panel["title"], target["expr"]))
    return out


def variable_queries() -> list[str]:
    return [v["query"]["query"] for d in dashboards().values() for v in d["templating"]["list"]]


def rule_exprs() -> list[str]:
    out = []
    for f in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(f.read_text(encoding="utf-8"))["groups"]:
            out.extend(r["expr"] for r in group["rules"])
    return out


def recorded_names() -> set[str]:
    names = set()
    for f in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(f.read_text(encoding="utf-8"))["groups"]:
            names.update(r["record"] for r in group["rules"] if "record" in r)
    return names


def substitute(expr: str) -> str:
    for var, value in VARIABLES.items():
        expr = expr.replace(var, value)
    return expr


def test_the_three_dashboards_are_well_formed():
    datasource = yaml.safe_load((PROVISIONING / "datasources" / "callcenter-prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    dashes = dashboards()
    assert set(dashes) == {"callcenter-overview.json", "callcenter-pools.json", "callcenter-24h.json"}
    assert len({d["uid"] for d in dashes.values()}) == 3
    for name, dash in dashes.items():
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in dash["panels"]:
            assert panel["datasource"]["uid"] == uid, (name, panel["title"])
            grid = panel["gridPos"]
            assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, (name, panel["title"])
            assert panel["targets"], (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid
                assert "$" not in substitute(target["expr"]), f"unknown variable in {target['expr']}"
        for var in dash["templating"]["list"]:
            assert f"${var['name']}" in VARIABLES


def test_the_overview_shows_what_admins_watch():
    overview = dashboards()["callcenter-overview.json"]
    exprs = " ".join(t["expr"] for p in overview["panels"] for t in p["targets"])
    for needle in ("queue:callcenter_connection_rate:24h", "vector(0.95)", "callcenter_queue_waiting_calls",
                   "callcenter_queue_oldest_wait_seconds", "callcenter_agents", "callcenter_calls_answered_total",
                   "sum by (tier)", "callcenter_lender_borrowed_share_ratio",
                   "callcenter_queue_emergency_since_seconds"):
        assert needle in exprs, needle


def test_dashboard_provider_points_at_the_dashboards():
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "callcenter.yml").read_text())["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"].endswith("/callcenter")


def test_every_panel_query_is_in_a_promtool_unit_test():
    tested = set()
    for f in sorted(PROMTOOL_DIR.glob("dashboards*_test.yml")):
        for test in yaml.safe_load(f.read_text(encoding="utf-8"))["tests"]:
            for case in test.get("promql_expr_test", []):
                assert case["exp_samples"], f"{f.name}: {case['expr']} expects no samples: test a real value"
                tested.add(case["expr"])
    missing = [(d, t, e) for d, t, e in panel_exprs() if substitute(e) not in tested]
    assert not missing, f"panel queries without a promtool test: {missing}"


def test_the_acd_exports_every_series_the_rules_and_panels_read(acd_metrics):
    samples = exported_samples(acd_metrics.text)
    by_name: dict[str, list[dict[str, str]]] = {}
    for name, labels in samples:
        by_name.setdefault(name, []).append(labels)
    recorded = recorded_names()
    exprs = rule_exprs() + [substitute(e) for _, _, e in panel_exprs()] + [
        q.replace("label_values(", "").split(",")[0] for q in variable_queries()]
    used = set().union(*(metric_names(e) for e in exprs))
    assert "callcenter_calls_offered_total" in used and "callcenter_agents" in used
    raw = {n for n in used if ":" not in n} - PROMETHEUS_SERIES
    assert {n for n in used if ":" in n} <= recorded, "queries read recording rules that do not exist"
    assert raw - set(by_name) == set(), "series read by rules or panels that the ACD does not export"
    for expr in exprs:
        for m in matchers(expr):
            if m.metric is None or m.metric in PROMETHEUS_SERIES or ":" in m.metric:
                continue
            series = by_name[m.metric]
            assert any(m.label in labels for labels in series), f"{m.metric} has no label {m.label!r}: {expr}"
            if m.op == "=":
                assert any(labels.get(m.label) == m.value for labels in series), (
                    f"no exported {m.metric} has {m.label}={m.value!r}: {expr}")
            elif m.op == "=~" and m.value != ".*":
                import re

                assert any(re.fullmatch(m.value, labels.get(m.label, "")) for labels in series), (
                    f"no exported {m.metric} matches {m.label}=~{m.value!r}: {expr}")


def test_promtool_input_series_are_named_and_labelled_as_the_acd_exports_them(acd_metrics):
    exported: dict[str, set[str]] = {}
    for name, labels in exported_samples(acd_metrics.text):
        exported.setdefault(name, set()).update(labels)
    scrape_labels = {"job", "instance"}  # added by Prometheus at scrape time
    checked = 0
    for f in sorted(PROMTOOL_DIR.glob("*_test.yml")):
        for test in yaml.safe_load(f.read_text(encoding="utf-8"))["tests"]:
            for item in test.get("input_series", []):
                name = item["series"].split("{", 1)[0].strip()
                if name in PROMETHEUS_SERIES:
                    continue
                assert name in exported, f"{f.name}: {name} is not exported by the ACD"
                keys = {m.label for m in matchers(item["series"])}
                assert keys - scrape_labels == exported[name], f"{f.name}: {item['series']} has other labels"
                checked += 1
    assert checked > 50
