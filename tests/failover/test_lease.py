"""Lease and fencing against a real Redis, with time on task.Clock.

Redis TTLs run on real time, so where a test needs the lease to lapse it
shortens the key's TTL to 1 ms (PEXPIRE) and polls until Redis dropped it.
"""

from __future__ import annotations

import pytest
from twisted.internet import task

from callcenter.state.lease import ACTIVE, FENCED, STANDBY, LeaseKeeper, StateKeys
from callcenter.state.runner import InlineRunner
from callcenter.state.store import FencedWrite, RedisJournal
from callcenter.testing.polling import wait_until

KEYS = StateKeys()


def expire_lease_now(client) -> None:
    client.pexpire(KEYS.lease, 1)
    wait_until(lambda: not client.exists(KEYS.lease), 10, "Redis to expire the lease", interval=0.005)


class Node:
    def __init__(self, client, holder, clock=None, **kw):
        self.clock = clock or task.Clock()
        self.events = []
        self.keeper = LeaseKeeper(
            self.clock,
            InlineRunner(),
            client,
            holder,
            3.0,
            on_acquired=lambda t: self.events.append(("acquired", t)),
            on_lost=lambda why: self.events.append(("lost", why)),
            on_reclaimed=lambda lost: self.events.append(("reclaimed", lost)),
            **kw,
        )


def test_first_node_waits_quiet_period_on_a_fresh_redis_then_takes_lease(rclient):
    a = Node(rclient, "acd-1")
    a.keeper.start()
    a.clock.advance(0)
    assert a.keeper.role == STANDBY  # no fence counter yet: maybe a wiped Redis under a live active
    a.clock.pump([0.5] * 11)
    assert a.keeper.role == STANDBY
    a.clock.advance(0.5)  # 6 s = 2 x TTL quiet
    assert a.keeper.role == ACTIVE
    assert a.events == [("acquired", 1)]
    assert rclient.get(KEYS.lease) == b"acd-1|1"
    ttl = rclient.pttl(KEYS.lease)
    assert 2000 < ttl <= 3000


def test_one_active_standby_takes_over_when_lease_runs_out(rclient):
    a = Node(rclient, "acd-1", quiet_s=0)
    b = Node(rclient, "acd-2", quiet_s=0)
    a.keeper.start()
    a.clock.advance(0)
    b.keeper.start()
    b.clock.advance(0)
    assert (a.keeper.role, b.keeper.role) == (ACTIVE, STANDBY)
    # renewals keep it: B polls for a long (clock) time and stays standby
    for _ in range(30):
        a.clock.advance(1.0)
        b.clock.advance(1.0)
    assert (a.keeper.role, b.keeper.role) == (ACTIVE, STANDBY)
    assert rclient.pttl(KEYS.lease) > 1500
    # A dies (no more renewals); the lease runs out in Redis; B takes over with a new token
    expire_lease_now(rclient)
    b.clock.advance(0.5)
    assert b.keeper.role == ACTIVE
    assert b.events == [("acquired", 2)]
    assert rclient.get(KEYS.lease) == b"acd-2|2"


def test_paused_old_active_is_fenced_and_steps_down(rclient):
    a = Node(rclient, "acd-1", quiet_s=0)
    b = Node(rclient, "acd-2", quiet_s=0)
    a.keeper.start()
    a.clock.advance(0)
    b.keeper.start()
    b.clock.advance(0)
    journal_a = RedisJournal(rclient, KEYS)
    journal_a.apply_batch(token=1, base_seq=0, new_seq=1, snapshot=None, records=['{"n":1}'])
    # A pauses for a long time (its clock does not move); B takes over
    expire_lease_now(rclient)
    b.clock.advance(0.5)
    assert b.keeper.role == ACTIVE and b.keeper.token == 2
    # A wakes up and writes before noticing: the write is refused by the fence
    with pytest.raises(FencedWrite):
        journal_a.apply_batch(token=1, base_seq=1, new_seq=2, snapshot=None, records=['{"n":2}'])
    assert rclient.lrange(KEYS.journal, 0, -1) == [b'{"n":1}']
    # ...and its next renewal finds B's lease: A steps down
    a.clock.advance(1.0)
    assert a.keeper.role == FENCED
    assert a.events[-1][0] == "lost"
    # B's writes go through
    RedisJournal(rclient, KEYS).apply_batch(token=2, base_seq=1, new_seq=2, snapshot=None, records=['{"n":2}'])
    assert rclient.lrange(KEYS.journal, 0, -1) == [b'{"n":1}', b'{"n":2}']


def test_old_active_that_finds_lease_expired_but_fence_moved_steps_down(rclient):
    """B took the lease and died too; A must still not reclaim (fence > its token)."""
    a = Node(rclient, "acd-1", quiet_s=0)
    b = Node(rclient, "acd-2", quiet_s=0)
    a.keeper.start()
    a.clock.advance(0)
    b.keeper.start()
    expire_lease_now(rclient)
    b.clock.advance(0)
    assert b.keeper.token == 2
    expire_lease_now(rclient)
    a.clock.advance(1.0)
    assert a.keeper.role == FENCED


def test_graceful_stop_releases_lease_for_immediate_takeover(rclient):
    a = Node(rclient, "acd-1", quiet_s=0)
    b = Node(rclient, "acd-2", quiet_s=0)
    a.keeper.start()
    a.clock.advance(0)
    b.keeper.start()
    b.clock.advance(0)
    a.keeper.stop()
    assert not rclient.exists(KEYS.lease)
    b.clock.advance(0.5)
    assert b.keeper.role == ACTIVE and b.keeper.token == 2


def test_active_keeps_role_through_outage_and_reclaims_after_data_loss(fresh_redis, rclient):
    a = Node(rclient, "acd-1", quiet_s=0)
    a.keeper.start()
    a.clock.advance(0)
    rclient.set(KEYS.fence, 7)  # pretend many failovers happened before
    expire_lease_now(rclient)
    a.keeper.token = 7
    rclient.set(KEYS.lease, "acd-1|7", px=3000)
    fresh_redis.kill()
    redis_up = []
    a.keeper.on_redis = redis_up.append
    a.clock.advance(1.0)
    a.clock.advance(0.5)
    assert a.keeper.role == ACTIVE  # routing goes on from memory
    assert redis_up[-1] is False
    # Redis comes back empty (its files lost): A reclaims and restores the fence
    fresh_redis.wipe_files()
    fresh_redis.requested_port = fresh_redis.port
    fresh_redis.start()
    a.clock.advance(0.5)
    assert a.keeper.role == ACTIVE
    assert a.events[-1] == ("reclaimed", True)
    assert redis_up[-1] is True
    assert rclient.get(KEYS.fence) == b"7"
    assert rclient.get(KEYS.lease) == b"acd-1|7"


def test_standby_after_redis_error_waits_quiet_period_so_active_can_reclaim(fresh_redis, rclient):
    a = Node(rclient, "acd-1", quiet_s=0)
    a.keeper.start()
    a.clock.advance(0)
    b = Node(rclient, "acd-2")  # default quiet: 2 x TTL
    b.keeper.start()
    b.clock.advance(0)
    fresh_redis.kill()
    b.clock.advance(0.5)  # B sees the error
    a.clock.advance(1.0)
    fresh_redis.wipe_files()  # it comes back empty (with its files, the AOF would keep the fence)
    fresh_redis.requested_port = fresh_redis.port
    fresh_redis.start()
    rclient.delete(KEYS.lease)  # the lease lapsed during the outage
    b.clock.advance(0.5)
    b.clock.advance(0.5)
    assert b.keeper.role == STANDBY  # only probing
    a.clock.advance(1.0)  # A's next renewal reclaims
    assert a.keeper.role == ACTIVE and a.events[-1] == ("reclaimed", True)  # killed: data gone
    b.clock.pump([0.5] * 20)
    assert b.keeper.role == STANDBY


def test_redis_connection_errors_are_not_fatal_to_standby(fresh_redis, rclient):
    b = Node(rclient, "acd-2", quiet_s=0)
    fresh_redis.kill()
    b.keeper.start()
    b.clock.pump([0.5] * 4)
    assert b.keeper.role == STANDBY
    fresh_redis.requested_port = fresh_redis.port
    fresh_redis.start()
    b.clock.advance(0.5)
    assert b.keeper.role == ACTIVE


def test_holder_with_separator_is_refused(rclient):
    with pytest.raises(ValueError):
        LeaseKeeper(task.Clock(), InlineRunner(), rclient, "a|b")
