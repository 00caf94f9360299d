"""callcenter.metrics in-process: engine events -> counters, engine.status() -> gauges at scrape time.

The counters live in the default registry (as served on /metrics), so these
tests compare deltas; the collector is registered in a private registry per test.
"""

from __future__ import annotations

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from twisted.internet import task

from callcenter import metrics
from callcenter.config import parse_config
from callcenter.engine import Engine
from callcenter.engine import events as ev

from .conftest import REPO_ROOT, sample_value

Q = "hotline-12345"


def example_config(**acd):
    raw = yaml.safe_load((REPO_ROOT / "deploy" / "callcenter.yaml").read_text(encoding="utf-8"))
    raw["acd"].update(acd)
    # The engine counts abandoned-to-callback calls without placing them (no call-file spool needed).
    raw["queues"][0]["callback"]["abandoned_to_callback"] = True
    return parse_config(raw, env={})


class Counted:
    """Reads default-registry samples; ``delta`` is the change since construction."""

    def __init__(self, name: str, **labels: str):
        self.name, self.labels = name, labels
        self.start = self.now()

    def now(self) -> float:
        return REGISTRY.get_sample_value(self.name, self.labels) or 0.0

    @property
    def delta(self) -> float:
        return self.now() - self.start


@pytest.fixture
def world():
    clock = task.Clock()
    clock.advance(1_000_000)
    engine = Engine(example_config(), clock)
    registry = CollectorRegistry()
    binding = metrics.MetricsBinding(engine, clock, registry=registry)
    binding.bind()
    yield engine, clock, registry
    binding.unbind()


def scrape(registry) -> str:
    return generate_latest(registry).decode()


def login_ready(engine, agent, pool="own-12345"):
    engine.agent_logged_in(agent, pool, endpoint=f"PJSIP/{agent}")
    engine.agent_ready(agent)


def test_series_exist_at_zero_before_the_first_call(world):
    # so that increase() sees the first call and "rate under 95 %" alerts are not silent
    for name, labels in (
        ("callcenter_calls_offered_total", {"queue": Q, "category": "medical"}),
        ("callcenter_calls_answered_total", {"queue": Q, "pool": "lender-12315", "tier": "2", "category": "other"}),
        ("callcenter_calls_ended_total", {"queue": Q, "category": "labour", "outcome": "fallback"}),
        ("callcenter_offers_total", {"pool": "remote-cities", "tier": "1", "result": "no-answer"}),
        ("callcenter_call_wait_seconds_bucket", {"queue": Q, "outcome": "abandoned", "le": "15.0"}),
    ):
        assert REGISTRY.get_sample_value(name, labels) is not None, (name, labels)


def test_an_answered_call_and_an_abandoned_call(world):
    engine, clock, _ = world
    offered = Counted("callcenter_calls_offered_total", queue=Q, category="medical")
    answered = Counted("callcenter_calls_answered_total", queue=Q, pool="own-12345", tier="0", category="medical")
    within_15 = Counted("callcenter_call_wait_seconds_bucket", queue=Q, outcome="answered", le="15.0")
    ended_answered = Counted("callcenter_calls_ended_total", queue=Q, category="medical", outcome="answered")
    abandoned = Counted("callcenter_calls_ended_total", queue=Q, category="other", outcome="abandoned")
    abandoned_15 = Counted("callcenter_call_wait_seconds_bucket", queue=Q, outcome="abandoned", le="15.0")
    abandoned_20 = Counted("callcenter_call_wait_seconds_bucket", queue=Q, outcome="abandoned", le="20.0")
    talk = Counted("callcenter_call_talk_seconds_sum", queue=Q, tier="0")
    offers = Counted("callcenter_offers_total", pool="own-12345", tier="0", result="answered")

    login_ready(engine, "a1")
    engine.call_arrived("c1", Q, category="medical")
    clock.advance(3)
    engine.offer_answered("c1", "a1")
    assert (offered.delta, answered.delta, within_15.delta, offers.delta) == (1, 1, 1, 1)
    assert ended_answered.delta == 0  # not ended yet: answered is counted when connected
    engine.call_arrived("c2", Q, category="other")
    clock.advance(18)
    engine.caller_hung_up("c2")
    assert (abandoned.delta, abandoned_15.delta, abandoned_20.delta) == (1, 0, 1)
    clock.advance(100)
    engine.call_completed("c1")
    assert ended_answered.delta == 1
    assert talk.delta == pytest.approx(118.0)


def test_an_abandoned_to_callback_call_is_not_offered_again(world):
    engine, clock, _ = world
    offered = Counted("callcenter_calls_offered_total", queue=Q, category="other")
    queued = Counted("callcenter_callbacks_queued_total", queue=Q)
    engine.call_arrived("c1", Q, category="other")
    clock.advance(30)
    engine.caller_hung_up("c1")  # abandoned_to_callback: a callback call c1:cb joins the queue
    assert engine.call_info("c1:cb") is not None
    assert (offered.delta, queued.delta) == (1, 1)
    followup_ended = Counted("callcenter_callback_calls_ended_total", queue=Q, outcome="abandoned")
    ended = Counted("callcenter_calls_ended_total", queue=Q, category="other", outcome="abandoned")
    engine.caller_hung_up("c1:cb")  # a callback waiting as a virtual call keeps its place
    login_ready(engine, "a1")
    clock.advance(1)
    assert engine.call_info("c1:cb")["state"] == "offered"
    engine.offer_answered("c1:cb", "a1")
    engine.call_completed("c1:cb", by="agent")
    assert Counted("callcenter_callback_calls_ended_total", queue=Q, outcome="called-back").now() >= 1
    assert (followup_ended.delta, ended.delta) == (0, 0)


def test_a_call_shed_at_capacity_is_offered_and_falls_back(world):
    clock = task.Clock()
    engine = Engine(example_config(max_calls=1), clock)
    binding = metrics.MetricsBinding(engine, clock, registry=CollectorRegistry())
    binding.bind()
    try:
        offered = Counted("callcenter_calls_offered_total", queue=Q, category="other")
        fallback = Counted("callcenter_calls_ended_total", queue=Q, category="other", outcome="fallback")
        engine.call_arrived("c1", Q, category="other")
        engine.call_arrived("c2", Q, category="other")  # over acd.max_calls: never queued
        assert (offered.delta, fallback.delta) == (2, 1)
    finally:
        binding.unbind()


def test_gauges_are_read_from_the_engine_at_scrape_time(world):
    engine, clock, registry = world
    engine.call_arrived("c1", Q)
    clock.advance(10)
    engine.call_arrived("c2", Q)
    clock.advance(5)
    text = scrape(registry)
    assert sample_value(text, "callcenter_queue_waiting_calls", queue=Q) == 2
    assert sample_value(text, "callcenter_queue_oldest_wait_seconds", queue=Q) == 15
    clock.advance(20)  # no event at all: the next scrape still sees the longer wait
    assert sample_value(scrape(registry), "callcenter_queue_oldest_wait_seconds", queue=Q) == 35
    switched_at = clock.seconds()
    engine.emergency_set(Q, "surge", by="duty-supervisor")
    clock.advance(60)
    text = scrape(registry)
    assert sample_value(text, "callcenter_queue_emergency_active", queue=Q) == 1
    assert sample_value(text, "callcenter_queue_emergency_plan_info", queue=Q, plan="surge") == 1
    # who switched it on and when, for the dashboard (state that outlives a restart must show)
    assert sample_value(text, "callcenter_queue_emergency_since_seconds", queue=Q, plan="surge",
                        by="duty-supervisor") == switched_at
    restored = type(engine).restore(engine.config, clock, engine.snapshot())
    queue = next(q for q in restored.status()["queues"] if q["name"] == Q)
    assert (queue["emergency_by"], queue["emergency_since"]) == ("duty-supervisor", switched_at)
    engine.emergency_set(Q, None)
    engine.caller_hung_up("c1")
    engine.caller_hung_up("c2")
    text = scrape(registry)  # abandoned_to_callback: both wait on as virtual callback calls
    assert sample_value(text, "callcenter_queue_waiting_calls", queue=Q) == 2
    assert sample_value(text, "callcenter_queue_callbacks_waiting_calls", queue=Q) == 2
    assert sample_value(text, "callcenter_queue_emergency_active", queue=Q) == 0
    assert "callcenter_queue_emergency_plan_info{" not in text
    assert "callcenter_queue_emergency_since_seconds{" not in text


def test_agents_by_state_and_lender_share(world):
    engine, clock, registry = world
    for agent in ("b1", "b2"):
        login_ready(engine, agent, "lender-12333")
    engine.home_load_reported("lender-12333", 0, clock.seconds())
    engine.emergency_set(Q, "surge")  # all tiers at once
    engine.call_arrived("c1", Q)
    ringing = engine.call_info("c1")["agent_id"]
    engine.offer_answered("c1", ringing)
    text = scrape(registry)
    assert sample_value(text, "callcenter_agents", pool="lender-12333", tier="2", state="on-call") == 1
    assert sample_value(text, "callcenter_agents", pool="lender-12333", state="ready") == 1
    assert sample_value(text, "callcenter_lender_borrowed_share_ratio", pool="lender-12333", lender="12333") == 0.5
    assert sample_value(text, "callcenter_lender_max_share_ratio", pool="lender-12333", lender="12333") == 0.5
    assert sample_value(text, "callcenter_lender_cap_agents", pool="lender-12333") == 1
    assert sample_value(text, "callcenter_lender_gate_open", pool="lender-12333") == 0  # at its cap
    assert sample_value(text, "callcenter_pool_info", pool="lender-12333", kind="borrowed", lender="12333") == 1


def test_agent_state_seconds_count_open_intervals_and_never_go_back(world):
    engine, clock, registry = world
    engine.agent_logged_in("a1", "own-12345")
    clock.advance(30)
    engine.agent_ready("a1")
    clock.advance(12)

    def seconds(state):
        return sample_value(scrape(registry), "callcenter_agent_state_seconds_total", pool="own-12345", state=state)

    assert (seconds("not-ready"), seconds("ready")) == (30, 12)  # ready is still open
    engine.agent_logged_out("a1")
    clock.advance(100)  # logged-out time is not counted
    assert (seconds("not-ready"), seconds("ready")) == (30, 12)


def test_a_restored_engine_does_not_offer_its_calls_twice():
    clock = task.Clock()
    config = example_config()
    first = Engine(config, clock)
    first.call_arrived("c1", Q, category="other")
    restored = Engine.restore(config, clock, first.snapshot())
    binding = metrics.MetricsBinding(restored, clock, registry=CollectorRegistry())
    binding.bind()
    try:
        offered = Counted("callcenter_calls_offered_total", queue=Q, category="other")
        abandoned = Counted("callcenter_calls_ended_total", queue=Q, category="other", outcome="abandoned")
        clock.advance(2)
        restored.caller_hung_up("c1")
        assert (offered.delta, abandoned.delta) == (0, 1)
    finally:
        binding.unbind()


def test_one_binding_per_registry_and_unbind_stops_counting():
    clock = task.Clock()
    engine = Engine(example_config(), clock)
    registry = CollectorRegistry()
    first = metrics.MetricsBinding(engine, clock, registry=registry)
    first.bind()
    second = metrics.MetricsBinding(engine, clock, registry=registry)
    with pytest.raises(ValueError, match="Duplicated"):
        second.bind()  # the same series twice would be double counting: refused before subscribing
    offered = Counted("callcenter_calls_offered_total", queue=Q, category="other")
    engine.call_arrived("c1", Q, category="other")
    assert offered.delta == 1
    first.unbind()
    assert "callcenter_queue_waiting_calls" not in scrape(registry)
    engine.call_arrived("c2", Q, category="other")
    assert offered.delta == 1


def test_a_bad_event_is_counted_as_an_error_and_not_raised():
    recorder = metrics.EventRecorder()
    errors = Counted("callcenter_metrics_event_errors_total")
    recorder(ev.AgentStateChanged(0.0, "a1", "own", "logged-out", "ready"))
    recorder(ev.AgentStateChanged(None, "a1", "own", "ready", "not-ready"))  # type: ignore[arg-type]
    assert errors.delta == 1


def test_the_collector_tolerates_missing_status_keys():
    class SparseEngine:
        config = None

        def status(self):
            return {"queues": [{"name": "q1"}], "pools": [{"name": "p1"}, {"kind": "own"}]}

    registry = CollectorRegistry()
    registry.register(metrics.EngineCollector(SparseEngine(), metrics.EventRecorder(), task.Clock()))
    text = scrape(registry)
    assert sample_value(text, "callcenter_queue_waiting_calls", queue="q1") == 0
    assert sample_value(text, "callcenter_agents", pool="p1", state="ready") == 0


def test_a_restored_engine_s_agents_are_timed_from_the_takeover():
    clock = task.Clock()
    config = example_config()
    first = Engine(config, clock)
    first.agent_logged_in("a1", "own-12345")
    first.agent_ready("a1")
    clock.advance(500)  # served by the previous process
    restored = Engine.restore(config, clock, first.snapshot())
    registry = CollectorRegistry()
    binding = metrics.MetricsBinding(restored, clock, registry=registry)
    binding.bind()
    try:
        clock.advance(20)
        text = scrape(registry)
        assert sample_value(text, "callcenter_agent_state_seconds_total", pool="own-12345", state="ready") == 20
    finally:
        binding.unbind()
