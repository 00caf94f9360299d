"""Bearer tokens and roles of the admin API: pure functions, no I/O.

Tokens are never stored: the config holds the sha256 of each one
(``acd.admin_tokens``; ``callcenter admin token-hash TOKEN`` prints it).  A
presented token is hashed and compared with every configured hash through
:func:`hmac.compare_digest`, without stopping at the first match, so the
time taken says nothing about which hash (if any) matched.

Roles:

* ``admin`` -- everything;
* ``supervisor`` -- read, switch emergency plans, force a seat out;
* ``viewer`` -- read only;
* ``lender:<name>`` -- post the home-line load of its own pool only: ``<name>``
  is the pool's name (``lender-12333``) or the pool's ``lender`` (``12333``).

A missing or unknown token is :class:`Unauthorized` (HTTP 401); a known
token whose role does not allow the action is :class:`Forbidden` (HTTP 403).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "READ",
    "EMERGENCY",
    "FORCE_LOGOUT",
    "HOME_LOAD",
    "RELOAD",
    "Principal",
    "Unauthorized",
    "Forbidden",
    "hash_token",
    "authenticate",
    "authorize",
]

# Permissions: what an endpoint asks of the caller's role.
READ = "read"
EMERGENCY = "emergency"
FORCE_LOGOUT = "force-logout"
HOME_LOAD = "home-load"
RELOAD = "config-reload"
ORDERS_READ = "orders-read"  # list and read work orders
ORDERS_DESK = "orders-desk"  # create, dispatch, visit back (the hotline's dispatch desk)
ORDERS_OFFICE = "orders-office"  # decide extensions (the supervising office)
ORDERS_UNIT = "orders-unit"  # act on the orders a unit owns (``unit:<id>`` tokens)

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({READ, EMERGENCY, FORCE_LOGOUT, HOME_LOAD, RELOAD, ORDERS_READ, ORDERS_DESK, ORDERS_OFFICE,
                        ORDERS_UNIT}),
    "supervisor": frozenset({READ, EMERGENCY, FORCE_LOGOUT, ORDERS_READ, ORDERS_DESK, ORDERS_OFFICE}),
    "viewer": frozenset({READ, ORDERS_READ}),
}
LENDER_PREFIX = "lender:"
UNIT_PREFIX = "unit:"

# Longer than any sane token; keeps a hostile header from being hashed at length.
MAX_TOKEN_CHARS = 512


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: the token's configured name and role."""

    name: str
    role: str

    @property
    def lender(self) -> str | None:
        """The pool (or lender) a ``lender:<x>`` token speaks for, else None."""
        return self.role[len(LENDER_PREFIX) :] if self.role.startswith(LENDER_PREFIX) else None

    @property
    def unit(self) -> str | None:
        """The unit (``street:<district>:<street>``, ``dept:...``) a ``unit:<id>`` token speaks for."""
        return self.role[len(UNIT_PREFIX) :] if self.role.startswith(UNIT_PREFIX) else None


class Unauthorized(Exception):
    """No token, a malformed header, or a token no configured hash matches (401)."""


class Forbidden(Exception):
    """A known token whose role may not do this (403)."""


def hash_token(token: str) -> str:
    """The hex sha256 of a token, as stored in ``acd.admin_tokens[].token_sha256``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (RFC 6750 section 2.1)."""
    if not authorization or not authorization.strip():
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    if len(token) > MAX_TOKEN_CHARS or any(c.isspace() for c in token):
        raise Unauthorized("malformed bearer token")
    return token


def authenticate(authorization: str | None, tokens: Iterable[object]) -> Principal:
    """Match an Authorization header against configured tokens (``AdminToken``-like objects).

    Every configured hash is compared, in constant time, whatever the outcome.
    """
    token = bearer_token(authorization)
    digest = hash_token(token).encode("ascii")
    found = None
    for t in tokens:
        if hmac.compare_digest(digest, t.token_sha256.encode("ascii")) and found is None:
            found = t
    if found is None:
        raise Unauthorized("unknown bearer token")
    return Principal(name=found.name, role=found.role)


def authorize(principal: Principal, permission: str, *, pool: str | None = None, lender: str | None = None,
              unit: str | None = None) -> None:
    """Raise :class:`Forbidden` unless ``principal``'s role allows ``permission``.

    For :data:`HOME_LOAD`, ``pool`` is the pool posted for and ``lender`` that
    pool's configured ``lender`` (if known): a ``lender:<x>`` token may post
    only when ``x`` names one of them.
    """
    if permission in ROLE_PERMISSIONS.get(principal.role, frozenset()):
        return
    own = principal.lender
    if own is not None and permission == HOME_LOAD:
        if own and own in {pool, lender}:
            return
        raise Forbidden(f"role {principal.role!r} may only report the home load of its own pool, not {pool!r}")
    if principal.unit is not None and permission in (ORDERS_UNIT, ORDERS_READ):
        if principal.unit == unit:
            return
        raise Forbidden(f"role {principal.role!r} may only act on the orders of unit {principal.unit!r}")
    raise Forbidden(f"role {principal.role!r} may not {_WORDS.get(permission, permission)}")


_WORDS = {
    READ: "read the ACD's state",
    EMERGENCY: "switch emergency plans",
    FORCE_LOGOUT: "force agents out or end calls",
    HOME_LOAD: "report a lender's home load",
    RELOAD: "reload the config",
    ORDERS_READ: "read work orders",
    ORDERS_DESK: "create or dispatch work orders",
    ORDERS_OFFICE: "decide extensions of work orders",
    ORDERS_UNIT: "act on a unit's work orders",
}
