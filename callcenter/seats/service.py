"""The seat subsystem of ``callcenter serve``: wss://HOST:SEAT_PORT/seat.

Accounts, knowledge base and the caller's recent contacts come from the
records database (callcenter.records: ``accounts.verify_login_blocking``,
``kb.store.KbStore.search``, ``queries.recent_contacts``), each called in a
thread.  Wrap-ups go to the records writer when it takes them
(``wrapup_submitted``), else they are logged.

``acd.seat_demo_call_control`` (env ``CALLCENTER_SEAT_DEMO=1``) switches on *demo
call control* for demos and load tests without Asterisk: a seat's ``accept`` counts as the agent's phone
answering and the seat may ``hangup`` (docs/seat-protocol.md).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from .server import SEAT_PATH, SeatServer
from .session import Account, SeatLimits

__all__ = ["SeatSubsystem", "make_subsystem"]

log = Logger(namespace="callcenter.seats")


class _RecordsDb:
    """Blocking helpers over the records database (run in threads by SeatServer)."""

    def __init__(self, url: str, caller_hash_of: Any = None):
        self.url = url
        self.caller_hash_of = caller_hash_of
        self._engine = None

    def _db(self):
        if self._engine is None:
            from callcenter.records.db import make_engine

            self._engine = make_engine(self.url)
        return self._engine

    def verify(self, agent_id: str, password: str) -> Account | None:
        from callcenter.records.accounts import verify_login_blocking

        acc = verify_login_blocking(self._db(), agent_id, password)
        if acc is None:
            return None
        return Account(acc.id, acc.pool, dict(acc.skills or {}) or None, acc.endpoint, acc.name or "")

    def search(self, query: str, limit: int) -> list[dict]:
        from callcenter.kb.store import KbStore

        return KbStore(self._db()).search(query, limit)

    def get(self, article_id: int) -> dict[str, Any] | None:
        from callcenter.kb.model import NotFound
        from callcenter.kb.store import KbStore

        try:
            return KbStore(self._db()).get(article_id)
        except NotFound:
            return None

    def kb_last_change(self) -> int:
        from callcenter.kb.store import KbStore

        return KbStore(self._db()).last_change()

    def kb_changes_since(self, after: int) -> list[dict]:
        from callcenter.kb.store import KbStore

        return KbStore(self._db()).changes_since(after)

    def contacts(self, call_id: str) -> list[dict]:
        from sqlalchemy.orm import Session

        from callcenter.records.queries import recent_contacts

        caller_hash = self.caller_hash_of(call_id) if self.caller_hash_of else None
        if not caller_hash:
            return []
        with Session(self._db()) as session:
            rows = recent_contacts(session, caller_hash)
        return [{k: (v.isoformat() + "Z" if hasattr(v, "isoformat") else v) for k, v in r.items()}
                for r in rows if r.get("call_id") != call_id]

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


class SeatSubsystem:
    def __init__(self, acd: Any):
        self.acd = acd
        listen = acd.config.acd.listen
        self.host, self.port = listen.host, listen.seat_port
        self.demo = acd.config.acd.seat_demo_call_control
        records = getattr(acd, "records", None)
        self.db = _RecordsDb(acd.database_url, getattr(records, "caller_hash_of", None))
        save = getattr(records, "wrapup_submitted", None)
        self.server = SeatServer(
            acd.engine, reactor=acd.reactor, accounts=self.db, kb=self.db,
            contacts=self.db.contacts if self.db.caller_hash_of else None,
            save_wrapup=(lambda rec: save(**rec)) if save else None,
            demo_call_control=self.demo, server_name=acd.config.acd.name,
            token_secret=acd.config.acd.seat_token_secret,
            limits=SeatLimits(grace_s=acd.config.acd.restore_grace_s),
        )
        self._port = None
        self.listening: list[tuple[str, str]] = []
        self.kb_watcher = self._kb_watcher(acd.reactor)

    def _kb_watcher(self, reactor):
        """Published and retired articles reach every logged-in seat (``kb_updated``), within
        the watcher's 0.25 s poll plus the fan-out (callcenter/kb/watcher.py)."""
        from twisted.internet import threads

        from callcenter.kb.watcher import KbWatcher

        from . import schema

        class _Changes:  # the watcher's view of the records database
            last_change = self.db.kb_last_change
            changes_since = self.db.kb_changes_since

        return KbWatcher(_Changes(), lambda u: self.server.kb_changed(schema.KbUpdated(**u)), clock=reactor,
                         run_blocking=lambda fn, *a: threads.deferToThreadPool(reactor, reactor.getThreadPool(), fn, *a))

    def start(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        # (port 0: any free port, for tests; autobahn's URL wants a real one or none)
        factory = self.server.factory(f"wss://{host}{f':{self.port}' if self.port else ''}{SEAT_PATH}")
        self._port = self.acd.reactor.listenSSL(self.port, factory, self.acd.tls_context_factory(),
                                                interface=self.host, backlog=1024)
        port = self._port.getHost().port
        # this subsystem starts only on the active ACD, on the (restored) engine: agents
        # it already has get the grace period to come back (docs/failover.md)
        self.server.agents_restored()
        self.listening = [("seat WebSocket", f"wss://{host}:{port}{SEAT_PATH}")]
        self.kb_watcher.start()
        if self.demo:
            log.warn("seat demo call control is ON (acd.seat_demo_call_control): a seat's accept answers the call")

    def stop(self):
        self.kb_watcher.stop()
        port, self._port = self._port, None
        ds = [self.server.stop()]
        if port is not None:
            ds.append(defer.maybeDeferred(port.stopListening))
        d = defer.DeferredList(ds, consumeErrors=True)
        d.addBoth(lambda _: self.db.close())
        return d


def make_subsystem(acd: Any) -> SeatSubsystem:
    return SeatSubsystem(acd)
