"""A login burst: N seats log in within a minute; does the ACD's reactor keep up?

Two processes on this machine:

* the ACD side (this file with ``--serve``): the real engine and seat server
  (autobahn over TLS on 127.0.0.1), accounts in memory with the production
  argon2id parameters (callcenter.records.accounts.PASSWORD_HASHER; one shared
  hash, which costs exactly as much to verify as N different ones), password
  checks on their own pool (callcenter/seats/passwords.py), and a real failover
  lease (LeaseKeeper, ttl 3 s, on an embedded Redis) whose lapses are counted.
  A 10 ms LoopingCall measures how late the reactor runs it: the longest
  stall.
* the seat side (the parent): N ``seat_agent`` clients (real TLS and
  WebSocket each), started evenly over ``--over`` seconds.

``--legacy`` runs the same burst the way it was before issue 16: argon2-cffi's
default parameters (64 MiB, t=3, p=4) checked on the reactor's shared thread
pool.

    .venv/bin/python benchmarks/logins.py [--agents 1000] [--over 30] [--legacy]

Figures: login rate (logins / seconds from the first start to the last
login_ok), login latency p50/p99/max, the reactor's longest stall and p99
stall, lease lapses.  Last line: one JSON object.
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

PASSWORD = "bench-login-pass"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


# --------------------------------------------------------------------------- ACD side
def serve(args) -> None:
    import redis
    from argon2 import PasswordHasher
    from twisted.internet import reactor, stdio, task, threads
    from twisted.protocols.basic import LineReceiver

    from callcenter.config import parse_config
    from callcenter.engine import Engine
    from callcenter.records.accounts import PASSWORD_HASHER
    from callcenter.seats.backends import StaticAccounts
    from callcenter.seats.server import SeatServer
    from callcenter.seats.session import SeatLimits
    from callcenter.state.lease import LeaseKeeper
    from callcenter.state.runner import ThreadRunner
    from callcenter.tls_certs import dev_certificate, server_context_factory

    config = parse_config({
        "categories": [{"name": "other"}],
        "pools": [{"name": "own", "kind": "own", "tier": 0, "wrapup_s": 5, "ring_timeout_s": 30}],
        "queues": [{"name": "hotline", "pools": ["own"]}],
    }, env={})
    engine = Engine(config, reactor)
    hasher = PasswordHasher() if args.legacy else PASSWORD_HASHER
    accounts = StaticAccounts(hasher)
    shared_hash = hasher.hash(PASSWORD)
    for i in range(args.agents):
        accounts.add(f"L{i}", None, "own", password_hash=shared_hash)
    checks = None
    if args.legacy:  # before issue 16: argon2 on the reactor's shared pool
        checks = lambda fn, *a: threads.deferToThreadPool(reactor, reactor.getThreadPool(), fn, *a)  # noqa: E731
    server = SeatServer(engine, reactor=reactor, accounts=accounts, password_checks=checks,
                        limits=SeatLimits(login_failures_per_address=10**9))
    files = dev_certificate(Path(args.tls_dir))
    port = reactor.listenSSL(0, server.factory("wss://127.0.0.1/seat"), server_context_factory(files.cert, files.key),
                             interface="127.0.0.1", backlog=4096)

    lease_events = {"acquired": 0, "reclaimed": 0, "lost": 0, "redis_errors": 0}
    runner = ThreadRunner(reactor, "lease")
    runner.start()
    client = redis.Redis.from_url(args.redis_url, socket_timeout=2.0)
    lease = LeaseKeeper(
        reactor, runner, client, "bench-acd", ttl_s=3.0, quiet_s=0,
        on_acquired=lambda token: lease_events.__setitem__("acquired", lease_events["acquired"] + 1),
        on_reclaimed=lambda lost: lease_events.__setitem__("reclaimed", lease_events["reclaimed"] + 1),
        on_lost=lambda reason: lease_events.__setitem__("lost", lease_events["lost"] + 1),
        on_redis=lambda ok: ok or lease_events.__setitem__("redis_errors", lease_events["redis_errors"] + 1),
    )
    lease.start()

    tick_s = 0.010
    stalls: list[float] = []
    last = [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        stalls.append(max(0.0, now - last[0] - tick_s))
        last[0] = now

    probe = task.LoopingCall(tick)

    class Control(LineReceiver):
        delimiter = b"\n"

        def lineReceived(self, line):
            cmd = line.decode().strip()
            if cmd == "measure":
                stalls.clear()
                last[0] = time.perf_counter()
                if not probe.running:
                    probe.start(tick_s, now=False)
                self.sendLine(b"ok")
            elif cmd == "stats":
                self.sendLine(json.dumps({
                    "sessions": server.session_count, "stall_max_ms": round(max(stalls, default=0) * 1000, 1),
                    "stall_p99_ms": round(pct(stalls, 99) * 1000, 1), "stall_samples": len(stalls),
                    "lease_active": lease.is_active, **{f"lease_{k}": v for k, v in lease_events.items()},
                    "password_checks_refused": getattr(server.password_checks, "refused", None),
                    "password_check_threads": getattr(server.password_checks, "threads", None),
                    "acd_cpu_s": round(sum(os.times()[:2]), 2),
                }).encode())
            elif cmd == "quit":
                if probe.running:
                    probe.stop()
                lease.stop().addBoth(lambda _: (runner.stop(), reactor.stop()))

    stdio.StandardIO(Control())
    print(json.dumps({"port": port.getHost().port}), flush=True)
    reactor.run()


# --------------------------------------------------------------------------- seat side
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--over", type=float, default=30.0, help="seconds over which the seats start")
    ap.add_argument("--legacy", action="store_true", help="the pre-issue-16 way (default argon2, shared pool)")
    ap.add_argument("--deadline", type=float, default=300.0, help="seconds after the first start to give up")
    ap.add_argument("--baseline", type=float, default=10.0, help="seconds of stall probing with no logins first")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tls-dir", help=argparse.SUPPRESS)
    ap.add_argument("--redis-url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args)
        return

    from twisted.internet import defer, reactor, task, threads

    from callcenter.redis_server import EmbeddedRedis
    from seat_agent.client import SeatClient

    tmp = Path(tempfile.mkdtemp(prefix="bench-logins-"))
    redis_server = EmbeddedRedis(tmp / "redis").start()
    tls_dir = tmp / "tls"
    proc = subprocess.Popen([sys.executable, __file__, "--serve", "--agents", str(args.agents), "--tls-dir",
                             str(tls_dir), "--redis-url", redis_server.url] + (["--legacy"] if args.legacy else []),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=str(ROOT), text=True, bufsize=1)
    result: dict = {"agents": args.agents, "over_s": args.over, "legacy": args.legacy}
    try:
        port = json.loads(proc.stdout.readline())["port"]
        url = f"wss://127.0.0.1:{port}/seat"
        cafile = str(tls_dir / "dev-cert.pem")
        seats = [SeatClient(url, f"L{i}", PASSWORD, reactor=reactor, cafile=cafile, initial_delay=1.0, max_delay=5.0,
                            ping_interval=60.0) for i in range(args.agents)]
        started: dict[int, float] = {}
        logged: dict[int, float] = {}
        for i, c in enumerate(seats):
            c.add_listener(lambda kind, msg, i=i: kind == "login_ok" and logged.setdefault(i, time.perf_counter()))
        print(f"login benchmark: {args.agents} seats over {args.over:g} s against {url} "
              f"({'legacy' if args.legacy else 'OWASP argon2id, own pool'}; ACD pid {proc.pid})")

        def command(cmd: str):
            proc.stdin.write(cmd + "\n")
            proc.stdin.flush()
            return threads.deferToThread(proc.stdout.readline)

        @defer.inlineCallbacks
        def run():
            yield task.deferLater(reactor, 4.0, lambda: None)  # the lease is acquired (quiet_s=0) and renewed
            # baseline: the same probe with no logins (what the machine's other load costs the reactor)
            yield command("measure")
            yield task.deferLater(reactor, args.baseline, lambda: None)
            idle = json.loads((yield command("stats")))
            result.update({"idle_stall_max_ms": idle["stall_max_ms"], "idle_stall_p99_ms": idle["stall_p99_ms"]})
            yield command("measure")
            t0 = time.perf_counter()
            gap = args.over / max(1, args.agents)
            for i, c in enumerate(seats):
                delay = t0 + i * gap - time.perf_counter()
                if delay > 0:
                    yield task.deferLater(reactor, delay, lambda: None)
                started[i] = time.perf_counter()
                c.start()
            deadline = time.perf_counter() + args.deadline
            while len(logged) < len(seats):
                if time.perf_counter() > deadline:  # report what happened anyway, then fail
                    result["error"] = f"only {len(logged)} of {len(seats)} seats logged in after {args.deadline:g} s"
                    break
                yield task.deferLater(reactor, 0.05, lambda: None)
            span = (max(logged.values()) if logged else time.perf_counter()) - t0
            lat = [logged[i] - started[i] for i in logged]
            stats = json.loads((yield command("stats")))
            result.update({
                "logged_in": len(logged),
                "burst_s": round(span, 2),
                "login_rate_per_s": round(len(logged) / span, 1),
                "login_latency_p50_ms": round(pct(lat, 50) * 1000, 1),
                "login_latency_p99_ms": round(pct(lat, 99) * 1000, 1),
                "login_latency_max_ms": round(max(lat, default=float("nan")) * 1000, 1),
                "server_sessions": stats["sessions"],
                "reactor_stall_max_ms": stats["stall_max_ms"],
                "reactor_stall_p99_ms": stats["stall_p99_ms"],
                "stall_samples": stats["stall_samples"],
                "lease_active_at_end": stats["lease_active"],
                "lease_lapses": stats["lease_reclaimed"] + stats["lease_lost"],
                "lease_redis_errors": stats["lease_redis_errors"],
                "password_checks_refused_busy": stats["password_checks_refused"],
                "password_check_threads": stats["password_check_threads"],
                "acd_cpu_s": stats["acd_cpu_s"],
                "load_average_1m": round(os.getloadavg()[0], 2),
                "cpus": os.cpu_count(),
            })
            for c in seats:
                c.stop()

        def done(outcome):
            if hasattr(outcome, "getErrorMessage"):
                result["error"] = outcome.getErrorMessage()
            reactor.callLater(0.5, reactor.stop)

        reactor.callWhenRunning(lambda: run().addBoth(done))
        reactor.run()
    finally:
        try:
            proc.stdin.write("quit\n")
            proc.stdin.flush()
            proc.wait(timeout=15)
        except Exception:
            proc.kill()
            proc.wait()
        redis_server.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    if "logged_in" in result:
        print(f"  {result['logged_in']} logins in {result['burst_s']} s: {result['login_rate_per_s']}/s; "
              f"login latency p50 {result['login_latency_p50_ms']} ms, p99 {result['login_latency_p99_ms']} ms")
        print(f"  reactor: longest stall {result['reactor_stall_max_ms']} ms, p99 {result['reactor_stall_p99_ms']} ms; "
              f"lease lapses {result['lease_lapses']}, active at end {result['lease_active_at_end']}")
        print(f"  idle baseline (no logins, same machine load): longest stall {result['idle_stall_max_ms']} ms, "
              f"p99 {result['idle_stall_p99_ms']} ms; load average {result['load_average_1m']} on {result['cpus']} CPUs")
    if "error" in result:
        print(f"  FAILED: {result['error']}")
    print(json.dumps({"benchmark": "logins", **result}))
    sys.exit(1 if "error" in result else 0)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
