"""One running ACD per state directory: an flock'ed pid file.

The kernel drops an flock when its process dies (even by SIGKILL), so a stale
pid file left behind by a crash never blocks the next start.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["AlreadyRunning", "PidLock"]


class AlreadyRunning(Exception):
    """Another process holds the lock on this state directory."""


class PidLock:
    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunning(
                f"another callcenter (pid {holder}) is already running with state dir {self.path.parent}; "
                "stop it first or set a different acd.state_dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None
