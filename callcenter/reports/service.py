"""The reports subsystem of ``callcenter serve``: builds the configured reports on schedule.

Building a day's report reads and segments hundreds of thousands of rows: seconds of CPU that
must not share the ACD's interpreter (the GIL would stall the reactor), so each report is a
child process (``callcenter report ...``) spawned through the reactor; the ACD only keeps the
timer and logs each outcome.  One report at a time: a report due while another runs waits for it.
The schedule is :mod:`callcenter.reports.schedule` on the injected clock.
"""

from __future__ import annotations

import sys
from collections import deque
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from twisted.internet import protocol
from twisted.logger import Logger

from .schedule import covers, next_runs

log = Logger(namespace="callcenter.reports")

MAX_OUTPUT = 64 * 1024  # bytes of a child's output kept for the log


def report_argv(kind: str, at: float, cfg, *, out_dir: Path, database_url: str, config_path: str | None) -> list[str]:
    """The command line of the report due at ``at`` (its period: :func:`covers`)."""
    start, end = covers(kind, at, cfg.zone)
    tz = ZoneInfo(cfg.zone)
    s = datetime.fromtimestamp(start, tz)
    argv = [sys.executable, "-m", "callcenter.cli", "report", kind, "--date", s.date().isoformat(),
            "--zone", cfg.zone, "--out", str(out_dir), "--database", database_url, "--keep-days", str(cfg.keep_days),
            "--min-count", str(cfg.min_count)]
    if config_path:
        argv += ["--config", config_path]
    if kind == "hourly":
        argv += ["--hour", str(s.hour)]
        if cfg.webhook_url:
            argv += ["--webhook", cfg.webhook_url]
    else:
        e = datetime.fromtimestamp(end, tz)
        if e.date() == s.date():  # a report before midnight covers the day so far
            argv += ["--until", e.strftime("%H:%M")]
    return argv


class _Child(protocol.ProcessProtocol):
    def __init__(self, done):
        self.done = done
        self.output = bytearray()

    def outReceived(self, data: bytes) -> None:
        if len(self.output) < MAX_OUTPUT:
            self.output += data[: MAX_OUTPUT - len(self.output)]

    errReceived = outReceived

    def processEnded(self, reason) -> None:
        self.done(getattr(reason.value, "exitCode", None), bytes(self.output))


class ReportsSubsystem:
    def __init__(self, acd, spawn=None):
        self.acd = acd
        self.cfg = acd.config.reports
        self.clock = acd.reactor
        self.out_dir = Path(self.cfg.out_dir).expanduser() if self.cfg.out_dir else acd.state_dir / "reports"
        self._spawn = spawn or (lambda argv, proto: acd.reactor.spawnProcess(proto, argv[0], argv, env=None))
        self._timer = None
        self._queue: deque[list[str]] = deque()
        self._running = False
        self.listening: list[tuple[str, str]] = []
        self.built: list[tuple[list[str], int | None]] = []  # (argv, exit code) of the reports run

    def start(self):
        if self.cfg.enabled:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.listening = [("reports", str(self.out_dir))]
            self._arm()

    def _arm(self) -> None:
        now = self.clock.seconds()
        at, kinds = next_runs(now, self.cfg.daily_at, self.cfg.hourly, self.cfg.zone)
        if kinds:
            self._timer = self.clock.callLater(at - now, self._due, at, kinds)

    def _due(self, at: float, kinds: list[str]) -> None:
        self._timer = None
        for kind in kinds:
            self._queue.append(report_argv(kind, at, self.cfg, out_dir=self.out_dir,
                                           database_url=self.acd.database_url,
                                           config_path=str(self.acd.config_path) if self.acd.config_path else None))
        self._run_next()
        self._arm()

    def _run_next(self) -> None:
        if self._running or not self._queue:
            return
        argv = self._queue.popleft()
        self._running = True
        log.info("reports: building {what}", what=" ".join(argv[3:6]))
        self._spawn(argv, _Child(lambda code, out: self._ended(argv, code, out)))

    def _ended(self, argv: list[str], code: int | None, output: bytes) -> None:
        self._running = False
        self.built.append((argv, code))
        text = output.decode("utf-8", "replace").strip()
        if code == 0:
            log.info("reports: {what} done: {out}", what=" ".join(argv[3:6]), out=(text.splitlines() or [""])[-1])
        else:
            log.error("reports: {what} failed (exit {code}): {out}", what=" ".join(argv[3:6]), code=code,
                      out=text[-2000:])
        self._run_next()

    def stop(self):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._queue.clear()


def make_subsystem(acd) -> ReportsSubsystem:
    return ReportsSubsystem(acd)
