"""Shared set-up of the seat tests: a real seat server over TLS on loopback.

The engine and the server's grace timers run on a ``task.Clock`` (advanced by
the tests); the network, TLS and the thread pool are the real reactor's.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from argon2 import PasswordHasher
from autobahn.twisted.websocket import WebSocketClientProtocol
from twisted.internet import defer, reactor
from twisted.internet.task import Clock, deferLater

from callcenter.config import parse_config
from callcenter.engine import Engine
from callcenter.seats.backends import DbKnowledgeBase, StaticAccounts
from callcenter.seats.server import SEAT_PATH, SeatServer
from callcenter.seats.session import SeatLimits
from callcenter.tls_certs import dev_certificate, server_context_factory
from seat_agent.client import SeatClient

# Real argon2id, with cheap parameters so a test run is not spent hashing.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

PASSWORDS = {"a1": "pw-a1", "a2": "pw-a2", "r1": "pw-r1"}


def seat_config():
    return parse_config(
        {
            "categories": [{"name": "other"}, {"name": "medical", "priority": 5}],
            "pools": [
                {"name": "own", "kind": "own", "tier": 0, "wrapup_s": 30, "ring_timeout_s": 60},
                {"name": "remote", "kind": "remote", "tier": 1, "wrapup_s": 30, "ring_timeout_s": 60},
            ],
            "queues": [{"name": "hotline", "pools": ["own", "remote"], "tiers": [{"tier": 1, "after_s": 0}]}],
        },
        env={},
    )


def accounts() -> StaticAccounts:
    acc = StaticAccounts(FAST_HASHER)
    acc.add("a1", PASSWORDS["a1"], "own", endpoint="PJSIP/1001")
    acc.add("a2", PASSWORDS["a2"], "own", endpoint="PJSIP/1002")
    acc.add("r1", PASSWORDS["r1"], "remote")
    return acc


def knowledge_base(path: Path) -> DbKnowledgeBase:
    """A real SQLite database with the records schema and three articles."""
    from callcenter.kb.store import KbStore
    from callcenter.records.db import make_engine, migrate

    url = f"sqlite:///{path}"
    migrate(url)
    eng = make_engine(url)
    now = datetime(2026, 1, 1)
    KbStore(eng).create_many([
        {"title": "Fever clinic opening hours", "body": "Fever clinics open 24 hours. Bring your ID card.",
         "tags": "epidemic medical", "org": "test"},
        {"title": "Mask supply points", "body": "Free masks are handed out at community centres.",
         "tags": "supplies", "org": "test"},
        {"title": "Unpaid wages", "body": "Report unpaid wages to the labour bureau; fever is no excuse.",
         "tags": "labour", "org": "test"},
    ], "test", publish=True, trusted=True, now=now)
    eng.dispose()
    return DbKnowledgeBase(url)


class SeatWorld:
    """An engine, a seat server listening on wss://127.0.0.1:<port>/seat, and clients."""

    def __init__(self, tmp: Path, *, limits: SeatLimits | None = None, demo: bool = False, kb: bool = False,
                 contacts=None, token_secret: str | None = None, snapshot: dict | None = None,
                 now: float = 1_800_000_000, port: int = 0, tls_dir: Path | None = None):
        """``snapshot``: start from ``Engine.restore`` of it (a failover's new active ACD)."""
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.clock = Clock()
        self.clock.advance(now)
        self.killed = False
        if snapshot is not None:
            self.engine = Engine.restore(seat_config(), self.clock, snapshot)
        else:
            self.engine = Engine(seat_config(), self.clock)
        self.events: list = []
        self.engine.subscribe(self.events.append)
        self.wrapups: list[dict] = []
        self.kb = knowledge_base(tmp / "kb.sqlite3") if kb else None
        self.server = SeatServer(
            self.engine, reactor=reactor, clock=self.clock, accounts=accounts(), kb=self.kb,
            contacts=contacts, save_wrapup=lambda rec: self.wrapups.append(rec) or True,
            limits=limits or SeatLimits(), demo_call_control=demo, token_secret=token_secret,
        )
        files = dev_certificate(tls_dir or tmp / "tls")  # (ACDs of one cluster share a certificate)
        self.cafile = str(files.cert)
        self.port = reactor.listenSSL(port, self.server.factory("wss://127.0.0.1/seat"),
                                      server_context_factory(files.cert, files.key), interface="127.0.0.1")
        self.url = f"wss://127.0.0.1:{self.port.getHost().port}{SEAT_PATH}"
        self.clients: list[SeatClient] = []
        self.raw_factories: list = []
        self.raw_protocols: list[RawSeat] = []

    def client(self, agent_id: str, password: str | None = None, *, urls: list[str] | None = None,
               token: str | None = None, **kw) -> SeatClient:
        c = SeatClient(urls or self.url, agent_id, PASSWORDS.get(agent_id, "x") if password is None else password,
                       reactor=reactor, cafile=self.cafile, initial_delay=0.05, max_delay=0.2, **kw)
        c.received: list = []
        c.add_listener(lambda kind, msg: c.received.append((kind, msg)))
        self.clients.append(c)
        c.token = token  # resume with it on the first connection
        c.start()
        return c

    @defer.inlineCallbacks
    def raw(self):
        """A bare WebSocket connection to the seat server (no client library, not logged in)."""
        from autobahn.twisted.websocket import WebSocketClientFactory
        from twisted.internet import ssl
        from twisted.internet.endpoints import SSL4ClientEndpoint

        factory = WebSocketClientFactory(self.url, reactor=reactor)
        factory.protocol = RawSeat
        factory.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0)
        self.raw_factories.append(factory)
        with open(self.cafile, "rb") as f:
            trust = ssl.Certificate.loadPEM(f.read())
        options = ssl.optionsForClientTLS("127.0.0.1", trustRoot=trust)
        proto = yield SSL4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port, options).connect(factory)
        yield until(lambda: proto.opened, what="raw connection open")
        self.raw_protocols.append(proto)
        return proto

    @defer.inlineCallbacks
    def kill(self):
        """This ACD dies: its listener and every connection go (clients keep running)."""
        self.killed = True
        yield self.server.stop()
        yield self.port.stopListening()

    @defer.inlineCallbacks
    def close(self):
        for c in self.clients:
            yield c.stop()
        for proto in self.raw_protocols:
            if proto.closed is None:
                proto.dropConnection(abort=True)
        yield until(lambda: all(p.closed is not None for p in self.raw_protocols), timeout=5)
        if not self.killed:
            yield self.server.stop()
            yield self.port.stopListening()
        if self.kb is not None:
            self.kb.close()
        # let the last TLS connections finish closing
        yield until(lambda: not self.server.protocols, timeout=30)
        # autobahn batches its timers (txaio); a bucket's DelayedCall outlives the
        # timers cancelled in it, which trial would report as a dirty reactor
        factories = [self.server.ws_factory] + [c._factory for c in self.clients if c._factory] + self.raw_factories  # noqa: SLF001
        for factory in factories:
            for delayed_call, _ in list(factory._batched_timer._buckets.values()):
                if delayed_call.active():
                    delayed_call.cancel()
            factory._batched_timer._buckets.clear()


class RawSeat(WebSocketClientProtocol):
    """A bare seat connection: records every message (decoded JSON) and how it closed."""

    opened = False
    closed = None  # (code, reason) once closed

    def onOpen(self):
        self.opened = True
        self.got: list[dict] = []

    def onMessage(self, payload, isBinary):
        self.got.append(json.loads(payload))

    def onClose(self, wasClean, code, reason):
        self.closed = (code, reason)

    def send_json(self, msg: dict | bytes) -> None:
        self.sendMessage(msg if isinstance(msg, bytes) else raw(msg))

    def of_type(self, typ: str) -> list[dict]:
        return [m for m in getattr(self, "got", []) if m.get("type") == typ]


@defer.inlineCallbacks
def until(predicate, timeout: float = 30.0, what: str = ""):
    """Poll ``predicate`` on the real reactor until it holds, or fail after ``timeout``."""
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {(what() if callable(what) else what) or predicate}")
        yield deferLater(reactor, 0.01, lambda: None)


def raw(msg: dict) -> bytes:
    return json.dumps(msg).encode()


def of_kind(client, kind: str) -> list:
    return [m for k, m in client.received if k == kind]
