"""Fixtures for the end-to-end tests against a real Asterisk 22 (tests/support/e2e.py).

The Asterisk install comes from tests/support/ensure_asterisk.sh (``make test`` runs it first);
when it could not be built (no source and no network), every test here skips with the one
reason the script recorded.
"""

from __future__ import annotations

import pytest

from tests.support.asterisk import find_asterisk
from tests.support.e2e import World


@pytest.fixture(scope="session")
def asterisk_prefix():
    prefix, reason = find_asterisk()
    if prefix is None:
        pytest.skip(f"no real Asterisk: {reason}")
    return prefix


@pytest.fixture
def make_world(asterisk_prefix, request):
    worlds: list[World] = []

    def make(agents, **kw) -> World:
        w = World(asterisk_prefix, agents, **kw)
        worlds.append(w)
        return w

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for w in worlds:
        if failed:
            print(w.diagnostics())
        w.close()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
