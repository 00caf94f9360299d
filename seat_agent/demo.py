"""``make demo``: an ACD, robot agents and synthetic callers, so a newcomer sees calls flow.

1. Writes a demo config (deploy/callcenter.yaml with free ports and
   ``state_dir: .state/demo``), removes the previous run's live state (the
   embedded Redis files: a demo always starts with no calls, no agents and no
   emergency plan, so two runs in a row behave the same), migrates its SQLite
   database and creates the demo agent accounts (password ``demo-pass``, kept
   between runs) plus a few knowledge-base articles.
2. Starts ``callcenter serve`` on it (a child process) and waits for /healthz.
3. Logs in robot agents (seat_agent.robot over real wss) for the own, remote
   and borrowed pools.
4. Places synthetic calls through FastAGI, with Asterisk's side played by the
   AGI peer harness (callcenter.testing.agi_peer): the caller waits, the real
   call control dials the agent's endpoint, the fake phone answers after 1-3 s
   and the conversation lasts a log-normal talk time.  So here call control is
   the real FastAGI server, not the seat demo option.
5. Prints a status line every 5 s (and the metric counters from /metrics),
   runs for ``--seconds`` (default 90; Ctrl+C ends it sooner), then stops all.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
DEMO_PASSWORD = "demo-pass"
# (agent id prefix, pool, how many)
DEMO_AGENTS = (("demo-own-", "own-12345", 4), ("demo-remote-", "remote-cities", 2),
               ("demo-12333-", "lender-12333", 2), ("demo-12315-", "lender-12315", 2))
ARTICLES = (
    ("Fever clinic opening hours", "Fever clinics are open 24 hours; bring your ID card.", "epidemic medical"),
    ("Where to get masks", "Community centres hand out masks from 9:00 to 17:00.", "supplies"),
    ("Quarantine at home", "Fourteen days at home; the community office brings food.", "epidemic"),
    ("Unpaid wages", "Report unpaid wages to the labour bureau (12333).", "labour"),
)


def demo_agents() -> list[tuple[str, str]]:
    return [(f"{prefix}{i}", pool) for prefix, pool, n in DEMO_AGENTS for i in range(1, n + 1)]


def write_config(state_dir: Path) -> tuple[Path, dict]:
    from callcenter.ports import free_port

    raw = yaml.safe_load((REPO / "deploy" / "callcenter.yaml").read_text())
    raw["acd"]["state_dir"] = str(state_dir)
    while True:  # four distinct free ports; the classic-AGI relay gets its own (not fastagi_port + 1, maybe taken)
        ports = {k: free_port() for k in ("fastagi_port", "seat_port", "admin_port", "agi_relay_port")}
        if len(set(ports.values())) == len(ports):
            break
    raw["acd"]["listen"] = {"host": "127.0.0.1", **ports}
    for p in raw["pools"]:  # shorter wrap-up and ring times: a demo should move
        p["wrapup_s"], p["ring_timeout_s"] = 5, 10
    for q in raw["queues"]:
        q["announce_every_s"] = 15
        for t in q.get("tiers", []):
            t["after_s"] = 5 * t["tier"]
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "demo.yaml"
    path.write_text("# written by `make demo` (seat_agent/demo.py)\n" + yaml.safe_dump(raw, sort_keys=False))
    return path, raw


def prepare_database(state_dir: Path) -> str:
    """Migrate and add the demo accounts and articles (idempotent)."""
    from datetime import datetime

    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from callcenter.app import default_database_url
    from callcenter.records.accounts import PASSWORD_HASHER, add_agent
    from callcenter.records.db import make_engine, migrate
    from callcenter.records.models import Agent, Article

    url = default_database_url(state_dir.resolve())
    migrate(url)
    db = make_engine(url)
    hasher = PASSWORD_HASHER
    with Session(db) as session, session.begin():
        have = set(session.scalars(select(Agent.id)))
        for agent_id, pool in demo_agents():
            if agent_id not in have:
                add_agent(session, agent_id, pool=pool, name=f"Demo {agent_id}", endpoint=f"PJSIP/{agent_id}",
                          password=DEMO_PASSWORD, hasher=hasher)
        seeded = session.scalar(select(Article.id).limit(1)) is not None
    if not seeded:  # the English ones for the robots' searches, then the Chinese seed corpus
        from callcenter.kb.seed import EPOCH, corpus
        from callcenter.kb.store import KbStore

        kb = KbStore(db)
        for title, body, tags in ARTICLES:
            kb.create({"title": title, "body": body, "tags": tags, "org": "demo", "effective_from": EPOCH},
                      "demo", "demo article", publish=True, trusted=True, now=datetime(2026, 1, 1))
        for a in corpus():
            kb.create(a, "seed", "seed corpus", publish=True, trusted=True, now=datetime(2026, 1, 1))
    db.dispose()
    return url


def reset_live_state(state_dir: Path) -> bool:
    """Start every demo from an empty live state; True when a previous run's state was removed.

    The embedded Redis keeps its files (AOF and snapshot) under
    ``<state_dir>/redis`` so that a real ACD survives a crash.  For the demo
    that is the wrong default: a second ``make demo`` restored the first run's
    calls, agents and emergency plan, and its agents stayed ON-CALL on calls
    that no longer existed.  The database (accounts, articles, CDRs) and the
    TLS certificate are kept.  Refuses while an ACD runs on ``state_dir``
    (its pid lock is held): its files are not ours to delete.
    """
    import shutil

    from callcenter.pidlock import AlreadyRunning, PidLock

    lock = PidLock(state_dir / "callcenter.pid")
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        raise SystemExit(f"demo: {exc}") from None
    try:
        live = state_dir / "redis"
        if live.exists():
            shutil.rmtree(live)
            return True
        return False
    finally:
        lock.release()


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo: the ACD exited with status {proc.returncode}; see its log above")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)  # a CLI waiting for a child process, not a test
    raise SystemExit(f"demo: the ACD did not become healthy at {url} within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="make demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("DEMO_SECONDS", 90)))
    ap.add_argument("--rate", type=float, default=0.5, help="new calls per second (Poisson)")
    ap.add_argument("--talk-mean", type=float, default=12.0)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--state-dir", default=str(REPO / ".state" / "demo"))
    ap.add_argument("--accounts-only", action="store_true",
                    help="only create the demo agents and articles in STATE_DIR's database (for `make run`: "
                         "--accounts-only --state-dir .state) and exit")
    args = ap.parse_args(argv)

    state_dir = Path(args.state_dir)
    if args.accounts_only:
        url = prepare_database(state_dir)
        print(f"demo accounts ready in {url}: " + ", ".join(a for a, _ in demo_agents())
              + f" (password {DEMO_PASSWORD})")
        return 0
    config_path, raw = write_config(state_dir)
    listen = raw["acd"]["listen"]
    print(f"demo: preparing {state_dir} (database, {len(demo_agents())} demo agents, articles) ...", flush=True)
    if reset_live_state(state_dir):
        print("demo: removed the previous run's live state (calls, agents, emergency plan): "
              "every demo starts empty", flush=True)
    prepare_database(state_dir)
    env = dict(os.environ, CALLCENTER_CONFIG=str(config_path))
    acd = subprocess.Popen([sys.executable, "-m", "callcenter", "serve", "--config", str(config_path)],
                           cwd=str(REPO), env=env)
    try:
        wait_healthy(f"http://127.0.0.1:{listen['admin_port']}/healthz", acd)
        return run(args, listen, state_dir)
    finally:
        if acd.poll() is None:
            acd.send_signal(signal.SIGTERM)
            try:
                acd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                acd.kill()
                acd.wait()
        print("demo: stopped (the ACD, robots and callers)", flush=True)


def run(args, listen: dict, state_dir: Path) -> int:
    from twisted.internet import defer, reactor, task

    from callcenter.testing.agi_peer import Agent, FakeChannel, FastAgiCall, environment

    from .client import SeatClient
    from .robot import Behaviour, Robot

    rng = random.Random(args.seed)
    seat_url = f"wss://127.0.0.1:{listen['seat_port']}/seat"
    admin = f"http://127.0.0.1:{listen['admin_port']}"
    cafile = str(state_dir / "tls" / "dev-cert.pem")
    agi_port = listen["fastagi_port"]
    print(f"demo: ACD up. seats {seat_url}, FastAGI agi://127.0.0.1:{agi_port}/hotline, admin {admin}/api/v1, "
          f"metrics {admin}/metrics", flush=True)
    print(f"demo: join in as a person:  .venv/bin/seat-agent tui --url {seat_url} --cafile {cafile} "
          f"--agent demo-own-1   (password {DEMO_PASSWORD}; takes over that robot's seat)", flush=True)

    robots = []
    for agent_id, _pool in demo_agents():
        r_rng = random.Random(rng.random())
        client = SeatClient(seat_url, agent_id, DEMO_PASSWORD, reactor=reactor, cafile=cafile, rng=r_rng)
        robots.append(Robot(client, rng=r_rng, clock=reactor, behaviour=Behaviour(think_s=(0.2, 0.8))))
    endpoints = [f"PJSIP/{a}" for a, _ in demo_agents()]
    calls = {"placed": 0, "done": 0, "results": {}}
    counter = [0]

    def answered_hook(call_id, agent_id):
        script = f"answered?call={call_id}&agent={agent_id}"
        env = environment(request=f"agi://127.0.0.1:{agi_port}/{script}", uniqueid="1.1", network_script=script)
        return FastAgiCall(reactor, FakeChannel(reactor), env).connect("127.0.0.1", agi_port)

    def place_call():
        counter[0] += 1
        uid = f"{int(time.time())}.{counter[0]}"
        mu = math.log(args.talk_mean) - 0.5 ** 2 / 2
        phones = {e: Agent(answer_after=rng.uniform(1.0, 3.0), talk=rng.lognormvariate(mu, 0.5)) for e in endpoints}
        ch = FakeChannel(reactor, agents=phones, answered_hook=answered_hook, speed=0.2)
        if rng.random() < 0.3:  # some callers press 1 (policy notice) while they wait
            ch.when("WAIT FOR DIGIT", lambda c: c.press("1"), delay=0.3)
        number = "1" + "".join(rng.choice("3456789") for _ in range(2)) + "".join(rng.choice("0123456789") for _ in range(8))
        env = environment(request=f"agi://127.0.0.1:{agi_port}/hotline?queue=hotline-12345", uniqueid=uid,
                          callerid=number, network_script="hotline?queue=hotline-12345")
        calls["placed"] += 1

        def ended(rec):
            calls["done"] += 1
            res = rec.variables.get("CC_RESULT", rec.agistatus or "?")
            calls["results"][res] = calls["results"].get(res, 0) + 1

        FastAgiCall(reactor, ch, env).connect("127.0.0.1", agi_port).addCallback(ended)

    def schedule_next():
        if reactor.running and not stopping[0]:
            place_call()
            reactor.callLater(rng.expovariate(args.rate), schedule_next)

    def metrics_line() -> str:
        try:
            with urllib.request.urlopen(f"{admin}/metrics", timeout=0.5) as r:
                text = r.read().decode()
        except OSError:
            return ""
        sums: dict[str, float] = {}
        for line in text.splitlines():
            for name in ("callcenter_calls_offered_total", "callcenter_calls_answered_total",
                         "callcenter_calls_ended_total"):
                if line.startswith(name):
                    sums[name] = sums.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
        return ", ".join(f"{k.removeprefix('callcenter_').removesuffix('_total')} {v:.0f}" for k, v in sums.items())

    def report():
        states: dict[str, int] = {}
        for r in robots:
            key = r.seat.state if r.seat.logged_in else "offline"
            states[key] = states.get(key, 0) + 1
        wraps = sum(r.stats.wrapups for r in robots)
        print(f"[{time.strftime('%H:%M:%S')}] calls placed {calls['placed']}, ended {calls['done']} "
              f"{calls['results'] or ''} | agents " + ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
              + f" | wrap-ups {wraps}", flush=True)
        m = metrics_line()  # a blocking local read, once per 5 s in a demo script: acceptable
        if m:
            print(f"           metrics: {m}", flush=True)

    stopping = [False]

    @defer.inlineCallbacks
    def finish():
        stopping[0] = True
        report()
        for r in robots:
            r.stop()
            if r.seat.logged_in:
                r.seat.logout()
        yield task.deferLater(reactor, 0.5, lambda: None)
        yield defer.DeferredList([r.seat.stop() for r in robots])
        reactor.stop()

    def start():
        for r in robots:
            r.seat.start()
        reactor.callLater(3.0, schedule_next)
        task.LoopingCall(report).start(5.0, now=False)
        reactor.callLater(args.seconds, finish)

    reactor.callWhenRunning(start)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
