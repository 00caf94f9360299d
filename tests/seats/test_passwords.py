"""Password hashing parameters and the rehash of old hashes (issue 14: login bursts)."""

from __future__ import annotations

from argon2 import PasswordHasher, Type, extract_parameters
from sqlalchemy.orm import Session

from callcenter.records import accounts
from callcenter.records.db import make_engine, migrate


def test_the_hasher_is_owasps_minimum_argon2id():
    h = accounts.PASSWORD_HASHER
    assert (h.type, h.memory_cost, h.time_cost, h.parallelism) == (Type.ID, 19 * 1024, 2, 1)
    params = extract_parameters(accounts.PASSWORD_HASHER.hash("correct horse"))
    assert (params.memory_cost, params.time_cost, params.parallelism) == (19456, 2, 1)


def test_a_hash_with_old_parameters_still_verifies_and_is_rehashed_at_login(tmp_path):
    url = f"sqlite:///{tmp_path / 'records.sqlite3'}"
    migrate(url)
    db = make_engine(url)
    try:
        old = PasswordHasher()  # argon2-cffi's default before issue 14: 64 MiB, t=3, p=4
        with Session(db) as s, s.begin():
            accounts.add_agent(s, "1001", pool="own", password="correct horse", hasher=old)
        with Session(db) as s:
            before = s.get(accounts.Agent, "1001").password_hash
        assert extract_parameters(before).parallelism == 4
        assert accounts.verify_login_blocking(db, "1001", "wrong horse!") is None
        with Session(db) as s:
            assert s.get(accounts.Agent, "1001").password_hash == before  # a failed login changes nothing
        assert accounts.verify_login_blocking(db, "1001", "correct horse").id == "1001"
        with Session(db) as s:
            after = s.get(accounts.Agent, "1001").password_hash
        assert after != before and not accounts.PASSWORD_HASHER.check_needs_rehash(after)
        assert accounts.verify_login_blocking(db, "1001", "correct horse").id == "1001"
    finally:
        db.dispose()
