"""Seat server at scale: N concurrent seat sessions on one ACD process.

Two processes on this machine:

* the ACD side (this file with ``--serve``): the real engine and the real seat
  server (autobahn over TLS on 127.0.0.1) with demo call control, accounts in
  memory (real argon2id with very cheap parameters, so 5,000 logins do not
  measure argon2: with the default parameters one check costs ~1 s of CPU here), and a steady synthetic call load fed straight into the
  engine (no FastAGI: this measures the seat path);
* the seat side (the parent): N ``seat_agent`` robots (SeatClient, real TLS
  and WebSocket each) that accept every offer and hang up after a log-normal
  talk time.

Figures: server RSS per logged-in session (RSS after the ramp minus before,
divided by N), and offer-to-seat latency (the robot's receive time minus the
engine's ``offered_at``, same host clock) p50/p99 during the measuring
window. The seat side shares the 2 cores, so latency includes its own
scheduling delay: an upper bound for the server.

    .venv/bin/python benchmarks/seats.py [--sessions 5000] [--rate 40] [--measure 30]

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


# --------------------------------------------------------------------------- ACD side
def serve(args) -> None:
    from argon2 import PasswordHasher
    from twisted.internet import reactor, stdio, task
    from twisted.protocols.basic import LineReceiver

    from callcenter.config import parse_config
    from callcenter.engine import Engine
    from callcenter.seats.backends import StaticAccounts
    from callcenter.seats.server import SeatServer
    from callcenter.seats.session import SeatLimits
    from callcenter.tls_certs import dev_certificate, server_context_factory

    config = parse_config({
        "acd": {"max_calls": 100_000, "max_setups_per_s": 10_000},
        "categories": [{"name": "other"}, {"name": "medical", "priority": 5}],
        "pools": [{"name": "own", "kind": "own", "tier": 0, "wrapup_s": 5, "ring_timeout_s": 30}],
        "queues": [{"name": "hotline", "pools": ["own"], "max_wait_s": 900}],
    }, env={})
    engine = Engine(config, reactor)
    accounts = StaticAccounts(PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    shared_hash = accounts.hasher.hash("bench-pass")
    for i in range(args.sessions):
        accounts.add(f"b{i}", None, "own", password_hash=shared_hash)
    server = SeatServer(engine, reactor=reactor, accounts=accounts, demo_call_control=True,
                        limits=SeatLimits(login_failures_per_address=10**9, heartbeat_s=args.ping_s))
    files = dev_certificate(Path(args.tls_dir))
    port = reactor.listenSSL(0, server.factory("wss://127.0.0.1/seat"), server_context_factory(files.cert, files.key),
                             interface="127.0.0.1", backlog=4096)
    rng = random.Random(1)
    counter = {"calls": 0}

    def one_call():
        counter["calls"] += 1
        engine.call_arrived(f"k{counter['calls']}", "hotline", caller_masked="138****5678",
                            category=rng.choice(["other", "medical"]))

    load = task.LoopingCall(one_call)
    load.clock = reactor

    class Control(LineReceiver):
        delimiter = b"\n"

        def lineReceived(self, line):
            cmd, *rest = line.decode().split()
            if cmd == "load":
                if args.gc_freeze:
                    import gc

                    gc.freeze()  # the sessions built so far are long-lived: keep them out of GC passes
                load.start(1.0 / float(rest[0]), now=False)
                self.sendLine(b"ok")
            elif cmd == "stats":
                    self.sendLine(json.dumps({"sessions": server.session_count, "calls": counter["calls"],
                                          **server.counts}).encode())
            elif cmd == "quit":
                if load.running:
                    load.stop()
                reactor.stop()

    stdio.StandardIO(Control())
    print(json.dumps({"port": port.getHost().port}), flush=True)
    reactor.run()


# --------------------------------------------------------------------------- seat side
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=40.0, help="calls per second during the measuring window")
    ap.add_argument("--talk-mean", type=float, default=20.0)
    ap.add_argument("--measure", type=float, default=30.0, help="seconds of steady load measured")
    ap.add_argument("--gc-freeze", action="store_true",
                    help="gc.freeze() in both processes once the sessions are up (compare GC pauses)")
    ap.add_argument("--ping-s", type=float, default=15.0,
                    help="WebSocket ping interval of the server (the product default is 15 s)")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tls-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        if os.environ.get("BENCH_PROFILE"):
            import cProfile

            cProfile.runctx("serve(args)", globals(), {"serve": serve, "args": args}, os.environ["BENCH_PROFILE"])
        else:
            serve(args)
        return

    from twisted.internet import defer, reactor, task, threads

    from seat_agent.client import SeatClient
    from seat_agent.robot import Behaviour, Robot

    tmp = Path(tempfile.mkdtemp(prefix="bench-seats-"))
    tls_dir = tmp / "tls"
    proc = subprocess.Popen([sys.executable, __file__, "--serve", "--sessions", str(args.sessions),
                             "--tls-dir", str(tls_dir), "--ping-s", str(args.ping_s)]
                            + (["--gc-freeze"] if args.gc_freeze else []), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            cwd=str(ROOT), text=True, bufsize=1)
    result: dict = {}
    try:
        port = json.loads(proc.stdout.readline())["port"]
        time.sleep(0.5)  # let the ACD settle before the baseline (not a test wait: a measurement)
        rss_before = rss_kib(proc.pid)
        url = f"wss://127.0.0.1:{port}/seat"
        cafile = str(tls_dir / "dev-cert.pem")
        master = random.Random(7)
        behaviour = Behaviour(think_s=(0.0, 0.0), talk_mean_s=args.talk_mean, wrapup_s=(0.5, 1.5), kb_share=0.0)
        robots = []
        for i in range(args.sessions):
            rng = random.Random(master.random())
            c = SeatClient(url, f"b{i}", "bench-pass", reactor=reactor, cafile=cafile, rng=rng,
                           initial_delay=1.0, max_delay=5.0, ping_interval=60.0)
            robots.append(Robot(c, rng=rng, clock=reactor, behaviour=behaviour, record_latency=True))
        print(f"seat benchmark: {args.sessions} sessions against {url} (ACD pid {proc.pid})")
        t0 = time.time()

        @defer.inlineCallbacks
        def run():
            # ramp up in batches of 100 seats, each batch once the one before is in
            # (as fast as the ACD admits them; a stampede would only measure timeouts)
            deadline = time.time() + 600
            for i in range(0, len(robots), 100):
                for r in robots[i:i + 100]:
                    r.seat.start()
                while sum(r.seat.logged_in for r in robots[:i + 100]) < len(robots[:i + 100]):
                    if time.time() > deadline:
                        raise RuntimeError(f"only {sum(r.seat.logged_in for r in robots)} sessions logged in")
                    yield task.deferLater(reactor, 0.05, lambda: None)
            ramp_s = time.time() - t0
            yield task.deferLater(reactor, 2.0, lambda: None)
            rss_after = rss_kib(proc.pid)
            print(f"  {len(robots)} sessions logged in after {ramp_s:.1f} s; ACD RSS {rss_before / 1024:.0f} MiB -> "
                  f"{rss_after / 1024:.0f} MiB")
            for r in robots:
                r.stats.latencies_s.clear()
            if args.gc_freeze:
                import gc

                gc.freeze()
            proc.stdin.write(f"load {args.rate}\n")
            proc.stdin.flush()
            warm = 5.0
            yield task.deferLater(reactor, warm, lambda: None)
            for r in robots:
                r.stats.latencies_s.clear()
            offers0 = sum(r.stats.offers for r in robots)
            yield task.deferLater(reactor, args.measure, lambda: None)
            proc.stdin.write("stats\n")
            proc.stdin.flush()
            line = "ok"
            while not line.startswith("{"):  # skip the "ok" of the load command
                line = yield threads.deferToThread(proc.stdout.readline)
                if not line:
                    raise RuntimeError("the ACD process ended early")
            server_stats = json.loads(line)
            lat = [x for r in robots for x in r.stats.latencies_s]
            offers = sum(r.stats.offers for r in robots) - offers0
            answered = sum(r.stats.answered for r in robots)
            online = sum(r.seat.logged_in for r in robots)
            result.update({
                "sessions": len(robots),
                "sessions_online_at_end": online,
                "ramp_s": round(ramp_s, 1),
                "rss_before_mib": round(rss_before / 1024, 1),
                "rss_after_mib": round(rss_after / 1024, 1),
                "memory_per_session_kib": round((rss_after - rss_before) / len(robots), 1),
                "call_rate_per_s": args.rate,
                "gc_freeze": args.gc_freeze,
                "server_ping_s": args.ping_s,
                "server_connections_opened": server_stats.get("connections"),
                "server_pings": server_stats.get("pings"),
                "server_silent_drops": server_stats.get("silent_drops"),
                "measure_s": args.measure,
                "offers_measured": offers,
                "calls_answered": answered,
                "offer_latency_p50_ms": round(pct(lat, 50) * 1000, 2),
                "offer_latency_p99_ms": round(pct(lat, 99) * 1000, 2),
                "offer_latency_max_ms": round(max(lat) * 1000, 2) if lat else None,
                "offer_latency_mean_ms": round(statistics.fmean(lat) * 1000, 2) if lat else None,
            })
            for r in robots:
                r.stop()

        def done(outcome):
            if isinstance(outcome, Exception) or hasattr(outcome, "getErrorMessage"):
                result["error"] = str(getattr(outcome, "getErrorMessage", lambda: outcome)())
            for r in robots:
                r.seat._service and r.seat._service.stopService()
            reactor.callLater(0.5, reactor.stop)

        reactor.callWhenRunning(lambda: run().addBoth(done))
        reactor.run()
    finally:
        try:
            proc.stdin.write("quit\n")
            proc.stdin.flush()
            proc.wait(timeout=10)
        except Exception:
            proc.kill()
            proc.wait()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    if "error" not in result:
        print(f"  memory per session: {result['memory_per_session_kib']} KiB (ACD RSS delta / sessions)")
        print(f"  steady load {args.rate} calls/s for {args.measure:.0f} s: {result['offers_measured']} offers; "
              f"offer-to-seat latency p50 {result['offer_latency_p50_ms']} ms, "
              f"p99 {result['offer_latency_p99_ms']} ms, max {result['offer_latency_max_ms']} ms")
    else:
        print(f"  FAILED: {result['error']}")
    print(json.dumps({"benchmark": "seats", **result}))
    sys.exit(1 if "error" in result else 0)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
