"""The engine's state can move: snapshot + the inputs since give the same decisions."""

import json
import random

from twisted.internet.task import Clock

from callcenter.engine import Engine

from .conftest import Harness, small_config


def drive(engine, clock, rnd, steps, start):
    """Random but reproducible inputs; returns the decisions made."""
    out = []
    unsub = engine.subscribe(lambda e: out.append(e.to_dict()))
    n = start
    for _ in range(steps):
        r = rnd.random()
        calls = sorted(engine.calls())
        if r < 0.3:
            n += 1
            engine.call_arrived(f"c{n}", rnd.choice(["hotline", "second"]), caller_masked="139****0001",
                                category=rnd.choice(["urgent", "policy", "labour", "other"]))
        elif r < 0.5 and calls:
            c = rnd.choice(calls)
            info = engine.call_info(c)
            if info["state"] == "offered":
                engine.offer_answered(c, info["agent_id"])
            elif info["state"] == "talking":
                engine.call_completed(c)
        elif r < 0.55 and calls:
            c = rnd.choice(calls)
            if engine.call_info(c)["state"] != "talking" and not engine.call_info(c)["callback"]:
                engine.caller_hung_up(c)
        elif r < 0.6:
            engine.home_load_reported("lend", rnd.randrange(5), clock.seconds())
        else:
            clock.advance(rnd.choice([0.5, 2, 5, 13]))
    unsub()
    return out, n


def start(h):
    for i in range(4):
        h.agent(f"o{i}", skills={"epi": 1 + i % 3, "labour": 2} if i % 2 else {})
    h.agent("r1", pool="remote", skills={"epi": 5})
    for i in range(4):
        h.agent(f"l{i}", pool="lend", skills={"labour": 3})


def test_restore_mid_run_gives_the_same_decisions():
    h = Harness()
    start(h)
    drive(h.engine, h.clock, random.Random(1), 400, 0)
    snap = json.loads(json.dumps(h.engine.snapshot()))  # through JSON, as Redis would hold it
    assert snap["calls"], "the snapshot should hold calls in flight"

    rnd_state = random.Random(2)
    original, _ = drive(h.engine, h.clock, rnd_state, 400, 1000)

    clock2 = Clock()
    clock2.advance(snap["t"])
    restored = Engine.restore(small_config(), clock2, snap)
    assert restored.snapshot() == snap
    replay, _ = drive(restored, clock2, random.Random(2), 400, 1000)
    assert replay == original
    assert len(original) > 100


def test_journal_replay_reaches_the_same_state():
    h = Harness()
    start(h)
    drive(h.engine, h.clock, random.Random(3), 100, 0)
    snap = h.engine.snapshot()
    journal = []
    h.engine.subscribe_inputs(journal.append)
    # task.Clock fires everything due at the *end* of an advance, so the replay makes the same steps
    real_advance = h.clock.advance
    h.clock.advance = lambda dt: (journal.append({"advance": dt}), real_advance(dt))

    drive(h.engine, h.clock, random.Random(4), 200, 500)
    final = h.engine.snapshot()
    assert sum(1 for r in journal if "input" in r) > 50

    clock2 = Clock()
    clock2.advance(snap["t"])
    e2 = Engine.restore(small_config(), clock2, snap)
    for rec in journal:
        if "advance" in rec:
            clock2.advance(rec["advance"])
        else:
            assert rec["t"] == clock2.seconds()
            e2.apply_input(json.loads(json.dumps(rec)))
    assert e2.snapshot() == final
