"""The protocol core against the exchanges recorded on a real Asterisk 22.10.1
(tests/agi/transcripts/raw/*.jsonl), whole and split byte by byte."""

from __future__ import annotations

import json

import pytest

from callcenter.agi.protocol import (
    AgiReader,
    EnvironmentReceived,
    HangupReceived,
    ProtocolError,
    Reply,
    format_command,
    parse_reply_line,
)

from .harness import reference_dir

RAW = sorted((reference_dir() / "raw").glob("*.jsonl"))


def test_the_repository_carries_every_recorded_transcript():
    """An empty glob would turn every replay test below into zero tests; the 20 recordings
    listed in tests/agi/transcripts/PROVENANCE.md must be here."""
    assert len(RAW) == 20, [p.name for p in RAW]


def load(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def received(path) -> bytes:
    return b"".join(e["data"].encode("latin-1") for e in load(path) if e["kind"] == "recv")


def sent(path) -> list[str]:
    return [e["data"] for e in load(path) if e["kind"] == "send"]


def parse(data: bytes, chunk: int | None = None):
    r = AgiReader()
    if chunk is None:
        return r.receive_data(data)
    out = []
    for i in range(0, len(data), chunk):
        out += r.receive_data(data[i:i + chunk])
    return out


def test_transcripts_are_present():
    assert len(RAW) >= 20


@pytest.mark.parametrize("path", RAW, ids=lambda p: p.stem)
def test_every_recorded_exchange_parses_the_same_whole_and_split(path):
    data = received(path)
    whole = parse(data)
    assert isinstance(whole[0], EnvironmentReceived)
    env = whole[0].env
    assert env.get("agi_version") == "22.10.1"
    for chunk in (1, 7):
        assert parse(data, chunk) == whole
    replies = [e for e in whole if isinstance(e, Reply)]
    hangups = [e for e in whole if isinstance(e, HangupReceived)]
    assert all(r.code in (200, 510, 511, 520) for r in replies)
    # every recorded HANGUP line is an event of its own, never a reply
    assert len(hangups) == sum(1 for e in load(path) if e["kind"] == "recv" and e["data"] == "HANGUP\n")
    # a reply never outnumbers the commands sent
    assert len(replies) <= len(sent(path))


def test_fastagi_env_block_and_query():
    env = parse(received(reference_dir() / "raw" / "08a-fastagi-env-and-normal-sequence.jsonl"))[0].env
    assert env.network
    assert env.script == "s08a?mode=test&x=1"
    assert env.script_name == "s08a"
    assert env.query == {"mode": "test", "x": "1"}
    assert env.args == ["first arg", "second arg", "", "hello world"]
    assert env.get("agi_accountcode") == ""


def test_no_callerid_is_empty():
    env = parse(received(reference_dir() / "raw" / "01d-classic-env-cli-originate-no-callerid.jsonl"))[0].env
    assert env.callerid == ""


def test_classic_replies_match_the_summary_table():
    evs = parse(received(reference_dir() / "raw" / "01-classic-env-and-commands.jsonl"))
    replies = [e for e in evs if isinstance(e, Reply)]
    texts = {(r.code, r.result, r.data) for r in replies}
    assert (200, "1", "hello world") in texts
    assert (200, "1", "Transcript Caller <5551234> on Local/101@transcripts-00000036;2") in texts
    assert (200, "", "timeout") in texts  # "200 result= (timeout)"
    assert (200, "9", "timeout") in texts
    usage = [r for r in replies if r.code == 520]
    assert len(usage) == 3
    assert any("Example return code: 200 result=1 (testvariable)" in u.usage for u in usage)
    stream = [r for r in replies if r.extra.get("endpos") == "8800"]
    assert stream and stream[0].digit == "5"
    assert any(r.code == 510 for r in replies)


def test_hangup_line_lands_before_the_next_reply():
    evs = parse(received(reference_dir() / "raw" / "08b2-fastagi-hangup-next-command-sent-immediately.jsonl"))
    kinds = [type(e).__name__ for e in evs[1:]]
    # ANSWER reply, STREAM FILE -1, HANGUP, NOOP reply, NOOP reply, HANGUP at close
    assert kinds == ["Reply", "Reply", "HangupReceived", "Reply", "Reply", "HangupReceived"]
    assert evs[2].result == "-1" and evs[2].extra == {"endpos": "12000"}


def test_dead_channel_511():
    evs = parse(received(reference_dir() / "raw" / "02-classic-hangup-during-stream-file-sighup-default.jsonl"))
    dead = [e for e in evs if isinstance(e, Reply) and e.dead_channel]
    assert len(dead) == 5


def test_wait_for_digit_interrupted_is_not_a_digit():
    assert parse_reply_line("200 result=1").digit == ""
    assert parse_reply_line("200 result=49").digit == "1"


@pytest.mark.parametrize("line", [b"hello\n", b"999x\n", b"200 nonsense\n", b"x" * 9000])
def test_malformed_lines_raise(line):
    r = AgiReader(expect_env=False)
    with pytest.raises(ProtocolError):
        r.receive_data(line)
    with pytest.raises(ProtocolError):
        r.receive_data(b"200 result=0\n")  # a broken reader stays broken


def test_malformed_env_raises():
    with pytest.raises(ProtocolError):
        AgiReader().receive_data(b"agi_request: x\nnot an env line\n\n")


def test_commands_end_in_lf_only_and_refuse_cr():
    assert format_command("ANSWER") == b"ANSWER\n"
    assert format_command("SET VARIABLE", "X", "a b") == b'SET VARIABLE X "a b"\n'
    assert format_command("STREAM FILE", "beep", "") == b'STREAM FILE beep ""\n'
    assert format_command("SET VARIABLE", "X", 'say "hi"') == b'SET VARIABLE X "say \\"hi\\""\n'
    for bad in ("a\rb", "a\nNOOP", "x\x00"):
        with pytest.raises(ValueError):
            format_command("SET VARIABLE", "X", bad)
