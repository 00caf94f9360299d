"""``callcenter call`` against a real running ACD: the newcomer's path of `make run`.

A real ``callcenter serve`` (every subsystem, embedded Redis, SQLite), the demo accounts, real
robot agents over wss (``seat-agent robot``), then ``callcenter call`` places calls over the
FastAGI port with Asterisk's side played by the AGI peer harness.  Every call must reach a robot.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from callcenter.ports import free_port
from callcenter.testing.polling import PROCESS_START_S, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def _metrics(admin: str) -> str:
    try:
        with urllib.request.urlopen(admin + "/metrics", timeout=5) as r:
            return r.read().decode()
    except OSError:
        return ""


def _ready_agents(text: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("callcenter_agents{") and 'state="ready"' in line)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_calls_placed_over_fastagi_reach_robot_agents(tmp_path):
    state = tmp_path / "state"
    raw = yaml.safe_load((REPO_ROOT / "deploy" / "callcenter.yaml").read_text(encoding="utf-8"))
    while True:  # the classic-AGI relay listens on fastagi_port + 1
        ports = {k: free_port() for k in ("fastagi_port", "seat_port", "admin_port")}
        if len({*ports.values(), ports["fastagi_port"] + 1}) == 4:
            break
    raw["acd"]["listen"].update(host="127.0.0.1", **ports)
    raw["acd"]["state_dir"] = str(state)
    for pool in raw["pools"]:
        pool["wrapup_s"] = 1  # robots are back for the next call quickly
    config = tmp_path / "callcenter.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    admin = f"http://127.0.0.1:{ports['admin_port']}"

    accounts = subprocess.run([sys.executable, "-m", "seat_agent.demo", "--accounts-only", "--state-dir", str(state)],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=PROCESS_START_S)
    assert accounts.returncode == 0, accounts.stderr

    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen([str(BIN / "callcenter"), "serve", "--config", str(config)], cwd=REPO_ROOT,
                             stdout=log, stderr=subprocess.STDOUT)
    robots = None
    try:
        wait_until(lambda: "\ncallcenter_redis_up 1.0" in _metrics(admin) or serve.poll() is not None,
                   PROCESS_START_S, "the ACD to serve /metrics")
        assert serve.poll() is None, (tmp_path / "serve.log").read_text()
        robots = subprocess.Popen(
            [str(BIN / "seat-agent"), "robot", "--agents", "demo-own-1", "demo-own-2", "--password", "demo-pass",
             "--url", f"wss://127.0.0.1:{ports['seat_port']}/seat", "--cafile", str(state / "tls" / "dev-cert.pem"),
             "--seed", "3"],
            cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: _ready_agents(_metrics(admin)) >= 2, PROCESS_START_S, "two robot agents ready")

        run = subprocess.run(
            [str(BIN / "callcenter"), "call", "--acd", f"127.0.0.1:{ports['fastagi_port']}", "--count", "3",
             "--rate", "2", "--patience", "120", "--answer-after", "0.2", "--talk", "0.5"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout + run.stderr
        lines = run.stdout.strip().splitlines()
        per_call = [line for line in lines if line.startswith("call ")]
        assert len(per_call) == 3, run.stdout
        assert all(re.search(r"answered by demo-own-[12] after \d+\.\d s$", line) for line in per_call), run.stdout
        assert all(re.search(r"1\d\d\*{4}\d{4}", line) for line in per_call)  # caller numbers masked
        assert re.match(rf"3 call\(s\) to agi://127\.0\.0\.1:{ports['fastagi_port']}/hotline: answered 3; "
                        r"mean wait to answer \d+\.\d s in \d+ s$", lines[-1]), lines[-1]
        # The ACD counted them as answered calls.
        wait_until(lambda: re.search(r'^callcenter_calls_answered_total\{[^}]*pool="own-12345"[^}]*\} 3\.0$',
                                     _metrics(admin), re.M), 30, "the ACD to count 3 answered calls")
    finally:
        if robots is not None:
            _stop(robots)
        _stop(serve)
        log.close()


def test_the_plan_and_the_lines_are_deterministic():
    from callcenter.testing.calls_cli import Outcome, describe, plan_calls, summary_line

    plan = plan_calls(3, 2.0, seed=7)
    assert [c.at_s for c in plan] == [0.0, 0.5, 1.0] and plan == plan_calls(3, 2.0, seed=7)
    assert all(re.fullmatch(r"1[3-9]\d{9}", c.caller) for c in plan)
    answered = Outcome("answered", agent="demo-own-1", waited_s=2.04)
    assert describe(plan[0], 3, answered) == f"call 1/3 {plan[0].caller[:3]}****{plan[0].caller[-4:]}  " \
                                             "answered by demo-own-1 after 2.0 s"
    assert "no agent answered" in describe(plan[1], 3, Outcome("gave-up", waited_s=30.0))
    assert summary_line("h:1", [answered, Outcome("gave-up", waited_s=30.0), answered]) == \
        "3 call(s) to agi://h:1/hotline: answered 2, gave-up 1; mean wait to answer 2.0 s"
