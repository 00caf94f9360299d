"""Admission control: shed new calls past the ACD's measured capacity (pure, injected clock).

Two limits from the config: ``acd.max_calls`` (calls held at once) and
``acd.max_setups_per_s`` (a token bucket refilled on the injected clock).  A
call refused here hears a short apology and goes to the dialplan fallback
(CC_RESULT=shed) before it costs the engine anything, so overload never
builds a backlog: the bucket refills by itself and admission resumes as soon
as the load drops.  (Asterisk's own app_queue wedged for good at 80 set-ups/s
on this project's machines: the point is to fail fast instead.)
"""

from __future__ import annotations


class Admission:
    def __init__(self, clock, *, max_calls: int, max_setups_per_s: float, burst_s: float = 0.5):
        self.clock = clock
        self.max_calls = max_calls
        self.rate = float(max_setups_per_s)
        self.burst = max(1.0, self.rate * burst_s)
        self._tokens = self.burst
        self._at = clock.seconds()
        self.admitted = 0
        self.shed = 0

    def _refill(self) -> None:
        now = self.clock.seconds()
        if now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def admit(self, active_calls: int) -> bool:
        """One new call: True to take it, False to shed it (and count it)."""
        self._refill()
        if active_calls >= self.max_calls or self._tokens < 1.0:
            self.shed += 1
            return False
        self._tokens -= 1.0
        self.admitted += 1
        return True
