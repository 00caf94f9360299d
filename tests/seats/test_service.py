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
from callcenter.kb.store import KbStore
from callcenter.records.accounts import add_agent
from callcenter.records.db import make_engine, migrate
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
        KbStore(db).create({"title": "Quarantine rules", "body": "Fourteen days at home.", "tags": "epidemic",
                            "org": "test"}, "test", publish=True, trusted=True, now=datetime(2026, 1, 1))
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

    @defer.inlineCallbacks
    def test_a_published_change_reaches_the_seat_that_has_the_article_open(self):
        yield self.sub.start()
        (_, url), = self.sub.listening
        c = SeatClient(url, "demo-1", "demo-pass", reactor=reactor, cafile=str(self.acd.tls_cert_file),
                       initial_delay=0.05)
        self.clients.append(c)
        c.start()
        yield until(lambda: c.logged_in, what="login")
        yield until(lambda: self.sub.kb_watcher.last is not None, what="the watcher's first poll")
        art = (yield c.kb_search("quarantine")).articles[0]
        opened = (yield c.kb_get(art.id)).article
        self.assertEqual((opened.title, opened.body, opened.version), ("Quarantine rules", "Fourteen days at home.", 1))

        db = make_engine(self.acd.database_url)
        self.addCleanup(db.dispose)
        kb = KbStore(db)
        kb.edit(art.id, {"body": "Seven days at home."}, "editor-1", "policy of 1 June", trusted=True)
        draft = kb.create({"title": "Not yet", "org": "test"}, "editor-1", trusted=True)
        yield until(lambda: art.id in c.kb_changed, what="kb_updated for the open article")
        update = c.kb_changed[art.id]
        self.assertEqual((update.change, update.version, update.changed, update.why),
                         ("edited", 2, ["body"], "policy of 1 June"))
        old, new, lines = yield c.kb_difference(art.id)
        self.assertEqual((old.version, new.version), (1, 2))
        self.assertEqual(lines, ["-Fourteen days at home.", "+Seven days at home."])
        self.assertNotIn(art.id, c.kb_changed)  # seen: no longer "changed since you opened it"

        kb.retire(art.id, "editor-1", "superseded", trusted=True)
        yield until(lambda: art.id in c.kb_changed, what="kb_updated for the retirement")
        self.assertEqual(c.kb_changed[art.id].change, "retired")
        self.assertFalse(any(u.article_id == draft["id"] for u in c.kb_updates))  # drafts are not pushed
        self.assertEqual((yield c.kb_search("quarantine")).articles, [])
