"""Seat session tokens that every ACD of a cluster accepts (pure: no I/O, no clock).

A token is ``base64url(payload) "." base64url(HMAC-SHA256(secret, payload))``
with ``payload = "v1|<agent id>|<session id>|<issued at>|<expires at>"``
(times: whole seconds on the ACD clock).  The secret is shared through the
config (``acd.seat_token_secret``), so after a failover the new active ACD can
check a token the old one issued and resume the session without a password
(docs/seat-protocol.md, *Resume and grace*).  Without a configured secret a
random per-process secret is used: tokens then only work on the ACD that
issued them (a single ACD).

Checking uses ``hmac.compare_digest`` (constant time).  A token only proves
"this ACD cluster gave agent X session S until T"; whether it may resume is
the session core's decision: the engine (whose state every ACD of the cluster
restores from Redis) must still have the agent logged in *with session S*.
A new login, a takeover or a resume gives the agent a new session id, so
every older token stops working everywhere, across restarts and failovers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

__all__ = ["TokenSigner", "TokenClaims"]

_VERSION = "v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class TokenClaims:
    agent_id: str
    session_id: str
    issued_at: int
    expires_at: int


class TokenSigner:
    """Issues and checks signed seat tokens with one secret (str/bytes; None: random)."""

    def __init__(self, secret: str | bytes | None = None, *, session_ids=None):
        if secret is None:
            secret = secrets.token_bytes(32)
        self._key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        if not self._key:
            raise ValueError("the seat token secret must not be empty")
        self._session_ids = session_ids or (lambda: secrets.token_urlsafe(8))

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def new_session_id(self) -> str:
        return self._session_ids()

    def issue(self, agent_id: str, now: float, ttl_s: float, session_id: str | None = None) -> str:
        issued = int(now)
        sid = session_id or self._session_ids()
        if "|" in sid:
            raise ValueError("a session id must not contain '|'")
        payload = f"{_VERSION}|{agent_id}|{sid}|{issued}|{int(now + ttl_s)}".encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def verify(self, token: str, now: float) -> TokenClaims | None:
        """The claims of a genuine, unexpired token; None for anything else."""
        head, dot, sig = token.partition(".")
        if not dot:
            return None
        try:
            payload, given = _unb64(head), _unb64(sig)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(given, self._mac(payload)):
            return None
        try:
            version, agent_id, session_id, issued, expires = payload.decode("utf-8").split("|")
            claims = TokenClaims(agent_id, session_id, int(issued), int(expires))
        except ValueError:
            return None
        if version != _VERSION or not agent_id or now >= claims.expires_at:
            return None
        return claims
