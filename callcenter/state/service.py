"""The live-state / failover subsystem of ``callcenter serve``.

``start()`` joins the cluster as a standby and returns a Deferred that fires
only when this ACD is *active*: it holds the lease, has restored the live state
from Redis (snapshot + journal, store.load_engine), installed the restored
engine as ``acd.engine`` and written a first snapshot under its fencing token.
The app starts its subsystems in order and waits for each, so metrics, FastAGI,
seats and the admin API start only on the active ACD and always bind to the
restored engine.  A standby therefore listens on nothing but the admin HTTP
port, whose ``/healthz`` answers 503 ("starting"): Asterisk's ``AGI()`` to a
standby fails at once (connection refused, AGISTATUS=FAILURE) and the dialplan
tries the next ACD address; seat clients likewise.

What the runtime gets:

* ``acd.is_active`` -- True while this ACD is the active one;
* ``acd.became_active`` -- a Deferred fired (with None) when it becomes active;
* ``acd.state`` -- this service (``role``, ``token``, ``store``, ``takeover``).

When the lease is lost to another ACD (we were paused or partitioned and a
standby took over), this process must not serve another second: the service
stops the reactor, which stops every subsystem; a supervisor (systemd
``Restart=always``) starts it again as a standby.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

from callcenter import metrics

from .lease import ACTIVE, LeaseKeeper, StateKeys
from .runner import ThreadRunner
from .sentinel import describe_url, redis_from_url
from .store import RedisJournal, StateStore, load_engine

__all__ = ["StateService", "make_subsystem", "install_engine"]

log = Logger(namespace="callcenter.state")


def install_engine(acd: Any, engine: Any) -> None:
    """Make ``engine`` the ACD's engine; subsystems subscribed to the old one (records) follow it."""
    old = getattr(acd, "engine", None)
    if old is not None and old is not engine:
        engine.adopt_listeners(old)
    acd.engine = engine


class StateService:
    listening: list[tuple[str, str]]

    def __init__(
        self,
        acd: Any,
        *,
        keys: StateKeys | None = None,
        on_lease_lost: Callable[[str], Any] | None = None,
        runner_factory: Callable[[str], Any] | None = None,
        client_factory: Callable[..., Any] = redis_from_url,
        quiet_s: float | None = None,
    ):
        """``runner_factory(name)`` and ``client_factory(url, **kw)`` are injectable so tests
        can drive the whole service with a task.Clock and inline Redis calls."""
        self.acd = acd
        self.runner_factory = runner_factory or (lambda name: ThreadRunner(self.reactor, name))
        self.client_factory = client_factory
        # A single ACD with its own embedded Redis has no peer to wait for.
        if quiet_s is None and getattr(acd, "redis", None) is not None:
            quiet_s = 0.0
        self.quiet_s = quiet_s
        self.reactor = acd.reactor
        self.keys = keys or StateKeys(os.environ.get("CALLCENTER_STATE_PREFIX", "{cc}"))
        self.ttl_s = float(acd.config.acd.lease_ttl_s)
        self.holder = f"{acd.config.acd.name}@{socket.gethostname()}:{os.getpid()}".replace("|", "/")
        self.listening = []
        self.on_lease_lost = on_lease_lost or self._stop_process
        self.keeper: LeaseKeeper | None = None
        self.store: StateStore | None = None
        self.takeover: dict[str, Any] = {}
        self._ready = defer.Deferred()
        self._stopping: defer.Deferred | None = None
        self._redis_status: dict[str, bool] = {}
        self._shutdown_trigger = None
        acd.is_active = False
        acd.became_active = defer.Deferred()
        acd.state = self

    @property
    def role(self) -> str:
        return self.keeper.role if self.keeper else "stopped"

    @property
    def token(self) -> int | None:
        return self.keeper.token if self.keeper else None

    # -- subsystem contract ------------------------------------------------

    def start(self) -> defer.Deferred:
        url = self.acd.redis_url
        if not url:
            raise RuntimeError("no Redis URL: set acd.redis_url or let the app start its embedded Redis")
        # Two clients and two threads: a long snapshot write never delays a renewal.
        renew_timeout = max(0.2, self.ttl_s / 3)
        lease_client = self.client_factory(url, socket_timeout=renew_timeout, socket_connect_timeout=renew_timeout)
        state_client = self.client_factory(url, socket_timeout=5.0, socket_connect_timeout=1.0, retries=2)
        self._clients = (lease_client, state_client)
        self.lease_runner = self.runner_factory("callcenter-lease")
        self.state_runner = self.runner_factory("callcenter-state")
        self.lease_runner.start()
        self.state_runner.start()
        self.journal = RedisJournal(state_client, self.keys)
        self.keeper = LeaseKeeper(
            self.reactor,
            self.lease_runner,
            lease_client,
            self.holder,
            self.ttl_s,
            keys=self.keys,
            quiet_s=self.quiet_s,
            on_acquired=self._lease_acquired,
            on_lost=self._lease_lost,
            on_reclaimed=self._lease_reclaimed,
            on_redis=lambda ok: self._redis_seen("lease", ok),
        )
        metrics.STATE_IS_LEADER.set(0)
        metrics.STATE_UNSYNCED_INPUTS.set_function(lambda: self.store.unsynced if self.store else 0)
        metrics.STATE_REDIS_LAG.set_function(lambda: self.store.lag_s() if self.store else 0.0)
        if hasattr(self.reactor, "addSystemEventTrigger"):
            # While standby our start() has not fired, so the app does not know us and will
            # not stop us: do it ourselves.  Removed once active (the app then stops us in
            # order, after FastAGI and seats, so no input is accepted after the last flush).
            self._shutdown_trigger = self.reactor.addSystemEventTrigger("before", "shutdown", self.stop)
        log.info(
            "live state in Redis at {url}; joining as standby ({holder}, lease TTL {ttl} s)",
            url=describe_url(url),
            holder=self.holder,
            ttl=self.ttl_s,
        )
        self.started_at = self.reactor.seconds()
        self._warm_up()
        self.keeper.start()
        return self._ready

    def _warm_up(self) -> None:
        """Import the subsystems that start after us and build the TLS context now, while
        standby: at takeover the app starts them with the reactor busy, and importing
        autobahn, SQLAlchemy and friends there cost seconds of failover time (measured:
        up to 3 s on a loaded 2-core machine, long enough to let the lease lapse)."""
        try:
            from callcenter.app import SUBSYSTEM_MODULES, import_optional
        except ImportError:
            return
        names = SUBSYSTEM_MODULES[SUBSYSTEM_MODULES.index(__name__) + 1 :] if __name__ in SUBSYSTEM_MODULES else ()
        for name in names:
            try:
                import_optional(name)
            except Exception:
                log.failure("warming up {name} failed (the app will report it when it starts it)", name=name)
        make_tls = getattr(self.acd, "tls_context_factory", None)
        if callable(make_tls):
            try:
                make_tls()
            except Exception as exc:
                log.warn("TLS context not ready while standby: {e}", e=str(exc))

    def stop(self) -> defer.Deferred:
        if self._stopping is None:
            self._stopping = defer.ensureDeferred(self._stop())
        return self._stopping

    async def _stop(self) -> None:
        if self.keeper is None:
            return
        was_active = self.keeper.role == ACTIVE
        if was_active and self.store is not None:
            d = self.store.flushed()
            d.addTimeout(1.0, self.reactor)
            try:
                await d
            except Exception:
                log.warn("could not write the last state changes to Redis before stopping")
            else:
                if not getattr(self.acd, "hand_over_on_stop", True):
                    await self._mark_clean()
        if self.store is not None:
            self.store.stop_writing()
        d = self.keeper.stop()  # an active releases the lease: the standby takes over at once
        d.addTimeout(1.0, self.reactor)
        try:
            await d
        except Exception:
            pass
        self.acd.is_active = False
        metrics.STATE_IS_LEADER.set(0)
        for runner in (self.lease_runner, self.state_runner):
            runner.stop()
        for client in self._clients:
            client.close()
        if not self._ready.called:
            # stopped while still a standby: let the app's start sequence end
            self._ready.callback(None)

    async def _mark_clean(self) -> None:
        """Nothing is handed over (the calls ended acd-shutdown): the next start begins clean."""
        marker = {"at": self.reactor.seconds(), "by": self.holder}
        d = self.state_runner(self.journal.mark_clean, marker)
        d.addTimeout(1.0, self.reactor)
        try:
            await d
            log.info("live state marked clean: the next start restores nothing but the emergency plans")
        except Exception:
            log.warn("could not mark the live state clean; the next start restores it (calls reconciled)")

    # -- lease callbacks ---------------------------------------------------

    def _lease_acquired(self, token: int) -> None:
        acquired_at = self.reactor.seconds()
        d = self.state_runner(self._load_and_unmark)
        d.addCallback(self._state_loaded, token, acquired_at)
        d.addErrback(self._load_failed)

    def _load_and_unmark(self) -> tuple:
        """(snapshot, journal, seq, clean-stop marker); the marker is removed: from now on a crash
        of this ACD is not a clean stop (writer thread)."""
        clean = self.journal.clean_stop()
        loaded = self.journal.load()
        if clean is not None:
            self.journal.clear_clean()
        return (*loaded, clean)

    def _state_loaded(self, loaded: tuple, token: int, acquired_at: float) -> defer.Deferred | None:
        if self.keeper is None or self.keeper.role != ACTIVE or self.keeper.token != token:
            return None
        doc, records, seq = loaded[:3]
        clean = loaded[3] if len(loaded) > 3 else None
        from callcenter.engine import Engine

        config = self.acd.config
        fresh = clean is not None and doc is not None and not getattr(self.acd, "restore_after_clean_stop", False)
        if fresh:
            # a clean stop is a clean start: only the emergency plans carry over (docs/failover.md)
            engine = Engine.carry_over(config, self.reactor, load_engine(Engine, config, task.Clock(), doc,
                                                                         records).snapshot())
        elif doc:
            engine = load_engine(Engine, config, self.reactor, doc, records)
            # everything restored is provisional until the switch or a seat confirms it
            engine.reconcile_restored(config.acd.restore_grace_s)
        else:
            engine = self.acd.engine
        install_engine(self.acd, engine)
        writer = getattr(self.acd, "records", None)
        if doc and writer is not None and hasattr(writer, "calls_restored"):
            # the restored calls' CDR facts (masked number, arrival, offer): CallQueued went to the dead ACD
            writer.calls_restored(engine.snapshot(), {p.name: p.tier for p in self.acd.config.pools})
        self.store = StateStore(
            engine,
            self.reactor,
            self.state_runner,
            self.journal,
            holder=self.holder,
            on_fenced=self._write_fenced,
            on_redis=lambda ok: self._redis_seen("state", ok),
        )
        self.store.start_writing(token, seq)
        self.takeover = {
            "token": token,
            "acquired_at": acquired_at,
            "restored_calls": len(engine.calls()),
            "restored_agents": len(engine.agents()),
            "replayed_inputs": len(records),
            "snapshot_age_s": (acquired_at - doc["taken_at"]) if doc else None,
            "clean_start": fresh,
            "last_clean_stop": clean,
            "carried_over": engine.carried_over() if hasattr(engine, "carried_over") else {},
        }
        if fresh:
            log.info("clean start: the last stop ({by}) was clean; restored nothing but the emergency plans "
                     "(serve --restore restores everything)", by=clean.get("by", "?"))
        for queue, plan in self.takeover["carried_over"].items():
            log.warn("queue {queue}: emergency plan {plan} still on (switched on by {by}), carried over",
                     queue=queue, plan=plan["plan"], by=plan["by"] or "?")
        first = self.store.flushed()
        first.addTimeout(max(1.0, self.ttl_s), self.reactor)
        first.addBoth(self._first_write_done, token)
        return first

    def _first_write_done(self, result: Any, token: int) -> None:
        if self.keeper is None or self.keeper.role != ACTIVE or self.keeper.token != token:
            return
        if isinstance(result, Exception) or hasattr(result, "getErrorMessage"):
            # Redis went away right after the takeover: serve from memory (the store retries).
            log.warn("first state snapshot not confirmed yet; serving from memory")
        now = self.reactor.seconds()
        self.takeover["ready_at"] = now
        self.takeover["load_s"] = now - self.takeover["acquired_at"]
        self.acd.is_active = True
        metrics.STATE_IS_LEADER.set(1)
        log.info(
            "active with fencing token {token}: restored {calls} call(s), {agents} agent(s), "
            "replayed {replayed} journal record(s) in {load_s:.3f} s",
            token=token,
            calls=self.takeover["restored_calls"],
            agents=self.takeover["restored_agents"],
            replayed=self.takeover["replayed_inputs"],
            load_s=self.takeover["load_s"],
        )
        if self._shutdown_trigger is not None:
            self.reactor.removeSystemEventTrigger(self._shutdown_trigger)
            self._shutdown_trigger = None
        if not self.acd.became_active.called:
            self.acd.became_active.callback(None)
        if not self._ready.called:
            self._ready.callback(None)

    def _load_failed(self, failure: Any) -> None:
        log.error("could not load the live state after taking the lease ({e}); resigning", e=failure.getErrorMessage())
        if self.keeper is not None and self.keeper.role == ACTIVE:
            self.keeper.resign()

    def _lease_lost(self, reason: str) -> None:
        if self.store is not None:
            self.store.stop_writing()
        self.acd.is_active = False
        metrics.STATE_IS_LEADER.set(0)
        self.on_lease_lost(reason)

    def _lease_reclaimed(self, data_lost: bool) -> None:
        if self.store is not None:
            self.store.resync()

    def _write_fenced(self) -> None:
        """A state write was refused by the fence: find out whether we are still active."""
        keeper = self.keeper
        if keeper is None:
            return
        d = keeper.check_now()

        def checked(_result: Any) -> None:
            if keeper.role == ACTIVE and self.store is not None:
                self.store.start_writing(keeper.token, self.store.seq)

        d.addCallback(checked)

    def _redis_seen(self, who: str, ok: bool) -> None:
        self._redis_status[who] = ok
        metrics.REDIS_UP.set(1 if all(self._redis_status.values()) else 0)

    def _stop_process(self, reason: str) -> None:
        log.critical("{reason}: this ACD stops serving now (a supervisor may restart it as a standby)", reason=reason)
        if getattr(self.reactor, "running", False):
            self.reactor.stop()


def make_subsystem(acd: Any) -> StateService:
    return StateService(acd)
