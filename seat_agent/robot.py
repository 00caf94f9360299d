"""Headless seat agents for demos and load tests (``seat-agent robot``).

A :class:`Robot` drives one :class:`~seat_agent.client.SeatSession`: it goes
ready after login, accepts an offer after a short think time (or rejects a
share of them), and after the call files a wrap-up and ends it.  Talk time
matters only when the ACD runs *demo call control* (``hello.demo_call_control``,
no Asterisk): then the robot itself ends the conversation after a talk time
drawn from a log-normal distribution.  With real call control (FastAGI +
Asterisk, or the AGI peer harness) the phone side decides when a call ends.

All randomness comes from an injected ``random.Random`` and all timing from
an injected clock, so a robot is reproducible under ``task.Clock``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from .client import SeatSession

__all__ = ["Behaviour", "Robot", "RobotStats"]

DISPOSITIONS = ("resolved", "information-given", "ticket-opened", "referred")


@dataclass(frozen=True)
class Behaviour:
    think_s: tuple[float, float] = (0.2, 1.5)  # offer -> accept, uniform
    reject_share: float = 0.0
    talk_mean_s: float = 30.0  # log-normal talk time (demo call control only)
    talk_sigma: float = 0.5
    wrapup_s: tuple[float, float] = (1.0, 4.0)  # call end -> wrap-up filed and ended, uniform
    kb_share: float = 0.2  # share of calls on which the robot looks something up

    def talk_time(self, rng: random.Random) -> float:
        mu = math.log(self.talk_mean_s) - self.talk_sigma ** 2 / 2  # so the mean is talk_mean_s
        return rng.lognormvariate(mu, self.talk_sigma)


@dataclass
class RobotStats:
    offers: int = 0
    accepted: int = 0
    rejected: int = 0
    answered: int = 0
    wrapups: int = 0
    errors: int = 0
    resumes: int = 0
    latencies_s: list = field(default_factory=list)  # offer offered_at -> received (same-host clocks)


class Robot:
    def __init__(self, session: SeatSession, *, rng: random.Random, clock: Any, behaviour: Behaviour | None = None,
                 wall: Any = None, record_latency: bool = False):
        self.seat = session
        self.rng = rng
        self.clock = clock
        self.behaviour = behaviour or Behaviour()
        self.wall = wall or clock  # the clock the ACD's offered_at is on
        self.record_latency = record_latency
        self.stats = RobotStats()
        self._timers: list = []
        session.add_listener(self._heard)

    def _later(self, delay: float, fn, *args) -> None:
        self._timers = [t for t in self._timers if t.active()]
        self._timers.append(self.clock.callLater(delay, self._safely, fn, *args))

    def _safely(self, fn, *args) -> None:
        try:
            fn(*args)
        except ConnectionError:
            pass  # the link dropped; the session resumes and we carry on from its state
        except ValueError:
            pass  # the offer or call went away meanwhile

    def stop(self) -> None:
        for t in self._timers:
            if t.active():
                t.cancel()
        self._timers = []

    def _heard(self, kind: str, msg: Any) -> None:
        seat, b = self.seat, self.behaviour
        if kind in ("login_ok", "resumed"):
            if kind == "resumed":
                self.stats.resumes += 1
            if seat.state == "not-ready":
                self._later(0.0, seat.ready)
            elif seat.state == "offered" and seat.offer is not None:
                self._offered(seat.offer)
            elif seat.state == "wrap-up":
                self._later(self.rng.uniform(*b.wrapup_s), self._wrap_up, seat.call_id or seat.last_call_id)
        elif kind == "offer":
            self._offered(msg)
        elif kind == "call_answered":
            self.stats.answered += 1
            if seat.hello is not None and seat.hello.demo_call_control:
                self._later(b.talk_time(self.rng), seat.hangup, msg.call_id)
            if self.rng.random() < b.kb_share:
                self._later(1.0, lambda: seat.kb_search(self.rng.choice(["fever", "mask", "wages", "clinic"]))
                            .addErrback(lambda f: None))
        elif kind == "call_ended":
            self._later(self.rng.uniform(*b.wrapup_s), self._wrap_up, msg.call_id)
        elif kind == "error":
            self.stats.errors += 1

    def _offered(self, offer) -> None:
        self.stats.offers += 1
        if self.record_latency:
            self.stats.latencies_s.append(self.wall.seconds() - offer.offered_at)
        if self.rng.random() < self.behaviour.reject_share:
            self.stats.rejected += 1
            self._later(self.rng.uniform(*self.behaviour.think_s), self.seat.reject, offer.call_id)
        else:
            self.stats.accepted += 1
            self._later(self.rng.uniform(*self.behaviour.think_s), self.seat.accept, offer.call_id)

    def _wrap_up(self, call_id: str | None) -> None:
        seat = self.seat
        if call_id is None or seat.state != "wrap-up":
            return
        d = seat.wrapup(self.rng.choice(DISPOSITIONS), "filed by a robot", {"source": "robot"}, call_id=call_id)
        d.addCallbacks(lambda _: self._wrapped(), lambda f: None)

    def _wrapped(self) -> None:
        self.stats.wrapups += 1
        if self.seat.state == "wrap-up":
            self.seat.end_wrapup()
