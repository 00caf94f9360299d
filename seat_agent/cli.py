"""The ``seat-agent`` command: ``tui`` for a person, ``robot`` for headless agents.

    seat-agent tui   --url wss://127.0.0.1:8443/seat --cafile .state/tls/dev-cert.pem --agent demo-own-1
    seat-agent robot --url wss://127.0.0.1:8443/seat --cafile .state/tls/dev-cert.pem \\
                     --agents 'demo-own-{1..4}' --password demo-pass --talk-mean 20 --seed 7
"""

from __future__ import annotations

import argparse
import getpass
import os
import random
import sys

__all__ = ["main", "build_parser"]

DEFAULT_URL = os.environ.get("SEAT_URL", "wss://127.0.0.1:8443/seat")
DEFAULT_CAFILE = os.environ.get("SEAT_CAFILE", ".state/tls/dev-cert.pem")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seat-agent", description="Seat client of the callcenter ACD.")
    p.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def common(sp):
        sp.add_argument("--url", default=DEFAULT_URL,
                        help="seat WebSocket (default %(default)s; env SEAT_URL); several, comma-separated: "
                             "the ACDs of a cluster, tried in turn")
        sp.add_argument("--cafile", default=DEFAULT_CAFILE,
                        help="PEM certificate to trust (default %(default)s, the dev certificate of `make run`; "
                             "empty: the system trust store)")

    tui = sub.add_parser("tui", help="terminal UI for an agent")
    common(tui)
    tui.add_argument("--agent", required=True, help="agent id")
    tui.add_argument("--password", default=os.environ.get("SEAT_PASSWORD"),
                     help="password (default: env SEAT_PASSWORD, else asked)")
    tui.set_defaults(func=_tui)

    robot = sub.add_parser("robot", help="headless robot agents (demos, load tests)")
    common(robot)
    # nargs="+": an unquoted demo-own-{1..5} is expanded by bash into five words, a quoted one
    # by expand_agents; both forms, and commas, mean the same agents.
    robot.add_argument("--agents", required=True, nargs="+", metavar="AGENTS",
                       help="agent ids, separated by spaces or commas, or PREFIX{1..N} (e.g. demo-own-{1..5})")
    robot.add_argument("--password", default=os.environ.get("SEAT_PASSWORD", "demo-pass"),
                       help="password of every robot agent (default: env SEAT_PASSWORD, else the demo password)")
    robot.add_argument("--talk-mean", type=float, default=30.0, help="mean talk time in s (demo call control)")
    robot.add_argument("--reject-share", type=float, default=0.0)
    robot.add_argument("--seed", type=int, default=None, help="random seed (reproducible robots)")
    robot.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: run on)")
    robot.add_argument("--report-every", type=float, default=10.0)
    robot.set_defaults(func=_robot)
    return p


def expand_agents(spec: str | list[str]) -> list[str]:
    """``a,b`` or ``demo-own-{1..3}`` (or a list of such words) -> agent ids, without repeats."""
    import re

    out: list[str] = []
    words = [spec] if isinstance(spec, str) else spec
    for part in (p for word in words for p in word.split(",")):
        part = part.strip()
        m = re.fullmatch(r"(.*)\{(\d+)\.\.(\d+)\}(.*)", part)
        if m:
            out += [f"{m[1]}{i}{m[4]}" for i in range(int(m[2]), int(m[3]) + 1)]
        elif part:
            out.append(part)
    return list(dict.fromkeys(out))


def main(argv: list[str] | None = None) -> int:
    from callcenter.cli_errors import run_command

    args = build_parser().parse_args(argv)
    return run_command("seat-agent", args.func, args, debug=getattr(args, "debug", False))


def _cafile(args) -> str | None:
    if not args.cafile:
        return None
    if not os.path.exists(args.cafile):
        print(f"seat-agent: {args.cafile} does not exist; start the ACD first (`make run` writes it) "
              f"or pass --cafile", file=sys.stderr)
        raise SystemExit(2)
    return args.cafile


def _tui(args) -> int:
    from callcenter.extras import require

    require("textual", extra="seat", what="seat-agent tui")
    from .tui import run_tui

    password = args.password or getpass.getpass(f"password for {args.agent}: ")
    return run_tui(args.url, args.agent, password, cafile=_cafile(args))


def _robot(args) -> int:
    from twisted.internet import reactor, task
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from .client import SeatClient
    from .robot import Behaviour, Robot

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
    cafile = _cafile(args)
    master = random.Random(args.seed)
    behaviour = Behaviour(talk_mean_s=args.talk_mean, reject_share=args.reject_share)
    robots = []
    urls = [u.strip() for u in args.url.split(",") if u.strip()]
    for agent_id in expand_agents(args.agents):
        rng = random.Random(master.random())
        client = SeatClient(urls if len(urls) > 1 else urls[0], agent_id, args.password, reactor=reactor, cafile=cafile, rng=rng)
        robots.append(Robot(client, rng=rng, clock=reactor, behaviour=behaviour, record_latency=True))
    if not robots:
        print("seat-agent robot: no agents given", file=sys.stderr)
        return 2

    def report():
        seats = [r.seat for r in robots]
        states: dict[str, int] = {}
        for s in seats:
            states[s.state if s.logged_in else ("ended: " + s.ended if s.ended else "offline")] = \
                states.get(s.state if s.logged_in else ("ended: " + s.ended if s.ended else "offline"), 0) + 1
        calls = sum(r.stats.answered for r in robots)
        wraps = sum(r.stats.wrapups for r in robots)
        print(f"robots: {len(robots)} | " + ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
              + f" | calls answered {calls}, wrap-ups {wraps}", flush=True)
        offline = [s for s in seats if not s.logged_in and not s.ended]
        if offline and offline[0].status:
            print(f"  e.g. {offline[0].agent_id}: {offline[0].status}", flush=True)

    def start():
        for r in robots:
            r.seat.start()

    reporter = task.LoopingCall(report)
    reactor.callWhenRunning(start)
    reactor.callWhenRunning(reporter.start, args.report_every, now=False)

    def shutdown():
        if reporter.running:
            reporter.stop()
        report()
        for r in robots:
            r.stop()
            if r.seat.logged_in:
                r.seat.logout()  # a clean goodbye: no grace period for the ACD to wait out
        from twisted.internet import defer

        return defer.DeferredList([r.seat.stop() for r in robots])

    reactor.addSystemEventTrigger("before", "shutdown", shutdown)
    if args.duration:
        reactor.callLater(args.duration, reactor.stop)
    reactor.run()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
