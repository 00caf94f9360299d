"""Who is active: a Redis lease with a TTL, and a fencing token.

Exactly one ACD is *active*.  It holds the key ``{cc}:lease`` (value
``holder|token``, TTL ``acd.lease_ttl_s``, default 3 s) and renews it every
TTL/3.  Each acquisition takes a new *fencing token* from ``INCR {cc}:fence``;
every state write (store.py) is a Lua script that first checks that the fence
counter still equals the writer's token, so an old active that lost its lease
(a long GC/VM pause, a partition) can never overwrite the new active's state:
its first write after the takeover fails with ``FENCED`` and it steps down.
This is the classic lease + fencing-token scheme (Kleppmann, "How to do
distributed locking"; Redis docs "Distributed locks with Redis"): the TTL
alone is not safe against pauses, the token is.

The *standby* polls every TTL/6 and takes the lease as soon as it is gone, so
failover takes at most TTL + TTL/6 + the restore (< 5 s with the default).

Redis outages.  The guide asks the active to go on routing from memory while
Redis is unreachable, so a failed renewal does not demote the active; only
positive evidence does (someone else holds the lease, or the fence counter has
moved past our token).  When Redis answers again the active *reclaims* the
lease (and restores the fence counter if Redis lost its data) and the store
writes a fresh snapshot.  To give the active that chance, a standby that has
just seen Redis fail, or that finds no fence counter at all (a fresh or wiped
Redis), waits until the lease has been absent for ``quiet_s`` (default 2 x
TTL) before it takes it.

The keeper is a small state machine; Redis calls go through an injected
runner (``runner(fn, *args) -> Deferred``; a dedicated thread in production,
inline in tests) and every timer through an injected IReactorTime.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

__all__ = [
    "StateKeys",
    "DEFAULT_KEYS",
    "LeaseKeeper",
    "STANDBY",
    "ACTIVE",
    "FENCED",
    "STOPPED",
    "LeaseLost",
]

STANDBY = "standby"
ACTIVE = "active"
FENCED = "fenced"  # lost the lease to another ACD: must stop serving
STOPPED = "stopped"


class LeaseLost(Exception):
    """Another ACD holds the lease (or took it after us): this process must stop serving."""


@dataclass(frozen=True)
class StateKeys:
    """Every Redis key of one ACD cluster.  The ``{...}`` hash tag keeps them in one
    slot, so the multi-key Lua scripts would also run on Redis Cluster."""

    prefix: str = "{cc}"

    @property
    def lease(self) -> str:
        return f"{self.prefix}:lease"

    @property
    def fence(self) -> str:
        return f"{self.prefix}:fence"

    @property
    def snapshot(self) -> str:
        return f"{self.prefix}:snap"

    @property
    def journal(self) -> str:
        return f"{self.prefix}:journal"

    @property
    def seq(self) -> str:
        return f"{self.prefix}:seq"

    @property
    def clean(self) -> str:
        """Set by a clean stop that handed nothing over: the next start begins clean."""
        return f"{self.prefix}:clean"


DEFAULT_KEYS = StateKeys()

# ACQUIRE(lease, fence; holder, ttl_ms, mode) -> token > 0 | 0 held | -1 no fence counter | -2 absent (probe)
# mode: "normal" takes a free lease if the fence counter exists; "force" takes it anyway;
# "probe" never takes it (used during the quiet period).
ACQUIRE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[3] == 'probe' then return -2 end
if ARGV[3] ~= 'force' and redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
local t = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. t, 'PX', ARGV[2])
return t
"""

# KEEP(lease, fence; value, token, ttl_ms) -> 1 renewed | 2 reclaimed | 3 reclaimed, fence restored | 0 lost
KEEP_LUA = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
if cur then return 0 end
local f = tonumber(redis.call('GET', KEYS[2]) or '0')
local t = tonumber(ARGV[2])
if f > t then return 0 end
local r = 2
if f < t then
  redis.call('SET', KEYS[2], ARGV[2])
  r = 3
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return r
"""

# RELEASE(lease; value) -> 1 released | 0 not ours
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

RENEWED, RECLAIMED, RECLAIMED_AFTER_LOSS, LOST = 1, 2, 3, 0


class LeaseKeeper:
    """Acquire, renew, reclaim and release the lease; tell the owner about role changes.

    Callbacks (all called on the clock's thread):

    * ``on_acquired(token)``  -- we became active (restore the state, start serving);
    * ``on_lost(reason)``     -- another ACD is active: stop serving now;
    * ``on_reclaimed(data_lost)`` -- the lease had lapsed (Redis outage) and is ours
      again: write a fresh snapshot;
    * ``on_redis(ok)``        -- every Redis call's success or failure (alarm metric).
    """

    log = Logger()

    def __init__(
        self,
        clock: Any,
        runner: Callable[..., defer.Deferred],
        client: Any,
        holder: str,
        ttl_s: float = 3.0,
        *,
        keys: StateKeys = DEFAULT_KEYS,
        quiet_s: float | None = None,
        on_acquired: Callable[[int], Any] | None = None,
        on_lost: Callable[[str], Any] | None = None,
        on_reclaimed: Callable[[bool], Any] | None = None,
        on_redis: Callable[[bool], Any] | None = None,
    ):
        if "|" in holder:
            raise ValueError("holder must not contain '|'")
        self.clock = clock
        self.runner = runner
        self.client = client
        self.holder = holder
        self.ttl_s = float(ttl_s)
        self.keys = keys
        self.quiet_s = 2 * self.ttl_s if quiet_s is None else float(quiet_s)
        self.renew_every_s = self.ttl_s / 3
        self.poll_every_s = self.ttl_s / 6
        self.on_acquired = on_acquired or (lambda token: None)
        self.on_lost = on_lost or (lambda reason: None)
        self.on_reclaimed = on_reclaimed or (lambda data_lost: None)
        self.on_redis = on_redis or (lambda ok: None)
        self._acquire = client.register_script(ACQUIRE_LUA)
        self._keep = client.register_script(KEEP_LUA)
        self._release = client.register_script(RELEASE_LUA)
        self.role = STOPPED
        self.token: int | None = None
        self.acquired_at: float | None = None
        self.confirmed_until: float | None = None  # our lease surely holds until then
        self._absent_since: float | None = None
        self._last_error_at: float | None = None
        self._timer = None
        self._busy = False

    # -- public -----------------------------------------------------------

    @property
    def is_active(self) -> bool:
        return self.role == ACTIVE

    @property
    def value(self) -> str:
        return f"{self.holder}|{self.token}"

    def start(self) -> None:
        self.role = STANDBY
        self._schedule(0)

    def stop(self) -> defer.Deferred:
        """Stop polling/renewing; an active releases the lease so a standby takes over at once."""
        was_active = self.role == ACTIVE
        self.role = STOPPED
        self._cancel()
        if not was_active:
            return defer.succeed(False)
        d = self.runner(self._release, [self.keys.lease], [self.value])
        d.addErrback(lambda f: (self.log.warn("lease release failed: {e}", e=f.getErrorMessage()), False)[1])
        return d

    def resign(self) -> defer.Deferred:
        """Give the lease up and go back to standby (e.g. the state could not be loaded)."""
        d = self.stop()
        self.role = STANDBY
        self.token = None
        self._schedule(self.poll_every_s)
        return d

    def check_now(self) -> defer.Deferred:
        """Renew (or find out we lost the lease) right away; fires with the KEEP result.

        The store calls this when a write was refused with FENCED.
        """
        if self.role != ACTIVE:
            return defer.succeed(LOST)
        self._cancel()
        return self._renew()

    # -- the loop ---------------------------------------------------------

    def _schedule(self, delay: float) -> None:
        self._cancel()
        if self.role in (STANDBY, ACTIVE):
            self._timer = self.clock.callLater(delay, self._tick)

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _tick(self) -> None:
        self._timer = None
        if self.role == STANDBY:
            self._poll()
        elif self.role == ACTIVE:
            self._renew()

    def _poll(self) -> defer.Deferred | None:
        if self._busy:
            return None
        now = self.clock.seconds()
        if self.quiet_s <= 0 or (self._absent_since is not None and now - self._absent_since >= self.quiet_s):
            mode = "force"
        elif self._last_error_at is not None and now - self._last_error_at < self.quiet_s:
            mode = "probe"
        else:
            mode = "normal"
        self._busy = True
        d = self.runner(self._acquire, [self.keys.lease, self.keys.fence], [self.holder, int(self.ttl_s * 1000), mode])
        d.addCallbacks(self._polled, self._poll_failed, callbackArgs=(now,))
        return d

    def _polled(self, result: Any, sent_at: float) -> None:
        self._busy = False
        self.on_redis(True)
        if self.role != STANDBY:
            return
        result = int(result)
        if result > 0:
            self.token = result
            self.role = ACTIVE
            self.acquired_at = self.clock.seconds()
            self.confirmed_until = sent_at + self.ttl_s
            self._absent_since = None
            self.log.info("lease acquired by {holder} with fencing token {token}", holder=self.holder, token=result)
            self._schedule(self.renew_every_s)
            self.on_acquired(result)
            return
        if result == 0:
            self._absent_since = None
        elif self._absent_since is None:
            self._absent_since = sent_at
        self._schedule(self.poll_every_s)

    def _poll_failed(self, failure: Any) -> None:
        self._busy = False
        self._last_error_at = self.clock.seconds()
        self._absent_since = None
        self.on_redis(False)
        self.log.debug("standby poll failed: {e}", e=failure.getErrorMessage())
        self._schedule(self.poll_every_s)

    def _renew(self) -> defer.Deferred:
        if self._busy:
            # a renewal is in flight; look again shortly
            self._schedule(self.poll_every_s)
            return defer.succeed(None)
        sent_at = self.clock.seconds()
        self._busy = True
        d = self.runner(
            self._keep, [self.keys.lease, self.keys.fence], [self.value, self.token, int(self.ttl_s * 1000)]
        )
        d.addCallbacks(self._renewed, self._renew_failed, callbackArgs=(sent_at,))
        return d

    def _renewed(self, result: Any, sent_at: float) -> int:
        self._busy = False
        self.on_redis(True)
        if self.role != ACTIVE:
            return LOST
        result = int(result)
        if result == LOST:
            self.role = FENCED
            self._cancel()
            self.log.critical("lease lost: another ACD is active (our token {token}); stepping down", token=self.token)
            self.on_lost("another ACD holds the lease")
            return LOST
        self.confirmed_until = sent_at + self.ttl_s
        self._schedule(self.renew_every_s)
        if result in (RECLAIMED, RECLAIMED_AFTER_LOSS):
            self.log.warn(
                "lease had lapsed and was reclaimed (token {token}{lost})",
                token=self.token,
                lost=", Redis had lost its data" if result == RECLAIMED_AFTER_LOSS else "",
            )
            self.on_reclaimed(result == RECLAIMED_AFTER_LOSS)
        return result

    def _renew_failed(self, failure: Any) -> None:
        # Redis unreachable: keep routing from memory (see the module docstring).
        self._busy = False
        self.on_redis(False)
        self.log.debug("lease renewal failed: {e}", e=failure.getErrorMessage())
        if self.role == ACTIVE:
            self._schedule(self.poll_every_s)
        return None
