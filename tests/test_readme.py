"""The README's commands work as written.

Every fenced ``sh`` block of README.md runs, one line at a time with bash, from the repository
root, and each line must exit 0 -- unless the line right above the block says
``<!-- not run by tests: REASON -->`` (a server that runs until Ctrl-C, the test suite itself,
commands that need the ACD of ``make run``).  A new command in the README is tested by default.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from callcenter.testing.polling import PROCESS_START_S

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"(?:^<!-- not run by tests: (?P<reason>.*?) -->\n)?^```sh\n(?P<body>.*?)^```$", re.S | re.M)


def blocks() -> list[tuple[str | None, str]]:
    return [(m["reason"], m["body"]) for m in BLOCK.finditer(README)]


def commands() -> list[str]:
    return [line.strip() for reason, body in blocks() if reason is None
            for line in body.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_every_sh_block_is_run_or_says_why_not():
    assert len(blocks()) == README.count("```sh"), "a ```sh block the pattern did not read"
    assert all(reason is None or reason.strip() for reason, _ in blocks())
    assert len(commands()) >= 4
    assert not any(line.rstrip().endswith("\\") for line in commands()), "one command per line"


@pytest.mark.parametrize("command", commands())
def test_readme_command_runs_as_written(command):
    if not (REPO / ".venv" / "bin" / "callcenter").exists():
        pytest.skip("the README's commands use .venv/bin/, which `make run` and `make test` create; "
                    "this run has no .venv in the repository")
    proc = subprocess.run(["bash", "-c", command], cwd=REPO, capture_output=True, text=True,
                          timeout=PROCESS_START_S)
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
