"""Fixtures of the admin API tests; the helpers live in api_support.py."""

from __future__ import annotations

import pytest
from api_support import make_config, start_acd, stop_acd


@pytest.fixture(scope="session")
def acd(tmp_path_factory):
    """One ACD shared by the endpoint and CLI tests: each cleans up the calls and agents it makes."""
    running = start_acd(tmp_path_factory.mktemp("acd"), make_config())
    try:
        yield running
    finally:
        stop_acd(running)
