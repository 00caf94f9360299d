"""Tracebacks never reach a CLI user: each error is one line saying what to do.

:func:`run_command` wraps a command of an entry point (``callcenter``,
``seat-agent``).  Expected errors (a bad config, a file that cannot be read or
written, a database that cannot be reached, input we refuse) print one line and
exit 1; anything else is our bug: one line naming it, a hint to re-run with
``--debug`` (or ``CALLCENTER_DEBUG=1``) for the traceback, exit 70 (EX_SOFTWARE).
Every line passes through :func:`callcenter.masking.mask_text`, like the logs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import IO, Any

from callcenter.masking import mask_text

__all__ = ["run_command", "EXIT_BUG", "one_line"]

EXIT_BUG = 70  # sysexits.h EX_SOFTWARE
MAX_LINE_CHARS = 300


def one_line(text: str) -> str:
    """First line of ``text``, cut short, control characters shown escaped, numbers masked."""
    first = (text.strip().splitlines() or [""])[0]
    first = first.encode("unicode_escape").decode("ascii") if not first.isprintable() else first
    if len(first) > MAX_LINE_CHARS:
        first = first[:MAX_LINE_CHARS] + "..."
    return mask_text(first)


def _expected_message(exc: BaseException) -> str | None:
    """The one line for an error we expect from users' input or their machine; None: a bug."""
    from callcenter.config import ConfigError

    if isinstance(exc, ConfigError):
        issues = "; ".join(str(i) for i in exc.issues[:3]) + ("; ..." if len(exc.issues) > 3 else "")
        return f"{exc.source}: {issues} (`callcenter config check FILE` lists every problem)"
    if isinstance(exc, UnicodeError):
        return f"{exc}: the input is not UTF-8 text"
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return f"{where}{exc.strerror or exc}: check the path and its permissions"
    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:  # pragma: no cover - sqlalchemy is a dependency
        SQLAlchemyError = ()  # type: ignore[assignment]  # noqa: N806
    if isinstance(exc, SQLAlchemyError):
        return f"database error: {getattr(exc, 'orig', None) or exc}: check the database URL and that it runs"
    return None


def run_command(prog: str, func: Callable[[Any], Any], args: Any, *, debug: bool = False,
                stream: IO[str] | None = None) -> int:
    """Run ``func(args)``; return its exit code, or 1 / :data:`EXIT_BUG` with one line on stderr."""
    stream = stream or sys.stderr
    debug = debug or os.environ.get("CALLCENTER_DEBUG", "") not in ("", "0")
    try:
        result = func(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=stream)
        return 130
    except SystemExit:
        raise
    except Exception as exc:
        if debug:
            raise
        message = _expected_message(exc)
        if message is not None:
            print(f"{prog}: {one_line(message)}", file=stream)
            return 1
        print(f"{prog}: unexpected error {type(exc).__name__}: {one_line(str(exc))} -- this is a bug; "
              f"re-run with `{prog} --debug ...` for the traceback and report it", file=stream)
        return EXIT_BUG
    return 0 if result is None else int(result)
