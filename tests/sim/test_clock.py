"""The heap-based simulated clock behaves like twisted's task.Clock, only faster."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import task
from twisted.internet.error import AlreadyCalled, AlreadyCancelled
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from zope.interface.verify import verifyObject

from callcenter.sim.clock import SimClock


def test_provides_ireactortime():
    clock = SimClock()
    assert verifyObject(IReactorTime, clock)
    assert verifyObject(IDelayedCall, clock.callLater(1, lambda: None))


def test_runs_in_time_order_and_fifo_at_equal_times():
    clock = SimClock()
    seen = []
    clock.callLater(2, seen.append, "b")
    clock.callLater(1, seen.append, "a")
    clock.callLater(2, seen.append, "c")
    clock.callLater(0, seen.append, "now")
    clock.advance(1.5)
    assert seen == ["now", "a"]
    assert clock.seconds() == 1.5
    clock.advance(1)
    assert seen == ["now", "a", "b", "c"]


def test_calls_scheduled_by_calls_run_when_due():
    clock = SimClock()
    seen = []

    def first():
        seen.append(("first", clock.seconds()))
        clock.callLater(0, lambda: seen.append(("same instant", clock.seconds())))
        clock.callLater(5, lambda: seen.append(("later", clock.seconds())))

    clock.callLater(1, first)
    clock.advance(2)
    assert seen == [("first", 1), ("same instant", 1)]
    clock.advance(10)
    assert seen[-1] == ("later", 6)


def test_cancel_reset_delay_active():
    clock = SimClock()
    seen = []
    a = clock.callLater(1, seen.append, "a")
    b = clock.callLater(2, seen.append, "b")
    c = clock.callLater(3, seen.append, "c")
    a.cancel()
    assert not a.active()
    with pytest.raises(AlreadyCancelled):
        a.cancel()
    b.reset(5)  # from now (0): at 5
    c.delay(1)  # at 4
    assert b.getTime() == 5 and c.getTime() == 4
    assert [d.getTime() for d in clock.getDelayedCalls()] == [4, 5]
    clock.advance(10)
    assert seen == ["c", "b"]
    assert not b.active()
    with pytest.raises(AlreadyCalled):
        b.reset(1)
    assert clock.pending == 0


def test_many_cancellations_compact_the_heap():
    clock = SimClock()
    calls = [clock.callLater(i, lambda: None) for i in range(5000)]
    for dc in calls[:4500]:
        dc.cancel()
    assert clock.pending == 500
    assert len(clock._heap) < 5000  # dead entries were dropped
    clock.run()
    assert clock.calls_run == 500


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.sampled_from(["none", "cancel", "reset", "delay"]), st.integers(0, 10)),
                max_size=40),
       st.lists(st.integers(1, 7), min_size=1, max_size=8))
def test_same_calls_fire_in_each_advance_as_with_task_clock(ops, steps):
    """Random schedules with cancels/resets/delays: the same calls fire during each
    advance() as with task.Clock.  Ours runs each call at its own scheduled instant
    (task.Clock reports the end of the advance), which is what a simulation needs."""

    def drive(clock):
        log = []
        dcs = []
        step = [0]
        for i, (delay, _op, _arg) in enumerate(ops):
            dcs.append(clock.callLater(delay, lambda i=i: log.append((i, step[0], clock.seconds()))))
        expected = {}
        for i, (dc, (_delay, op, arg)) in enumerate(zip(dcs, ops, strict=True)):
            if op == "cancel":
                dc.cancel()
            elif op == "reset":
                dc.reset(arg)
            elif op == "delay":
                dc.delay(arg)
            if dc.active():
                expected[i] = dc.getTime()
        for n, s in enumerate(steps):
            step[0] = n
            clock.advance(s)
        return log, expected

    (ours, expected), (theirs, _) = drive(SimClock()), drive(task.Clock())
    assert sorted((i, n) for i, n, _t in ours) == sorted((i, n) for i, n, _t in theirs)
    assert all(t == expected[i] for i, _n, t in ours)
    assert [t for _i, _n, t in ours] == sorted(t for _i, _n, t in ours)
