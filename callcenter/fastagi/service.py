"""Subsystem: the FastAGI server and the classic scripts' relay port on the ACD.

``make_subsystem(acd)`` (the contract in callcenter/app.py) listens on
``acd.listen.fastagi_port`` for Asterisk (``agi://HOST:PORT/hotline``) and,
when ``acd.agi_secret`` is set, on ``acd.listen.agi_relay_port`` (default: the
next port) for the classic pyst2 relay scripts.  Port 0 picks a free
port (tests).  Stopping with a shared Redis drops every session without reporting
outcomes: the calls are handed over to the next ACD, which resumes them by call
id.  Stopping with the embedded Redis (no standby can exist) ends every call
first, outcome ``acd-shutdown`` (:func:`handing_over`).
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger

from .server import AgiFactory, CallControl

log = Logger(namespace="callcenter.fastagi")


def handing_over(acd) -> bool:
    """Does a clean stop hand the calls over to another ACD?  ``acd.hand_over_on_stop``
    (callcenter/app.py: only with a shared Redis, where a standby can take over; with the
    embedded Redis no standby can exist, so the calls end; docs/failover.md)."""
    return bool(getattr(acd, "hand_over_on_stop", True))


class FastAgiSubsystem:
    def __init__(self, acd, *, relay_port: int | None = None, resume_grace_s: float = 5.0):
        self.acd = acd
        cfg = acd.config
        self.host = cfg.acd.listen.host
        self.port = cfg.acd.listen.fastagi_port
        if relay_port is None:
            relay_port = cfg.acd.listen.agi_relay_port
        if relay_port is None:
            relay_port = self.port + 1 if self.port else 0
        self.relay_port = relay_port
        self.secret = cfg.acd.agi_secret
        self.resume_grace_s = resume_grace_s
        self.control: CallControl | None = None
        self._ports: list = []
        self.listening: list[tuple[str, str]] = []

    def start(self):
        cfg = self.acd.config
        originator = None
        spool = cfg.acd.callfile_dir
        if spool:
            from .originate import CallFileOriginator

            originator = CallFileOriginator(spool, fastagi_url=f"agi://{self.host}:{self.port}")
        self.control = CallControl(
            self.acd.engine, self.acd.reactor,
            default_queue=cfg.queues[0].name,
            max_calls=cfg.acd.max_calls,
            max_setups_per_s=cfg.acd.max_setups_per_s,
            resume_grace_s=self.resume_grace_s,
            caller_hash_key=cfg.acd.caller_hash_key,
            records=getattr(self.acd, "records", None),
            originator=originator,
        )
        reactor = self.acd.reactor
        p = reactor.listenTCP(self.port, AgiFactory(self.control), interface=self.host, backlog=1024)
        self._ports.append(p)
        self.port = p.getHost().port
        self.listening = [("FastAGI", f"agi://{self.host}:{self.port}/hotline")]
        if self.secret:
            r = reactor.listenTCP(self.relay_port, AgiFactory(self.control, secret=self.secret),
                                  interface=self.host, backlog=1024)
            self._ports.append(r)
            self.relay_port = r.getHost().port
            self.listening.append(("AGI relay (classic scripts)", f"tcp://{self.host}:{self.relay_port}"))

    def stop(self):
        if self.control is not None:
            if not handing_over(self.acd):
                n = self.control.end_calls()
                if n:
                    log.info("clean stop: ended {n} call(s) in progress (outcome acd-shutdown)", n=n)
            self.control.close()
        ds = [defer.maybeDeferred(p.stopListening) for p in self._ports]
        self._ports = []
        return defer.DeferredList(ds)


def make_subsystem(acd) -> FastAgiSubsystem:
    return FastAgiSubsystem(acd)
