"""Bounds on input: every number finite and bounded, free text without control characters.

``ring_timeout_s: .inf`` once passed validation and then killed every offered
call with ``OverflowError`` (``int(inf)``); a JSON ``1`` followed by 400 zeros
did the same in the admin API.  :func:`bounded` is the one way a config or
API field declares a number: pydantic with ``allow_inf_nan=False`` and both
ends given, so no field can forget either.  :func:`check_number` applies the
same rule to a value parsed by hand (the admin API's JSON bodies).

Free text (names, reasons, notes) may not carry control characters: a NUL in a
not-ready reason was written raw into queue_log (and PostgreSQL refuses NUL in
text, failing the whole batch); an ESC or a bidi override rewrites what an
operator sees in a terminal.  :data:`LINE_PATTERN` and :data:`TEXT_PATTERN` are
the pydantic patterns, :func:`check_text` the same rule by hand.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import Field

__all__ = ["bounded", "check_number", "check_text", "DAY_S", "MAX_COUNT", "NumberOutOfBounds", "BadText",
           "LINE_PATTERN", "TEXT_PATTERN", "control_free"]

DAY_S = 86_400.0  # no timer, timeout or interval of the ACD is longer than a day
MAX_COUNT = 1_000_000  # no count (waiting callers, positions, calls) is larger
MAX_INT_DIGITS = 20  # a JSON integer with more digits is refused before Python builds it


def bounded(kind: type = float, *, le: float, ge: float | None = None, gt: float | None = None) -> Any:
    """``Annotated[kind, Field(...)]`` finite, with an upper bound and a lower one (``ge`` or ``gt``)."""
    if (ge is None) == (gt is None):
        raise TypeError("give exactly one of ge or gt")
    if kind is float:
        return Annotated[float, Field(ge=ge, gt=gt, le=le, allow_inf_nan=False)]
    return Annotated[kind, Field(ge=ge, gt=gt, le=le)]


class NumberOutOfBounds(ValueError):
    """A number that is not finite, not a number, or outside its bounds."""


def check_number(value: Any, *, lo: float, hi: float, integer: bool = False) -> int | float:
    """Return ``value`` if it is a finite number (an integer when asked) in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NumberOutOfBounds("must be a number")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NumberOutOfBounds("must be a finite number")
        if integer:
            if not value.is_integer():
                raise NumberOutOfBounds("must be an integer")
    # Compare before any conversion: int(1e308) or float(10**400) is where OverflowError came from.
    if not lo <= value <= hi:
        raise NumberOutOfBounds(f"must be between {lo:g} and {hi:g}")
    return int(value) if integer else float(value)


# C0 controls, DEL, C1 controls, bidi overrides/isolates, lone surrogates (cannot be UTF-8 encoded).
_CONTROL = "\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_CONTROL_BUT_NEWLINE_TAB = "\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
LINE_PATTERN = f"^[^{_CONTROL}]*$"  # one line of text: a name, a reason
TEXT_PATTERN = f"^[^{_CONTROL_BUT_NEWLINE_TAB}]*$"  # several lines (notes): newlines and tabs allowed
_LINE_RE = re.compile(LINE_PATTERN)
_TEXT_RE = re.compile(TEXT_PATTERN)
_ANY_CONTROL = re.compile(f"[{_CONTROL}]")


class BadText(ValueError):
    """Free text that is too long or carries control characters."""


def check_text(value: Any, *, what: str, max_chars: int, multiline: bool = False) -> str:
    """Return ``value`` if it is a string of at most ``max_chars`` with no control character."""
    if not isinstance(value, str):
        raise BadText(f"{what} must be a string")
    if len(value) > max_chars:
        raise BadText(f"{what} is longer than {max_chars} characters")
    if not (_TEXT_RE if multiline else _LINE_RE).match(value):
        raise BadText(f"{what} contains a control character (position "
                      f"{_ANY_CONTROL.search(value).start() if _ANY_CONTROL.search(value) else '?'}): remove it")
    return value


def control_free(value: str, replacement: str = " ") -> str:
    """``value`` with every control character replaced: for sinks (files, logs) that must not carry one."""
    return _ANY_CONTROL.sub(replacement, value)
