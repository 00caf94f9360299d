"""Logging: twisted.logger to stderr, readable lines or JSON lines, numbers masked.

Every message, and every traceback, passes through
:func:`callcenter.masking.mask_text` before it is written, so a caller number
that slips into a log format string still comes out as ``138********``.
Modules log with ``twisted.logger.Logger()``; the stdlib ``logging`` records of
libraries (SQLAlchemy, alembic, redis-py) are bridged into the same stream.

Readable line::

    2026-11-28T13:30:00.123Z info  [callcenter.app] listening: admin HTTP http://127.0.0.1:8080/

JSON line (``--log-json``)::

    {"time": "2026-11-28T13:30:00.123Z", "level": "info", "namespace": "callcenter.app",
     "message": "listening: admin HTTP http://127.0.0.1:8080/"}
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    globalLogBeginner,
)
from zope.interface import implementer

from callcenter.masking import mask_text

__all__ = ["MaskingObserver", "start_logging", "format_line", "format_json"]

_LEVEL_NAMES = {LogLevel.debug: "debug", LogLevel.info: "info", LogLevel.warn: "warn",
                LogLevel.error: "error", LogLevel.critical: "critical"}


def _timestamp(event: dict[str, Any]) -> str:
    t = event.get("log_time") or time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"


def _message(event: dict[str, Any]) -> str:
    text = formatEvent(event)
    failure = event.get("log_failure")
    if failure is not None:
        try:
            text = f"{text}\n{failure.getTraceback()}".rstrip()
        except Exception:  # a broken Failure must not break logging
            text = f"{text}\n{failure!r}"
    return mask_text(text)


def format_line(event: dict[str, Any]) -> str:
    level = _LEVEL_NAMES.get(event.get("log_level"), "info")
    ns = event.get("log_namespace") or "-"
    return f"{_timestamp(event)} {level:<5} [{ns}] {_message(event)}\n"


def format_json(event: dict[str, Any]) -> str:
    record = {
        "time": _timestamp(event),
        "level": _LEVEL_NAMES.get(event.get("log_level"), "info"),
        "namespace": event.get("log_namespace") or "",
        "message": _message(event),
    }
    return json.dumps(record, ensure_ascii=False) + "\n"


@implementer(ILogObserver)
class MaskingObserver:
    """Write each event as one masked line (text or JSON) to ``stream``."""

    def __init__(self, stream: IO[str], *, as_json: bool = False):
        self.stream = stream
        self.format = format_json if as_json else format_line

    def __call__(self, event: dict[str, Any]) -> None:
        try:
            self.stream.write(self.format(event))
            self.stream.flush()
        except Exception:  # never let logging take the process down
            pass


class _ToTwistedHandler(logging.Handler):
    """Bridge stdlib logging records into twisted.logger (same masking, same stream)."""

    _LEVELS = {logging.DEBUG: LogLevel.debug, logging.INFO: LogLevel.info, logging.WARNING: LogLevel.warn,
               logging.ERROR: LogLevel.error, logging.CRITICAL: LogLevel.critical}

    def emit(self, record: logging.LogRecord) -> None:
        level = self._LEVELS.get(record.levelno, LogLevel.info)
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        Logger(namespace=record.name).emit(level, "{text}", text=text)


def start_logging(*, as_json: bool = False, level: str = "info", stream: IO[str] | None = None) -> MaskingObserver:
    """Begin global logging once per process (``callcenter serve`` calls this)."""
    observer = MaskingObserver(stream or sys.stderr, as_json=as_json)
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))
    globalLogBeginner.beginLoggingTo([FilteringLogObserver(observer, [predicate])], redirectStandardIO=False)
    root = logging.getLogger()
    if not any(isinstance(h, _ToTwistedHandler) for h in root.handlers):
        root.addHandler(_ToTwistedHandler())
    root.setLevel(logging.WARNING)
    return observer
