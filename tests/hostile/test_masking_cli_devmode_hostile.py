"""Hostile input at the logs, the CLI, queue_log and the secrets (issue 16, items 3, 4, 9, 10)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import yaml
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import Logger, LogPublisher
from twisted.web.test.requesthelper import DummyRequest

from callcenter import app as app_module
from callcenter.agi.protocol import AgiReader, ProtocolError
from callcenter.app import Acd
from callcenter.cli import main
from callcenter.config import parse_config
from callcenter.engine import events as ev
from callcenter.logs import MaskingObserver
from callcenter.masking import caller_hash, mask_number, mask_text
from callcenter.records.cdr import RecordBuilder
from callcenter.records.queue_log import QueueLogLine

DEV_MODE_WARN_EVERY_S = getattr(app_module, "DEV_MODE_WARN_EVERY_S", 60.0)  # the suite also runs on old code
REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "deploy" / "callcenter.yaml"


def _log(emit) -> str:
    stream = io.StringIO()
    emit(Logger(namespace="t", observer=LogPublisher(MaskingObserver(stream))))
    return stream.getvalue()


# -- item 9: masking of error messages that echo input -----------------------------------------


def test_a_malformed_environment_line_is_logged_masked():
    reader = AgiReader()
    with pytest.raises(ProtocolError) as info:
        reader.receive_data(b"agi_network: yes\nagi_callerid 13912345678.1\n\n")
    out = _log(lambda log: log.warn("fastagi: {error}", error=str(info.value)))
    assert "13912345678" not in out and "139********.1" in out


def test_an_unknown_script_name_is_logged_masked():
    out = _log(lambda log: log.warn("unknown AGI script {name!r}; closing", name="13912345678.2/hotline"))
    assert "13912345678" not in out and "139********.2/hotline" in out


@pytest.mark.parametrize(("text", "number"), [
    ("13912345678.1", "13912345678"), ("x13912345678.22y", "13912345678"), ("13912345678.", "13912345678"),
    ("139-1234-5678", "13912345678"), ("139 1234 5678", "13912345678"), ("+8613912345678", "13912345678"),
    ("tel:13912345678", "13912345678"), ("'13912345678'", "13912345678"), ("１３９１２３４５６７８", "１３９１２３４５６７８"),
    ("021-61234567.3", "61234567"), ("agi://x/13912345678.2/hotline", "13912345678"),
])
def test_no_caller_number_survives_mask_text(text, number):
    masked = mask_text(text)
    assert number[-4:] not in masked, masked


def test_asterisk_unique_ids_stay_readable():
    assert mask_text("call 1795869867.4 and acd-1-1795869867.12") == "call 1795869867.4 and acd-1-1795869867.12"


# -- item 3: the caller hash cannot be reversed from the masked number ----------------------------


@pytest.mark.parametrize("number", ["13912030005", "+86 139 1203 0005", "02161234567", "057187654321"])
def test_the_masked_number_leaves_at_least_1e8_candidates(number):
    masked = mask_number(number)
    assert masked.count("*") >= 8
    assert len(re.sub(r"\D", "", masked)) <= 3


def test_the_old_attack_finds_nothing():
    """139****0005 plus its hash gave the number in 2 ms; the mask now gives no tail to search from."""
    key = "dev-caller-hash-key"
    number = "13912030005"
    h, masked = caller_hash(number, key), mask_number(number)
    stars = masked.count("*")
    fill = masked.replace("*" * stars, "{:0" + str(stars) + "d}")  # the old attack: every completion of 10^4 tries
    found = [c for c in (fill.format(i) for i in range(10_000)) if caller_hash(c, key) == h]
    assert found == []


def test_short_numbers_keep_no_digit():
    assert mask_number("62345678") == "********" and mask_number("1234567") == "*******"


# -- item 10: NUL and control characters never reach queue_log -----------------------------------


def test_a_nul_in_a_not_ready_reason_is_not_written_raw():
    line = QueueLogLine(1, "NONE", "hotline", "a1", "PAUSE", ("lunch\x00|\nbreak\x1b",)).format()
    assert "\x00" not in line and "\n" not in line and "\x1b" not in line and line.count("|") == 5
    b = RecordBuilder()
    b.feed(ev.AgentStateChanged(1.0, "a1", "own", "ready", "not-ready", "x\x00y"))
    ops = b.feed(ev.AgentStateChanged(2.0, "a1", "own", "not-ready", "ready", ""))
    rows = [op[2] for op in ops if op[0] == "insert"]
    assert rows and "\x00" not in rows[0]["reason"]


def test_the_seat_schema_refuses_control_characters_in_a_reason():
    from callcenter.seats import schema

    with pytest.raises(Exception):  # noqa: B017 - the schema's own error type, whatever it is named
        schema.decode_client(json.dumps({"v": 1, "type": "not_ready", "id": 1, "reason": "a\u0000b"}))
    assert schema.decode_client(json.dumps({"v": 1, "type": "not_ready", "id": 1, "reason": "午饭"})).reason == "午饭"


# -- item 10: the CLI answers one line, never a traceback ---------------------------------------


def _run(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text
    return code, text


def test_cli_agents_add_refuses_unknown_pool_long_and_control_names(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    base = ["agents", "add", "--no-password", "--database", db, "--config", str(EXAMPLE)]
    code, text = _run(capsys, *base, "a1", "--pool", "no-such-pool")
    assert code == 1 and "no pool 'no-such-pool' in the config" in text
    code, text = _run(capsys, *base, "a2", "--pool", "own-12345", "--name", "n" * 100_000)
    assert code == 1 and "longer than 200" in text and len(text) < 400
    code, text = _run(capsys, *base, "a3", "--pool", "own-12345", "--name", "a\x1b[2Jb")
    assert code == 1 and "control character" in text
    code, text = _run(capsys, *base, "x" * 100_000, "--pool", "own-12345")
    assert code == 1 and len(text) < 400
    code, text = _run(capsys, *base, "a4", "--pool", "own-12345", "--name", "张三")
    assert code == 0


@pytest.mark.parametrize("target", ["/proc/x", "{tmp}", "{tmp}/missing/out.csv"])
def test_cli_cdr_export_to_an_unwritable_place_is_one_line(tmp_path, capsys, target):
    db = f"sqlite:///{tmp_path / 'x.db'}"
    code, text = _run(capsys, "cdr", "export", "-o", target.format(tmp=tmp_path), "--database", db)
    assert code == 1 and len(text.strip().splitlines()) == 1 and "cannot write" in text


def test_cli_an_unexpected_bug_is_one_line_with_a_debug_hint(capsys, monkeypatch):
    import callcenter.cli as cli_module

    def boom(args):
        raise KeyError("oops")

    monkeypatch.setattr(cli_module, "_config_check", boom)
    code, text = _run(capsys, "config", "check", "x")
    assert code == 70 and "--debug" in text and len(text.strip().splitlines()) == 1
    with pytest.raises(KeyError):
        main(["--debug", "config", "check", "x"])


def test_cli_serve_with_a_missing_or_binary_config_is_one_clear_error(tmp_path, capsys):
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(bytes(range(256)))
    for path in (binary, tmp_path / "missing.yaml"):
        code, text = _run(capsys, "serve", "--config", str(path))
        assert code == 1 and text.count("\n") <= 3


# -- item 4: shipped secrets only in dev mode -----------------------------------------------------


def _example(**acd) -> dict:
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    raw["acd"].update(acd)
    return raw


def test_every_secret_in_deploy_is_known_as_shipped():
    from callcenter.config import SHIPPED_SECRETS, SHIPPED_TOKEN_SHA256

    for f in sorted((REPO_ROOT / "deploy").rglob("*.y*ml")):
        acd = (yaml.safe_load(f.read_text(encoding="utf-8")) or {}).get("acd") or {}
        for key in ("agi_secret", "caller_hash_key", "seat_token_secret"):
            if acd.get(key):
                assert acd[key] in SHIPPED_SECRETS, f"{f}: acd.{key}"
        for token in acd.get("admin_tokens") or ():
            assert token["token_sha256"] in SHIPPED_TOKEN_SHA256, f"{f}: {token['name']}"


@pytest.mark.parametrize("acd", [
    {"dev_mode": False},
    {"dev_mode": False, "agi_secret": "x" * 20, "caller_hash_key": "y" * 20},  # the dev admin token is left
    {"dev_mode": False, "admin_tokens": [], "seat_token_secret": "drill-seat-token-secret", "agi_secret": None,
     "caller_hash_key": None},
])
def test_config_check_and_serve_refuse_shipped_secrets_outside_dev_mode(tmp_path, capsys, acd):
    f = tmp_path / "prod.yaml"
    f.write_text(yaml.safe_dump(_example(**acd)), encoding="utf-8")
    code, text = _run(capsys, "config", "check", str(f))
    assert code == 1 and "shipped development" in text
    code, text = _run(capsys, "serve", "--config", str(f))
    assert code == 1 and "refusing to start with shipped secrets" in text


def test_config_check_of_the_dev_config_warns(capsys):
    code, text = _run(capsys, "config", "check", str(EXAMPLE))
    assert code == 0 and "warning: acd.dev_mode is on" in text


def test_dev_mode_warns_every_minute_and_shows_on_healthz(tmp_path, monkeypatch):
    monkeypatch.setattr(app_module, "SUBSYSTEM_MODULES", ())
    lines: list[str] = []
    from twisted.logger import globalLogPublisher

    def observer(event):
        if event.get("log_namespace") == "callcenter.app" and "dev_mode" in str(event.get("warning", "")):
            lines.append(event["warning"])

    globalLogPublisher.addObserver(observer)
    try:
        clock = MemoryReactorClock()
        config = parse_config(_example(state_dir=str(tmp_path / "s"), redis_url="redis://127.0.0.1:1"), env={})
        acd = Acd(config, clock)
        acd.start()
        assert len(lines) == 1
        for _ in range(3):
            clock.advance(DEV_MODE_WARN_EVERY_S)
        assert len(lines) == 4
        request = DummyRequest([b""])
        body = json.loads(acd.http_root.children[b"healthz"].render_GET(request))
        assert body["status"] == "ok" and body["dev_mode"] is True and "never" in body["warning"]
        acd.stop()
        clock.advance(DEV_MODE_WARN_EVERY_S * 3)
        assert len(lines) == 4
    finally:
        globalLogPublisher.removeObserver(observer)
