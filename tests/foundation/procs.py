"""Process checks for the foundation tests (Linux /proc)."""

from __future__ import annotations

import os
from pathlib import Path

from callcenter.testing.polling import wait_until  # noqa: F401  (re-exported for the foundation tests)


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def redis_listening_on(port: int) -> list[int]:
    """Pids of live redis-server processes whose title names ``:port`` (Redis sets its title)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "redis-server" in cmd and f":{port}" in cmd and alive(int(entry)):
            found.append(int(entry))
    return found
