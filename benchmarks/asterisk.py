"""The ACD behind a real Asterisk 22 against Asterisk's own app_queue, same switch, same agents, same load.

One Asterisk process (tests/support/ensure_asterisk.sh builds it; tests/support/asterisk.py
runs it), >= 500 agents as Local channels (``Local/<id>@e2e-agents``: ring 0 s, answer, talk
``--talk`` s, hang up), callers originated over AMI at stepped offered rates.  Two sides in the
same run, each rate step once per side, back to back:

* **acd**: callers enter the project's unchanged ``[cc-inbound]`` (FastAGI to a real
  ``callcenter serve``; robot seats logged in for every agent with ``seat-agent robot``);
* **app_queue**: callers enter ``Answer(); Queue(bench)``, the same agents as static members
  (``ringinuse=no``, ``wrapuptime`` = the robots' mean wrap-up, so both sides have the same
  agent capacity).

Per rate and side: offered / connected / abandoned / shed (the ACD's admission control sends
shed calls to the dialplan fallback), originate -> agent answer p50/p95 (the agent's answer is
logged by the agent's dialplan with a millisecond timestamp; the originate time is taken when
the AMI action is sent), Asterisk CPU ms per offered call and ACD CPU ms per offered call
(utime+stime from /proc of the whole process tree: the ACD includes its embedded Redis),
CDR mismatches (ACD side: tests/support/e2e.py reconcile, Asterisk's Master.csv against the
ACD's SQL CDRs) and whether the side recovered (every channel gone within the drain budget and
a probe call connected afterwards).  Callers give up after ``--patience`` s.  A side that does
not drain within ``--drain`` s is reported wedged; for app_queue the Asterisk is then killed
and restarted for the remaining steps.

    .venv/bin/python benchmarks/asterisk.py [--agents 500] [--rates 20,50,100,150,200] [--step 20] [--talk 5]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.asterisk import find_asterisk, proc_tree_cpu  # noqa: E402
from tests.support.e2e import AgentSpec, World, acd_cdrs, asterisk_calls, reconcile  # noqa: E402

QUEUE_DIALPLAN = r"""
[bench-queue]
; the comparison: Asterisk's own queue, the same agents as static members
exten => 12345,1,Answer()
 same => n,Queue(bench,,,,600)
 same => n,Hangup()
"""

ANSWER_RE = re.compile(r"e2e-answer (\S+) (\d+\.\d+)")


def queues_conf(agent_ids: list[str], wrapup_s: int) -> str:
    members = "".join(f"member => Local/{a}@e2e-agents/n\n" for a in agent_ids)
    return (f"\n[bench]\nstrategy = leastrecent\ntimeout = 15\nretry = 0\nwrapuptime = {wrapup_s}\n"
            f"ringinuse = no\nautofill = yes\nannounce-frequency = 0\nperiodic-announce-frequency = 0\n"
            f"joinempty = yes\nleavewhenempty = no\n{members}")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def run_step(world: World, side: str, rate: float, seconds: float, patience: float, drain: float,
             rng: random.Random) -> dict:
    ast = world.asterisk
    rows_before = len(ast.cdrs())
    acd_before = set(acd_cdrs(world.acd.db_url)) if side == "acd" else set()
    log_before = len(ast.messages())
    shed_before = acd_metric(world, "callcenter_agi_shed_total") if side == "acd" else 0.0
    cpu_ast0 = proc_tree_cpu(ast.proc.pid)
    cpu_acd0 = proc_tree_cpu(world.acd.proc.pid)
    channel = "Local/12345@cc-inbound/n" if side == "acd" else "Local/12345@bench-queue/n"
    sent: dict[str, float] = {}
    n = int(rate * seconds)
    t0 = time.monotonic()
    for i in range(n):
        due = t0 + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing the offered load (a benchmark, not a test)
        tag = f"{side}-{rate:g}-{i}"
        sent[tag] = time.time()
        world.call(f"1{rng.randint(3, 9)}{rng.randint(0, 999999999):09d}", hangup_after=patience, tag=tag,
                   channel=channel)
    offered_s = time.monotonic() - t0
    # drain: every channel gone (callers hang up after `patience` at the latest)
    deadline = time.monotonic() + drain
    wedged = True
    while time.monotonic() < deadline:
        if ast.proc.poll() is not None:
            break
        if ast.active_channels() == 0:
            wedged = False
            break
        time.sleep(0.5)
    cpu_ast = proc_tree_cpu(ast.proc.pid) - cpu_ast0 if ast.proc.poll() is None else None
    cpu_acd = proc_tree_cpu(world.acd.proc.pid) - cpu_acd0
    answers = {}
    for m in ANSWER_RE.finditer(ast.messages()[log_before:]):
        if m[1] in sent:
            answers[m[1]] = float(m[2]) - sent[m[1]]
    rows = ast.cdrs()[rows_before:]
    out = {"side": side, "rate": rate, "offered": n, "offered_in_s": round(offered_s, 1),
           "connected": len(answers), "wedged": wedged,
           "answer_p50_s": _r(pct(list(answers.values()), 50)), "answer_p95_s": _r(pct(list(answers.values()), 95)),
           "asterisk_cpu_ms_per_call": _r(cpu_ast * 1000 / n if cpu_ast is not None else None, 2),
           "acd_cpu_ms_per_call": _r(cpu_acd * 1000 / n, 2) if side == "acd" else None}
    if side == "acd":
        if not wedged:  # the ACD's CDRs of this step, once the records writer caught up
            end = time.monotonic() + 30
            while time.monotonic() < end and len(set(acd_cdrs(world.acd.db_url)) - acd_before) < \
                    len([c for c in asterisk_calls(rows).values()]) - 0:
                time.sleep(0.5)
        mine = {k: v for k, v in acd_cdrs(world.acd.db_url).items() if k not in acd_before}
        shed = int(acd_metric(world, "callcenter_agi_shed_total") - shed_before)
        problems = reconcile(rows, mine, shed_expected=shed)
        outcomes: dict[str, int] = {}
        for c in mine.values():
            outcomes[c.outcome] = outcomes.get(c.outcome, 0) + 1
        out.update(abandoned=outcomes.get("abandoned", 0), shed=shed, acd_outcomes=outcomes,
                   cdr_mismatches=len(problems), mismatch_examples=problems[:3])
    else:
        calls = [r for r in rows if r.channel.startswith("Local/12345@bench-queue-") and r.channel.endswith(";2")]
        uniq = {r.uniqueid for r in calls}
        out.update(abandoned=len(uniq) - len(answers), shed=0, cdr_mismatches=None)
    return out


def acd_metric(world: World, name: str) -> float:
    """A counter from the ACD's /metrics; an overloaded ACD may take long to answer (that is
    reported by the step, not a crash of the benchmark)."""
    end = time.monotonic() + 120
    while True:
        try:
            return world.acd.metric(name, timeout=30)
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(1)


def _r(x, nd: int = 3):
    return None if x is None else round(x, nd)


def probe(world: World, side: str, timeout: float = 30.0) -> bool:
    """One more call after the step: does it reach an agent?"""
    tag = f"probe-{side}-{time.time():.3f}"
    before = len(world.asterisk.messages())
    world.call("13800000000", hangup_after=3, tag=tag,
               channel="Local/12345@cc-inbound/n" if side == "acd" else "Local/12345@bench-queue/n")
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if tag in world.asterisk.messages()[before:]:
            return True
        time.sleep(0.2)
    return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=500)
    ap.add_argument("--rates", default="20,50,100,150,200")
    ap.add_argument("--step", type=float, default=20.0, help="seconds per rate step")
    ap.add_argument("--talk", type=float, default=5.0)
    ap.add_argument("--patience", type=float, default=30.0, help="a caller hangs up this long after answer")
    ap.add_argument("--drain", type=float, default=90.0, help="bounded wait for a step's calls to end")
    ap.add_argument("--sides", default="acd,app_queue")
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--login-batch", type=int, default=50, help="robot seats started (and logged in) at a time")
    args = ap.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    sides = args.sides.split(",")
    prefix, reason = find_asterisk()
    if prefix is None:
        print(f"benchmarks/asterisk.py: no Asterisk ({reason})")
        print(json.dumps({"benchmark": "asterisk", "skipped": reason}))
        return 0
    ids = [str(100000 + i) for i in range(args.agents)]
    wrapup_mean = 3  # seat_agent.robot.Behaviour.wrapup_s is uniform 1-4 s, plus the pool's wrapup_s 1 s
    log(f"starting Asterisk, an ACD and {args.agents} robot seats ...")
    t = time.monotonic()
    world = World(prefix, [AgentSpec(a) for a in ids], start_robots=False, extra_dialplan=QUEUE_DIALPLAN,
                  queues=queues_conf(ids, wrapup_mean), acd_kwargs={"ring_timeout_s": 15, "tier_after_s": (600, 600)})
    results: list[dict] = []
    try:
        # in batches: 500 TLS WebSocket logins at once time out their handshakes on a loaded
        # 2-core machine and then retry in a storm (observed); 50 at a time log in steadily
        for i in range(0, len(ids), args.login_batch):
            world.robots.start(ids[i:i + args.login_batch])
            world.wait_ready(min(len(ids), i + args.login_batch), timeout=300)
            log(f"{min(len(ids), i + args.login_batch)} seats ready after {time.monotonic() - t:.1f} s")
        for a in ids:
            world.set_agent(a, f"answer:0:{args.talk:g}")
        rng = random.Random(args.seed)
        for rate in rates:
            for side in sides:
                if side == "app_queue" and any(r["side"] == side and r["wedged"] for r in results):
                    results.append({"side": side, "rate": rate, "skipped": "app_queue wedged at a lower rate"})
                    continue
                log(f"{side}: {rate:g} calls/s for {args.step:g} s ...")
                try:
                    r = run_step(world, side, rate, args.step, args.patience, args.drain, rng)
                except (OSError, RuntimeError) as e:  # e.g. the ACD's HTTP unanswered for minutes
                    r = {"side": side, "rate": rate, "error": f"{type(e).__name__}: {e}"[:300], "wedged": True}
                    results.append(r)
                    log(json.dumps(r))
                    break
                if r["wedged"] and side == "app_queue":
                    log("app_queue did not drain: killing Asterisk and starting it again")
                    world.asterisk.proc.kill()
                    world.asterisk.proc.wait()
                    world.asterisk._ami = None
                    world.asterisk.start()
                    for a in ids:
                        world.set_agent(a, f"answer:0:{args.talk:g}")
                    r["recovered"] = "restarted Asterisk"
                else:
                    r["recovered"] = probe(world, side) and world.asterisk.active_channels() <= 4
                results.append(r)
                log(json.dumps(r))
    finally:
        world.close()
    print(f"\nACD vs app_queue on one Asterisk 22.10.1, {args.agents} Local agents, talk {args.talk:g} s, "
          f"{args.step:g} s per step, {os.cpu_count()} CPUs (shared machine)")
    head = (f"{'side':<10} {'rate':>5} {'offered':>7} {'conn':>6} {'aband':>6} {'shed':>5} {'p50 s':>7} {'p95 s':>7} "
            f"{'ast ms':>7} {'acd ms':>7} {'mism':>5} {'recovered':>10}")
    print(head)
    for r in results:
        if "skipped" in r or "error" in r:
            print(f"{r['side']:<10} {r['rate']:>5g} {r.get('skipped') or r.get('error')}")
            continue
        print(f"{r['side']:<10} {r['rate']:>5g} {r['offered']:>7} {r['connected']:>6} {r['abandoned']:>6} "
              f"{r['shed']:>5} {_fmt(r['answer_p50_s'])} {_fmt(r['answer_p95_s'])} "
              f"{_fmt(r['asterisk_cpu_ms_per_call'])} {_fmt(r['acd_cpu_ms_per_call'])} "
              f"{_fmt(r['cdr_mismatches'], 5)} {str(r['recovered']):>10}")
    print(json.dumps({"benchmark": "asterisk", "agents": args.agents, "talk_s": args.talk, "step_s": args.step,
                      "results": results}))
    return 0


def _fmt(x, w: int = 7) -> str:
    return f"{'-':>{w}}" if x is None else f"{x:>{w}}"


if __name__ == "__main__":
    sys.exit(main())
