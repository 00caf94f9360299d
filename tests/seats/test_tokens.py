"""Signed seat tokens (callcenter.seats.tokens): pure, no clock of their own."""

from __future__ import annotations

import pytest

from callcenter.seats.tokens import TokenSigner

NOW = 1_800_000_000.0


def test_token_round_trip_and_other_instance_with_same_secret():
    token = TokenSigner("secret-one-0123456789").issue("a1@x", NOW, 3600)
    claims = TokenSigner("secret-one-0123456789").verify(token, NOW + 10)
    assert (claims.agent_id, claims.issued_at, claims.expires_at) == ("a1@x", int(NOW), int(NOW + 3600))
    assert len(token) <= 256 and len(token) >= 16  # fits the schema of `resume`


def test_each_login_gets_a_distinct_token():
    signer = TokenSigner("secret-one-0123456789")
    assert signer.issue("a1", NOW, 60) != signer.issue("a1", NOW, 60)


@pytest.mark.parametrize("bad", ["", "no-dot", "!!!.???", "a.b", "x" * 40 + "." + "y" * 43])
def test_garbage_is_refused(bad):
    assert TokenSigner("secret-one-0123456789").verify(bad, NOW) is None


def test_wrong_secret_tampering_and_expiry_are_refused():
    signer = TokenSigner("secret-one-0123456789")
    token = signer.issue("a1", NOW, 3600)
    assert TokenSigner("secret-two-0123456789").verify(token, NOW) is None
    assert TokenSigner(None).verify(token, NOW) is None  # per-process random secret
    head, _, sig = token.partition(".")
    assert signer.verify(head + "." + sig[::-1], NOW) is None
    assert signer.verify(head[:-1] + ("A" if head[-1] != "A" else "B") + "." + sig, NOW) is None
    assert signer.verify(token, NOW + 3599) is not None
    assert signer.verify(token, NOW + 3600) is None


def test_empty_secret_is_an_error():
    with pytest.raises(ValueError):
        TokenSigner("")


def test_token_of_the_longest_agent_id_fits_the_resume_message():
    from callcenter.seats import schema as s

    token = TokenSigner("secret-one-0123456789").issue("a" * 64, NOW, 12 * 3600)
    assert s.Resume(token=token).token == token
