"""Caller numbers are personal data: this is the one way we show them."""

from __future__ import annotations

import hashlib
import hmac
import re

_DIGITS = re.compile(r"\d")


def mask_number(number: str | None) -> str:
    """Keep the first 3 and last 4 digits of a phone number: 13812345678 -> 138****5678.

    Short numbers keep only their last 2 digits; anything that is not a number
    (``unknown``, ``anonymous``) is returned as is, since it names no one.
    """
    if not number:
        return ""
    s = str(number).strip()
    digits = _DIGITS.findall(s)
    if not digits:
        return s[:16]
    d = "".join(digits)
    if len(d) >= 8:
        return f"{d[:3]}{'*' * (len(d) - 7)}{d[-4:]}"
    if len(d) > 2:
        return "*" * (len(d) - 2) + d[-2:]
    return "*" * len(d)


# 7-15 digits, but not an Asterisk unique id ("1795869867.4": epoch seconds, a dot, a sequence),
# which names a call, not a person, and must stay readable to follow a call through the logs.
# A hex literal (an object's address, "0x7f8310950") is matched first and kept whole.
_LONG_NUMBER = re.compile(r"0x[0-9a-fA-F]+|(?<!\d)(\+?\d{7,15})(?!\d|\.\d)")


def mask_text(text: str) -> str:
    """Mask every phone-number-like run of 7-15 digits in free text (log lines)."""
    return _LONG_NUMBER.sub(lambda m: m.group(0) if m.group(1) is None else mask_number(m.group(1)), text)


def caller_hash(number: str, key: bytes | str) -> str:
    """Keyed hash of a caller number, for repeat-caller lookups without storing the number."""
    if isinstance(key, str):
        key = key.encode()
    digits = "".join(_DIGITS.findall(number or ""))
    return hmac.new(key, digits.encode(), hashlib.sha256).hexdigest()
