"""The real /metrics of a running ACD that has handled calls."""

from __future__ import annotations

import re

from .conftest import exported_samples, run_promtool, sample_value

QUEUE = "hotline-12345"


def test_promtool_check_metrics_passes_on_a_running_acd(acd_metrics, promtool):
    assert acd_metrics.healthz == 200
    assert "callcenter.metrics_service" in acd_metrics.subsystems
    assert acd_metrics.content_type.startswith("text/plain")
    # promtool lints names, units, _total suffixes, HELP text and histogram shape
    run_promtool(promtool, "check", "metrics", stdin=acd_metrics.text)


def test_the_calls_of_the_scenario_are_counted(acd_metrics):
    text = acd_metrics.text
    # c1..c10 entered the queue; the abandoned-to-callback call for c7 is not a new offer.
    assert sample_value(text, "callcenter_calls_offered_total", queue=QUEUE) == 10
    assert sample_value(text, "callcenter_callbacks_queued_total", queue=QUEUE) == 1
    # c1, c2, c3, c4, c10 were answered live: by own (tier 0), remote (tier 1) and borrowed (tier 2) seats.
    assert sample_value(text, "callcenter_calls_answered_total", queue=QUEUE) == 5
    for tier in ("0", "1", "2"):
        assert sample_value(text, "callcenter_calls_answered_total", queue=QUEUE, tier=tier) >= 1
    assert sample_value(text, "callcenter_calls_answered_total", pool="lender-12333") == 1
    # The wait histogram's answered count is the answered counter; the connection rate's inputs agree.
    assert sample_value(text, "callcenter_call_wait_seconds_count", queue=QUEUE, outcome="answered") == 5
    assert sample_value(text, "callcenter_call_wait_seconds_bucket", queue=QUEUE, outcome="answered",
                        le="+Inf") == 5
    within_15 = sample_value(text, "callcenter_call_wait_seconds_bucket", queue=QUEUE, outcome="answered", le="15.0")
    assert 1 <= within_15 < 5  # c1 within 15 s; c2 rang out first
    # c5 (short) and c7 abandoned, c8 fell back after max_wait_s under the emergency plan.
    assert sample_value(text, "callcenter_calls_ended_total", queue=QUEUE, outcome="abandoned") >= 2
    assert sample_value(text, "callcenter_calls_short_abandoned_total", queue=QUEUE) == 1
    assert sample_value(text, "callcenter_calls_ended_total", queue=QUEUE, outcome="fallback") == 1
    assert sample_value(text, "callcenter_call_wait_seconds_bucket", queue=QUEUE, outcome="fallback",
                        le="300.0") == 0
    assert sample_value(text, "callcenter_callbacks_requested_total", queue=QUEUE) == 1
    # c2's first agent let it ring out.
    assert sample_value(text, "callcenter_offers_total", result="no-answer") >= 1
    # Scrape-time gauges from engine.status().
    assert sample_value(text, "callcenter_queue_emergency_active", queue=QUEUE) == 1
    assert sample_value(text, "callcenter_queue_emergency_plan_info", queue=QUEUE, plan="surge") == 1
    assert sample_value(text, "callcenter_agents", pool="own-12345", state="on-call") == 1  # c10
    assert sample_value(text, "callcenter_pool_logged_in_agents", pool="lender-12333") == 2
    assert sample_value(text, "callcenter_lender_max_share_ratio", pool="lender-12333", lender="12333") == 0.5
    assert sample_value(text, "callcenter_lender_cap_agents", pool="lender-12333") == 1
    assert sample_value(text, "callcenter_agent_state_seconds_total", pool="own-12345", state="on-call") > 0
    assert sample_value(text, "callcenter_queue_pool_info", queue=QUEUE, pool="remote-cities", tier="1") == 1
    # Health gauges are set by the records and state subsystems of the running ACD.
    assert sample_value(text, "callcenter_redis_up") == 1
    assert sample_value(text, "callcenter_database_up") == 1
    # Default collectors: process and Python metrics.
    assert sample_value(text, "process_cpu_seconds_total") > 0
    assert sample_value(text, "python_info") == 1


def test_no_caller_call_or_agent_identifiers_in_labels(acd_metrics):
    ids = {"a1", "a2", "r1", "b1", "b2", "x1"} | {f"c{i}" for i in range(1, 11)} | {"c7:cb"}
    masked = re.compile(r"\d{3}\*{4}\d{4}|\d{11}")
    for name, labels in exported_samples(acd_metrics.text):
        if not name.startswith("callcenter_"):
            continue
        assert not {"caller", "call_id", "agent", "agent_id", "number"} & set(labels), (name, labels)
        for value in labels.values():
            assert value not in ids and not masked.search(value), (name, labels)
