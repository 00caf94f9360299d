"""Bearer tokens and roles (callcenter.api.auth): pure functions, no reactor."""

from __future__ import annotations

import hashlib

import pytest

from callcenter.api import auth
from callcenter.config import AdminToken

TOKENS = [
    AdminToken(name="boss", role="admin", token_sha256=auth.hash_token("t-admin")),
    AdminToken(name="night", role="supervisor", token_sha256=auth.hash_token("t-sup")),
    AdminToken(name="board", role="viewer", token_sha256=auth.hash_token("t-view")),
    AdminToken(name="hrss", role="lender:12333", token_sha256=auth.hash_token("t-lend")),
]


def test_hash_token_is_the_hex_sha256_the_config_stores():
    assert auth.hash_token("dev-admin-token") == hashlib.sha256(b"dev-admin-token").hexdigest()
    # deploy/callcenter.yaml documents this pair
    assert auth.hash_token("dev-admin-token") == "1734d503f6aa6a047c36d113cbad769f719c93784b469b771c4c3e7c63adbefd"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "   ",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "t-admin",
        "Bearer t-admin extra",
        "Bearer " + "x" * 600,
    ],
)
def test_missing_or_malformed_header_is_unauthorized(header):
    with pytest.raises(auth.Unauthorized):
        auth.authenticate(header, TOKENS)


def test_unknown_token_is_unauthorized_and_says_so():
    with pytest.raises(auth.Unauthorized, match="unknown bearer token"):
        auth.authenticate("Bearer t-nobody", TOKENS)
    with pytest.raises(auth.Unauthorized):
        auth.authenticate("Bearer t-admin", [])


def test_known_token_names_its_principal_and_scheme_is_case_insensitive():
    assert auth.authenticate("Bearer t-sup", TOKENS) == auth.Principal("night", "supervisor")
    assert auth.authenticate("bearer t-admin", TOKENS) == auth.Principal("boss", "admin")
    assert auth.authenticate("  BEARER   t-lend ", TOKENS).lender == "12333"


def test_the_first_of_two_tokens_with_the_same_hash_wins():
    dup = [*TOKENS, AdminToken(name="other", role="viewer", token_sha256=auth.hash_token("t-admin"))]
    assert auth.authenticate("Bearer t-admin", dup).name == "boss"


ALL = [auth.READ, auth.EMERGENCY, auth.FORCE_LOGOUT, auth.HOME_LOAD, auth.RELOAD]
ALLOWED = {
    "admin": set(ALL),
    "supervisor": {auth.READ, auth.EMERGENCY, auth.FORCE_LOGOUT},
    "viewer": {auth.READ},
    "lender:lender-12333": {auth.HOME_LOAD},
}


@pytest.mark.parametrize("role", sorted(ALLOWED))
@pytest.mark.parametrize("permission", ALL)
def test_role_permissions(role, permission):
    p = auth.Principal("someone", role)
    kwargs = {"pool": "lender-12333", "lender": "12333"} if permission == auth.HOME_LOAD else {}
    if permission in ALLOWED[role]:
        auth.authorize(p, permission, **kwargs)
    else:
        with pytest.raises(auth.Forbidden):
            auth.authorize(p, permission, **kwargs)


def test_lender_may_post_only_its_own_pool_named_by_pool_or_by_lender():
    by_lender = auth.Principal("hrss", "lender:12333")
    by_pool = auth.Principal("hrss", "lender:lender-12333")
    for p in (by_lender, by_pool):
        auth.authorize(p, auth.HOME_LOAD, pool="lender-12333", lender="12333")
        with pytest.raises(auth.Forbidden, match="its own pool"):
            auth.authorize(p, auth.HOME_LOAD, pool="lender-12315", lender="12315")
        with pytest.raises(auth.Forbidden):
            auth.authorize(p, auth.HOME_LOAD, pool="no-such-pool", lender=None)


def test_unknown_role_may_do_nothing():
    with pytest.raises(auth.Forbidden):
        auth.authorize(auth.Principal("x", "janitor"), auth.READ)
