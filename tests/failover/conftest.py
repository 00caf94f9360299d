"""Fixtures for the failover tests: fresh real Redis servers, started with the same
code as ``callcenter serve`` (callcenter.redis_server.EmbeddedRedis)."""

from __future__ import annotations

import pytest
import redis

from callcenter.redis_server import EmbeddedRedis


@pytest.fixture
def fresh_redis(tmp_path):
    """A real redis-server of its own for one test (tests here kill and restart it)."""
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def rclient(fresh_redis):
    client = redis.Redis.from_url(fresh_redis.url, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        yield client
    finally:
        client.close()
