"""The failover service end to end in one process, deterministic: task.Clock as the
reactor, Redis calls inline against a real Redis.

Covers: takeover restores the state; Redis outage -> routing goes on from memory,
alarm metrics raised, the state written back when Redis returns (also after Redis
lost its data); a fenced old active stops serving.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY
from twisted.internet import task

from callcenter.engine import Engine
from callcenter.state.lease import ACTIVE, StateKeys
from callcenter.state.runner import InlineRunner
from callcenter.state.sentinel import redis_from_url
from callcenter.state.service import StateService
from callcenter.state.store import RedisJournal, load_engine

_n = itertools.count()


def sample(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


def make_node(config, url, clock, keys, name):
    acd = SimpleNamespace(config=config, reactor=clock, engine=Engine(config, clock), redis_url=url, redis=None)
    lost = []
    service = StateService(
        acd, keys=keys, runner_factory=lambda _name: InlineRunner(), quiet_s=0.0, on_lease_lost=lost.append
    )
    service.holder = name
    return acd, service, lost


def become_active(clock, service, acd):
    ready = service.start()
    fired = []
    ready.addCallback(fired.append)
    clock.advance(0)  # poll -> acquire -> load -> install
    clock.advance(0)  # first snapshot flushed
    assert fired == [None] and acd.is_active and acd.became_active.called
    return ready


def staff(engine, n=3):
    for i in range(n):
        engine.agent_logged_in(f"a{i}", "own-12345", endpoint=f"PJSIP/a{i}")
        engine.agent_ready(f"a{i}")


def test_standby_restores_callers_in_order_and_agents_on_calls(example_config, fresh_redis):
    keys = StateKeys(f"{{svc-{next(_n)}}}")
    clock_a = task.Clock()
    clock_a.advance(5000.0)
    acd_a, svc_a, _ = make_node(example_config, fresh_redis.url, clock_a, keys, "acd-1")
    become_active(clock_a, svc_a, acd_a)
    eng = acd_a.engine
    staff(eng, 2)
    for i in range(6):
        eng.call_arrived(f"c{i}", "hotline-12345", category="other" if i != 4 else "epidemic-urgent")
        clock_a.advance(1.0)
    eng.offer_answered("c0", "a0")
    clock_a.advance(0)
    assert svc_a.store.unsynced == 0
    waiting_a = sorted((eng.position(c)[0], c) for c in eng.calls() if eng.call_info(c)["state"] == "waiting")
    # SIGKILL-like death: A simply stops; B (standby) takes over when the lease runs out
    clock_b = task.Clock()
    clock_b.advance(clock_a.seconds() + 3.0)
    fresh_redis_client = redis_from_url(fresh_redis.url)
    fresh_redis_client.delete(keys.lease)  # the TTL ran out
    acd_b, svc_b, _ = make_node(example_config, fresh_redis.url, clock_b, keys, "acd-2")
    become_active(clock_b, svc_b, acd_b)
    eng_b = acd_b.engine
    assert svc_b.token == 2
    waiting_b = sorted((eng_b.position(c)[0], c) for c in eng_b.calls() if eng_b.call_info(c)["state"] == "waiting")
    assert waiting_b == waiting_a and len(waiting_b) == 4
    assert waiting_b[0][1] == "c4"  # the urgent caller stays first
    assert eng_b.agent_info("a0")["state"] == "on-call" and eng_b.call_info("c0")["state"] == "talking"
    assert svc_b.takeover["restored_calls"] == 6
    fresh_redis_client.close()


def test_redis_outage_routing_goes_on_alarm_raised_state_written_back(example_config, fresh_redis):
    keys = StateKeys(f"{{svc-{next(_n)}}}")
    clock = task.Clock()
    clock.advance(10_000.0)
    acd, svc, lost = make_node(example_config, fresh_redis.url, clock, keys, "acd-1")
    become_active(clock, svc, acd)
    eng = acd.engine
    offers = []
    eng.subscribe(lambda e: offers.append(e.call_id) if e.kind == "CallOffered" else None)
    staff(eng, 2)
    clock.advance(0)
    assert sample("callcenter_redis_up") == 1 and sample("callcenter_state_unsynced_inputs") == 0

    fresh_redis.kill()
    eng.call_arrived("during-1", "hotline-12345")
    eng.call_arrived("during-2", "hotline-12345")
    eng.call_arrived("during-3", "hotline-12345")
    assert offers == ["during-1", "during-2"]  # routing from memory
    clock.advance(0)
    assert sample("callcenter_redis_up") == 0
    assert sample("callcenter_state_unsynced_inputs") == 3
    for _ in range(10):  # renewals fail, retries back off; the ACD stays active
        clock.advance(0.5)
    assert svc.keeper.role == ACTIVE and acd.is_active and lost == []
    eng.offer_answered("during-1", "a0")
    assert sample("callcenter_state_unsynced_inputs") == 4
    assert sample("callcenter_state_redis_lag_seconds") >= 5.0

    # Redis returns, empty (it was killed before it could save): the fence is reclaimed and
    # a fresh snapshot written
    fresh_redis.requested_port = fresh_redis.port
    fresh_redis.start()
    for _ in range(12):
        clock.advance(0.5)
    assert sample("callcenter_redis_up") == 1
    assert sample("callcenter_state_unsynced_inputs") == 0
    assert svc.keeper.role == ACTIVE and lost == []
    client = redis_from_url(fresh_redis.url)
    try:
        assert client.get(keys.fence) == b"1"
        doc, records, _ = RedisJournal(client, keys).load()
    finally:
        client.close()
    restored = load_engine(Engine, example_config, clock, doc, records)
    assert restored.snapshot() == eng.snapshot()
    assert restored.call_info("during-1")["state"] == "talking"
    assert restored.call_info("during-3")["state"] == "waiting"


def test_old_active_is_fenced_on_its_next_write_and_stops_serving(example_config, fresh_redis):
    keys = StateKeys(f"{{svc-{next(_n)}}}")
    clock_a = task.Clock()
    acd_a, svc_a, lost_a = make_node(example_config, fresh_redis.url, clock_a, keys, "acd-1")
    become_active(clock_a, svc_a, acd_a)
    staff(acd_a.engine, 1)
    clock_a.advance(0)
    # A is paused (its clock stands still) long enough for B to take over
    client = redis_from_url(fresh_redis.url)
    client.delete(keys.lease)
    clock_b = task.Clock()
    acd_b, svc_b, _ = make_node(example_config, fresh_redis.url, clock_b, keys, "acd-2")
    become_active(clock_b, svc_b, acd_b)
    snap_b = client.get(keys.snapshot)
    # A wakes up and accepts one more input before its renewal is due: its write is refused
    acd_a.engine.call_arrived("late", "hotline-12345")
    clock_a.advance(0)
    assert lost_a == ["another ACD holds the lease"]
    assert acd_a.is_active is False
    assert client.get(keys.snapshot) == snap_b
    client.close()


@pytest.mark.parametrize("ttl", [3.0])
def test_takeover_time_with_default_lease_is_under_5s(example_config, fresh_redis, ttl):
    """Clock arithmetic of the worst case: the active dies right after a renewal."""
    keys = StateKeys(f"{{svc-{next(_n)}}}")
    clock_a = task.Clock()
    acd_a, svc_a, _ = make_node(example_config, fresh_redis.url, clock_a, keys, "acd-1")
    become_active(clock_a, svc_a, acd_a)
    client = redis_from_url(fresh_redis.url)
    pttl = client.pttl(keys.lease)
    assert ttl * 1000 - 200 < pttl <= ttl * 1000
    poll = svc_a.keeper.poll_every_s
    assert pttl / 1000 + poll < 5.0
    client.close()
