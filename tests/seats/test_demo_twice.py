"""`make demo` twice in a row behaves the same: the second run starts from an empty live state."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from callcenter.pidlock import PidLock
from seat_agent.demo import reset_live_state

REPO = Path(__file__).resolve().parents[2]


def test_reset_removes_the_live_state_and_keeps_the_database(tmp_path):
    (tmp_path / "redis" / "appendonlydir").mkdir(parents=True)
    (tmp_path / "redis" / "dump.rdb").write_bytes(b"x")
    (tmp_path / "callcenter.db").write_bytes(b"db")
    assert reset_live_state(tmp_path) is True
    assert not (tmp_path / "redis").exists() and (tmp_path / "callcenter.db").read_bytes() == b"db"
    assert reset_live_state(tmp_path) is False


def test_reset_refuses_while_an_acd_runs_on_the_state_dir(tmp_path):
    (tmp_path / "redis").mkdir()
    lock = PidLock(tmp_path / "callcenter.pid")
    lock.acquire()
    try:
        with pytest.raises(SystemExit, match="already running"):
            reset_live_state(tmp_path)
        assert (tmp_path / "redis").exists()
    finally:
        lock.release()


def _demo(state_dir: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    proc = subprocess.run(
        [sys.executable, "-m", "seat_agent.demo", "--seconds", "6", "--rate", "1", "--state-dir", str(state_dir)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc.stdout


def test_make_demo_twice_in_a_row_starts_from_the_same_empty_state(tmp_path):
    state_dir = tmp_path / "demo"
    first = _demo(state_dir)
    assert (state_dir / "redis").exists()  # the run left its live state (calls were in progress at the stop)
    second = _demo(state_dir)
    for out in (first, second):
        restored = re.findall(r"restored (\d+) call\(s\), (\d+) agent\(s\)", out)
        assert restored == [("0", "0")], out[-3000:]
        assert re.search(r"calls placed [1-9]", out), out[-3000:]
    assert "removed the previous run's live state" in second
