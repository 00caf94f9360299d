"""The records subsystem for ``callcenter serve``: migrate, then write engine events to SQL.

Start: subscribe the writer to the engine at once (events are buffered from
the first one), migrate the schema in a thread (SQLite under state_dir by
default: ``make run`` needs no set-up), then start the writer thread.  If the
database cannot be reached at start the ACD still starts: that is logged
loudly and the writer keeps retrying the migration and the writes.

``callcenter_database_up`` comes from a ``SELECT 1`` probe every few seconds
(probe.py), from the start on, not from the outcome of the last write.

Stop: flush the buffer in a thread, within the shell's stop budget
(:data:`FLUSH_TIMEOUT_S`); what cannot be written by then is saved to
``<state_dir>/records-rejected.jsonl`` and logged (writer.py).
"""

from __future__ import annotations

from sqlalchemy.engine import make_url
from twisted.internet import threads
from twisted.logger import Logger

from callcenter import metrics
from callcenter.records.db import migrate, normalize_url
from callcenter.records.probe import DatabaseProbe, select_one
from callcenter.records.queue_log import queues_by_pool
from callcenter.records.writer import RecordsWriter

FLUSH_TIMEOUT_S = 1.2  # app.SUBSYSTEM_STOP_MAX_S is 2 s

log = Logger(namespace="callcenter.records")


class RecordsSubsystem:
    def __init__(self, acd):
        self.acd = acd
        self.url = normalize_url(acd.database_url)
        self.writer = RecordsWriter(
            self.url,
            state_dir=acd.state_dir,
            queues_by_pool=queues_by_pool(acd.config),
            clock=acd.reactor,
            migrate_first=True,
            flush_timeout_s=FLUSH_TIMEOUT_S,
            log=log,
        )
        self.listening = [("records database", make_url(self.url).render_as_string(hide_password=True)),
                          ("queue_log", str(self.writer.queue_log_path))]
        acd.records = self.writer
        acd.engine.subscribe(self.writer.event_emitted)
        # callcenter_database_up is probed (SELECT 1 every few seconds), not inferred from the last write.
        self.probe = DatabaseProbe(acd.reactor, select_one(self.url), metrics.DATABASE_UP,
                                   writes_ok=lambda: self.writer.db_up)

    def _in_thread(self, f, *args):
        reactor = self.acd.reactor
        return threads.deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)

    def start(self):
        if hasattr(self.acd.reactor, "callLater"):  # a real reactor or task.Clock (not a bare thread shim)
            self.probe.start()
        d = self._in_thread(migrate, self.url)

        def migrated(_):
            self.writer.migrated = True
            log.info("records: schema at {url} is up to date", url=self.listening[0][1])

        def failed(failure):
            log.error("records: cannot migrate {url} at start ({err}); events are buffered and "
                      "the writer keeps retrying", url=self.listening[0][1], err=failure.getErrorMessage())

        d.addCallbacks(migrated, failed)
        d.addCallback(lambda _: self.writer.start())
        return d

    def stop(self):
        self.probe.stop()
        return self._in_thread(self.writer.stop)


def make_subsystem(acd) -> RecordsSubsystem:
    return RecordsSubsystem(acd)
