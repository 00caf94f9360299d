"""Snapshot + journal through a real Redis restore the engine exactly: same state, and
the same decisions follow."""

from __future__ import annotations

import itertools
import json

import pytest
import redis
from twisted.internet import task

from callcenter.engine import Engine
from callcenter.state.lease import StateKeys
from callcenter.state.runner import InlineRunner
from callcenter.state.store import RedisJournal, StateStore, load_engine

from .world import World

_prefixes = itertools.count()


@pytest.fixture
def shared_client(redis_server):
    client = redis.Redis.from_url(redis_server.url, socket_timeout=2.0)
    yield client
    client.close()


def fresh_keys(client) -> StateKeys:
    keys = StateKeys(prefix=f"{{rt-{next(_prefixes)}}}")
    client.delete(keys.lease, keys.fence, keys.snapshot, keys.journal, keys.seq)
    client.set(keys.fence, 1)
    return keys


def comparable(snapshot: dict) -> dict:
    return json.loads(json.dumps(snapshot))


def run_active(example_config, client, keys, steps, **store_kw):
    clock = task.Clock()
    clock.advance(1_700_000_000.0)  # wall-clock-like times, as the reactor has
    engine = Engine(example_config, clock)
    store = StateStore(engine, clock, InlineRunner(), RedisJournal(client, keys), holder="acd-1", **store_kw)
    store.start_writing(token=1)
    world = World(engine, clock, seed=11)
    world.setup()
    for _ in range(steps):
        world.step()
        clock.advance(0)  # the store flushes one reactor turn later
    assert store.unsynced == 0
    return clock, engine, store, world


@pytest.mark.parametrize("snapshot_every", [1, 25, 10_000])
def test_restore_gives_same_state_and_same_decisions(example_config, shared_client, snapshot_every):
    keys = fresh_keys(shared_client)
    clock_a, engine_a, store_a, world_a = run_active(
        example_config, shared_client, keys, 120, snapshot_every_inputs=snapshot_every, snapshot_every_s=1e9
    )
    doc, records, seq = RedisJournal(shared_client, keys).load()
    assert seq == store_a.seq and seq > 100
    if snapshot_every == 10_000:
        assert len(records) == seq - doc["seq"] > 400  # one snapshot at the start, then journal only
    # the standby restores on its own clock, showing the same time
    clock_b = task.Clock()
    clock_b.advance(clock_a.seconds())
    engine_b = load_engine(Engine, example_config, clock_b, doc, records)
    assert comparable(engine_b.snapshot()) == comparable(engine_a.snapshot())
    waiting = [c for c in engine_a.calls() if engine_a.call_info(c)["state"] == "waiting"]
    assert waiting, "the scenario should leave callers waiting"
    assert [engine_b.position(c) for c in waiting] == [engine_a.position(c) for c in waiting]
    # the same future (inputs and timer firings) gives the same decisions
    world_b = world_a.clone_for(engine_b, clock_b)
    world_a.events.clear()
    for _ in range(80):
        world_a.step()
        world_b.step()
    assert world_b.events == world_a.events
    assert len(world_a.events) > 50


def test_replay_fires_timers_between_inputs_as_the_old_active_did(example_config, shared_client):
    """A ring timeout between two journaled inputs must fire during the replay, or the
    later input (answered by the next agent) would not fit."""
    keys = fresh_keys(shared_client)
    clock = task.Clock()
    clock.advance(1000.0)
    engine = Engine(example_config, clock)
    store = StateStore(engine, clock, InlineRunner(), RedisJournal(shared_client, keys), snapshot_every_inputs=10_000)
    store.start_writing(token=1)
    clock.advance(0)
    for agent in ("a1", "a2"):
        engine.agent_logged_in(agent, "own-12345", endpoint=f"PJSIP/{agent}")
        engine.agent_ready(agent)
    engine.call_arrived("c1", "hotline-12345")
    assert engine.agent_info("a1")["state"] == "offered"
    clock.advance(15.0)  # a1 does not answer: ring timeout (not journaled), offered to a2
    assert engine.agent_info("a2")["state"] == "offered"
    clock.advance(1.0)
    engine.offer_answered("c1", "a2")
    clock.advance(0)
    doc, records, _ = RedisJournal(shared_client, keys).load()
    assert [r["input"] for r in records][-2:] == ["call_arrived", "offer_answered"]
    clock_b = task.Clock()
    clock_b.advance(clock.seconds() + 2.0)  # takeover 2 s later
    engine_b = load_engine(Engine, example_config, clock_b, doc, records)
    assert engine_b.call_info("c1")["state"] == "talking"
    assert engine_b.agent_info("a2")["state"] == "on-call"
    assert engine_b.agent_info("a1")["state"] != "offered"


def test_overdue_timers_fire_on_the_new_active_with_its_listeners(example_config, shared_client):
    keys = fresh_keys(shared_client)
    clock = task.Clock()
    clock.advance(1000.0)
    engine = Engine(example_config, clock)
    store = StateStore(engine, clock, InlineRunner(), RedisJournal(shared_client, keys))
    store.start_writing(token=1)
    engine.agent_logged_in("a1", "own-12345", endpoint="PJSIP/a1")
    engine.agent_ready("a1")
    engine.call_arrived("c1", "hotline-12345")
    clock.advance(3.0)  # ringing; the ACD dies now; the ring timeout is due at 1015
    doc, records, _ = RedisJournal(shared_client, keys).load()
    clock_b = task.Clock()
    clock_b.advance(1020.0)
    engine_b = load_engine(Engine, example_config, clock_b, doc, records)
    seen = []
    engine_b.subscribe(lambda e: seen.append(e))
    clock_b.advance(0)
    ended = [e for e in seen if e.kind == "OfferEnded"]
    assert len(ended) == 1 and ended[0].result == "no-answer" and ended[0].call_id == "c1"


def test_config_replacement_is_written_as_a_snapshot(example_config, shared_client):
    keys = fresh_keys(shared_client)
    clock = task.Clock()
    engine = Engine(example_config, clock)
    store = StateStore(engine, clock, InlineRunner(), RedisJournal(shared_client, keys))
    store.start_writing(token=1)
    engine.call_arrived("c1", "hotline-12345")
    clock.advance(0)
    engine.replace_config(example_config)
    clock.advance(0)
    doc, records, seq = RedisJournal(shared_client, keys).load()
    assert records == [] and doc["seq"] == seq == 2
    engine_b = load_engine(Engine, example_config, task.Clock(), doc, records)
    assert engine_b.call_info("c1")["state"] == "waiting"


def test_store_answers_a_gap_with_a_fresh_snapshot(example_config, shared_client):
    keys = fresh_keys(shared_client)
    clock = task.Clock()
    engine = Engine(example_config, clock)
    store = StateStore(engine, clock, InlineRunner(), RedisJournal(shared_client, keys))
    store.start_writing(token=1)
    engine.call_arrived("c1", "hotline-12345")
    clock.advance(0)
    shared_client.set(keys.seq, 0)  # Redis lost our last write (e.g. a replica promoted)
    engine.call_arrived("c2", "hotline-12345")
    clock.advance(0)
    doc, records, seq = RedisJournal(shared_client, keys).load()
    assert store.unsynced == 0 and seq == 2 and records == [] and doc["seq"] == 2
    assert load_engine(Engine, example_config, task.Clock(), doc, records).calls() == ["c1", "c2"]
