"""How the live engine state lives in Redis: a snapshot plus a journal of inputs.

Layout (keys from :class:`~callcenter.state.lease.StateKeys`)::

    {cc}:snap     JSON {"format": 1, "seq": S, "holder": ..., "taken_at": t, "engine": engine.snapshot()}
    {cc}:journal  list of batches of JSON input records (engine.subscribe_inputs), one batch per
                  write, LF-separated, accepted after the snapshot
    {cc}:seq      number of inputs covered by snap + journal (detects lost writes)
    {cc}:fence    the fencing counter (lease.py); every write checks it

Restoring = ``Engine.restore(config, clock, snap["engine"])`` then
``apply_input(record)`` for each journal record, in order.  Waiting calls keep
their places because the snapshot holds the queue order, and their timers
because the engine stores timers as absolute deadlines on the clock; the
default reactor clock is wall time (time.time), so two ACDs on NTP-synced hosts
agree on it.

Why snapshot + journal: a journal append per input is small and O(1), so the
per-call cost does not grow with the number of waiting calls; a periodic
snapshot (every ``snapshot_every_inputs`` inputs or ``snapshot_every_s``
seconds, whichever first) bounds the journal and the replay time at takeover.

Writes never block the reactor: redis-py is blocking, so all Redis calls run on
one dedicated writer thread (runner.ThreadRunner).  At most one batch is in
flight; inputs accepted meanwhile are grouped into the next batch (group
commit), so one EVALSHA carries every input of a busy moment; records and
snapshots are JSON-encoded on that thread too.  That makes the
queue naturally bounded: it holds at most ``max_pending`` records, beyond that
they are dropped and replaced by one fresh snapshot.  Each batch is one Lua
script that (1) checks the fencing token, (2) checks that ``{cc}:seq`` is what
we last wrote (otherwise writes were lost, e.g. Sentinel promoted a replica
that missed them: we answer with a fresh snapshot), (3) writes snapshot and/or
appends records and (4) sets the new seq -- atomically.

Redis unavailable: the engine is in memory and goes on routing; the store
reports ``redis_up = 0`` and the count of unsynced inputs (alarm metrics), keeps
no journal (a fresh snapshot will cover it) and retries with backoff; when
Redis answers again it writes a fresh snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import redis
from twisted.internet import defer, task
from twisted.logger import Logger

from .lease import DEFAULT_KEYS, StateKeys

__all__ = ["RedisJournal", "StateStore", "FencedWrite", "JournalGap", "load_engine", "SNAPSHOT_FORMAT"]

SNAPSHOT_FORMAT = 1


class FencedWrite(Exception):
    """The fencing counter moved past our token: another ACD took over."""


class JournalGap(Exception):
    """Redis does not hold what we last wrote (lost writes); a fresh snapshot is needed."""


# KEYS: fence, seq, snap, journal
# ARGV: token, base_seq, new_seq, snapshot ('' = none), records ('' = none; JSON records joined by LF)
APPLY_BATCH_LUA = """
local f = redis.call('GET', KEYS[1])
if f ~= ARGV[1] then return redis.error_reply('FENCED fence=' .. tostring(f)) end
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[3], ARGV[4])
  redis.call('DEL', KEYS[4])
else
  local s = redis.call('GET', KEYS[2]) or '0'
  if s ~= ARGV[2] then return redis.error_reply('GAP seq=' .. s) end
end
if ARGV[5] ~= '' then redis.call('RPUSH', KEYS[4], ARGV[5]) end
redis.call('SET', KEYS[2], ARGV[3])
return 1
"""


# One encoder for all records: json.dumps() with non-default options builds a new
# JSONEncoder on every call.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class RedisJournal:
    """The blocking Redis side (runs on the writer thread): one call = one round trip."""

    def __init__(self, client: Any, keys: StateKeys = DEFAULT_KEYS):
        self.client = client
        self.keys = keys
        self._apply = client.register_script(APPLY_BATCH_LUA)

    def apply_batch(self, token: int, base_seq: int, new_seq: int, snapshot: str | None, records: list[str]) -> int:
        """Write one batch atomically; the records go in as one journal element (one
        argument, one RPUSH: the per-batch cost does not grow with the batch)."""
        k = self.keys
        try:
            return self._apply(
                keys=[k.fence, k.seq, k.snapshot, k.journal],
                args=[token, base_seq, new_seq, snapshot or "", "\n".join(records)],
            )
        except redis.exceptions.ResponseError as exc:
            text = str(exc)
            if text.startswith("FENCED"):
                raise FencedWrite(text) from None
            if text.startswith("GAP"):
                raise JournalGap(text) from None
            raise

    def encode_and_apply(
        self, token: int, base_seq: int, new_seq: int, snapshot: dict | None, records: list[dict]
    ) -> int:
        """JSON-encode on the writer thread, then :meth:`apply_batch`.

        Safe because the engine hands out fresh structures (``snapshot()`` builds
        new dicts and lists; each journal record is a new dict of plain values)
        and nobody mutates them afterwards; the reactor thread saves the encoding
        time (~15 us a record here, milliseconds for a big snapshot).
        """
        return self.apply_batch(
            token, base_seq, new_seq, None if snapshot is None else _dumps(snapshot), [_dumps(r) for r in records]
        )

    def clean_stop(self) -> dict | None:
        """The marker of the last clean stop (None: the last active crashed, or handed over)."""
        raw = self.client.get(self.keys.clean)
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def mark_clean(self, marker: dict) -> None:
        self.client.set(self.keys.clean, _dumps(marker))

    def clear_clean(self) -> None:
        self.client.delete(self.keys.clean)

    def load(self) -> tuple[dict | None, list[dict], int]:
        """(snapshot document or None, journal records, seq), read atomically."""
        k = self.keys
        pipe = self.client.pipeline(transaction=True)
        pipe.get(k.snapshot)
        pipe.lrange(k.journal, 0, -1)
        pipe.get(k.seq)
        snap, records, seq = pipe.execute()
        doc = json.loads(snap) if snap else None
        # each element is one batch: JSON records joined by LF (json.dumps never emits a raw LF)
        return doc, [json.loads(line) for batch in records for line in batch.split(b"\n")], int(seq or 0)


def load_engine(engine_cls: Any, config: Any, clock: Any, doc: dict | None, records: list[dict]) -> Any:
    """Rebuild the engine from a snapshot document and the journal after it.

    Pure (no I/O): call it with what :meth:`RedisJournal.load` returned.

    Timer firings are not journaled (they follow from inputs and time), so the
    journal is replayed on a private ``task.Clock`` that starts at the
    snapshot's time and is advanced to each record's time ``t`` before the
    record is applied: every timer that fired between two inputs on the old
    active fires at the same point of the replay, and the inputs that followed
    find the state they found then.  Replay events go nowhere (the old active
    already acted on them).  The replayed engine is then snapshotted again and
    restored on the real ``clock``: timers whose deadline passed during the
    failover fire at once, with the new active's listeners attached, so their
    decisions are carried out.

    With no snapshot there is nothing to restore: a fresh engine is returned
    (records without a snapshot cannot occur: every writer starts with one).
    """
    if doc is None:
        return engine_cls(config, clock)
    if doc.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(f"unknown snapshot format {doc.get('format')!r}")
    snap = doc["engine"]
    if records:
        replay_clock = task.Clock()
        replay_clock.advance(float(snap.get("t", 0.0)))
        engine = engine_cls.restore(config, replay_clock, snap)
        for record in records:
            t = float(record.get("t", replay_clock.seconds()))
            if t > replay_clock.seconds():
                replay_clock.advance(t - replay_clock.seconds())
            engine.apply_input(record)
        snap = engine.snapshot()
    return engine_cls.restore(config, clock, snap)


# Inputs that apply_input cannot replay: the store answers them with a snapshot.
_NOT_REPLAYABLE = frozenset({"replace_config"})


class StateStore:
    """Mirrors one engine's inputs into Redis while this ACD is active.

    Reactor-side: it never touches Redis itself, it hands batches to ``runner``
    (the writer thread).  Call :meth:`start_writing` with the fencing token when
    the lease is acquired; :meth:`stop_writing` when it is lost.
    """

    log = Logger()

    def __init__(
        self,
        engine: Any,
        clock: Any,
        runner: Callable[..., defer.Deferred],
        journal: RedisJournal,
        *,
        holder: str = "",
        snapshot_every_inputs: int = 2000,
        snapshot_every_s: float = 60.0,
        max_pending: int = 20000,
        on_fenced: Callable[[], Any] | None = None,
        on_redis: Callable[[bool], Any] | None = None,
        on_unsynced: Callable[[int], Any] | None = None,
    ):
        self.clock = clock
        self.runner = runner
        self.journal = journal
        self.holder = holder
        self.snapshot_every_inputs = snapshot_every_inputs
        self.snapshot_every_s = snapshot_every_s
        self.max_pending = max_pending
        self.on_fenced = on_fenced or (lambda: None)
        self.on_redis = on_redis or (lambda ok: None)
        self.on_unsynced = on_unsynced or (lambda n: None)
        self.engine = None
        self.token: int | None = None
        self.writing = False
        self.seq = 0  # inputs accepted (the journal sequence number)
        self.written_seq = 0  # inputs Redis confirmed
        self.batches = 0
        self.snapshots = 0
        self.redis_ok: bool | None = None
        self._pending: list[dict] = []  # records, encoded on the writer thread
        self._need_snapshot = True
        self._since_snapshot = 0
        self._last_snapshot_at = clock.seconds()
        self._inflight = False
        self._flush_call = None
        self._retry_call = None
        self._failures = 0
        self._oldest_unsynced_at: float | None = None
        self._batch_taken_at = 0.0
        self._idle_waiters: list[defer.Deferred] = []
        self.attach(engine)

    # -- wiring -------------------------------------------------------------

    def attach(self, engine: Any) -> None:
        """Follow ``engine``'s inputs (after a restore the service attaches the new engine)."""
        self.engine = engine
        if engine is not None:
            engine.subscribe_inputs(self.input_accepted)

    @property
    def unsynced(self) -> int:
        """Inputs accepted that Redis has not confirmed (alarm metric)."""
        return self.seq - self.written_seq

    def lag_s(self) -> float:
        """Age of the oldest input Redis has not confirmed (0 when in sync)."""
        if self._oldest_unsynced_at is None or self.unsynced == 0:
            return 0.0
        return max(0.0, self.clock.seconds() - self._oldest_unsynced_at)

    def start_writing(self, token: int, seq: int = 0) -> None:
        """We hold the lease with ``token``: begin with a fresh snapshot under it."""
        self.token = token
        self.writing = True
        self.seq = self.written_seq = seq
        self._need_snapshot = True
        self._pending.clear()
        self._schedule_flush()

    def stop_writing(self) -> None:
        self.writing = False
        self._pending.clear()
        for call in (self._flush_call, self._retry_call):
            if call is not None and call.active():
                call.cancel()
        self._flush_call = self._retry_call = None

    def resync(self) -> None:
        """Write a fresh snapshot soon (Redis came back, or lost data)."""
        self._need_snapshot = True
        self._pending.clear()
        self._schedule_flush()

    def flushed(self) -> defer.Deferred:
        """Fires when everything accepted so far is in Redis (or writing stopped)."""
        if not self.writing or (self.unsynced == 0 and not self._inflight and not self._need_snapshot):
            return defer.succeed(None)
        d = defer.Deferred()
        self._idle_waiters.append(d)
        return d

    # -- inputs -------------------------------------------------------------

    def input_accepted(self, record: dict) -> None:
        """engine.subscribe_inputs callback: one accepted input."""
        if not self.writing:
            return
        now = self.clock.seconds()
        self.seq += 1
        self._since_snapshot += 1
        if self.seq - self.written_seq == 1:
            self._oldest_unsynced_at = now
        if not self._need_snapshot:
            if (
                record.get("input") in _NOT_REPLAYABLE
                or len(self._pending) >= self.max_pending
                or self._since_snapshot >= self.snapshot_every_inputs
                or now - self._last_snapshot_at >= self.snapshot_every_s
            ):
                # a snapshot replaces the journal: no need to keep the records
                self._need_snapshot = True
                self._pending.clear()
            else:
                self._pending.append(record)
        self._schedule_flush()

    # -- writing ------------------------------------------------------------

    def _schedule_flush(self) -> None:
        # Not inline: the input callback may run before the engine finished the
        # input, and waiting one reactor turn groups a burst into one batch.
        if self._flush_call is None and self._retry_call is None and self.writing:
            self._flush_call = self.clock.callLater(0, self._flush)

    def _flush(self) -> None:
        self._flush_call = None
        if self._inflight or not self.writing:
            return
        snapshot = None
        if self._need_snapshot:
            snapshot = {
                "format": SNAPSHOT_FORMAT,
                "seq": self.seq,
                "holder": self.holder,
                "token": self.token,
                "taken_at": self.clock.seconds(),
                "engine": self.engine.snapshot(),
            }
            records: list[dict] = []
            self._need_snapshot = False
            self._since_snapshot = 0
            self._last_snapshot_at = self.clock.seconds()
        elif self._pending:
            records, self._pending = self._pending, []
        else:
            self._notify_idle()
            return
        base, new = self.written_seq, self.seq
        self._batch_taken_at = self.clock.seconds()
        self._inflight = True
        d = self.runner(self.journal.encode_and_apply, self.token, base, new, snapshot, records)
        d.addCallbacks(self._written, self._write_failed, callbackArgs=(new, snapshot is not None))

    def _written(self, _result: Any, new_seq: int, was_snapshot: bool) -> None:
        self._inflight = False
        self._failures = 0
        self.batches += 1
        self.snapshots += was_snapshot
        self.written_seq = max(self.written_seq, new_seq)
        self._oldest_unsynced_at = self._batch_taken_at if self.unsynced else None
        if self.redis_ok is not True:
            if self.redis_ok is False:
                self.log.info("Redis is back: live state in sync again")
            self.redis_ok = True
            self.on_redis(True)
        self.on_unsynced(self.unsynced)
        if self.writing and (self._pending or self._need_snapshot):
            self._flush()
        else:
            self._notify_idle()

    def _write_failed(self, failure: Any) -> None:
        self._inflight = False
        if failure.check(FencedWrite):
            self.log.critical("state write refused by the fence: {e}", e=failure.getErrorMessage())
            self.writing = False
            self._notify_idle()
            self.on_fenced()
            return
        # Whatever happened, Redis may hold part of it or nothing: a snapshot makes it whole.
        self._need_snapshot = True
        self._pending.clear()
        if failure.check(JournalGap):
            self.log.warn("Redis lost state writes ({e}); writing a fresh snapshot", e=failure.getErrorMessage())
            self._schedule_flush()
            return
        self._failures += 1
        if self.redis_ok is not False:
            self.log.error("Redis unavailable, routing goes on from memory ({e})", e=failure.getErrorMessage())
            self.redis_ok = False
            self.on_redis(False)
        self.on_unsynced(self.unsynced)
        delay = min(0.25 * 2 ** min(self._failures - 1, 5), 5.0)
        if self.writing:
            self._retry_call = self.clock.callLater(delay, self._retry)

    def _retry(self) -> None:
        self._retry_call = None
        self._flush()

    def _notify_idle(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        for d in waiters:
            d.callback(None)
