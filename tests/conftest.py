"""Shared fixtures (foundation).

* ``free_port`` -- a TCP port free on 127.0.0.1 right now (an int; for more,
  call :func:`callcenter.ports.free_port` again).
* ``redis_server`` -- one real redis-server for the whole session, started by
  the same code as ``make run`` (callcenter.redis_server.EmbeddedRedis) on a
  free port; ``.url``, ``.host``, ``.port``.  Shared: use your own key prefix or
  database number, or flush what you wrote.
* ``example_config`` -- deploy/callcenter.yaml, loaded and validated (without
  environment overrides), with ``callback.abandoned_to_callback`` on: the
  shipped file has it off (no call-file spool on a dev machine), and the
  engine-level tests want the callbacks of abandoned callers in play.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.config import Config, parse_config
from callcenter.ports import free_port as _free_port
from callcenter.redis_server import EmbeddedRedis

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = REPO_ROOT / "deploy" / "callcenter.yaml"


@pytest.fixture
def free_port() -> int:
    return _free_port()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def example_config() -> Config:
    import yaml

    raw = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    for queue in raw["queues"]:
        queue.setdefault("callback", {})["abandoned_to_callback"] = True
    return parse_config(raw, str(EXAMPLE_CONFIG), env={})
