"""Publish-to-seat latency: how long until every logged-in seat hears of a published article.

Two processes on this machine, as in benchmarks/seats.py:

* the ACD side (this file with ``--serve``): the real engine and seat server
  (autobahn over TLS on 127.0.0.1), accounts in memory with cheap argon2id, and
  the knowledge-base watcher (callcenter/kb/watcher.py, 0.25 s poll in the
  reactor's thread pool) over a real SQLite records database;
* the seat side (the parent): N real ``SeatClient`` sessions (TLS + WebSocket each).

Once every seat is logged in, the parent publishes ``--publishes`` articles one
second apart through ``KbStore.publish`` (a separate connection to the same SQLite
file, as ``callcenter kb publish`` would) and records, for each seat, the time
its ``kb_updated`` arrived minus the time the publish began (same host clock).
Figures: p50/p99/max over every (seat, publish) pair, and how many never
arrived.  The seat side shares the 2 cores (5,000 TLS sessions decoding the
same message at once): an upper bound for the server.  The server's own part is
reported too: from the version row's save time to the last ``sendMessage`` of
the fan-out (``server_saved_to_sent_ms``), and the fan-out alone.
Goal: p99 < 1 s.

    .venv/bin/python benchmarks/kb_push.py [--sessions 5000] [--publishes 10]

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_P99_S = 1.0


def pct(values: list[float], p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else float("nan")


def serve(args) -> None:
    from argon2 import PasswordHasher
    from twisted.internet import reactor, threads

    from callcenter.config import parse_config
    from callcenter.engine import Engine
    from callcenter.kb.store import KbStore
    from callcenter.kb.watcher import KbWatcher
    from callcenter.records.db import make_engine
    from callcenter.seats import schema
    from callcenter.seats.backends import DbKnowledgeBase, StaticAccounts
    from callcenter.seats.server import SeatServer
    from callcenter.seats.session import SeatLimits
    from callcenter.tls_certs import dev_certificate, server_context_factory

    config = parse_config({
        "categories": [{"name": "other"}],
        "pools": [{"name": "own", "kind": "own", "tier": 0}],
        "queues": [{"name": "hotline", "pools": ["own"]}],
    }, env={})
    engine = Engine(config, reactor)
    accounts = StaticAccounts(PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    shared_hash = accounts.hasher.hash("bench-pass")
    for i in range(args.sessions):
        accounts.add(f"b{i}", None, "own", password_hash=shared_hash)
    server = SeatServer(engine, reactor=reactor, accounts=accounts, kb=DbKnowledgeBase(args.db),
                        limits=SeatLimits(login_failures_per_address=10**9, heartbeat_s=60.0))
    store = KbStore(make_engine(args.db))
    from datetime import UTC, datetime

    def notify(u: dict) -> None:
        """Fan out, then report the server's part: saved (the version row's time) to the last send."""
        t0 = time.perf_counter()
        saved = datetime.fromisoformat(u["at"]).replace(tzinfo=UTC).timestamp()
        server.kb_changed(schema.KbUpdated(**u)).addCallback(lambda n: print(json.dumps({
            "article_id": u["article_id"], "sent": n, "fanout_ms": (time.perf_counter() - t0) * 1000,
            "saved_to_sent_ms": (time.time() - saved) * 1000}), flush=True))

    watcher = KbWatcher(store, notify, clock=reactor,
                        run_blocking=lambda fn, *a: threads.deferToThreadPool(reactor, reactor.getThreadPool(), fn, *a))
    watcher.start()
    files = dev_certificate(Path(args.tls_dir))
    port = reactor.listenSSL(0, server.factory("wss://127.0.0.1/seat"), server_context_factory(files.cert, files.key),
                             interface="127.0.0.1", backlog=4096)
    print(json.dumps({"port": port.getHost().port}), flush=True)
    reactor.run()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=5000)
    ap.add_argument("--publishes", type=int, default=10)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tls-dir", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args)
        return

    from twisted.internet import defer, reactor, task, threads

    from callcenter.kb.store import KbStore
    from callcenter.records.db import make_engine, migrate
    from seat_agent.client import SeatClient

    tmp = Path(tempfile.mkdtemp(prefix="bench-kb-push-"))
    db = f"sqlite:///{tmp / 'records.sqlite3'}"
    migrate(db)
    kb = KbStore(make_engine(db))
    drafts = [kb.create({"title": f"政策更新 {i}", "body": f"第{i}条政策说明。", "org": "西安市12345"}, "bench",
                        trusted=True)["id"] for i in range(args.publishes)]
    proc = subprocess.Popen([sys.executable, __file__, "--serve", "--sessions", str(args.sessions),
                             "--tls-dir", str(tmp / "tls"), "--db", db], stdout=subprocess.PIPE,
                            cwd=str(ROOT), text=True, bufsize=1)
    result: dict = {}
    try:
        port = json.loads(proc.stdout.readline())["port"]
        url = f"wss://127.0.0.1:{port}/seat"
        cafile = str(tmp / "tls" / "dev-cert.pem")
        received: dict[int, list[float]] = {aid: [] for aid in drafts}
        seats = []
        for i in range(args.sessions):
            c = SeatClient(url, f"b{i}", "bench-pass", reactor=reactor, cafile=cafile, initial_delay=1.0,
                           max_delay=5.0, ping_interval=60.0)
            c.add_listener(lambda kind, msg: kind == "kb_updated" and msg.article_id in received
                           and received[msg.article_id].append(time.time()))
            seats.append(c)
        print(f"kb push benchmark: {args.sessions} seats against {url} (ACD pid {proc.pid})")

        @defer.inlineCallbacks
        def run():
            t0, deadline = time.time(), time.time() + 900
            for i in range(0, len(seats), 100):  # ramp in batches, as benchmarks/seats.py does
                for c in seats[i:i + 100]:
                    c.start()
                while sum(c.logged_in for c in seats[:i + 100]) < len(seats[:i + 100]):
                    if time.time() > deadline:
                        raise RuntimeError(f"only {sum(c.logged_in for c in seats)} seats logged in")
                    yield task.deferLater(reactor, 0.05, lambda: None)
            print(f"  {len(seats)} seats logged in after {time.time() - t0:.1f} s")
            yield task.deferLater(reactor, 1.0, lambda: None)  # the watcher's first poll
            started = {}
            for aid in drafts:
                started[aid] = time.time()
                yield threads.deferToThread(kb.publish, aid, "bench", "benchmark", trusted=True)
                yield task.deferLater(reactor, 1.0, lambda: None)
            yield task.deferLater(reactor, 3.0, lambda: None)  # stragglers
            lat = [t - started[aid] for aid in drafts for t in received[aid]]
            missing = len(seats) * len(drafts) - len(lat)
            result.update({
                "sessions": len(seats), "publishes": len(drafts), "deliveries": len(lat), "missing": missing,
                "latency_p50_ms": round(pct(lat, 50) * 1000, 1), "latency_p99_ms": round(pct(lat, 99) * 1000, 1),
                "latency_max_ms": round(max(lat) * 1000, 1) if lat else None,
                "watcher_poll_s": 0.25, "goal_p99_ms": GOAL_P99_S * 1000,
                "ok": missing == 0 and pct(lat, 99) < GOAL_P99_S,
                "load_average_1m": round(os.getloadavg()[0], 1),
            })

        def done(outcome):
            if hasattr(outcome, "getErrorMessage"):
                result["error"] = outcome.getErrorMessage()
            for c in seats:
                c._service and c._service.stopService()
            reactor.callLater(0.5, reactor.stop)

        reactor.callWhenRunning(lambda: run().addBoth(done))
        reactor.run()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        server_side = [json.loads(line) for line in proc.stdout.read().splitlines() if line.startswith("{")]
        if server_side and "error" not in result:
            result["server_fanout_ms_max"] = round(max(x["fanout_ms"] for x in server_side), 1)
            result["server_saved_to_sent_ms_max"] = round(max(x["saved_to_sent_ms"] for x in server_side), 1)
            result["server_saved_to_sent_ms_p50"] = round(pct([x["saved_to_sent_ms"] for x in server_side], 50), 1)
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    if "error" not in result:
        print(f"  {result['publishes']} publishes: {result['deliveries']} deliveries, {result['missing']} missing;"
              f" publish-to-seat p50 {result['latency_p50_ms']} ms, p99 {result['latency_p99_ms']} ms,"
              f" max {result['latency_max_ms']} ms (goal p99 < {GOAL_P99_S * 1000:.0f} ms)")
    else:
        print(f"  FAILED: {result['error']}")
    print(json.dumps({"benchmark": "kb_push", **result}))
    sys.exit(1 if "error" in result else 0)


if __name__ == "__main__":
    main()
