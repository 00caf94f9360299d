"""Fixtures for the metrics tests: promtool, and the /metrics text of a running ACD.

``acd_metrics`` starts tests/metrics/acd_with_calls.py as a subprocess: the real
callcenter.app.Acd with embedded Redis and every present subsystem, which
handles the calls of tests/metrics/scenario.py and serves /metrics on its
admin port.  The text is fetched over HTTP once per session and the process is
stopped again (SIGTERM, then waited for).
"""

from __future__ import annotations

import functools
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from callcenter.ports import free_port
from callcenter.testing.polling import PROCESS_START_S, wait_until

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
PROMTOOL_DIR = HERE / "promtool"
RULES_DIR = REPO_ROOT / "deploy" / "prometheus" / "rules"
DASHBOARD_DIR = REPO_ROOT / "deploy" / "grafana" / "dashboards"


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not on PATH: run `sh tests/support/ensure_promtool.sh` "
                    "(installs Debian's `prometheus` package)")
    return path


def run_promtool(promtool: str, *args: str, stdin: str | None = None, cwd: Path | None = None) -> str:
    """Run promtool; fail the test with its full output unless it exits 0."""
    proc = subprocess.run([promtool, *args], input=stdin, capture_output=True, text=True, timeout=120,
                          cwd=cwd)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"promtool {' '.join(args)} failed (exit {proc.returncode}):\n{output}"
    return output


@dataclass(frozen=True)
class AcdMetrics:
    text: str  # the /metrics body
    content_type: str
    healthz: int
    subsystems: tuple[str, ...]


def _line_reader(proc: subprocess.Popen) -> queue.Queue:
    """Lines of the child's stdout, read by a thread ("" at end of file), so waits can time out."""
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _read_line(lines: queue.Queue, deadline: float) -> str:
    try:
        return lines.get(timeout=max(0.0, deadline - time.monotonic()))
    except queue.Empty:
        raise AssertionError(f"the ACD did not report READY within {PROCESS_START_S:.0f} s") from None


@pytest.fixture(scope="session")
def acd_metrics(tmp_path_factory) -> AcdMetrics:
    tmp = tmp_path_factory.mktemp("acd")
    raw = yaml.safe_load((REPO_ROOT / "deploy" / "callcenter.yaml").read_text(encoding="utf-8"))
    raw["acd"]["state_dir"] = str(tmp / "state")
    # Port 0 where the subsystem allows it (admin HTTP; FastAGI and its relay); the
    # seat server's WebSocket URL needs a real port.
    raw["acd"]["listen"] = {"host": "127.0.0.1", "admin_port": 0, "fastagi_port": 0, "seat_port": free_port()}
    raw["acd"]["redis_url"] = None
    raw["acd"]["database_url"] = None
    # The scenario has an abandoned-to-callback call; the script runs the ACD without
    # `serve`'s spool check, so the callback is counted but not placed (scenario.py).
    raw["queues"][0]["callback"]["abandoned_to_callback"] = True
    config = tmp / "callcenter.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    env = dict(os.environ)
    for var in ("CALLCENTER_REDIS_URL", "CALLCENTER_DATABASE_URL", "CALLCENTER_STATE_DIR"):
        env.pop(var, None)
    log = (tmp / "acd.log").open("w")
    proc = subprocess.Popen([sys.executable, str(HERE / "acd_with_calls.py"), str(config)], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    lines = _line_reader(proc)
    try:
        deadline = time.monotonic() + PROCESS_START_S
        url, subsystems = None, ()
        while url is None:
            line = _read_line(lines, deadline)
            if not line:
                proc.wait(timeout=5)
                raise AssertionError(f"the ACD exited ({proc.returncode}); log:\n{(tmp / 'acd.log').read_text()}")
            if line.startswith("FAILED"):
                raise AssertionError("".join([line] + [lines.get(timeout=5) for _ in range(40) if not lines.empty()]))
            if line.startswith("SUBSYSTEMS "):
                subsystems = tuple(s.strip() for s in line.split(" ", 1)[1].split(",") if s.strip())
            if line.startswith("READY "):
                url = line.split()[1]
        # The records writer reports the database after its first write, in a
        # thread: poll until both health gauges have been set (or 15 s passed).
        scraped: list[tuple[str, str]] = []

        def healthy() -> bool:
            with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
                scraped.append((resp.read().decode("utf-8"), resp.headers.get("Content-Type", "")))
            text = scraped[-1][0]
            return "\ncallcenter_database_up 1.0" in text and "\ncallcenter_redis_up 1.0" in text

        try:
            wait_until(healthy, 30, "both health gauges on /metrics", interval=0.1)
        except AssertionError:
            pass  # the exposition tests then name the gauge that is missing
        text, content_type = scraped[-1]
        with urllib.request.urlopen(url + "/healthz", timeout=10) as resp:
            healthz = resp.status
        return AcdMetrics(text, content_type, healthz, subsystems)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        log.close()


@functools.lru_cache(maxsize=4)
def _parsed(text: str) -> tuple[tuple[str, tuple[tuple[str, str], ...], float], ...]:
    from prometheus_client.parser import text_string_to_metric_families

    return tuple((s.name, tuple(sorted(s.labels.items())), s.value)
                 for fam in text_string_to_metric_families(text) for s in fam.samples)


def exported_samples(text: str) -> list[tuple[str, dict[str, str]]]:
    """(series name, labels) of every sample in an exposition text."""
    return [(name, dict(labels)) for name, labels, _ in _parsed(text)]


def sample_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    total, found = 0.0, False
    for sname, slabels, value in _parsed(text):
        d = dict(slabels)
        if sname == name and all(d.get(k) == v for k, v in labels.items()):
            total += value
            found = True
    assert found, f"no sample {name}{labels} in the exposition"
    return total
