"""The records writer: engine events -> SQL rows and queue_log lines, written off the reactor thread.

The reactor thread only appends to an in-memory inbox (a few microseconds per
event).  One dedicated writer thread turns inbox items into rows with the pure
:class:`~callcenter.records.cdr.RecordBuilder`, and writes them in batches, one
transaction per batch, plus the Asterisk ``queue_log`` file under state_dir.

When the database is down
    the batch is kept and retried with backoff (``retry_initial_s`` doubling to
    ``retry_max_s``); new events wait in the buffer meanwhile.  The first failure
    is logged at error level, then a reminder every ``remind_every_s`` with the
    number buffered; the gauge ``callcenter_records_buffered_events`` shows it.
    When the database is back the buffer is written in order and that is logged.
When the buffer is full (``max_buffered`` events not yet written)
    new events are refused: each one counted in
    ``callcenter_records_dropped_events_total`` and logged at error level
    (at most one log line per ``remind_every_s``, with the running count).
When a row is refused by the database (a bug, not an outage)
    the batch is retried one event at a time; an event whose rows cannot be
    written is logged, counted as dropped and appended as JSON to
    ``<state_dir>/records-rejected.jsonl`` so an operator can replay it.
At shutdown (:meth:`RecordsWriter.stop`)
    everything buffered is written; if the database is still down after
    ``flush_timeout_s`` the rest goes to ``records-rejected.jsonl``, counted and
    logged.  Nothing is dropped silently.

API for other parts (all cheap, all safe to call from the reactor thread)::

    writer.event_emitted(event)       # engine listener: engine.subscribe(writer.event_emitted)
    writer.call_registered(call_id, caller_hash)   # call control: hash of the caller's number
                                      # (callcenter.masking.caller_hash(number, acd.caller_hash_key));
                                      # any time before or after the call ends
    writer.audit_logged(who, what, details)        # admin API: one audit_log row
    writer.caller_hash_of(call_id) -> str | None   # seat service: the hash call control registered
                                      # (kept in memory until the call's CDR is written; any thread)
    writer.wrapup_submitted(call_id, agent_id, pool, disposition, notes, ticket, at)
                                      # seat service: one wrapups row; True when taken, False when refused
    writer.order_changed(order_row, event_rows)
                                      # order desk: the work order as it stands, plus its new events
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy import exc as sa_exc
from twisted.logger import Logger

from callcenter.engine.events import CallEnded, CallQueued
from callcenter.records import models
from callcenter.records.cdr import INSERT, QUEUE_LOG, UPDATE_CDR, UPSERT, RecordBuilder
from callcenter.records.db import make_engine, migrate

TABLES = {t.name: t for t in models.metadata.sorted_tables}
# Parents before children (cdr before cdr_offers).
TABLE_ORDER = [t.name for t in models.metadata.sorted_tables]

_EVENT, _REGISTERED, _AUDIT, _OPEN_INTERVALS, _WRAPUP, _ORDER, _RESTORED = range(7)

# Caller hashes kept for caller_hash_of(): live calls, plus headroom.  Far above the
# calls one ACD has open at once; the oldest entry goes first when it is full.
MAX_CALLER_HASHES = 50_000

# Statements built once: SQLAlchemy's compiled cache then makes each batch an executemany.
_INSERTS = {name: insert(table) for name, table in TABLES.items()}
_UPDATES: dict[tuple[str, ...], Any] = {}


_KEEP_FIRST: dict[str, Any] = {}


def _insert_keep_first(dialect: str):
    """INSERT INTO cdr that keeps the row already there for the same call_id (a call ends once:
    a second end never replaces, nor fails the batch of, the first)."""
    stmt = _KEEP_FIRST.get(dialect)
    if stmt is None:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            return _INSERTS["cdr"]
        stmt = _KEEP_FIRST[dialect] = dialect_insert(TABLES["cdr"]).on_conflict_do_nothing(
            index_elements=["call_id"])
    return stmt


def _update_cdr(cols: tuple[str, ...]):
    stmt = _UPDATES.get(cols)
    if stmt is None:
        cdr = TABLES["cdr"]
        stmt = (update(cdr).where(cdr.c.call_id == bindparam("b_call_id"))
                .values(**{c: bindparam("b_" + c) for c in cols}))
        _UPDATES[cols] = stmt
    return stmt


def _default_metrics():
    """The shared metric objects (callcenter/metrics.py): callcenter_records_buffered_events,
    callcenter_records_dropped_events_total and callcenter_database_up."""
    from callcenter import metrics

    return metrics.RECORDS_BUFFERED, metrics.RECORDS_DROPPED, metrics.DATABASE_UP


class _NoGauge:
    def set(self, value) -> None:
        pass


def is_transient(exc: BaseException) -> bool:
    """The database is unreachable or busy (retry later), as opposed to refusing our data."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, sa_exc.DisconnectionError, OSError))


class _Item:
    """One input (an event, a hash registration, an audit entry) and the rows it became."""

    __slots__ = ("kind", "payload", "ops", "lines", "file_done", "db_done")

    def __init__(self, kind: int, payload: Any):
        self.kind, self.payload = kind, payload
        self.ops: list | None = None
        self.lines: list[str] = []
        self.file_done = False
        self.db_done = False


class RecordsWriter:
    def __init__(
        self,
        url: str | None = None,
        *,
        engine: Engine | None = None,
        state_dir: str | Path | None = None,
        queues_by_pool: dict[str, list[str]] | None = None,
        clock=None,
        migrate_first: bool = True,
        max_buffered: int = 100_000,
        max_caller_hashes: int = MAX_CALLER_HASHES,
        batch_size: int = 500,
        linger_s: float = 0.02,
        retry_initial_s: float = 0.05,
        retry_max_s: float = 1.0,
        remind_every_s: float = 10.0,
        flush_timeout_s: float = 30.0,
        buffered_gauge=None,
        dropped_counter=None,
        up_gauge=None,
        log: Logger | None = None,
    ):
        if engine is None and url is None:
            raise ValueError("RecordsWriter needs a database url or engine")
        self.url = url or engine.url.render_as_string(hide_password=False)
        self._engine = engine
        self._own_engine = engine is None
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.queue_log_path = self.state_dir / "queue_log" if self.state_dir else None
        self.rejected_path = self.state_dir / "records-rejected.jsonl" if self.state_dir else None
        self.clock = clock
        self.builder = RecordBuilder(queues_by_pool)
        self.migrate_first = migrate_first
        self.max_buffered = max_buffered
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.remind_every_s = remind_every_s
        self.flush_timeout_s = flush_timeout_s
        if buffered_gauge is None or dropped_counter is None:
            g, c, up = _default_metrics()
            buffered_gauge = buffered_gauge or g
            dropped_counter = dropped_counter or c
            up_gauge = up_gauge or up
        self.buffered_gauge = buffered_gauge
        self.dropped_counter = dropped_counter
        self.up_gauge = up_gauge or _NoGauge()
        self.log = log or Logger(namespace="callcenter.records")

        # call_id -> caller hash for caller_hash_of(); written on the reactor thread (call_registered),
        # read from the seat service's pool threads, pruned by the writer thread once the CDR is written.
        self._caller_hashes: OrderedDict[str, str] = OrderedDict()
        self._hashes_lock = threading.Lock()
        self.max_caller_hashes = max_caller_hashes
        self._inbox: deque[_Item] = deque()
        self._pending: deque[_Item] = deque()  # writer thread only
        self._n_pending = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._drop_count = 0
        self._last_drop_log = -1e9
        # figures (read by tests, benchmarks and the status page)
        self.db_up = True
        self.events_in = 0
        self.items_written = 0
        self.rows_written = 0
        self.rejected = 0
        self.batches = 0
        self.migrated = False
        self.thread_cpu_s = 0.0  # CPU time the writer thread used (benchmarks)

    # -- reactor-thread API --------------------------------------------------------

    @property
    def buffered(self) -> int:
        return len(self._inbox) + self._n_pending

    @property
    def dropped(self) -> int:
        return self._drop_count

    def event_emitted(self, event) -> None:
        """Engine listener.  Never raises and never blocks."""
        if type(event) is CallQueued and event.origin_call_id:  # a callback: same caller as its origin
            with self._hashes_lock:
                h = self._caller_hashes.get(event.origin_call_id)
                if h is not None and event.call_id not in self._caller_hashes:
                    self._caller_hashes[event.call_id] = h
        self._put(_Item(_EVENT, event))

    __call__ = event_emitted

    def call_registered(self, call_id: str, caller_hash: str, caller_masked: str = "") -> None:
        """Call control's hand-over of the caller's number hash (the engine never sees the number),
        and of the masked number (for a call resumed here, whose CallQueued this process never saw)."""
        call_id, caller_hash, caller_masked = str(call_id), str(caller_hash), str(caller_masked or "")[:32]
        with self._hashes_lock:
            self._caller_hashes[call_id] = caller_hash
            self._caller_hashes.move_to_end(call_id)
            while len(self._caller_hashes) > self.max_caller_hashes:
                self._caller_hashes.popitem(last=False)
        self._put(_Item(_REGISTERED, (call_id, caller_hash, caller_masked)))

    def calls_restored(self, snapshot: dict, tiers: dict[str, int]) -> None:
        """This ACD took over with ``snapshot`` (Engine.snapshot()): its calls' CDR facts (cdr.py)."""
        self._put(_Item(_RESTORED, (snapshot, dict(tiers))))

    def caller_hash_of(self, call_id: str) -> str | None:
        """The caller hash registered for a call still going (None: unknown or its CDR is written).

        The seat service asks this when it offers a call, then looks the caller's
        recent contacts up with ``queries.recent_contacts``.  Cheap; any thread.
        """
        with self._hashes_lock:
            return self._caller_hashes.get(str(call_id))

    def wrapup_submitted(self, call_id: str, agent_id: str, pool: str, disposition: str, notes: str = "",
                         ticket: dict | None = None, at: float | None = None) -> bool:
        """A seat's wrap-up: written off the reactor thread like every event (table ``wrapups``).

        Returns True when the writer took it (it is then written in order, after a
        database outage if need be, or set aside in records-rejected.jsonl, never lost
        silently), False when it was refused (writer stopped, buffer full).  Any thread.
        """
        if at is None:
            at = self.clock.seconds() if self.clock is not None else time.time()
        return self._put(_Item(_WRAPUP, (call_id, agent_id, pool, disposition, notes, dict(ticket or {}), at)))

    def order_changed(self, order_row: dict, event_rows: list[dict]) -> bool:
        """A work order's row as it stands now (``work_orders``, upserted) and its new events
        (``work_order_events``); same guarantees as :meth:`wrapup_submitted`.  Any thread."""
        return self._put(_Item(_ORDER, (order_row, event_rows)))

    def audit_logged(self, who: str, what: str, details: dict | None = None, at: float | None = None) -> None:
        if at is None:
            at = self.clock.seconds() if self.clock is not None else time.time()
        self._put(_Item(_AUDIT, (who, what, details, at)))

    def _put(self, item: _Item) -> bool:
        """Buffer ``item``; False when it was refused (counted and logged as dropped)."""
        try:
            self.events_in += 1
            if self._closed or self.buffered >= self.max_buffered:
                self._dropped(1, "writer stopped" if self._closed else f"buffer full ({self.max_buffered} events)", item)
                return False
            self._inbox.append(item)
            if not self._wake.is_set():  # the gauge is updated by the writer thread, per batch
                self._wake.set()
            return True
        except Exception:  # a listener must not raise into the engine
            self.log.failure("records: could not buffer an event")
            return False

    def _dropped(self, n: int, why: str, item: _Item | None = None) -> None:
        self._drop_count += n
        self.dropped_counter.inc(n)
        now = time.monotonic()
        if now - self._last_drop_log >= self.remind_every_s:
            self._last_drop_log = now
            what = type(item.payload).__name__ if item is not None and item.kind == _EVENT else "record"
            self.log.error(
                "records: DROPPED {what} ({why}); {total} dropped so far, {buffered} waiting; "
                "see callcenter_records_dropped_events_total",
                what=what, why=why, total=self._drop_count, buffered=self.buffered,
            )

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="records-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Write everything buffered, then end the thread (blocking: call it in a thread from the reactor)."""
        if self._thread is None:
            if not self._inbox:
                self._closed = True
                return
            self.start()  # stopped before it started (shutdown during start): still flush
        self._inbox.append(_Item(_OPEN_INTERVALS, None))
        self._closed = True
        self._stopping.set()
        self._wake.set()
        # connect attempts give up after 3 s (db.make_engine), then the flush deadline applies
        self._thread.join(timeout if timeout is not None else self.flush_timeout_s + 10)
        self._thread = None
        if self._own_engine and self._engine is not None:
            self._engine.dispose()

    def wait_written(self, timeout: float = 10.0) -> bool:
        """Block until everything put so far is written (tests, benchmarks, CLI tools)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self.buffered:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.05))
        return True

    # -- writer thread -------------------------------------------------------------

    def _run(self) -> None:
        cpu0 = time.thread_time()
        try:
            self._loop()
        finally:
            self.thread_cpu_s = time.thread_time() - cpu0

    def _loop(self) -> None:
        if self._engine is None:
            self._engine = make_engine(self.url)
        self._load_closed()
        deadline = None
        delay = self.retry_initial_s
        down_since = None
        last_remind = 0.0
        while True:
            if self._stopping.is_set() and deadline is None:
                deadline = time.monotonic() + self.flush_timeout_s
            if not self._inbox and not self._pending:
                if self._stopping.is_set():
                    break
                self._wake.wait(0.5)
                self._wake.clear()
                if self.linger_s and len(self._inbox) < self.batch_size and not self._stopping.is_set():
                    self._stopping.wait(self.linger_s)
            self._convert_inbox()
            self.buffered_gauge.set(self.buffered)
            if not self._pending:
                self._notify_idle()
                continue
            try:
                if self.migrate_first and not self.migrated:
                    migrate(self.url, engine=self._engine)
                    self.migrated = True
                self._write_batch()
            except Exception as exc:  # noqa: BLE001 -- every failure is classified and logged
                now = time.monotonic()
                if down_since is None and not is_transient(exc):
                    self.log.failure("records: unexpected error while writing; retrying")
                if down_since is None:
                    down_since = last_remind = now
                    self.db_up = False
                    self.up_gauge.set(0)
                    self.log.error(
                        "records: DATABASE UNAVAILABLE ({err}); buffering events in memory "
                        "({buffered} waiting, limit {limit}); will retry",
                        err=_short(exc), buffered=self.buffered, limit=self.max_buffered,
                    )
                elif now - last_remind >= self.remind_every_s:
                    last_remind = now
                    self.log.error(
                        "records: database still unavailable after {s:.0f}s ({err}); {buffered} events buffered",
                        s=now - down_since, err=_short(exc), buffered=self.buffered,
                    )
                if deadline is not None and now >= deadline:
                    self._give_up(f"database unavailable at shutdown: {_short(exc)}")
                    break
                self._stopping.wait(delay) if deadline is None else time.sleep(min(delay, max(0.0, deadline - now)))
                delay = min(delay * 2, self.retry_max_s)
                continue
            if down_since is not None:
                self.log.info(
                    "records: database is back after {s:.1f}s; writing {buffered} buffered events",
                    s=time.monotonic() - down_since, buffered=self.buffered,
                )
                down_since = None
                self.db_up = True
            self.up_gauge.set(1)
            delay = self.retry_initial_s
            self.buffered_gauge.set(self.buffered)
        self._notify_idle()
        self.buffered_gauge.set(self.buffered)

    def _load_closed(self) -> None:
        """Before the first event: the newest CDRs' call ids, so that no call already recorded
        (before a crash or restart) gets a second CDR or terminal queue_log line.  If the
        database is down now, the UNIQUE cdr.call_id still keeps the first CDR (_write_db)."""
        try:
            if self.migrate_first and not self.migrated:
                migrate(self.url, engine=self._engine)
                self.migrated = True
            cdr = TABLES["cdr"]
            with self._engine.connect() as conn:
                rows = conn.execute(select(cdr.c.call_id).order_by(cdr.c.ended_at.desc())
                                    .limit(self.builder.MAX_REMEMBERED)).scalars().all()
            self.builder.already_closed(reversed(rows))
        except Exception as exc:  # noqa: BLE001 -- the write loop reports the outage
            self.log.warn("records: could not read the recent CDRs at start ({err})", err=_short(exc))

    def _notify_idle(self) -> None:
        with self._idle:
            self._idle.notify_all()

    def _convert_inbox(self) -> None:
        b = self.builder
        while self._inbox:
            item = self._inbox.popleft()
            try:
                if item.kind == _EVENT:
                    item.ops = b.feed(item.payload)
                elif item.kind == _REGISTERED:
                    item.ops = b.call_registered(*item.payload)
                elif item.kind == _AUDIT:
                    item.ops = b.audit_logged(*item.payload)
                elif item.kind == _WRAPUP:
                    item.ops = b.wrapup_submitted(*item.payload)
                elif item.kind == _ORDER:
                    row, events = item.payload
                    item.ops = [(UPSERT, "work_orders", row), *((INSERT, "work_order_events", e) for e in events)]
                elif item.kind == _RESTORED:
                    item.ops = b.calls_restored(*item.payload)
                else:
                    item.ops = b.open_intervals()
            except Exception as exc:  # our bug: keep the event for an operator, carry on
                self.log.failure("records: could not build rows for {item!r}", item=item.payload)
                self._reject(item, f"builder error: {exc!r}")
                continue
            item.lines = [op[1].format() + "\n" for op in item.ops if op[0] == QUEUE_LOG]
            item.file_done = not item.lines or self.queue_log_path is None
            self._pending.append(item)
            self._n_pending += 1

    def _write_batch(self) -> None:
        batch = [self._pending[i] for i in range(min(self.batch_size, len(self._pending)))]
        self._write_file(batch)
        todo = [it for it in batch if not it.db_done]
        try:
            self._write_db(todo)
        except Exception as exc:
            if is_transient(exc):
                raise
            self.log.warn("records: a batch was refused ({err}); writing it one event at a time", err=_short(exc))
            for it in todo:
                try:
                    self._write_db([it])
                except Exception as one:
                    if is_transient(one):
                        raise
                    self.log.error("records: rows refused by the database: {err}", err=_short(one))
                    it.db_done = True
                    self._reject(it, f"refused by the database: {_short(one)}")
        self.batches += 1
        ended = []
        for it in batch:
            if it.file_done and it.db_done:
                self._pending.popleft()
                self._n_pending -= 1
                self.items_written += 1
                if it.kind == _EVENT and isinstance(it.payload, CallEnded):
                    ended.append(it.payload.call_id)
                elif it.kind == _REGISTERED and it.ops:  # registered after its CDR: now updated
                    ended.append(it.payload[0])
            else:
                break
        if ended:  # the CDR (with the hash) is written: caller_hash_of() need not remember it
            with self._hashes_lock:
                for call_id in ended:
                    self._caller_hashes.pop(call_id, None)
        # items are written in order; anything left over (file failure) is retried next round
        if batch and not (batch[-1].file_done and batch[-1].db_done):
            raise OSError("queue_log file not written")

    def _write_file(self, batch: list[_Item]) -> None:
        todo = [it for it in batch if not it.file_done]
        if not todo:
            return
        try:
            self.queue_log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.queue_log_path, "a", encoding="utf-8") as f:
                f.write("".join(line for it in todo for line in it.lines))
            for it in todo:
                it.file_done = True
        except OSError as exc:
            self.log.error("records: cannot append to {path}: {err}", path=str(self.queue_log_path), err=exc)

    def _write_db(self, items: list[_Item]) -> None:
        rows: dict[str, list[dict]] = {}
        updates: list[tuple[str, dict]] = []
        upserts: dict[tuple[str, str], dict] = {}  # the last row per (table, id) in the batch wins
        for it in items:
            for op in it.ops:
                if op[0] == INSERT:
                    rows.setdefault(op[1], []).append(op[2])
                elif op[0] == QUEUE_LOG:
                    rows.setdefault("queue_log", []).append(op[1].row())
                elif op[0] == UPDATE_CDR:
                    updates.append((op[1], op[2]))
                elif op[0] == UPSERT:
                    upserts.pop((op[1], op[2]["id"]), None)
                    upserts[(op[1], op[2]["id"])] = op[2]
        n = 0
        if rows or updates or upserts:
            with self._engine.begin() as conn:
                for (name, key), row in upserts.items():
                    table = TABLES[name]
                    if conn.execute(update(table).where(table.c.id == key).values(**row)).rowcount == 0:
                        conn.execute(_INSERTS[name], [row])
                    n += 1
                for name in TABLE_ORDER:
                    if rows.get(name):
                        stmt = _insert_keep_first(conn.dialect.name) if name == "cdr" else _INSERTS[name]
                        conn.execute(stmt, rows[name])
                        n += len(rows[name])
                # one executemany per set of updated columns, in order of first appearance
                grouped: dict[tuple[str, ...], list[dict]] = {}
                for call_id, values in updates:
                    grouped.setdefault(tuple(sorted(values)), []).append(
                        {"b_call_id": call_id, **{"b_" + k: v for k, v in values.items()}})
                for cols, params in grouped.items():
                    conn.execute(_update_cdr(cols), params)
                    n += len(params)
        for it in items:
            it.db_done = True
        self.rows_written += n

    def _reject(self, item: _Item, why: str) -> None:
        self.rejected += 1
        self._dropped(1, why, item)
        if self.rejected_path is None:
            return
        try:
            record = {"why": why, "input": _jsonable(item.payload), "ops": _jsonable(item.ops or [])}
            self.rejected_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.rejected_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, default=str) + "\n")
        except OSError as exc:
            self.log.error("records: cannot write {path}: {err}", path=str(self.rejected_path), err=exc)

    def _give_up(self, why: str) -> None:
        left = list(self._pending)
        self.log.error(
            "records: SHUTDOWN WITH {n} EVENTS UNWRITTEN ({why}); saved to {path}",
            n=len(left), why=why, path=str(self.rejected_path),
        )
        for it in left:
            self._reject(it, why)
        self._pending.clear()
        self._n_pending = 0


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _jsonable(obj):
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, (list, tuple)):
        return [_jsonable(o) for o in obj]
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if hasattr(obj, "format") and hasattr(obj, "event"):
        return obj.format()
    return obj
