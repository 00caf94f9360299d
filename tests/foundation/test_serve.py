"""`callcenter serve` as a real process: addresses logged, /healthz, /metrics, clean
SIGTERM with no Redis left behind, and one ACD per state directory."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from callcenter.ports import free_port
from callcenter.testing.polling import PROCESS_START_S

from .procs import alive, redis_listening_on, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO_ROOT / "deploy" / "callcenter.yaml"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Server:
    """One `callcenter serve` child process with its stderr collected in a file."""

    def __init__(self, config: Path, log: Path, *extra: str):
        self.log = log
        self._log_file = open(log, "w")  # noqa: SIM115 - closed in wait()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "callcenter", "serve", "--config", str(config), *extra],
            cwd=REPO_ROOT, stdout=self._log_file, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )

    def output(self) -> str:
        return self.log.read_text()

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._log_file.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log_file.close()


@pytest.fixture
def serve_config(tmp_path) -> tuple[Path, dict]:
    raw = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    while True:  # the classic-AGI relay listens on fastagi_port + 1 (docs/agi.md)
        ports = {k: free_port() for k in ("fastagi_port", "seat_port", "admin_port")}
        taken = [*ports.values(), ports["fastagi_port"] + 1]
        if len(set(taken)) == 4 and _port_free(ports["fastagi_port"] + 1):
            break
    raw["acd"]["listen"].update(ports)
    raw["acd"]["state_dir"] = str(tmp_path / "state")
    path = tmp_path / "callcenter.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path, ports


def test_serve_logs_addresses_serves_health_and_metrics_refuses_a_twin_and_stops_cleanly(serve_config, tmp_path):
    config, ports = serve_config
    admin = f"http://127.0.0.1:{ports['admin_port']}"
    server = Server(config, tmp_path / "serve.log", "--log-json")
    try:
        wait_until(lambda: _get(admin + "/healthz")[0] == 200 or server.process.poll() is not None,
                   PROCESS_START_S, "/healthz 200")
        assert server.process.poll() is None, server.output()
        status, body = _get(admin + "/healthz")
        assert (status, json.loads(body)["status"], json.loads(body)["dev_mode"]) == (200, "ok", True)

        status, metrics = _get(admin + "/metrics")
        assert status == 200
        assert re.search(r"^# TYPE \w+ (counter|gauge|histogram|summary)$", metrics, re.M), metrics[:300]

        lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
        messages = [rec["message"] for rec in lines]
        listening = [m for m in messages if m.startswith("listening: ")]
        assert f"listening: admin HTTP {admin}/" in listening
        assert f"listening: /metrics {admin}/metrics" in listening
        subsystem_ports = {"fastagi_port": "callcenter/fastagi/service.py", "seat_port": "callcenter/seats/service.py"}
        for port_name, module in subsystem_ports.items():  # once those subsystems exist
            if (REPO_ROOT / module).exists():
                assert any(f":{ports[port_name]}" in m for m in listening), (port_name, listening)

        redis_pid = int((tmp_path / "state" / "redis" / "redis.pid").read_text())
        assert alive(redis_pid)
        redis_port = int(re.search(r"redis://127\.0\.0\.1:(\d+)/", "\n".join(messages)).group(1))

        # A second ACD on the same state directory: one clear line, exit 1, nothing disturbed.
        twin = Server(config, tmp_path / "twin.log")
        assert twin.wait(timeout=PROCESS_START_S) == 1
        out = twin.output().strip()
        assert "Traceback" not in out
        assert re.fullmatch(r"callcenter: another callcenter \(pid \d+\) is already running .*", out), out
        assert _get(admin + "/healthz")[0] == 200

        # The ACD's own stop budget (callcenter.app.STOP_BUDGET_S + REDIS_STOP_S, 4 s) runs on its
        # reactor clock; the deadline here only catches a hang, with room for a loaded machine.
        server.process.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
        assert code == 0, server.output()
        wait_until(lambda: not alive(redis_pid), 10, "the embedded redis-server to be gone")
        assert redis_listening_on(redis_port) == []
        assert "Traceback" not in server.output()
    finally:
        server.kill()
