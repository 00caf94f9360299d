"""pyst2 0.5.1's quirks, exercised on the real library with the transcripts' reply lines."""

from __future__ import annotations

import io
import signal
import threading

import pytest
from asterisk import agi as pyst

from callcenter.agi.pyst2_compat import open_agi, safe_execute

ENV = "agi_request: hotline_inbound.py\nagi_channel: PJSIP/trunk-1\nagi_uniqueid: 1.1\n\n"


@pytest.fixture(autouse=True)
def _restore_sighup():
    old = signal.getsignal(signal.SIGHUP)  # pyst2's AGI() installs its own handler
    yield
    signal.signal(signal.SIGHUP, old)


def make(replies: str):
    stdin = io.StringIO(ENV + replies)
    stdout = io.StringIO()
    return open_agi(stdin=stdin, stdout=stdout), stdout


def test_pyst2_raises_app_error_for_the_interrupted_command_then_sighup_hangup():
    agi, out = make("200 result=-1 endpos=12000\n200 result=1\n")
    with pytest.raises(pyst.AGIAppError):  # not AGIHangup (02)
        agi.execute("STREAM FILE", "demo-congrats", '""')
    agi._handle_sighup(1, None)
    with pytest.raises(pyst.AGISIGHUPHangup):
        agi.execute("SET VARIABLE", "CC_RESULT", "hangup")
    assert out.getvalue().count("\n") == 1  # ... and it sent nothing


def test_safe_execute_maps_every_quirk():
    agi, out = make("200 result=-1 endpos=12000\n"
                    "511 Command Not Permitted on a dead channel or intercept routine\n"
                    "200 result=1\n")
    assert safe_execute(agi, "STREAM FILE", "demo-congrats", '""') == (200, "-1")
    assert safe_execute(agi, "CHANNEL STATUS") == (511, "")  # pyst2: AGIUnknownError(511)
    agi._handle_sighup(1, None)
    # after SIGHUP pyst2 would refuse to send; SET VARIABLE works on a dead channel (02), so we send it
    assert safe_execute(agi, "SET VARIABLE", "CC_RESULT", "hangup") == (200, "1")
    assert out.getvalue().endswith("SET VARIABLE CC_RESULT hangup\n")


def test_bare_hangup_line_makes_pyst2_fail_with_value_error():
    agi, _ = make("HANGUP\n")
    assert safe_execute(agi, "NOOP") == (0, "HANGUP")


def test_pyst2_stderr_is_silenced_and_main_thread_is_required():
    agi, _ = make("")
    assert agi.stderr.name == "/dev/null"
    errors = []

    def other():
        try:
            make("")
        except RuntimeError as exc:
            errors.append(exc)
    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert errors and "main thread" in str(errors[0])
