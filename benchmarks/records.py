"""Records writer benchmark: events written per second, and the reactor's longest stall while writing.

    .venv/bin/python benchmarks/records.py [--calls N] [--rate EVENTS_PER_S] [--seconds S] [--no-postgres]

1. Events are recorded from a real routing Engine on a task.Clock (whole calls:
   queued, offered, answered, ended, agent states; every 5th call abandoned).
2. Throughput: all of them are handed to a RecordsWriter at once; we time until
   every row is committed (SQLite file; PostgreSQL too when its binaries are on
   this machine, started throwaway by tests/support/pgserver.py).
3. Stall: on the real Twisted reactor, the events are fed at ``--rate`` events/s
   in 10 ms chunks while a 5 ms LoopingCall records how late it runs; the same
   is done with a no-op listener as a baseline.  Goal: the writer's longest
   stall under 5 ms.

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry, Counter, Gauge  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402
from twisted.logger import Logger  # noqa: E402

from callcenter.config import parse_config  # noqa: E402
from callcenter.engine import Engine  # noqa: E402
from callcenter.engine import events as ev  # noqa: E402
from callcenter.records.db import migrate  # noqa: E402
from callcenter.records.writer import RecordsWriter  # noqa: E402

GOAL_STALL_MS = 5.0


def config():
    return parse_config({
        "categories": [{"name": "other"}],
        "pools": [{"name": "own", "kind": "own", "tier": 0, "wrapup_s": 5, "ring_timeout_s": 10}],
        "queues": [{"name": "hotline", "pools": ["own"], "max_wait_s": 600}],
    }, env={})


def record_events(calls: int, agents: int = 20) -> list[ev.Event]:
    clock = Clock()
    clock.advance(1_764_300_000)
    engine = Engine(config(), clock)
    out: list[ev.Event] = []
    engine.subscribe(out.append)
    for a in range(agents):
        engine.agent_logged_in(f"a{a}", "own", endpoint=f"PJSIP/{1000 + a}")
        engine.agent_ready(f"a{a}")
    ringing: list[tuple[str, str, int]] = []
    for i in range(calls):
        cid = f"c{i}"
        for e in engine.call_arrived(cid, "hotline", caller_masked="138****0000"):
            if isinstance(e, ev.CallOffered):
                ringing.append((cid, e.agent_id, i))
        clock.advance(1)
        # answer or abandon whatever rings, complete earlier answered calls
        for cid2, agent, j in ringing:
            if j % 5 == 4:
                engine.caller_hung_up(cid2)
            else:
                engine.offer_answered(cid2, agent)
                clock.advance(0.5)
                engine.call_completed(cid2)
        ringing.clear()
        clock.advance(6)
    return out


class _Null:
    def set(self, v):
        pass

    def inc(self, n=1):
        pass


def make_writer(url: str, state_dir: Path) -> RecordsWriter:
    reg = CollectorRegistry()
    return RecordsWriter(url, state_dir=state_dir, migrate_first=False, max_buffered=10_000_000,
                         buffered_gauge=Gauge("b", "b", registry=reg), dropped_counter=Counter("d", "d", registry=reg),
                         log=Logger(observer=lambda e: None))


def throughput(url: str, events: list[ev.Event], state_dir: Path) -> dict:
    migrate(url)
    w = make_writer(url, state_dir)
    w.start()
    t0 = time.perf_counter()
    for e in events:
        w.event_emitted(e)
    t_put = time.perf_counter() - t0
    assert w.wait_written(600), "writer did not finish"
    dt = time.perf_counter() - t0
    w.stop()
    return {"events": len(events), "seconds": round(dt, 3), "events_per_s": round(len(events) / dt),
            "writer_cpu_s": round(w.thread_cpu_s, 3),
            "events_per_cpu_s": round(len(events) / w.thread_cpu_s) if w.thread_cpu_s else None,
            "rows": w.rows_written, "rows_per_s": round(w.rows_written / dt), "batches": w.batches,
            "put_us_per_event": round(t_put / len(events) * 1e6, 2)}


def stall(url: str | None, events: list[ev.Event], rate: float, seconds: float, state_dir: Path) -> dict:
    """Run the real reactor; feed events at ``rate``; measure the max lateness of a 5 ms LoopingCall."""
    from twisted.internet import reactor, task

    w = None
    if url is not None:
        w = make_writer(url, state_dir)
        w.start()
    listener = w.event_emitted if w is not None else (lambda e: None)
    interval = 0.005
    lateness: list[float] = []
    last = [None]

    def tick():
        now = time.perf_counter()
        if last[0] is not None:
            lateness.append(now - last[0] - interval)
        last[0] = now

    per_chunk = max(1, int(rate * 0.01))
    it = iter(events)
    fed = [0]
    put_max = [0.0]

    def feed():
        t0 = time.perf_counter()
        for _ in range(per_chunk):
            e = next(it, None)
            if e is None:
                return
            listener(e)
            fed[0] += 1
        put_max[0] = max(put_max[0], time.perf_counter() - t0)

    ticker = task.LoopingCall(tick)
    feeder = task.LoopingCall(feed)

    def start():
        ticker.start(interval)
        feeder.start(0.01)
        reactor.callLater(seconds, finish)

    def finish():
        feeder.stop()
        ticker.stop()
        reactor.crash()  # not stop(): the same reactor runs again for the next measurement

    reactor.callWhenRunning(start)
    reactor.run(installSignalHandlers=False)
    written_during = None
    if w is not None:
        written_during = w.items_written
        assert w.wait_written(120)
        w.stop()
    lateness.sort()
    n = len(lateness)
    return {
        "fed_events": fed[0],
        "written_while_running": written_during,
        "ticks": n,
        "max_stall_ms": round(lateness[-1] * 1000, 3) if n else None,
        "p99_stall_ms": round(lateness[int(n * 0.99)] * 1000, 3) if n else None,
        "max_feed_chunk_ms": round(put_max[0] * 1000, 3),
        "events_per_chunk": per_chunk,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=3000)
    p.add_argument("--rate", type=float, default=1000.0,
                   help="events per second fed to the writer in the stall test (a busy hotline makes ~50)")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--no-postgres", action="store_true")
    args = p.parse_args()

    print(f"recording events of {args.calls} calls from a real Engine ...", flush=True)
    events = record_events(args.calls)
    print(f"  {len(events)} events", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="records-bench-"))
    result: dict = {"events": len(events), "goal_stall_ms": GOAL_STALL_MS, "cpus": os.cpu_count(),
                    "loadavg_1m_at_start": round(os.getloadavg()[0], 2)}
    pg = None
    try:
        sqlite_url = f"sqlite:///{tmp / 'bench.sqlite3'}"
        result["sqlite"] = throughput(sqlite_url, events, tmp / "s1")
        print(f"SQLite     : {result['sqlite']['events_per_s']:>8} events/s written "
              f"({result['sqlite']['rows_per_s']} rows/s, {result['sqlite']['batches']} batches; "
              f"{result['sqlite']['events_per_cpu_s']} events per CPU-second of the writer thread)", flush=True)
        if not args.no_postgres:
            spec = importlib.util.spec_from_file_location("pgserver", ROOT / "tests" / "support" / "pgserver.py")
            pgserver = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(pgserver)
            try:
                pg = pgserver.PostgresServer().start()
                pg_url = pg.create_database("bench")
                result["postgresql"] = throughput(pg_url, events, tmp / "s2")
                print(f"PostgreSQL : {result['postgresql']['events_per_s']:>8} events/s written "
                      f"({result['postgresql']['rows_per_s']} rows/s; "
                      f"{result['postgresql']['events_per_cpu_s']} events per CPU-second)", flush=True)
            except pgserver.PostgresUnavailable as exc:
                print(f"PostgreSQL : skipped ({str(exc).splitlines()[0]})")
                result["postgresql"] = None

        # separate databases for the stall runs: the throughput runs already wrote these call ids
        stall_url = f"sqlite:///{tmp / 'stall.sqlite3'}"
        migrate(stall_url)
        base = stall(None, events, args.rate, args.seconds, tmp / "s3")
        with_writer = stall(stall_url, events, args.rate, args.seconds, tmp / "s4")
        result["stall_baseline"] = base
        result["stall_sqlite"] = with_writer
        if pg is not None and result.get("postgresql"):
            url = pg.create_database("stall")
            migrate(url)
            result["stall_postgresql"] = stall(url, events, args.rate, args.seconds, tmp / "s5")
        print(f"reactor stall, 5 ms LoopingCall, feeding {args.rate:.0f} events/s for {args.seconds:.0f} s:")
        for name in ("stall_baseline", "stall_sqlite", "stall_postgresql"):
            r = result.get(name)
            if r:
                print(f"  {name:<17}: max {r['max_stall_ms']} ms, p99 {r['p99_stall_ms']} ms "
                      f"({r['ticks']} ticks, {r['fed_events']} events fed)")
        worst = max(result[k]["max_stall_ms"] for k in ("stall_sqlite", "stall_postgresql") if result.get(k))
        result["max_stall_ms"] = worst
        result["stall_goal_met"] = worst < GOAL_STALL_MS
        result["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
        print(f"load average {result['loadavg_1m_at_start']} -> {result['loadavg_1m_at_end']} on {os.cpu_count()} CPUs "
              "(other processes compete for the CPU: compare with stall_baseline)")
        print(f"longest stall while writing: {worst} ms (goal < {GOAL_STALL_MS} ms): "
              f"{'met' if worst < GOAL_STALL_MS else 'NOT met'}")
    finally:
        if pg is not None:
            pg.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
