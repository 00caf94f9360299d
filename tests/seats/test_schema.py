"""The wire schema (pure): decoding errors are distinct, messages round-trip, the doc covers them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.seats import schema as s

DOC = Path(__file__).resolve().parents[2] / "docs" / "seat-protocol.md"

SAMPLES = {
    "login": {"agent_id": "a1", "password": "pw"},
    "resume": {"token": "t" * 43},
    "ready": {},
    "not_ready": {"reason": "lunch"},
    "logout": {},
    "accept": {"call_id": "c1"},
    "reject": {"call_id": "c1"},
    "wrapup": {"call_id": "c1", "disposition": "resolved", "notes": "n", "ticket": {"title": "t"}},
    "end_wrapup": {},
    "kb_search": {"query": "fever", "limit": 5},
    "heartbeat": {},
    "hangup": {"call_id": "c1"},
    "kb_get": {"article_id": 7},
}


def test_every_client_message_has_a_sample_and_round_trips():
    assert set(SAMPLES) == set(s.CLIENT_MESSAGES)
    for typ, fields in SAMPLES.items():
        msg = s.decode_client(json.dumps({"v": 1, "type": typ, "id": 3, **fields}))
        assert msg.TYPE == typ and msg.id == 3
        assert s.decode_client(s.encode(msg)) == msg


@pytest.mark.parametrize("data, error", [
    (b"{", s.BadJson),
    (b'"a string"', s.BadJson),
    (b"\xff\xfe", s.BadJson),
    (b'{"type": "ready"}', s.UnsupportedVersion),
    (b'{"v": "1", "type": "ready"}', s.UnsupportedVersion),
    (b'{"v": 1}', s.UnknownType),
    (b'{"v": 1, "type": "offer"}', s.UnknownType),  # a server message is not a client message
    (b'{"v": 1, "type": "login", "agent_id": "a1"}', s.BadField),
    (b'{"v": 1, "type": "login", "agent_id": "a b", "password": "x"}', s.BadField),
    (b'{"v": 1, "type": "accept", "call_id": 7}', s.BadField),
    (b'{"v": 1, "type": "wrapup", "call_id": "c", "disposition": "d", "ticket": {"k": 1}}', s.BadField),
    (b'{"v": 1, "type": "ready", "id": true, "x": 1}', s.BadField),
    (b'{"v": 1, "type": "kb_get", "article_id": 0}', s.BadField),
    (b'{"v": 1, "type": "kb_get", "article_id": 1e300}', s.BadField),
])
def test_distinct_errors(data, error):
    with pytest.raises(error) as info:
        s.decode_client(data)
    assert info.value.code in s.ERROR_CODES
    assert isinstance(info.value, s.SchemaError)


def test_too_large_is_checked_before_parsing():
    with pytest.raises(s.TooLarge):
        s.decode_client(b"{" * (s.MAX_MESSAGE_BYTES + 1))


def test_bad_field_errors_never_echo_the_password():
    with pytest.raises(s.BadField) as info:
        s.decode_client(json.dumps({"v": 1, "type": "login", "agent_id": "a1", "password": "secret-pw", "x": 1}))
    assert "secret-pw" not in str(info.value)


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_other_exceptions(data):
    try:
        s.decode_client(data)
    except s.SchemaError:
        pass


@FUZZ
@given(st.dictionaries(st.sampled_from(["v", "type", "id", "agent_id", "call_id", "reason", "query"]),
                       st.one_of(st.none(), st.integers(), st.text(max_size=20), st.booleans(),
                                 st.lists(st.integers(), max_size=2)), max_size=6))
def test_arbitrary_objects_never_escape_as_other_exceptions(obj):
    try:
        s.decode_client(json.dumps(obj))
    except s.SchemaError:
        pass


def test_the_protocol_page_names_every_message_and_error_code():
    doc = DOC.read_text()
    for typ in list(s.CLIENT_MESSAGES) + list(s.SERVER_MESSAGES):
        assert f"`{typ}`" in doc, f"docs/seat-protocol.md does not describe message {typ!r}"
    for code in s.ERROR_CODES:
        assert f"`{code}`" in doc, f"docs/seat-protocol.md does not describe error code {code!r}"
