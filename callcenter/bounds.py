"""Every number we accept from outside is finite and bounded: one type for all.

``ring_timeout_s: .inf`` once passed validation and then killed every offered
call with ``OverflowError`` (``int(inf)``); a JSON ``1`` followed by 400 zeros
did the same in the admin API.  :func:`bounded` is the one way a config or
API field declares a number: pydantic with ``allow_inf_nan=False`` and both
ends given, so no field can forget either.  :func:`check_number` applies the
same rule to a value parsed by hand (the admin API's JSON bodies).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import Field

__all__ = ["bounded", "check_number", "DAY_S", "MAX_COUNT", "NumberOutOfBounds"]

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
