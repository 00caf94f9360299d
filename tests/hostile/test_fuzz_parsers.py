"""Hypothesis fuzzing of the parsers at the edge, bounded in time (deadline and example counts below).

Each parser may only answer with its own error type: the admin API with a 4xx
(never a 500 or an exception), the config loader with ConfigError, the AGI
reader with ProtocolError.
"""

from __future__ import annotations

import json
import os

from api_support import ADMIN
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter import config as config_module
from callcenter.agi.protocol import AgiReader, ProtocolError
from callcenter.api import handlers
from callcenter.config import ConfigError, parse_config

# Bounded for CI: 300 examples per test, derandomized so a run is repeatable (no flaky test).  For a
# longer hunt: CALLCENTER_FUZZ_EXAMPLES=20000 CALLCENTER_FUZZ_RANDOM=1 pytest tests/hostile/test_fuzz_parsers.py
FUZZ = settings(max_examples=int(os.environ.get("CALLCENTER_FUZZ_EXAMPLES", "300")), deadline=None,
                derandomize=os.environ.get("CALLCENTER_FUZZ_RANDOM", "") in ("", "0"), database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                          st.text(max_size=30))
_json = st.recursive(_json_scalars, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                           st.dictionaries(st.text(max_size=10), kids, max_size=4)),
                     max_leaves=20)


def _world():
    from test_admin_api_hostile import World

    return World()


_WORLD = None


def _ask(method, path, raw):
    global _WORLD
    if _WORLD is None:
        _WORLD = _world()
    return _WORLD.ask(method, path, ADMIN, raw)


_ENDPOINTS = [("POST", "/v1/lenders/lender-12333/home-load"), ("PUT", "/v1/queues/hotline/emergency"),
              ("POST", "/v1/agents/a1/logout"), ("POST", "/v1/config/reload"), ("GET", "/v1/status")]


@FUZZ
@given(st.sampled_from(_ENDPOINTS), st.one_of(
    _json.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(["waiting", "at", "plan", "reason"]), _json, max_size=3).map(
        lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.integers(min_value=0, max_value=600).map(lambda n: b'{"waiting": 1, "at": 1' + b"0" * n + b"}"),
))
def test_admin_json_bodies_never_raise_or_500(endpoint, raw):
    method, path = endpoint
    r = _ask(method, path, raw)
    outcome = r if isinstance(r, handlers.ApiResponse) else None
    if outcome is not None:
        assert outcome.status < 500, outcome.body
        outcome.json_bytes()


@FUZZ
@given(st.text(max_size=60))
def test_admin_path_parameters_never_raise_or_500(segment):
    for method, path in (("GET", f"/v1/calls/{segment}"), ("GET", f"/v1/agents/{segment}"),
                         ("POST", f"/v1/lenders/{segment}/home-load")):
        r = _ask(method, path.replace("//", "/x/"), b'{"waiting": 1}')
        assert r.status < 500


_yaml_docs = st.one_of(
    st.text(max_size=300),
    _json.map(lambda v: json.dumps(v)),
    st.builds(lambda k, v: f"acd:\n  {k}: {v}\ncategories: [{{name: other}}]\npools: [{{name: p, kind: own}}]\n"
                           f"queues: [{{name: q, pools: [p]}}]\n",
              st.sampled_from(["lease_ttl_s", "max_calls", "max_setups_per_s", "name", "dev_mode", "listen"]),
              st.one_of(st.sampled_from([".inf", "-.inf", ".nan", "1e400", "1" + "0" * 400, "[", "&a x", "*a"]),
                        st.text(max_size=20))),
)


@FUZZ
@given(_yaml_docs)
def test_config_loader_raises_only_config_error(text):
    try:
        parse_config(config_module.parse_yaml(text), env={})
    except ConfigError:
        pass


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=80), st.sampled_from([
    b"agi_callerid: 13912345678\n", b"\n", b"200 result=1\n", b"200 result=-1 (x) endpos=1\n", b"520-Invalid\n",
    b"520 End\n", b"HANGUP\n", b"510 Invalid\n", b"agi_x 1.1\n", b"\xff\xfe\n", b"200 result=\n"])), max_size=12))
def test_agi_reader_raises_only_protocol_error(chunks):
    reader = AgiReader()
    try:
        for chunk in chunks:
            reader.receive_data(chunk)
    except ProtocolError:
        pass
