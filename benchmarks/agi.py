"""Call-control benchmark: classic script cost, FastAGI set-up rate, overload behaviour.

Run: ``.venv/bin/python benchmarks/agi.py [--quick]``.  The ACD (real Engine +
real FastAGI server) runs in a child process pinned to one core; Asterisk's
side (callcenter.testing.agi_peer, answering at once) runs in this process on
the other core, over loopback.  "Everything the ACD does per call" is counted:
env parsing, admission, call_arrived, ANSWER + CDR variables, music on hold,
the hold loop, the caller's hang-up, the outcome.

1. classic pyst2 script: per-call CPU time (user+sys of the process) and time
   to enqueue (fork to CallQueued) against a live ACD, N sequential calls.
2. FastAGI: 1,000 callers held at once; set-ups per second while ramping up.
3. Overload: offered rates past capacity; per rate the share shed, the p95
   set-up time; the knee; then the load drops and we time the recovery.
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SECRET = "bench-secret"


def bench_config(max_setups_per_s: float, max_calls: int = 20000):
    from callcenter.config import parse_config

    return parse_config({
        "acd": {"agi_secret": SECRET, "max_calls": max_calls, "max_setups_per_s": max_setups_per_s,
                "listen": {"host": "127.0.0.1", "fastagi_port": 0}},
        "categories": [{"name": "other"}],
        "pools": [{"name": "own", "kind": "own", "tier": 0}],
        "queues": [{"name": "hotline-12345", "pools": ["own"], "announce_every_s": 30, "max_wait_s": 3600}],
    }, env={})


def acd_process(conn, max_setups_per_s: float, core: int | None):
    """The ACD under test: engine + FastAGI server on the real reactor, on one core."""
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
    from twisted.internet import reactor

    from callcenter.engine import Engine
    from callcenter.fastagi.service import FastAgiSubsystem

    cfg = bench_config(max_setups_per_s)

    class A:
        config = cfg
        engine = Engine(cfg, reactor)
        records = None
    A.reactor = reactor
    queued = {}
    A.engine.subscribe(lambda ev: queued.__setitem__(ev.call_id, time.time()) if ev.kind == "CallQueued" else None)
    sub = FastAgiSubsystem(A, relay_port=0)
    sub.start()

    def poll():
        while conn.poll():
            msg = conn.recv()
            if msg == "stop":
                reactor.stop()
                return
            if msg == "cpu":
                ru = resource.getrusage(resource.RUSAGE_SELF)
                conn.send((ru.ru_utime + ru.ru_stime, sub.control.admission.admitted, sub.control.admission.shed,
                           len(sub.control.sessions)))
            elif msg == "queued":
                conn.send(dict(queued))
                queued.clear()
        reactor.callLater(0.01, poll)
    conn.send((sub.port, sub.relay_port))
    reactor.callLater(0.01, poll)
    reactor.run()


class Acd:
    def __init__(self, max_setups_per_s: float):
        self.conn, child = mp.Pipe()
        ncpu = os.cpu_count() or 1
        self.proc = mp.get_context("fork").Process(target=acd_process,
                                                   args=(child, max_setups_per_s, 0 if ncpu > 1 else None))
        self.proc.start()
        self.port, self.relay_port = self.conn.recv()
        if ncpu > 1 and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(range(1, ncpu)))

    def ask(self, what):
        self.conn.send(what)
        return self.conn.recv()

    def stop(self):
        self.conn.send("stop")
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()


def classic_bench(acd: Acd, n: int) -> dict:
    """Fork the real pyst2 script n times (sequentially) the way Asterisk does."""
    import subprocess

    from callcenter.testing.agi_peer import env_bytes, environment

    script = str(REPO / "agi_scripts" / "hotline_inbound.py")
    cpu, enqueue = [], []
    for i in range(n):
        uid = f"1795000000.{i}"
        args = [f"127.0.0.1:{acd.relay_port}", "hotline?queue=hotline-12345"]
        env = env_bytes(environment(request=script, uniqueid=uid, args=tuple(args)))
        t0 = time.time()
        p = subprocess.Popen([sys.executable, script, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, env=dict(os.environ, CALLCENTER_AGI_SECRET=SECRET))
        p.stdin.write(env)
        p.stdin.flush()
        # answer until the first WAIT FOR DIGIT, then hang up the caller (SIGHUP) and let it finish
        buf = b""
        dead = False
        while True:
            line = p.stdout.readline()
            if not line:
                break
            cmd = line.decode().rstrip("\n")
            if cmd.startswith("WAIT FOR DIGIT") and not dead:
                p.stdin.write(b"200 result=-1\n")
                p.stdin.flush()
                p.send_signal(1)
                dead = True
                continue
            if dead and cmd.split(" ")[0] in ("CHANNEL", "ANSWER", "STREAM", "WAIT"):
                p.stdin.write(b"511 Command Not Permitted on a dead channel or intercept routine\n")
            else:
                p.stdin.write(b"200 result=0\n" if not cmd.startswith("SET") else b"200 result=1\n")
            p.stdin.flush()
            buf += line
        p.wait()
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(ru.ru_utime + ru.ru_stime)
        q = acd.ask("queued")
        if uid in q:
            enqueue.append(q[uid] - t0)
    per_call = [b - a for a, b in zip([0.0] + cpu[:-1], cpu, strict=True)]
    return {
        "classic_calls": n,
        "classic_cpu_ms_median": round(statistics.median(per_call) * 1000, 1),
        "classic_time_to_enqueue_ms_median": round(statistics.median(enqueue) * 1000, 1) if enqueue else None,
        "classic_time_to_enqueue_ms_p95": round(sorted(enqueue)[int(0.95 * (len(enqueue) - 1))] * 1000, 1)
        if enqueue else None,
    }


class Load:
    """Asterisk's side for many FastAGI callers (callcenter.testing.agi_peer), in this process."""

    def __init__(self, reactor, port: int):
        self.reactor = reactor
        self.port = port
        self.n = 0
        self.held: list[float] = []  # set-up times (connect -> music on hold) of admitted calls
        self.shed = 0
        self.failed = 0
        self.channels = []

    def start_one(self, tag: str = "") -> None:
        from callcenter.testing.agi_peer import FakeChannel, FastAgiCall, environment

        self.n += 1
        r = self.reactor
        ch = FakeChannel(r, speed=1.0)  # WAIT FOR DIGIT 2000 lasts 2 s: a caller on hold
        env = environment(request=f"agi://127.0.0.1:{self.port}/hotline", uniqueid=f"17950.{self.n}",
                          network_script="hotline")
        t0 = r.seconds()
        ch.when("EXEC StartMusicOnHold", lambda c: self.held.append(r.seconds() - t0))
        d = FastAgiCall(r, ch, env).connect("127.0.0.1", self.port)

        def done(rec):
            if rec.variables.get("CC_RESULT") == "shed":
                self.shed += 1
            elif rec.agistatus == "FAILURE":
                self.failed += 1
        d.addCallback(done)
        self.channels.append(ch)

    def offer(self, rate: float, seconds: float, then):
        """Start calls at ``rate`` per second for ``seconds``, then call ``then()``."""
        r = self.reactor
        t0 = r.seconds()
        base = self.n

        def tick():
            el = r.seconds() - t0
            due = base + int(min(el, seconds) * rate)
            while self.n < due:
                self.start_one()
            if el < seconds:
                r.callLater(0.005, tick)
            else:
                then()
        tick()


def pct(xs, q):
    xs = sorted(xs)
    return round(xs[int(q * (len(xs) - 1))] * 1000, 1) if xs else None


def capacity_phase(n: int, rate: float, hold_s: float, q):
    """n callers set up (at ``rate``) and held at once; ACD CPU per set-up and per held caller."""
    acd = Acd(100_000)
    try:
        from twisted.internet import reactor

        load = Load(reactor, acd.port)
        out = {}

        def all_held_or_timeout(deadline):
            if len(load.held) + load.failed >= n or reactor.seconds() > deadline:
                cpu = acd.ask("cpu")
                out["setup_cpu_s"] = cpu[0] - out["cpu0"]
                out["held"] = cpu[3]
                out["setup_wall_s"] = reactor.seconds() - out["t0"]
                out["cpu_held0"] = cpu[0]
                reactor.callLater(hold_s, finish)
            else:
                reactor.callLater(0.05, all_held_or_timeout, deadline)

        def finish():
            cpu = acd.ask("cpu")
            out["hold_cpu_s"] = cpu[0] - out["cpu_held0"]
            out["held_end"] = cpu[3]
            reactor.stop()

        def begin():
            out["cpu0"] = acd.ask("cpu")[0]
            out["t0"] = reactor.seconds()
            load.offer(rate, n / rate, lambda: all_held_or_timeout(reactor.seconds() + 120))
        reactor.callWhenRunning(begin)
        reactor.run()
        q.put({"n": n, "offered_rate": rate, "held": out["held"], "held_end": out["held_end"],
               "setup_cpu_s": round(out["setup_cpu_s"], 3), "setup_wall_s": round(out["setup_wall_s"], 2),
               "hold_cpu_s": round(out["hold_cpu_s"], 3), "hold_s": hold_s, "failed": load.failed,
               "setup_p50_ms": pct(load.held, 0.5), "setup_p95_ms": pct(load.held, 0.95)})
    finally:
        acd.stop()


def overload_phase(limit: float, rate: float, seconds: float, q):
    acd = Acd(limit)
    try:
        from twisted.internet import reactor

        load = Load(reactor, acd.port)
        out = {}

        def begin():
            out["cpu0"] = acd.ask("cpu")[0]
            out["t0"] = reactor.seconds()
            load.offer(rate, seconds, lambda: settle(reactor.seconds() + 60))

        def settle(deadline):
            # never wedges: every offered call ends up held, shed or failed (fallback) in bounded time
            if len(load.held) + load.shed + load.failed >= load.n or reactor.seconds() > deadline:
                out["settle_s"] = reactor.seconds() - out["t0"] - seconds
                out["cpu"] = acd.ask("cpu")[0] - out["cpu0"]
                reactor.stop()
            else:
                reactor.callLater(0.05, settle, deadline)
        reactor.callWhenRunning(begin)
        reactor.run()
        q.put({"rate": rate, "offered": load.n, "admitted": len(load.held), "shed": load.shed,
               "failed": load.failed, "shed_share": round(load.shed / load.n, 3) if load.n else 0.0,
               "setup_p95_ms": pct(load.held, 0.95), "acd_cpu_s": round(out["cpu"], 3),
               "stuck": load.n - len(load.held) - load.shed - load.failed,
               "settled_after_s": round(out["settle_s"], 2)})
    finally:
        acd.stop()


def recovery_phase(limit: float, high: float, seconds_high: float, low: float, q):
    """Overload, then drop to a low rate: seconds from the drop to the first admitted call."""
    acd = Acd(limit)
    try:
        from twisted.internet import reactor

        load = Load(reactor, acd.port)
        out = {}

        def low_phase():
            out["drop_at"] = reactor.seconds()
            out["held_before"] = len(load.held)
            out["shed_before"] = load.shed
            watch()
            load.offer(low, 3.0, lambda: reactor.callLater(1.0, reactor.stop))

        def watch():
            if len(load.held) > out["held_before"]:
                out["first_ok"] = reactor.seconds()
            else:
                reactor.callLater(0.002, watch)
        reactor.callWhenRunning(lambda: load.offer(high, seconds_high, low_phase))
        reactor.run()
        q.put({"recovery_s": round(out["first_ok"] - out["drop_at"], 3) if "first_ok" in out else None,
               "shed_during_overload": out["shed_before"]})
    finally:
        acd.stop()


def in_child(fn, *args, timeout=300):
    """Twisted's reactor cannot be restarted: each phase runs in a fresh process."""
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=fn, args=(*args, q))
    p.start()
    try:
        return q.get(timeout=timeout)
    finally:
        p.join(10)
        if p.is_alive():
            p.kill()


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rate", type=float, default=250.0, help="offered set-up rate for the 1,000 held callers")
    ap.add_argument("--limit", type=float, default=100.0, help="admission limit for the overload phases")
    args = ap.parse_args()
    classic_n = 10 if args.quick else 30
    hold_n = 1000

    acd = Acd(10_000)
    try:
        classic = classic_bench(acd, classic_n)
    finally:
        acd.stop()
    print(f"classic pyst2 script: CPU {classic['classic_cpu_ms_median']} ms/call (median of {classic_n}), "
          f"time to enqueue {classic['classic_time_to_enqueue_ms_median']} ms median, "
          f"p95 {classic['classic_time_to_enqueue_ms_p95']} ms")

    load_avg = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, load average {load_avg:.1f} (other work shares the cores: "
          "wall-clock rates are lower bounds; CPU figures are the ACD's own, on its pinned core)")

    # 1,000 callers set up and held at once; admission effectively unlimited
    cap = in_child(capacity_phase, hold_n, args.rate, 5.0)
    cpu_per_setup_ms = cap["setup_cpu_s"] / max(1, cap["held"]) * 1000
    hold_cpu_per_caller_s = cap["hold_cpu_s"] / max(1, cap["held_end"]) / cap["hold_s"]
    setups_per_core = 1000.0 / cpu_per_setup_ms if cpu_per_setup_ms else None
    print(f"FastAGI: {cap['held']} of {cap['n']} callers set up and held at once "
          f"(offered at {cap['offered_rate']:.0f}/s, all set up in {cap['setup_wall_s']} s wall, "
          f"set-up p50 {cap['setup_p50_ms']} ms p95 {cap['setup_p95_ms']} ms)")
    print(f"  ACD CPU per set-up {cpu_per_setup_ms:.2f} ms (everything: env, admission, engine, ANSWER, CDR "
          f"variables, MOH, first waits) => {setups_per_core:.0f} set-ups/s on one core; holding costs "
          f"{hold_cpu_per_caller_s * 1e6:.0f} us CPU per caller-second "
          f"({hold_cpu_per_caller_s * 1000 * 100:.1f}% of a core per 1,000 held)")

    # past capacity: admission at ``--limit`` per second, offered load around and above it
    limit = args.limit
    rows = []
    for mult in ([0.5, 1.0, 2.0, 4.0] if not args.quick else [0.5, 2.0, 4.0]):
        r = in_child(overload_phase, limit, limit * mult, 3.0)
        rows.append(r)
        print(f"  offered {r['rate']:>5.0f}/s for 3 s: admitted {r['admitted']:>4} shed {r['shed']:>4} "
              f"({r['shed_share']:.0%}) failed {r['failed']} unsettled {r['stuck']} (all settled {r['settled_after_s']} s after the burst) set-up p95 {r['setup_p95_ms']} ms "
              f"ACD CPU {r['acd_cpu_s']} s")
    knee = next((r["rate"] for r in rows if r["shed_share"] > 0.05), None)
    rec = in_child(recovery_phase, limit, limit * 4, 2.0, limit * 0.2)
    print(f"knee: shedding starts between {max([r['rate'] for r in rows if r['rate'] < (knee or 0)] or [0]):.0f} "
          f"and {knee}/s offered (admission limit {limit:.0f}/s, configured acd.max_setups_per_s); "
          f"after {limit * 4:.0f}/s drops to {limit * 0.2:.0f}/s the first call is admitted "
          f"{rec['recovery_s']} s later")
    figures = {
        **classic,
        "load_average": round(load_avg, 2),
        "fastagi_held": cap["held"],
        "fastagi_cpu_ms_per_setup": round(cpu_per_setup_ms, 3),
        "fastagi_setups_per_s_one_core": round(setups_per_core, 1) if setups_per_core else None,
        "fastagi_hold_cpu_us_per_caller_s": round(hold_cpu_per_caller_s * 1e6, 1),
        "fastagi_setup_p50_ms": cap["setup_p50_ms"],
        "fastagi_setup_p95_ms": cap["setup_p95_ms"],
        "overload_limit_per_s": limit,
        "overload": [{k: r[k] for k in ("rate", "offered", "admitted", "shed", "shed_share", "setup_p95_ms",
                                        "failed", "stuck", "settled_after_s")} for r in rows],
        "knee_per_s": knee,
        "recovery_s": rec["recovery_s"],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
