"""Caller numbers never reach a log line unmasked, in text or JSON form."""

from __future__ import annotations

import io
import json

from twisted.logger import Logger, LogLevel, LogPublisher
from twisted.python.failure import Failure

from callcenter.logs import MaskingObserver
from callcenter.masking import mask_number, mask_text


def test_mask_number():
    assert mask_number("13812345678") == "138********"
    assert mask_number("+86 138-1234-5678") == "861**********"
    assert mask_number("12345") == "*****"
    assert mask_number("62345678") == "********"  # a local landline: too short to keep any digit
    assert mask_number("anonymous") == "anonymous"
    assert mask_number("") == ""


def test_mask_text_masks_every_number_like_run():
    text = "caller 13812345678 rang 02161234567 from ext 1001"
    assert mask_text(text) == "caller 138******** rang 021******** from ext 1001"


def test_mask_text_keeps_asterisk_unique_ids_readable():
    text = "call 1795869867.4 from 13812345678. next"
    assert mask_text(text) == "call 1795869867.4 from 138********. next"
    assert mask_text("<Factory object at 0x7f8310950> 13812345678") == "<Factory object at 0x7f8310950> 138********"


def _log_through(as_json: bool, emit) -> str:
    stream = io.StringIO()
    publisher = LogPublisher(MaskingObserver(stream, as_json=as_json))
    emit(Logger(namespace="test.ns", observer=publisher))
    return stream.getvalue()


def test_text_lines_are_masked_and_readable():
    out = _log_through(False, lambda log: log.info("call from {caller} queued", caller="13812345678"))
    assert out.endswith("\n") and out.count("\n") == 1
    assert "info  [test.ns] call from 138******** queued" in out
    assert "13812345678" not in out


def test_json_lines_are_masked_and_parse():
    out = _log_through(True, lambda log: log.warn("from {caller}", caller="13812345678"))
    record = json.loads(out)
    assert record["level"] == "warn"
    assert record["namespace"] == "test.ns"
    assert record["message"] == "from 138********"
    assert record["time"].endswith("Z")


def test_tracebacks_are_masked_too():
    def emit(log):
        try:
            raise ValueError("bad caller 13812345678")
        except ValueError:
            log.failure("handler failed", Failure(), LogLevel.error)

    for as_json in (False, True):
        out = _log_through(as_json, emit)
        assert "13812345678" not in out
        assert "ValueError: bad caller 138********" in (json.loads(out)["message"] if as_json else out)
