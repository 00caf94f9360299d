"""Schemathesis against our own OpenAPI document, served by a running ACD.

Bounded (max_examples per operation) so it fits CI; every response must be
non-5xx and conform to the document (status code, content type, headers,
body schema), and requests without a token must be refused.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from api_support import ADMIN, make_config, start_acd, stop_acd
from hypothesis import HealthCheck, settings

from callcenter.api.handlers import OPENAPI_PATH

MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def live_acd(tmp_path_factory):
    running = start_acd(tmp_path_factory.mktemp("acd-schemathesis"), make_config())
    # something to find: an agent and a waiting call
    running.engine("agent_logged_in", "a1", "own")
    running.engine("call_arrived", "c1", "hotline")
    try:
        yield running
    finally:
        stop_acd(running)


# The document kept in the repo; test_served_document_is_the_repo_document checks
# that the running ACD serves the same one.  (Loaded here rather than through
# schemathesis.pytest.from_fixture, which breaks on pytest 9: no Function._nodeid.)
schema = schemathesis.openapi.from_dict(json.loads(OPENAPI_PATH.read_text()))


def test_served_document_is_the_repo_document(live_acd):
    assert live_acd.http("GET", "/api/v1/openapi.json").body == json.loads(OPENAPI_PATH.read_text())


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case, live_acd):
    case.call_and_validate(base_url=live_acd.url, headers={"Authorization": f"Bearer {ADMIN}"})
