"""The relay port's shared-secret handshake (pure).

The classic script is a relay: it connects to the ACD, proves it knows
``acd.agi_secret`` and then speaks plain AGI, Asterisk's side, exactly as a
FastAGI connection does.  The secret never crosses the wire::

    ACD   -> script: CCRELAY 1 <nonce hex>\\n
    script -> ACD  : AUTH <hex hmac-sha256(secret, nonce)>\\n
    script -> ACD  : the agi_* environment block, then AGI as usual

A wrong or missing AUTH line closes the connection (the script then tries the
next ACD or gives up within its 2 s budget).
"""

from __future__ import annotations

import hashlib
import hmac

GREETING_PREFIX = b"CCRELAY 1 "


def greeting(nonce: bytes) -> bytes:
    return GREETING_PREFIX + nonce.hex().encode() + b"\n"


def proof(secret: str, nonce_hex: str) -> str:
    return hmac.new(secret.encode(), nonce_hex.encode(), hashlib.sha256).hexdigest()


def auth_line(secret: str, greeting_line: bytes) -> bytes:
    """What the script answers to the ACD's greeting line; ValueError if it is not one."""
    line = greeting_line.rstrip(b"\n")
    if not line.startswith(GREETING_PREFIX):
        raise ValueError("not a callcenter relay greeting")
    nonce_hex = line[len(GREETING_PREFIX):].decode("ascii", "replace")
    return f"AUTH {proof(secret, nonce_hex)}\n".encode()


def check(secret: str, nonce: bytes, line: bytes) -> bool:
    text = line.rstrip(b"\n").decode("ascii", "replace")
    if not text.startswith("AUTH "):
        return False
    return hmac.compare_digest(text[5:], proof(secret, nonce.hex()))
