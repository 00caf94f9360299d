"""Shared set-up of the call-control tests: a real ACD (real Engine on the real reactor,
the real FastAGI server and relay port on loopback) and Asterisk's side played by
callcenter.testing.agi_peer against it, over real sockets and real pipes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater

from callcenter.config import parse_config
from callcenter.engine import Engine
from callcenter.fastagi.service import FastAgiSubsystem
from callcenter.testing.agi_peer import Agent, ClassicAgiCall, FakeChannel, FastAgiCall, environment

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "agi_scripts"
SECRET = "test-agi-secret"


TRANSCRIPTS = Path(__file__).resolve().parent / "transcripts"


def reference_dir() -> Path:
    """The Asterisk 22.10.1 AGI transcripts the tests replay, carried by the repository
    (tests/agi/transcripts/PROVENANCE.md): a fresh clone needs nothing beside it."""
    return TRANSCRIPTS


def agi_config(**acd):
    return parse_config(
        {
            "acd": {"agi_secret": SECRET, "caller_hash_key": "k", **acd},
            "categories": [{"name": "other"}, {"name": "medical", "priority": 5}],
            "pools": [
                {"name": "own", "kind": "own", "tier": 0, "wrapup_s": 0.3, "ring_timeout_s": 3,
                 "max_no_answer": 3},
                {"name": "remote", "kind": "remote", "tier": 1, "wrapup_s": 0.3, "ring_timeout_s": 3},
            ],
            "queues": [{"name": "hotline-12345", "pools": ["own", "remote"], "tiers": [{"tier": 1, "after_s": 0}],
                        "announce_every_s": 0.4, "max_wait_s": 60, "aht_s": 60,
                        "emergency_plans": {"surge": {"announcement": "cc-emergency-notice"}}}],
        },
        env={},
    )


class _FakeAcd:
    def __init__(self, config, engine):
        self.config = config
        self.engine = engine
        self.reactor = reactor
        self.records = Records()


class Records:
    """Stands in for the records writer's one method call control uses."""

    def __init__(self):
        self.registered: list[tuple[str, str]] = []

    def call_registered(self, call_id, caller_hash, caller_masked=""):
        self.registered.append((call_id, caller_hash))
        self.masked = getattr(self, "masked", {})
        self.masked[call_id] = caller_masked


class AcdWorld:
    """One ACD: engine + FastAGI/relay listeners on free loopback ports; outcomes recorded."""

    def __init__(self, config=None, engine=None, *, resume_grace_s: float = 0.5, relay_port: int = 0):
        self.config = config or agi_config(listen={"host": "127.0.0.1", "fastagi_port": 0})
        self.engine = engine or Engine(self.config, reactor)
        self.acd = _FakeAcd(self.config, self.engine)
        self.sub = FastAgiSubsystem(self.acd, relay_port=relay_port, resume_grace_s=resume_grace_s)
        self.ended: dict[str, list] = {}
        self.events: list = []
        self.engine.subscribe(self._event)

    def _event(self, ev):
        self.events.append(ev)
        if ev.kind == "CallEnded":
            self.ended.setdefault(ev.call_id, []).append(ev)

    def start(self):
        self.sub.start()
        return self

    @property
    def port(self) -> int:
        return self.sub.port

    @property
    def relay_address(self) -> str:
        return f"127.0.0.1:{self.sub.relay_port}"

    def stop(self):
        return self.sub.stop()

    def agent(self, agent_id: str, pool: str = "own", endpoint: str | None = None, ready: bool = True):
        self.engine.agent_logged_in(agent_id, pool, endpoint=endpoint or f"PJSIP/{agent_id}")
        if ready:
            self.engine.agent_ready(agent_id)

    def reserved_agents(self) -> list[str]:
        return [a for a in self.engine.agents() if self.engine.agent_info(a)["state"] in ("offered", "on-call")]

    def outcome(self, call_id: str) -> str:
        ends = self.ended.get(call_id, [])
        assert len(ends) == 1, f"call {call_id}: expected exactly one outcome, got {[e.outcome for e in ends]}"
        return ends[0].outcome


def answered_hook(world_or_port):
    """The Dial U() gosub: a one-shot FastAGI session 'answered?call=..&agent=..' (dialplan [cc-agent-answered])."""

    def hook(call_id, agent_id):
        port = world_or_port() if callable(world_or_port) else world_or_port
        ch = FakeChannel(reactor)
        script = f"answered?call={call_id}&agent={agent_id}"
        env = environment(request=f"agi://127.0.0.1:{port}/{script}", uniqueid="1.1",
                          network_script=script)
        return FastAgiCall(reactor, ch, env).connect("127.0.0.1", port)

    return hook


_uid = [1795869867000]


def new_uid() -> str:
    _uid[0] += 1
    return f"{_uid[0] // 1000}.{_uid[0] % 1000}"


def fastagi_call(world: AcdWorld, *, agents=None, request: str = "hotline?queue=hotline-12345", args=(),
                 callerid="13812345678", port=None, split=False, garbage=None, **chan_kw):
    """Start one FastAGI call; returns (channel, deferred firing with the CallRecord, uniqueid)."""
    uid = new_uid()
    port = port or world.port
    ch = FakeChannel(reactor, agents=agents or {}, answered_hook=answered_hook(lambda: world.port), **chan_kw)
    env = environment(request=f"agi://127.0.0.1:{port}/{request}", uniqueid=uid, callerid=callerid,
                      network_script=request, args=args)
    call = FastAgiCall(reactor, ch, env, split=split, garbage=garbage)
    return ch, call.connect("127.0.0.1", port).addCallback(_all_lines_read), uid


def _all_lines_read(record):
    """Every line the ACD wrote was run: none pipelined at idle (real res_agi never reads those, point 14)."""
    assert record.unread == [], f"lines Asterisk would never read (pipelined): {record.unread}"
    return record


def classic_call(world: AcdWorld | None, *, addresses: str | None = None, agents=None, script="hotline_inbound.py",
                 request: str = "hotline?queue=hotline-12345", extra_args=(), callerid="13812345678",
                 answered_port=None, **chan_kw):
    """Fork the real pyst2 script as Asterisk would; returns (channel, deferred CallRecord, uniqueid)."""
    uid = new_uid()
    addresses = addresses if addresses is not None else world.relay_address
    hook_port = answered_port or (lambda: world.port)
    ch = FakeChannel(reactor, agents=agents or {}, answered_hook=answered_hook(hook_port), **chan_kw)
    path = str(SCRIPTS / script)
    args = (addresses, request, *extra_args)
    # the documented invocation (docs/agi.md): AGI(${CC_PYTHON},<script>,<relay>,<request>,...), the
    # virtualenv's python as the program; Asterisk then passes the script as agi_arg_1 and argv[1]
    python = agi_python()
    env = environment(request=python, uniqueid=uid, callerid=callerid, args=(path, *args))
    proc_env = dict(os.environ, CALLCENTER_AGI_SECRET=SECRET)
    call = ClassicAgiCall(reactor, ch, env, [python, path, *args], env=proc_env)
    return ch, call.start().addCallback(_all_lines_read), uid


def agi_python() -> str:
    """The interpreter the dialplan's CC_PYTHON names: the project's virtualenv python."""
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


@defer.inlineCallbacks
def until(predicate, timeout: float = 30.0, what: str = ""):
    """Poll ``predicate`` on the real reactor until it holds, or fail after ``timeout``."""
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        yield deferLater(reactor, 0.01, lambda: None)


def cancel_leftover_timers():
    """Engine timers (announce, max wait, wrap-up) of calls still in an engine at teardown."""
    for dc in reactor.getDelayedCalls():
        if dc.active():
            dc.cancel()


__all__ = ["Agent", "AcdWorld", "agi_config", "fastagi_call", "classic_call", "until", "reference_dir",
           "cancel_leftover_timers", "SECRET", "new_uid"]
