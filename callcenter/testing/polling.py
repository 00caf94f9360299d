"""Wait for a condition with a deadline: how our process-level tests wait, never a bare sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# How long a test waits for a child process (an ACD, a server) to be ready.  A deadline catches a
# hang, not slowness: on a CI machine shared by many jobs a cold `callcenter serve` has taken 27 s
# to import and start (load average 21 on 2 cores), so the bound is generous on purpose.
PROCESS_START_S = 120.0


def wait_until(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``condition`` until it is truthy and return its value; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
