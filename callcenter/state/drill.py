"""A failover drill: synthetic callers, played as Asterisk 22 by the AGI peer harness
(callcenter.testing.agi_peer), against a list of ACD FastAGI addresses, optionally
SIGKILLing the active ACD in the middle.

It follows the dialplan's failover rule (docs/failover.md)::

    AGI(agi://acd1/hotline?queue=Q)                      ; first try
    ; AGI() returned and the channel is up but CC_RESULT is empty: that ACD is
    ; gone (refused, or closed the session).  Try the next address with the id:
    AGI(agi://acd2/hotline?queue=Q&resume=${CC_CALL_ID})
    ; ...round-robin over the addresses, Wait(0.5) after each full round,
    ; for at most --max-rounds rounds; then the local fallback.

and the ``h`` extension's safety net ``AGI(agi://acdN/hangup?call=${CC_CALL_ID})``
when the caller hangs up.  Agents' phones are the harness's Dial model (robot
agents that answer after a short ring and talk for a while).  With ``--seat``
URLs the agents are also real seat clients (seat_agent.client over WSS) that
log in, stay ready, and follow the failover to the next ACD address.

Run as a program (it owns a reactor)::

    python -m callcenter.state.drill --acd 127.0.0.1:4573 --acd 127.0.0.1:5573 \\
        --agents 8 --rate 4.8 --duration 30 --kill-pid 1234 --kill-at 12 \\
        --health http://127.0.0.1:8081/healthz

The last line printed is one JSON object: per-result counts, calls without a
result (``lost``), the failover time seen by the health check and by callers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
from dataclasses import dataclass, field

from twisted.internet import defer, task
from twisted.internet.task import deferLater

__all__ = ["DrillOptions", "run_drill", "main"]


@dataclass
class DrillOptions:
    acds: list[tuple[str, int]]
    agents: int = 8
    rate_per_s: float = 4.0
    duration_s: float = 30.0
    queue: str = "hotline-12345"
    answer_after_s: tuple[float, float] = (0.2, 0.8)
    talk_s: tuple[float, float] = (1.0, 3.0)
    patience_s: tuple[float, float] = (6.0, 20.0)
    max_rounds: int = 20
    round_wait_s: float = 0.5
    call_deadline_s: float = 120.0
    kill_pid: int | None = None
    kill_at_s: float | None = None
    kill_signal: int = signal.SIGKILL  # SIGTERM: a clean stop
    health_urls: list[str] = field(default_factory=list)
    seed: int = 1
    uid_base: int = 1_800_000_000
    seat_urls: list[str] = field(default_factory=list)  # wss:// of each ACD, in order: real seat robots
    seat_password: str = ""
    seat_cafile: str | None = None


def _robot_seat(urls: list[str], agent_id: str, password: str, **kw):
    """A robot agent: the real seat client over every ACD address (it moves on to the next
    when one fails), counting its logins/resumes; the drill keeps it ready."""
    from seat_agent.client import SeatClient

    seat = SeatClient(urls, agent_id, password, **kw)
    seat.logins = 0
    seat.last_login_at = 0.0

    def heard(kind, msg) -> None:
        if kind in ("login_ok", "resumed"):
            seat.logins += 1
            seat.last_login_at = seat.clock.seconds()
            seat.last_login_kind = kind

    seat.add_listener(heard)
    return seat


def agent_endpoint(i: int) -> str:
    return f"PJSIP/robot-{i}"


class _Stats:
    def __init__(self):
        self.results: dict[str, str] = {}
        self.details: dict[str, list] = {}  # uid -> [result, ended at (s since start), index of the last ACD]
        self.sessions = 0
        self.refused = 0
        self.resumes = 0
        self.answer_latency: list[float] = []  # call start -> agent answered (caller view)
        self.kill_at: float | None = None
        self.first_resumed_after_kill: float | None = None
        self.health_ok_after_kill: float | None = None
        self.seats_back_after_kill: float | None = None


class _Drill:
    def __init__(self, reactor, opts: DrillOptions):
        from callcenter.testing.agi_peer import Agent

        self.reactor = reactor
        self.opts = opts
        self.rng = random.Random(opts.seed)
        self.stats = _Stats()
        self.t0 = reactor.seconds()
        self.agents = {
            agent_endpoint(i): Agent(
                answer_after=self.rng.uniform(*opts.answer_after_s), talk=self.rng.uniform(*opts.talk_s)
            )
            for i in range(opts.agents)
        }
        self.preferred = 0  # the dialplan's first address; moves on when one fails (like a DNS SRV retry)

    def now(self) -> float:
        return self.reactor.seconds() - self.t0

    # -- one caller ---------------------------------------------------------

    def _answered_hook(self, state: dict):
        """Dial's U() gosub: report the answer to the ACD that placed the Dial."""
        from callcenter.testing.agi_peer import FakeChannel, FastAgiCall, environment

        def hook(call_id: str, agent_id: str):
            host, port = self.opts.acds[state["acd"]]
            ch = FakeChannel(self.reactor)
            script = f"answered?call={call_id}&agent={agent_id}"
            env = environment(request=f"agi://{host}:{port}/{script}", uniqueid="1.1", network_script=script)
            state["answered_at"] = self.reactor.seconds()
            return FastAgiCall(self.reactor, ch, env).connect(host, port)

        return hook

    @defer.inlineCallbacks
    def _h_extension(self, call_id: str):
        from callcenter.testing.agi_peer import FakeChannel, FastAgiCall, environment

        for i in range(len(self.opts.acds)):
            host, port = self.opts.acds[(self.preferred + i) % len(self.opts.acds)]
            script = f"hangup?call={call_id}"
            ch = FakeChannel(self.reactor)
            env = environment(request=f"agi://{host}:{port}/{script}", uniqueid="1.2", network_script=script)
            rec = yield FastAgiCall(self.reactor, ch, env).connect(host, port)
            if rec.agistatus != "FAILURE":
                return

    @defer.inlineCallbacks
    def caller(self, n: int):
        # the peer harness already plays what Asterisk does when the FastAGI server dies during
        # EXEC Dial: the Dial runs to its end and only then does AGI() return
        from callcenter.testing.agi_peer import FakeChannel, FastAgiCall, environment

        opts = self.opts
        uid = f"{opts.uid_base + n}.{n % 1000}"
        state = {"acd": self.preferred, "answered_at": None}
        ch = FakeChannel(self.reactor, agents=self.agents, speed=0.02, answered_hook=self._answered_hook(state))
        started = self.reactor.seconds()
        patience = self.rng.uniform(*opts.patience_s)

        def lose_patience():
            if not ch.dead and state["answered_at"] is None and not ch.vars.get("CC_RESULT"):
                ch.hang_up()

        timer = self.reactor.callLater(patience, lose_patience)
        result = None
        attempt = 0
        rounds = 0
        served_sessions = 0
        served_after_kill = 0
        try:
            while result is None:
                if self.reactor.seconds() - started > opts.call_deadline_s or rounds >= opts.max_rounds:
                    result = "lost"
                    break
                idx = (self.preferred + attempt) % len(opts.acds)
                attempt += 1
                if attempt % len(opts.acds) == 0:
                    rounds += 1
                host, port = opts.acds[idx]
                request = f"hotline?queue={opts.queue}"
                call_id = ch.vars.get("CC_CALL_ID")
                resumed = attempt > 1 and call_id is not None
                if resumed:
                    request += f"&resume={call_id}"
                env = environment(request=f"agi://{host}:{port}/{request}", uniqueid=uid, network_script=request)
                state["acd"] = idx
                replies_before = len(ch.record.replies)
                session_at = self.reactor.seconds()
                rec = yield FastAgiCall(self.reactor, ch, env).connect(host, port)
                served = len(ch.record.replies) > replies_before
                if served:
                    self.stats.sessions += 1
                    served_sessions += 1
                    if self.stats.kill_at is not None and session_at >= self.stats.kill_at:
                        served_after_kill += 1
                    if resumed:
                        self.stats.resumes += 1
                        if self.stats.kill_at is not None and self.stats.first_resumed_after_kill is None:
                            self.stats.first_resumed_after_kill = self.reactor.seconds() - self.stats.kill_at
                else:
                    self.stats.refused += 1
                    if idx == self.preferred:
                        self.preferred = (self.preferred + 1) % len(opts.acds)
                if ch.dead or not rec.dialplan_continued:
                    result = ch.vars.get("CC_RESULT") or "caller-hung-up"
                    if state["answered_at"] is None and result in ("caller-hung-up", "hangup"):
                        result = "abandoned"
                    yield self._h_extension(ch.vars.get("CC_CALL_ID") or uid)
                    break
                if ch.vars.get("CC_RESULT"):
                    result = ch.vars["CC_RESULT"]
                    break
                if attempt % len(opts.acds) == 0:
                    yield deferLater(self.reactor, opts.round_wait_s, lambda: None)
        finally:
            if timer.active():
                timer.cancel()
        if state["answered_at"] is not None:
            self.stats.answer_latency.append(state["answered_at"] - started)
        self.stats.results[uid] = result
        # [result, ended at (s after start), the ACD index it was last on, AGI sessions an ACD served,
        #  of which begun after the kill]
        self.stats.details[uid] = [result, round(self.now(), 3), state["acd"], served_sessions, served_after_kill]

    # -- the drill ------------------------------------------------------------

    @defer.inlineCallbacks
    def killer(self):
        opts = self.opts
        yield deferLater(self.reactor, opts.kill_at_s, lambda: None)
        os.kill(opts.kill_pid, opts.kill_signal)
        self.stats.kill_at = self.reactor.seconds()
        if opts.health_urls:
            yield self._watch_health()

    @defer.inlineCallbacks
    def _watch_health(self):
        from twisted.web.client import Agent as HttpAgent
        from twisted.web.client import readBody

        http = HttpAgent(self.reactor, connectTimeout=0.5)
        while self.reactor.seconds() - self.stats.kill_at < 60:
            for url in self.opts.health_urls:
                try:
                    resp = yield http.request(b"GET", url.encode())
                    yield readBody(resp)
                    if resp.code == 200:
                        self.stats.health_ok_after_kill = self.reactor.seconds() - self.stats.kill_at
                        return
                except Exception:
                    pass
            yield deferLater(self.reactor, 0.05, lambda: None)

    # -- seat robots ------------------------------------------------------------

    @defer.inlineCallbacks
    def start_robots(self):
        opts = self.opts
        self.robots = [
            _robot_seat(
                opts.seat_urls,
                f"robot-{i}",
                opts.seat_password,
                reactor=self.reactor,
                cafile=opts.seat_cafile,
                rng=random.Random(i),
                initial_delay=0.2,
                max_delay=0.5,
                factor=1.5,
                ping_interval=5.0,
            )
            for i in range(opts.agents)
        ]
        for robot in self.robots:
            robot.start()
        self._keep_ready = task.LoopingCall(self._robots_stay_ready)
        self._keep_ready.clock = self.reactor
        self._keep_ready.start(0.1)
        deadline = self.reactor.seconds() + 30
        while not all(r.logged_in and r.state == "ready" for r in self.robots):
            if self.reactor.seconds() > deadline:
                raise RuntimeError(
                    "seat robots did not log in and go ready within 30 s: "
                    + ", ".join(f"{r.agent_id}={r.status}" for r in self.robots)
                )
            yield deferLater(self.reactor, 0.05, lambda: None)

    def _robots_stay_ready(self) -> None:
        for r in self.robots:
            if r.logged_in and r.state == "not-ready":
                r.ready()  # an eager agent: back to ready after a login or a pause
        st = self.stats
        if st.kill_at is not None and st.seats_back_after_kill is None:
            if all(r.logged_in and getattr(r, "last_login_at", 0) > st.kill_at for r in self.robots):
                st.seats_back_after_kill = self.reactor.seconds() - st.kill_at

    @defer.inlineCallbacks
    def stop_robots(self):
        if getattr(self, "_keep_ready", None) is not None and self._keep_ready.running:
            self._keep_ready.stop()
        yield defer.DeferredList([r.stop() for r in getattr(self, "robots", [])], consumeErrors=True)

    @defer.inlineCallbacks
    def run(self):
        opts = self.opts
        if opts.seat_urls:
            yield self.start_robots()
            self.t0 = self.reactor.seconds()
        jobs = []
        if opts.kill_pid is not None and opts.kill_at_s is not None:
            jobs.append(self.killer())
        n = 0
        next_at = 0.0
        while True:
            next_at += self.rng.expovariate(opts.rate_per_s)
            if next_at >= opts.duration_s:
                break
            delay = next_at - self.now()
            if delay > 0:
                yield deferLater(self.reactor, delay, lambda: None)
            n += 1
            jobs.append(self.caller(n))
        yield defer.DeferredList(jobs, consumeErrors=False)
        summary = self.summary(n)
        if opts.seat_urls:
            summary["seat_robots"] = len(self.robots)
            summary["seat_robots_logged_in_at_end"] = sum(1 for r in self.robots if r.logged_in)
            if self.stats.kill_at is not None:
                summary["seat_relogin_after_kill_s"] = sorted(
                    round(r.last_login_at - self.stats.kill_at, 3)
                    for r in self.robots
                    if getattr(r, "last_login_at", 0) > self.stats.kill_at
                )
                # seats back by resuming their session (signed token) rather than a password login
                summary["seat_resumed_after_kill"] = sum(
                    1 for r in self.robots
                    if r.last_login_at > self.stats.kill_at and getattr(r, "last_login_kind", "") == "resumed"
                )
            summary["seats_back_after_kill_s"] = (
                None if self.stats.seats_back_after_kill is None else round(self.stats.seats_back_after_kill, 3)
            )
            yield self.stop_robots()
        return summary

    def summary(self, calls: int) -> dict:
        counts: dict[str, int] = {}
        for r in self.stats.results.values():
            counts[r] = counts.get(r, 0) + 1
        lat = sorted(self.stats.answer_latency)

        def pct(p):
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 3) if lat else None

        return {
            "calls": calls,
            "finished": len(self.stats.results),
            "results": counts,
            "lost": counts.get("lost", 0) + (calls - len(self.stats.results)),
            "sessions": self.stats.sessions,
            "refused_connects": self.stats.refused,
            "resumed_sessions": self.stats.resumes,
            "answer_latency_p50_s": pct(0.5),
            "answer_latency_p95_s": pct(0.95),
            "killed_at_s": None if self.stats.kill_at is None else round(self.stats.kill_at - self.t0, 3),
            "failover_health_s": None
            if self.stats.health_ok_after_kill is None
            else round(self.stats.health_ok_after_kill, 3),
            "failover_first_resume_s": None
            if self.stats.first_resumed_after_kill is None
            else round(self.stats.first_resumed_after_kill, 3),
            "calls_detail": self.stats.details,
            "wall_s": round(self.now(), 3),
        }


def run_drill(reactor, opts: DrillOptions) -> defer.Deferred:
    return _Drill(reactor, opts).run()


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m callcenter.state.drill", description=__doc__.split("\n")[0])
    p.add_argument("--acd", action="append", required=True, type=_addr, help="FastAGI host:port, in dialplan order")
    p.add_argument("--agents", type=int, default=8)
    p.add_argument("--rate", type=float, default=4.0, help="calls per second (Poisson)")
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--kill-pid", type=int)
    p.add_argument("--kill-at", type=float)
    p.add_argument("--kill-signal", choices=["KILL", "TERM"], default="KILL",
                   help="SIGKILL (a crash, default) or SIGTERM (a clean stop)")
    p.add_argument("--max-rounds", type=int, default=20,
                   help="rounds over the ACD addresses a caller tries (Wait(0.5) after each) before the fallback")
    p.add_argument("--health", action="append", default=[], help="healthz URL of a standby (failover time)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--uid-base", type=int, default=1_800_000_000)
    p.add_argument("--seat", action="append", default=[], help="wss:// seat URL of each ACD: real seat robots")
    p.add_argument("--seat-password", default="")
    p.add_argument("--seat-cafile")
    args = p.parse_args(argv)
    opts = DrillOptions(
        acds=args.acd,
        agents=args.agents,
        rate_per_s=args.rate,
        duration_s=args.duration,
        kill_pid=args.kill_pid,
        kill_at_s=args.kill_at,
        kill_signal=signal.SIGTERM if args.kill_signal == "TERM" else signal.SIGKILL,
        max_rounds=args.max_rounds,
        health_urls=args.health,
        seed=args.seed,
        uid_base=args.uid_base,
        seat_urls=args.seat,
        seat_password=args.seat_password,
        seat_cafile=args.seat_cafile,
    )

    def go(reactor):
        d = run_drill(reactor, opts)

        def done(summary: dict) -> None:
            sys.stdout.write(json.dumps(summary) + "\n")
            sys.stdout.flush()

        d.addCallback(done)
        return d

    task.react(go)  # exits the process when the drill is over
    return 0


if __name__ == "__main__":
    main()
