"""The shipped dialplan (dialplan/*.conf), read as Asterisk's config parser reads it.

Asterisk's config parser starts a comment at the first ``;`` not escaped as ``\\;``
(main/config.c), so an unescaped ``;`` in a ``Set()`` value cuts the line: in
``[cc-agent-answered]`` that made every call log "Set requires an '=' to be a
valid assignment" and left the agent leg's userfield unset (issue 14).  The
e2e tests against a real Asterisk 22 (branch asterisk-e2e) run these files; the
checks here are the ones that need no Asterisk.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DIALPLAN = REPO / "dialplan"


def code_part(line: str) -> str:
    """The line up to its first unescaped ``;`` (what Asterisk keeps)."""
    m = re.search(r"(?<!\\);", line)
    return line[: m.start()] if m else line


def lines(name="extensions-callcenter.conf"):
    return (DIALPLAN / name).read_text(encoding="utf-8").splitlines()


def context(name: str) -> list[str]:
    out, inside = [], False
    for raw in lines():
        code = code_part(raw).strip()
        if code.startswith("["):
            inside = code.startswith(f"[{name}]")
            continue
        if inside and code:
            out.append(code)
    return out


def test_no_application_call_is_cut_by_a_semicolon():
    for path in DIALPLAN.glob("*.conf"):
        for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = code_part(raw)
            if "=>" not in code:
                continue
            assert code.count("(") == code.count(")"), f"{path.name}:{n}: a ';' cuts this line: {raw.strip()}"


def test_userfield_values_keep_every_field():
    answered = " ".join(context("cc-agent-answered"))
    assert r"Set(CDR(userfield)=call=${ARG1}\;agent=${ARG2})" in answered
    callback = " ".join(context("cc-callback"))
    assert r"Set(CDR(userfield)=call=${CC_CALL_ID}\;agent=${CC_AGENT}\;callback=1)" in callback


def test_inbound_answers_without_the_media_wait_before_any_agi():
    steps = context("cc-inbound")
    first_agi = next(i for i, s in enumerate(steps) if ",AGI(" in s)
    answer = next(i for i, s in enumerate(steps) if ",Answer(" in s)
    assert "Answer(,i)" in steps[answer] and answer < first_agi


def test_inbound_goes_round_every_acd_address_with_a_pause_and_a_budget():
    steps = context("cc-inbound")
    text = "\n".join(steps)
    glob = "\n".join(code_part(s) for s in lines())
    count = int(re.search(r"^CC_ACD_COUNT=(\d+)$", glob, re.M).group(1))
    rounds = int(re.search(r"^CC_ACD_ROUNDS=(\d+)$", glob, re.M).group(1))
    for i in range(1, count + 1):
        assert re.search(rf"^CC_ACD{i}=agi://", glob, re.M)
    assert "AGI(${CC_ACD${CC_I}}/hotline?" in text  # one loop over CC_ACD1..CC_ACD<count>
    assert "${CC_RESUME}" in text.split("AGI(${CC_ACD${CC_I}}", 1)[1].split("\n", 1)[0]
    assert "GotoIf($[${CC_I} < ${CC_ACD_COUNT}]?try)" in text
    assert "GotoIf($[${CC_ROUND} >= ${CC_ACD_ROUNDS}]?done)" in text
    assert "Wait(0.5)" in text and "Goto(round)" in text
    # refused connects fail in <1 ms (08d): the budget is about rounds x 0.5 s, > a 3 s takeover
    assert rounds * 0.5 >= 2 * 3.0


def test_an_ended_conversation_is_never_sent_to_the_fallback():
    steps = context("cc-inbound")
    done = next(i for i, s in enumerate(steps) if "n(done)" in s)
    fb = next(i for i, s in enumerate(steps) if "n(fb)" in s)
    guard = [s for s in steps[done:fb] if "dialing:ANSWER" in s]
    assert guard and guard[0].endswith("?bye)")


def test_classic_scripts_run_under_the_virtualenv_python():
    glob = "\n".join(code_part(s) for s in lines())
    python = re.search(r"^CC_PYTHON=(\S+)$", glob, re.M).group(1)
    assert python.endswith("/.venv/bin/python")
    calls = re.findall(r"AGI\(([^,)]*),\$\{CC_AGI_DIR\}/(\w+)\.py", glob)
    assert sorted(name for _, name in calls) == ["agent_answered", "callback_call", "hangup_report",
                                                 "hotline_inbound"]
    assert {prog for prog, _ in calls} == {"${CC_PYTHON}"}
