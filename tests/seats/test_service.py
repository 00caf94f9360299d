"""The seat subsystem inside the service shell: accounts and articles from the
records database (real SQLite, migrated with Alembic), TLS from the ACD's
development certificate, a real client over wss on loopback."""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session
from twisted.internet import defer, reactor
from twisted.trial import unittest

from callcenter.app import Acd
from callcenter.config import parse_config
from callcenter.records.accounts import add_agent
from callcenter.records.db import make_engine, migrate
from callcenter.records.models import Article
from callcenter.seats import service
from seat_agent.client import SeatClient

from .support import FAST_HASHER, until


class ServiceTests(unittest.TestCase):
    timeout = 30

    def setUp(self):
        tmp = Path(tempfile.mkdtemp(prefix="seats-service-"))  # (trial's mktemp() writes under the cwd)
        self.addCleanup(shutil.rmtree, tmp, True)
        config = parse_config({
            "acd": {"state_dir": str(tmp / "state"), "listen": {"seat_port": 0, "admin_port": 0}},
            "categories": [{"name": "other"}],
            "pools": [{"name": "own", "kind": "own"}],
            "queues": [{"name": "hotline", "pools": ["own"]}],
        }, env={})
        self.acd = Acd(config, reactor)
        migrate(self.acd.database_url)
        db = make_engine(self.acd.database_url)
        with Session(db) as session, session.begin():
            add_agent(session, "demo-1", pool="own", password="demo-pass", endpoint="PJSIP/1001", hasher=FAST_HASHER)
            session.add(Article(title="Quarantine rules", body="Fourteen days at home.", tags="epidemic",
                                updated=datetime(2026, 1, 1)))
        db.dispose()
        self.sub = service.make_subsystem(self.acd)
        self.clients = []

    @defer.inlineCallbacks
    def tearDown(self):
        for c in self.clients:
            yield c.stop()
        yield self.sub.stop()
        yield until(lambda: not self.sub.server.protocols)
        for f in [getattr(self.sub.server, "ws_factory", None)] + [c._factory for c in self.clients]:
            if f is None:
                continue
            for dc, _ in list(f._batched_timer._buckets.values()):
                if dc.active():
                    dc.cancel()

    @defer.inlineCallbacks
    def test_listens_and_logs_in_against_records_accounts(self):
        yield self.sub.start()
        (label, url), = self.sub.listening
        self.assertEqual(label, "seat WebSocket")
        self.assertTrue(url.startswith("wss://127.0.0.1:") and url.endswith("/seat"))
        c = SeatClient(url, "demo-1", "demo-pass", reactor=reactor, cafile=str(self.acd.tls_cert_file),
                       initial_delay=0.05)
        self.clients.append(c)
        c.start()
        yield until(lambda: c.logged_in, what="login")
        self.assertEqual(self.acd.engine.agent_info("demo-1")["endpoint"], "PJSIP/1001")
        res = yield c.kb_search("quarantine")
        self.assertEqual([a.title for a in res.articles], ["Quarantine rules"])
        self.assertEqual(res.articles[0].tags, ["epidemic"])
        bad = SeatClient(url, "demo-1", "wrong-pass", reactor=reactor, cafile=str(self.acd.tls_cert_file))
        self.clients.append(bad)
        bad.start()
        yield until(lambda: bad.ended == "bad-credentials", what="wrong password refused")
        self.assertTrue(c.logged_in)  # and the right one is still on
