"""The service shell: the :class:`Acd` runtime object and its ordered subsystems.

``callcenter serve`` (callcenter/cli.py) does, in this order:

1. load and validate the config; begin logging (callcenter/logs.py);
2. ``acd.lock()``: one ACD per state directory (a second start fails with one
   clear line, exit 1);
3. ``acd.start_redis()``: with no ``acd.redis_url``, start the embedded real
   Redis (callcenter/redis_server.py) and wait until it answers PING;
4. in the reactor, ``acd.start()``: listen on the admin HTTP port (``/healthz``
   answers 503 until step 5 ends), then import, build and start each subsystem
   of :data:`SUBSYSTEM_MODULES` in order, logging every address it listens on;
5. ready: ``/healthz`` answers 200.

SIGINT/SIGTERM stop the reactor; ``acd.stop()`` runs as a before-shutdown
trigger and stops the subsystems in reverse order within a shared budget, then
the admin HTTP port, then Redis, then drops the lock.  ``callcenter serve`` also
arms a watchdog thread that ends the process (Redis first) if shutdown is still
not done after :data:`HARD_EXIT_AFTER_S`.

Subsystem contract: a module exposes ``make_subsystem(acd)`` returning an object
with ``start() -> Deferred | None``, ``stop() -> Deferred | None`` and
``listening: list[tuple[label, url]]``.  ``stop()`` may be called while
``start()`` has not finished (shutdown of a standby) or after it failed.  A module that does not exist yet is
skipped; any other import error is fatal (a half-started ACD is worse than none).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from callcenter.admin_http import AdminSite, make_http_root
from callcenter.config import Config
from callcenter.pidlock import PidLock
from callcenter.redis_server import EmbeddedRedis
from callcenter.redis_supervisor import RedisSupervisor

__all__ = ["Acd", "SUBSYSTEM_MODULES", "import_optional", "default_database_url"]

# Start order; stop order is the reverse.
SUBSYSTEM_MODULES: tuple[str, ...] = (
    "callcenter.records.service",
    "callcenter.orders.service",
    "callcenter.state.service",
    "callcenter.metrics_service",
    "callcenter.fastagi.service",
    "callcenter.seats.service",
    "callcenter.api.service",
    "callcenter.kb.service",  # the public knowledge base at /kb
)

STOP_BUDGET_S = 3.0  # all subsystems together
SUBSYSTEM_STOP_MAX_S = 2.0  # any single one
REDIS_STOP_S = 1.0
HARD_EXIT_AFTER_S = 4.5  # SIGTERM -> process gone must stay under 5 s
DEV_MODE_WARN_EVERY_S = 60.0
DEV_MODE_WARNING = ("acd.dev_mode is on: shipped secrets (agi_secret, caller_hash_key, admin tokens) are "
                    "accepted; never run this configuration in production")

log = Logger(namespace="callcenter.app")


def import_optional(name: str) -> ModuleType | None:
    """Import ``name``; None when that module (or a parent package) does not exist.

    Any other failure, including a missing module that ``name`` itself
    imports, propagates: it is a bug, not an absent feature.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == name or name.startswith(exc.name + ".")):
            return None
        raise


def default_database_url(state_dir: Path) -> str:
    return f"sqlite:///{state_dir / 'callcenter.db'}"


class Acd:
    """Everything a subsystem needs, in one object (see the module docstring).

    Attributes: ``config``, ``config_path``, ``reactor``, ``engine``,
    ``state_dir``, ``redis_url``, ``database_url``, ``http_root``, ``records``
    (set by the records subsystem), ``log``, ``listening``, ``subsystems``.
    """

    def __init__(self, config: Config, reactor: Any, *, config_path: str | os.PathLike[str] | None = None,
                 engine: Any = None):
        self.config = config
        self.config_path = Path(config_path) if config_path else None
        self.reactor = reactor
        self.log = Logger(namespace="callcenter")
        self.state_dir = Path(config.acd.state_dir).expanduser().resolve()
        self.redis_url: str | None = config.acd.redis_url
        self.database_url: str = config.acd.database_url or default_database_url(self.state_dir)
        self.records: Any = None
        # A clean stop hands the calls over (to a standby, which restores them) only with a shared
        # Redis; with the embedded one the calls end (acd-shutdown) and the next start is clean.
        on_stop = config.acd.on_stop
        self.hand_over_on_stop: bool = on_stop == "hand-over" or (on_stop == "auto" and bool(config.acd.redis_url))
        # ``serve --restore``: restore the live state even if the last stop was clean
        self.restore_after_clean_stop: bool = False
        self.orders: Any = None  # the work-order desk (callcenter/orders/service.py)
        if engine is None:
            from callcenter.engine import Engine

            engine = Engine(config, reactor)
        self.engine = engine
        self.http_root = make_http_root(self.health_status, self.health_details)
        self.listening: list[tuple[str, str]] = []
        self.subsystems: list[tuple[str, Any]] = []  # started or starting, in start order
        self.phase = "created"  # -> starting -> ok -> stopping -> stopped
        self.redis: EmbeddedRedis | None = None
        self._lock = PidLock(self.state_dir / "callcenter.pid")
        self._http_port: Any = None
        self._tls: Any = None
        self.tls_cert_file: Path | None = None  # set by tls_context_factory()
        self.redis_supervisor: RedisSupervisor | None = None  # restarts / watches the embedded Redis
        self._dev_mode_warning: LoopingCall | None = None
        self._stopping: defer.Deferred | None = None

    # -- queries -----------------------------------------------------------
    def health_details(self) -> dict[str, Any]:
        """Extra /healthz fields: dev mode, loud, so nobody mistakes a dev ACD for a production one."""
        if not self.config.acd.dev_mode:
            return {}
        return {"dev_mode": True, "warning": DEV_MODE_WARNING}

    def _warn_dev_mode(self) -> None:
        log.warn("{warning}", warning=DEV_MODE_WARNING)

    def health_status(self) -> str:
        """``ok`` when ready; otherwise why not (starting, stopping, redis-down, redis-unresponsive, ...)."""
        if self.phase == "ok" and self.redis_supervisor is not None and self.redis_supervisor.status != "ok":
            return self.redis_supervisor.status
        if self.phase == "ok" and self.redis is not None and not self.redis.alive():
            return "redis-down"
        state = getattr(self, "state", None)  # the failover subsystem (callcenter/state/)
        if self.phase == "starting" and state is not None and state.role == "standby":
            return "standby"  # waiting for the active ACD's lease to run out
        return self.phase

    @property
    def admin_url(self) -> str:
        port = self._http_port.getHost().port if self._http_port else self.config.acd.listen.admin_port
        return f"http://{_url_host(self.config.acd.listen.host)}:{port}"

    def tls_context_factory(self):
        """TLS server context from ``acd.tls`` cert/key, else a dev cert under state_dir/tls."""
        if self._tls is None:
            from callcenter.tls_certs import dev_certificate, server_context_factory

            tls = self.config.acd.tls
            if tls.cert and tls.key:
                cert, key = Path(tls.cert), Path(tls.key)
            elif tls.cert or tls.key:
                raise ValueError("acd.tls: set both cert and key, or neither (for a development certificate)")
            else:
                files = dev_certificate(self.state_dir / "tls")
                cert, key = files.cert, files.key
                if files.generated:
                    log.info("generated a self-signed development TLS certificate {cert}", cert=str(cert))
            self.tls_cert_file = cert
            self._tls = server_context_factory(cert, key)
        return self._tls

    # -- synchronous steps before the reactor runs -------------------------
    def lock(self) -> None:
        """Take the state-dir lock; raises pidlock.AlreadyRunning with a one-line message."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()

    def start_redis(self) -> None:
        """Start the embedded Redis when no ``acd.redis_url`` is configured (blocks < 10 s)."""
        if self.redis_url:
            log.info("using Redis at {url}", url=_hide_password(self.redis_url))
            return
        self.redis = EmbeddedRedis(self.state_dir / "redis")
        self.redis.start()
        self.redis_url = self.redis.url
        log.info("embedded redis-server (pid {pid}) at {url}, files in {dir}",
                 pid=self.redis.pid, url=self.redis_url, dir=str(self.redis.directory))

    # -- asynchronous start / stop ------------------------------------------
    @defer.inlineCallbacks
    def start(self):
        """Listen on the admin port, then start every present subsystem in order."""
        self.phase = "starting"
        listen = self.config.acd.listen
        site = AdminSite(self.http_root)
        self._http_port = self.reactor.listenTCP(listen.admin_port, site, interface=listen.host)
        self._add_listening("admin HTTP", self.admin_url + "/")
        self._add_listening("/healthz", self.admin_url + "/healthz")
        self._add_listening("/metrics", self.admin_url + "/metrics")
        if self.config.acd.dev_mode:  # every minute, on the injected clock
            self._dev_mode_warning = LoopingCall(self._warn_dev_mode)
            self._dev_mode_warning.clock = self.reactor
            self._dev_mode_warning.start(DEV_MODE_WARN_EVERY_S, now=True)
        if self.redis is not None:
            from callcenter.state.runner import DaemonThreadRunner

            self.redis_supervisor = RedisSupervisor(self.reactor, self.redis,
                                                    DaemonThreadRunner(self.reactor, "callcenter-redis-ping"))
            self.redis_supervisor.start()

        for name in SUBSYSTEM_MODULES:
            if self.phase != "starting":  # stopped while starting
                return
            module = import_optional(name)
            if module is None:
                log.debug("subsystem {name} not present; skipped", name=name)
                continue
            subsystem = module.make_subsystem(self)
            # Listed before its start completes, so that a shutdown while it is
            # still starting (a standby waiting for the lease) stops it too.
            self.subsystems.append((name, subsystem))
            yield defer.maybeDeferred(subsystem.start)
            if self.phase != "starting":
                return
            for label, url in getattr(subsystem, "listening", ()) or ():
                self._add_listening(label, url)
            log.info("started {name}", name=name)

        if self.phase == "starting":
            self.phase = "ok"
            log.info("{name} ready ({n} subsystem(s))", name=self.config.acd.name, n=len(self.subsystems))

    def _add_listening(self, label: str, url: str) -> None:
        self.listening.append((label, url))
        log.info("listening: {label} {url}", label=label, url=url)

    def stop(self) -> defer.Deferred:
        """Stop subsystems (reverse order), the admin port, Redis, and release the lock."""
        if self._stopping is None:
            self._stopping = defer.ensureDeferred(self._stop())
        return self._stopping

    async def _stop(self) -> None:
        self.phase = "stopping"
        if self.redis_supervisor is not None:
            self.redis_supervisor.stop()  # Redis is stopped on purpose below: no restart
        if self._dev_mode_warning is not None and self._dev_mode_warning.running:
            self._dev_mode_warning.stop()
        deadline = self.reactor.seconds() + STOP_BUDGET_S
        for name, subsystem in reversed(self.subsystems):
            budget = max(0.1, min(SUBSYSTEM_STOP_MAX_S, deadline - self.reactor.seconds()))
            d = defer.maybeDeferred(subsystem.stop)
            d.addTimeout(budget, self.reactor)
            try:
                await d
            except defer.TimeoutError:
                log.error("subsystem {name} did not stop within {s:.1f} s; going on", name=name, s=budget)
            except Exception:
                log.failure("subsystem {name} failed to stop cleanly", name=name)
        self.subsystems.clear()
        if self._http_port is not None:
            d = defer.maybeDeferred(self._http_port.stopListening)
            d.addTimeout(0.5, self.reactor)
            try:
                await d
            except Exception:
                pass
            self._http_port = None
        self.close()
        self.phase = "stopped"
        log.info("stopped")

    def close(self) -> None:
        """Synchronous last step (also safe after a failed start): stop Redis, drop the lock."""
        if self.redis_supervisor is not None:
            self.redis_supervisor.stop()
        if self.redis is not None:
            self.redis.stop(timeout=REDIS_STOP_S)
        self._lock.release()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _hide_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
