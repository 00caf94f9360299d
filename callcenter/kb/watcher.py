"""Tells the seats when an article they may be reading changed (the imperative shell).

Articles change through the CLI, the admin API or another ACD of the pair, so
the one place that sees every change is the database: a LoopingCall (every
``interval_s``, 0.25 s by default) asks ``store.changes_since(last)`` in a thread
(never on the reactor) for version rows newer than the last seen, and hands
each one that seats must hear of (``update_of``, pure) to ``notify``.  One
poll at a time; a failing database is logged and retried on the next tick.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

__all__ = ["KbWatcher", "update_of"]

log = Logger(namespace="callcenter.kb")


def update_of(change: dict) -> dict | None:
    """What to tell seats of one saved version, or None (drafts are nobody's business yet)."""
    status, changed = change["status"], change["changed"]
    if status == "published":
        kind = "published" if "status" in changed else "edited"
    elif status == "retired" and "status" in changed:
        kind = "retired"
    else:
        return None
    at = change["at"]
    return {"article_id": change["article_id"], "key": change.get("key"), "title": change["title"],
            "version": change["version"], "status": status, "change": kind, "changed": list(changed),
            "org": change.get("org", ""), "why": change.get("why", ""),
            "at": at.isoformat() if hasattr(at, "isoformat") else str(at)}


class KbWatcher:
    def __init__(self, store: Any, notify: Callable[[dict], Any], *, clock: Any,
                 run_blocking: Callable[..., defer.Deferred], interval_s: float = 0.25):
        self.store, self.notify, self.clock = store, notify, clock
        self.run_blocking, self.interval_s = run_blocking, interval_s
        self.last: int | None = None
        self._loop: task.LoopingCall | None = None
        self._busy = False

    def start(self) -> None:
        self._loop = task.LoopingCall(self.poll)
        self._loop.clock = self.clock
        self._loop.start(self.interval_s, now=True)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def poll(self) -> defer.Deferred | None:
        if self._busy:
            return None
        self._busy = True
        if self.last is None:  # the first poll only learns where the history is now
            d = self.run_blocking(self.store.last_change).addCallback(self._started)
        else:
            d = self.run_blocking(self.store.changes_since, self.last).addCallback(self._changed)
        d.addErrback(lambda f: log.failure("knowledge-base watcher: the database did not answer", f))
        d.addBoth(self._done)
        return d

    def _done(self, _):
        self._busy = False

    def _started(self, last: int) -> None:
        self.last = last

    def _changed(self, changes: list[dict]) -> None:
        for c in changes:
            self.last = max(self.last or 0, c["seq"])
            update = update_of(c)
            if update is not None:
                self.notify(update)
