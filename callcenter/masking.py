"""Caller numbers are personal data: this is the one way we show them.

The masked form goes everywhere a number is shown or kept: log lines, the seat's
offer, ``cdr.caller_masked`` and queue_log's ENTERQUEUE.  It keeps only the first
3 digits of a number of 11 digits or more (a mobile's carrier block, a landline's
area code) and none of a shorter one, so that together with the keyed
:func:`caller_hash` stored beside it at least 10^8 numbers remain possible:
``138****5678`` plus its hash gave the number back from 10^4 candidates in 2 ms.
docs/records.md ("Caller numbers and PIPL") says why.
"""

from __future__ import annotations

import hashlib
import hmac
import re

_DIGITS = re.compile(r"\d")


# Digits a masked number keeps, and the fewest it must hide (10^8 candidates remain).
KEEP_DIGITS = 3
MIN_HIDDEN_DIGITS = 8


def mask_number(number: str | None) -> str:
    """Keep the first 3 digits of a long number, none of a short one: 13812345678 -> 138********.

    Anything that is not a number (``unknown``, ``anonymous``) is returned as is
    (cut to 16 characters), since it names no one.
    """
    if not number:
        return ""
    s = str(number).strip()
    digits = _DIGITS.findall(s)
    if not digits:
        return s[:16]
    d = "".join(digits)
    if len(d) >= KEEP_DIGITS + MIN_HIDDEN_DIGITS:
        return d[:KEEP_DIGITS] + "*" * (len(d) - KEEP_DIGITS)
    return "*" * len(d)


# 7-15 digits (or a mobile written 3-4-4 with spaces or dashes), but not an Asterisk unique
# id, which names a call, not a person, and must stay readable to follow a call through the
# logs.  A unique id is epoch seconds (10 digits, "1" until 2033), a dot and a sequence
# (Asterisk main/channel.c: "%li.%d", optionally after "systemname-"); only that exact shape
# is kept: "13912345678.1" (an 11-digit number followed by a dot and a digit, as in a bad
# AGI environment line or a script name) is a number and is masked.  A hex literal (an
# object's address, "0x7f8310950") is matched first and kept whole.
_LONG_NUMBER = re.compile(
    r"0x[0-9a-fA-F]+"
    r"|(?<![\d.])1\d{9}\.\d+(?!\d)"  # an Asterisk unique id: kept
    r"|(?<!\d)(\+?\d{3}[ -]\d{4}[ -]\d{4}|\+?\d{7,15})(?!\d)"
)


def mask_text(text: str) -> str:
    """Mask every phone-number-like run of 7-15 digits in free text (log lines)."""
    return _LONG_NUMBER.sub(lambda m: m.group(0) if m.group(1) is None else mask_number(m.group(1)), text)


def caller_hash(number: str, key: bytes | str) -> str:
    """Keyed hash of a caller number, for repeat-caller lookups without storing the number."""
    if isinstance(key, str):
        key = key.encode()
    digits = "".join(_DIGITS.findall(number or ""))
    return hmac.new(key, digits.encode(), hashlib.sha256).hexdigest()
