"""Shared helpers of the records tests: a small config, a call-run driver, a log capture."""

from __future__ import annotations

from twisted.logger import Logger, LogLevel, formatEvent

from callcenter.config import parse_config
from callcenter.engine import Engine
from callcenter.engine import events as ev
from callcenter.masking import caller_hash
from callcenter.testing.polling import wait_until

HASH_KEY = "test-key"


def small_config():
    return parse_config(
        {
            "categories": [{"name": "urgent", "priority": 10, "urgent": True}, {"name": "other", "priority": 0}],
            "pools": [
                {"name": "own", "kind": "own", "tier": 0, "wrapup_s": 5, "ring_timeout_s": 10},
                {"name": "lend", "kind": "borrowed", "tier": 1, "wrapup_s": 5, "ring_timeout_s": 10,
                 "max_share": 0.5, "home_waiting_max": 3},
            ],
            "queues": [
                {"name": "hotline", "pools": ["own", "lend"], "tiers": [{"tier": 1, "after_s": 20}],
                 "max_wait_s": 300, "emergency_plans": {"surge": {"all_tiers_at_once": True}}},
            ],
        },
        env={},
    )


class LogCapture:
    """A twisted Logger whose events are kept, to assert that failures are logged loudly."""

    def __init__(self):
        self.events: list[dict] = []
        self.log = Logger(namespace="callcenter.records", observer=self.events.append)

    def at(self, level: LogLevel) -> list[str]:
        return [formatEvent(e) for e in list(self.events) if e.get("log_level") == level]

    def errors(self) -> list[str]:
        return self.at(LogLevel.error) + self.at(LogLevel.critical)


class CallRun:
    """Drives whole calls through a real Engine on a task.Clock; one agent, calls one after another.

    Every 5th call is abandoned while ringing; the rest are answered, talk 30 s and
    are ended by the caller (or, every 3rd, by the agent); wrap-up then runs out.
    """

    def __init__(self, clock, config=None, writer=None, engine=None):
        self.clock = clock
        self.config = config or small_config()
        self.engine = engine or Engine(self.config, clock)
        self.events: list[ev.Event] = []
        self.engine.subscribe(self.events.append)
        self.writer = writer
        if writer is not None:
            self.engine.subscribe(writer.event_emitted)
        self.engine.agent_logged_in("a1", "own", endpoint="PJSIP/1001")
        self.engine.agent_ready("a1")
        self.outcomes: dict[str, str] = {}
        self.n = 0

    def number(self, i: int) -> str:
        return f"138{i:08d}"

    def run(self, count: int) -> list[str]:
        ids = []
        for _ in range(count):
            i = self.n
            self.n += 1
            cid = f"call-{i}"
            if self.writer is not None:
                self.writer.call_registered(cid, caller_hash(self.number(i), HASH_KEY))
            out = self.engine.call_arrived(cid, "hotline", caller_masked=f"138****{i % 10000:04d}", category="other")
            offered = [e for e in out if isinstance(e, ev.CallOffered)]
            assert offered, f"{cid} was not offered: {[e.kind for e in out]}"
            self.clock.advance(2)
            if i % 5 == 4:
                self.engine.caller_hung_up(cid)
                self.outcomes[cid] = ev.OUTCOME_ABANDONED
            else:
                self.engine.offer_answered(cid, offered[0].agent_id)
                self.clock.advance(30)
                self.engine.call_completed(cid, by="agent" if i % 3 == 0 else "caller")
                self.outcomes[cid] = ev.OUTCOME_ANSWERED
            self.clock.advance(5)  # wrap-up (5 s) runs out: the agent is ready again
            self.clock.advance(1)
            ids.append(cid)
        return ids


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    """Poll ``predicate`` until true or fail after ``timeout`` (for the writer's own thread)."""
    return wait_until(predicate, timeout, what, interval=0.01)
