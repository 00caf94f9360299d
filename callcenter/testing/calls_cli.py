"""``callcenter call``: place test calls into a running ACD over its FastAGI port, without Asterisk.

Each call is Asterisk's side played by the AGI peer harness (:mod:`callcenter.testing.agi_peer`,
held to the recorded Asterisk 22 behaviour): the caller's channel connects to
``agi://HOST:PORT/hotline``, waits while the ACD holds it, and when the ACD dials an agent's
endpoint the fake phone rings, answers, runs the ``U()`` gosub (the ``answered`` AGI, as the
dialplan does) and hangs up after the talk time.  A caller whose call no agent answered within
``--patience`` seconds hangs up.  So a newcomer sees a call reach a robot agent
(``seat-agent robot``) with nothing but ``make run``::

    .venv/bin/callcenter call --count 20 --rate 1 --patience 30

One line per call as it ends, then a summary; exit status 1 when a call could not reach the ACD
or did not end within the run's deadline.  Caller numbers are synthetic but printed masked, like
every caller number the project logs.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["register", "PlannedCall", "plan_calls", "describe", "summary_line"]

DEFAULT_ACD = "127.0.0.1:4573"  # listen.fastagi_port of deploy/callcenter.yaml (`make run`)
MAX_CALLS = 10_000


@dataclass(frozen=True)
class PlannedCall:
    n: int  # 1-based
    at_s: float  # seconds after the start
    caller: str


@dataclass
class Outcome:
    """How one call ended, from the caller's side."""

    result: str  # CC_RESULT the ACD set, "gave-up", "no-acd" or "unfinished"
    agent: str | None = None
    waited_s: float | None = None  # until an agent answered, or until the caller hung up
    details: dict = field(default_factory=dict)


def plan_calls(count: int, rate: float, seed: int) -> list[PlannedCall]:
    """Evenly spaced arrivals (1/rate apart) with seeded synthetic mobile numbers (pure)."""
    rng = random.Random(seed)
    return [PlannedCall(i + 1, i / rate, "1" + rng.choice("3456789") + "".join(rng.choice("0123456789")
                                                                             for _ in range(9)))
            for i in range(count)]


def mask(number: str) -> str:
    return number[:3] + "****" + number[-4:] if len(number) >= 8 else "****"


def describe(call: PlannedCall, total: int, outcome: Outcome) -> str:
    """One readable line per ended call (pure)."""
    width = len(str(total))
    head = f"call {call.n:>{width}}/{total} {mask(call.caller)}"
    if outcome.result == "answered" and outcome.agent:
        return f"{head}  answered by {outcome.agent} after {outcome.waited_s:.1f} s"
    if outcome.result == "gave-up":
        return f"{head}  caller hung up after {outcome.waited_s:.1f} s: no agent answered (--patience)"
    if outcome.result == "no-acd":
        return f"{head}  could not reach the ACD (AGISTATUS=FAILURE): is `callcenter serve` running?"
    if outcome.result == "unfinished":
        return f"{head}  still running at the deadline: hung up"
    extra = f" (agent {outcome.agent})" if outcome.agent else ""
    return f"{head}  {outcome.result}{extra}"


def summary_line(acd: str, outcomes: list[Outcome]) -> str:
    counts = Counter(o.result for o in outcomes)
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    waits = [o.waited_s for o in outcomes if o.result == "answered" and o.waited_s is not None]
    mean = f"; mean wait to answer {sum(waits) / len(waits):.1f} s" if waits else ""
    return f"{len(outcomes)} call(s) to agi://{acd}/hotline: {parts or 'none'}{mean}"


# -- command line -------------------------------------------------------------------------------------
def _bounded(lo: float, hi: float, kind=float):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (isinstance(value, int) or math.isfinite(value)) or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text} is outside {lo:g}..{hi:g}")
        return value
    return parse


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "call", help="place test calls into a running ACD over FastAGI (Asterisk played by the AGI peer harness)",
        description=__doc__.split("\n\n")[0])
    p.add_argument("--acd", type=_address, default=_address(DEFAULT_ACD), metavar="HOST:PORT",
                   help=f"the ACD's FastAGI address (default: {DEFAULT_ACD}, as `make run` listens)")
    p.add_argument("--count", type=_bounded(1, MAX_CALLS, int), default=20, help="calls to place (default: 20)")
    p.add_argument("--rate", type=_bounded(0.01, 100), default=1.0, help="new calls per second (default: 1)")
    p.add_argument("--queue", default="hotline-12345", help="queue (default: %(default)s)")
    p.add_argument("--category", default="", help="call category, the dialplan's first AGI argument")
    p.add_argument("--patience", type=_bounded(0.1, 3600), default=30.0,
                   help="a caller no agent answered hangs up after this many seconds (default: 30)")
    p.add_argument("--answer-after", type=_bounded(0, 60), default=1.0,
                   help="seconds an agent's phone rings before it answers (default: 1)")
    p.add_argument("--talk", type=_bounded(0, 3600), default=10.0,
                   help="seconds the agent talks before hanging up (default: 10)")
    p.add_argument("--seed", type=int, default=1, help="seed of the synthetic caller numbers (default: 1)")
    p.set_defaults(func=_call)


def _call(args: argparse.Namespace) -> int:
    from twisted.internet import task

    return task.react(_run, [args])


def _run(reactor, args):
    from twisted.internet import defer

    from callcenter.testing.agi_peer import Agent, FakeChannel, FastAgiCall, environment

    host, port = args.acd
    acd = f"{host}:{port}"
    plan = plan_calls(args.count, args.rate, args.seed)
    phone = Agent(answer_after=args.answer_after, talk=args.talk)
    script = f"hotline?queue={args.queue}"
    outcomes: list[Outcome] = []
    running: dict[int, FakeChannel] = {}
    finished = defer.Deferred()
    start = reactor.seconds()
    print(f"placing {args.count} call(s) into agi://{acd}/hotline, {args.rate:g} per second "
          f"(patience {args.patience:g} s, talk {args.talk:g} s)", flush=True)

    def place(call: PlannedCall) -> None:
        t0 = reactor.seconds()
        outcome = Outcome(result="?")
        state = {"gave_up": False}

        def answered_hook(call_id: str, agent_id: str):
            # Dial's U() gosub on the agent leg: the dialplan's `answered` AGI ([cc-agent-answered]).
            outcome.agent, outcome.waited_s = agent_id, reactor.seconds() - t0
            if patience.active():
                patience.cancel()
            req = f"answered?call={call_id}&agent={agent_id}"
            # the agent leg is a channel of its own: a uniqueid no caller's channel has
            env = environment(request=f"agi://{acd}/{req}", uniqueid=f"{int(t0)}.{MAX_CALLS + call.n}",
                              network_script=req)
            return FastAgiCall(reactor, FakeChannel(reactor), env).connect(host, port)

        def give_up():
            state["gave_up"] = True
            outcome.waited_s = reactor.seconds() - t0
            channel.hang_up()

        uid = f"{int(t0)}.{call.n}"
        channel = FakeChannel(reactor, default_agent=phone, answered_hook=answered_hook)
        env = environment(request=f"agi://{acd}/{script}", uniqueid=uid, callerid=call.caller,
                          network_script=script, args=(args.category,) if args.category else ())
        patience = reactor.callLater(args.patience, give_up)
        running[call.n] = channel

        def ended(record):
            if patience.active():
                patience.cancel()
            running.pop(call.n, None)
            if record.agistatus == "FAILURE" and not record.commands:
                outcome.result = "no-acd"
            elif state["gave_up"] and outcome.agent is None:
                outcome.result = "gave-up"
            else:
                outcome.result = record.variables.get("CC_RESULT") or ("hangup" if record.dead else record.agistatus)
            outcomes.append(outcome)
            print(describe(call, args.count, outcome), flush=True)
            if len(outcomes) == len(plan) and not finished.called:
                finished.callback(None)

        FastAgiCall(reactor, channel, env).connect(host, port).addCallback(ended)

    for call in plan:
        reactor.callLater(call.at_s, place, call)

    # Every call ends by itself (patience, then talk); the deadline only stops a run that hangs.
    deadline_s = plan[-1].at_s + args.patience + args.answer_after + args.talk + 60

    def overdue():
        for channel in list(running.values()):
            channel.hang_up()
        if not finished.called:
            finished.callback(None)

    watchdog = reactor.callLater(deadline_s, overdue)

    @defer.inlineCallbacks
    def report():
        yield finished
        if watchdog.active():
            watchdog.cancel()
        missing = len(plan) - len(outcomes)
        outcomes.extend(Outcome(result="unfinished") for _ in range(missing))
        print(summary_line(acd, outcomes) + f" in {reactor.seconds() - start:.0f} s", flush=True)
        bad = sum(o.result in ("no-acd", "unfinished") for o in outcomes)
        if bad:
            print(f"callcenter call: {bad} call(s) did not reach the ACD or did not end", file=sys.stderr)
            raise SystemExit(1)

    return report()
