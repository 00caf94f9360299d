"""Helpers of the admin API tests: a running ACD (engine + API) over real HTTP on loopback.

:func:`start_acd` starts tests/api/acd_harness.py in its own process with :func:`make_config`
(written to a temporary file, which ``POST /config/reload`` reads back) and
stops it afterwards.  ``acd.http(method, path, token=..., body=...)`` makes
one real HTTP request; ``acd.engine(input, *args, **kwargs)`` drives an
engine input as the AGI and seat shells would; ``acd.audit(expect=n)`` reads
the records ``audit_log`` table.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy
import yaml

from callcenter.api.auth import hash_token
from callcenter.testing.polling import PROCESS_START_S, wait_until

HARNESS = Path(__file__).with_name("acd_harness.py")
REPO_ROOT = Path(__file__).resolve().parents[2]

# token -> (name, role)
TOKENS = {
    "admin-secret": ("ops-admin", "admin"),
    "supervisor-secret": ("night-supervisor", "supervisor"),
    "viewer-secret": ("wallboard", "viewer"),
    "lender-12333-secret": ("hrss-12333", "lender:12333"),
    "lender-pool-secret": ("hrss-by-pool", "lender:lender-12333"),
    "lender-12315-secret": ("samr-12315", "lender:12315"),
}
ADMIN = "admin-secret"
SUPERVISOR = "supervisor-secret"
VIEWER = "viewer-secret"


def make_config() -> dict:
    return {
        "acd": {
            "name": "acd-test",
            "state_dir": ".",
            "admin_tokens": [
                {"name": name, "role": role, "token_sha256": hash_token(token)}
                for token, (name, role) in TOKENS.items()
            ],
        },
        "categories": [{"name": "other"}, {"name": "urgent", "priority": 10, "urgent": True}],
        "pools": [
            {"name": "own", "kind": "own", "tier": 0, "wrapup_s": 30},
            {"name": "remote", "kind": "remote", "tier": 1},
            {
                "name": "lender-12333",
                "kind": "borrowed",
                "lender": "12333",
                "tier": 2,
                "max_share": 0.5,
                "home_waiting_max": 5,
            },
            {
                "name": "lender-12315",
                "kind": "borrowed",
                "lender": "12315",
                "tier": 2,
                "max_share": 0.5,
                "home_waiting_max": 5,
            },
        ],
        "queues": [
            {
                "name": "hotline",
                "pools": ["own", "remote", "lender-12333", "lender-12315"],
                # long thresholds: only an emergency plan opens the remote tier within a test
                "tiers": [
                    {"tier": 1, "after_s": 3000, "urgent_at_once": False},
                    {"tier": 2, "after_s": 3600, "urgent_at_once": False},
                ],
                "max_wait_s": 7200,
                "emergency_plans": {
                    "surge": {"all_tiers_at_once": True, "callback_beyond_position": 10},
                    "drill": {"callback_beyond_position": 5},
                },
            },
            {"name": "quiet", "pools": ["own"], "max_wait_s": 7200},
        ],
    }


@dataclass
class Reply:
    status: int
    body: object
    headers: dict

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body!r})"


class RunningAcd:
    def __init__(self, proc: subprocess.Popen, port: int, database_url: str, config_path: Path, log_path: Path):
        self.proc, self.port, self.config_path, self.log_path = proc, port, config_path, log_path
        self.database_url = database_url
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/api/v1"

    def http(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: object = None,
        raw: bytes | None = None,
        headers: dict | None = None,
    ) -> Reply:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, payload, hdrs = resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            status, payload, hdrs = exc.code, exc.read(), dict(exc.headers)
        return Reply(status, json.loads(payload) if payload else None, hdrs)

    def engine(self, input: str, *args, **kwargs) -> list[dict]:
        reply = self.http("POST", "/_test/engine", body={"input": input, "args": list(args), "kwargs": kwargs})
        assert reply.status == 200, reply
        return reply.body["events"]

    def audit(self, expect: int = 0) -> list[dict]:
        """Rows of the records ``audit_log`` table (written off-thread: wait for ``expect`` rows)."""
        engine = sqlalchemy.create_engine(self.database_url)

        def read() -> list[dict]:
            with engine.connect() as conn:
                return [
                    dict(r._mapping)
                    for r in conn.execute(sqlalchemy.text("SELECT who, what, at, details FROM audit_log ORDER BY id"))
                ]

        try:
            found: list[list[dict]] = []
            wait_until(lambda: found.append(read()) or len(found[-1]) >= expect, 30, f"{expect} audit_log rows")
            rows = found[-1]
        finally:
            engine.dispose()
        for r in rows:
            if isinstance(r["details"], str):
                r["details"] = json.loads(r["details"])
        return rows

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_acd(directory: Path, config: dict) -> RunningAcd:
    config_path = directory / "callcenter.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    log_path = directory / "acd.log"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(HARNESS), str(config_path)], stdout=subprocess.PIPE, stderr=log, env=env, cwd=directory
        )
    deadline = time.monotonic() + PROCESS_START_S
    line = b""
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            break
    if not line.startswith(b"LISTENING "):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the ACD harness did not start: {line!r}\n{log_path.read_text(errors='replace')}")
    _, port, database_url = line.decode().split()
    return RunningAcd(proc, int(port), database_url, config_path, log_path)


def stop_acd(acd: RunningAcd) -> None:
    acd.proc.terminate()
    try:
        acd.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        acd.proc.kill()
        acd.proc.wait()
    acd.proc.stdout.close()
