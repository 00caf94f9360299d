"""A local ACD cluster for drills, tests and benchmarks: one real Redis and N
``callcenter serve`` processes sharing it, each with its own ports and state dir.

    with LocalCluster(tmp_dir, acds=2, agents=8) as cluster:
        active = cluster.wait_active()           # the one that took the lease
        ...
        active.kill()                            # SIGKILL
        cluster.wait_active(exclude=active)

Robot agents, two ways:

* ``seat_robots=False``: seeded into the live state in Redis before the first
  ACD starts (a snapshot with the agents logged in and ready), which is exactly
  what a takeover restores;
* ``seat_robots=True``: agent accounts ``robot-N`` (password
  :data:`ROBOT_PASSWORD`) in a records database shared by the ACDs, and one
  TLS certificate for all of them (``cluster.cafile``), so real seat clients
  (seat_agent.client, driven by callcenter/state/drill.py) log in over WSS and
  follow a failover.

Either way the agents' phones are ``PJSIP/robot-N``: the AGI peer harness's
Dial model answers them.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from callcenter.config import parse_config
from callcenter.ports import free_port
from callcenter.redis_server import EmbeddedRedis

from .lease import DEFAULT_KEYS, StateKeys
from .store import SNAPSHOT_FORMAT

__all__ = ["LocalCluster", "AcdProcess", "drill_config", "ADMIN_TOKEN", "ROBOT_PASSWORD"]

ADMIN_TOKEN = "drill-admin-token"
ROBOT_PASSWORD = "robot-password"
POOL = "own"


def drill_config(
    name: str,
    state_dir: Path,
    redis_url: str,
    ports: dict[str, int],
    *,
    lease_ttl_s: float = 3.0,
    database_url: str | None = None,
    tls: dict | None = None,
) -> dict:
    """A small hotline: one queue, one own pool, short timers (drills run in seconds)."""
    return {
        "acd": {
            "name": name,
            "state_dir": str(state_dir),
            "redis_url": redis_url,
            "database_url": database_url,
            "tls": tls or {},
            "listen": {"host": "127.0.0.1", **ports},
            "dev_mode": True,  # a local drill with the shipped drill secrets
            "caller_hash_key": "drill-caller-hash-key",
            "seat_token_secret": "drill-seat-token-secret",  # shared: seats resume on the survivor
            "admin_tokens": [
                {"name": "drill", "role": "admin", "token_sha256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()}
            ],
            "lease_ttl_s": lease_ttl_s,
        },
        "categories": [{"name": "other"}],
        "pools": [{"name": POOL, "kind": "own", "tier": 0, "wrapup_s": 0.5, "ring_timeout_s": 5, "max_no_answer": 3}],
        "queues": [{"name": "hotline-12345", "pools": [POOL], "announce_every_s": 5, "max_wait_s": 30, "aht_s": 4}],
    }


class AcdProcess:
    def __init__(
        self,
        name: str,
        directory: Path,
        redis_url: str,
        *,
        lease_ttl_s: float = 3.0,
        database_url: str | None = None,
        tls: dict | None = None,
        env: dict | None = None,
    ):
        self.name = name
        self.directory = directory
        self.ports = {"fastagi_port": free_port(), "seat_port": free_port(), "admin_port": free_port()}
        self.config_dict = drill_config(
            name,
            directory / "state",
            redis_url,
            self.ports,
            lease_ttl_s=lease_ttl_s,
            database_url=database_url,
            tls=tls,
        )
        self.config_path = directory / f"{name}.yaml"
        self.log_path = directory / f"{name}.log"
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def fastagi(self) -> tuple[str, int]:
        return ("127.0.0.1", self.ports["fastagi_port"])

    @property
    def seat_url(self) -> str:
        return f"wss://127.0.0.1:{self.ports['seat_port']}/seat"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['admin_port']}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> AcdProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config_dict), encoding="utf-8")
        env = dict(os.environ, **(self.env or {}))
        for var in ("CALLCENTER_REDIS_URL", "CALLCENTER_DATABASE_URL", "CALLCENTER_STATE_DIR"):
            env.pop(var, None)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "callcenter", "serve", "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.starts += 1
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def health(self, timeout: float = 0.5) -> str | None:
        try:
            with urllib.request.urlopen(self.admin_url + "/healthz", timeout=timeout) as r:
                return json.loads(r.read()).get("status")
        except urllib.error.HTTPError as e:
            try:
                return json.loads(e.read()).get("status")
            except Exception:
                return f"http-{e.code}"
        except (OSError, ValueError):
            return None

    def api(self, path: str, timeout: float = 2.0) -> tuple[int, Any]:
        req = urllib.request.Request(
            self.admin_url + "/api/v1/" + path.lstrip("/"), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, None

    def metrics(self, timeout: float = 2.0) -> str:
        with urllib.request.urlopen(self.admin_url + "/metrics", timeout=timeout) as r:
            return r.read().decode()

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self, timeout: float = 8.0) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


class LocalCluster:
    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        acds: int = 2,
        agents: int = 8,
        lease_ttl_s: float = 3.0,
        keys: StateKeys = DEFAULT_KEYS,
        seat_robots: bool = False,
        acd_overrides: dict | None = None,
    ):
        self.directory = Path(directory)
        self.acd_overrides = dict(acd_overrides or {})  # extra ``acd:`` config keys for every ACD
        self.redis = EmbeddedRedis(self.directory / "redis")
        self.n = acds
        self.agents = agents
        self.lease_ttl_s = lease_ttl_s
        self.keys = keys
        self.seat_robots = seat_robots
        self.acds: list[AcdProcess] = []
        self.cafile: str | None = None
        self.database_url: str | None = None

    def start(self) -> LocalCluster:
        self.redis.start()
        tls = None
        if self.seat_robots:
            tls = self._shared_tls()
            self.database_url = f"sqlite:///{self.directory / 'records.db'}"
            self._add_robot_accounts()
        self._prepare_state(seed_agents=not self.seat_robots)
        for i in range(self.n):
            acd = AcdProcess(
                f"acd-{i + 1}",
                self.directory / f"acd-{i + 1}",
                self.redis.url,
                lease_ttl_s=self.lease_ttl_s,
                database_url=self.database_url,
                tls=tls,
            )
            acd.config_dict["acd"].update(self.acd_overrides)
            self.acds.append(acd)
            acd.start()
            if i == 0:
                self.wait_active()  # the first one is the active, the others stand by
        for acd in self.acds[1:]:
            self.wait_standby(acd)
        return self

    def _shared_tls(self) -> dict:
        from callcenter.tls_certs import dev_certificate

        files = dev_certificate(self.directory / "tls")
        self.cafile = str(files.cert)
        return {"cert": str(files.cert), "key": str(files.key)}

    def _add_robot_accounts(self) -> None:
        from argon2 import PasswordHasher
        from sqlalchemy.orm import Session

        from callcenter.records.accounts import add_agent
        from callcenter.records.db import make_engine, migrate

        migrate(self.database_url)
        engine = make_engine(self.database_url)
        fast = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)  # test accounts: cheap hashes
        try:
            with Session(engine) as session:
                for i in range(self.agents):
                    add_agent(
                        session,
                        f"robot-{i}",
                        pool=POOL,
                        endpoint=f"PJSIP/robot-{i}",
                        password=ROBOT_PASSWORD,
                        hasher=fast,
                    )
                session.commit()
        finally:
            engine.dispose()

    def client(self):
        import redis

        return redis.Redis.from_url(self.redis.url, socket_timeout=2.0)

    def _prepare_state(self, seed_agents: bool) -> None:
        """A fence counter (so the first ACD need not wait the quiet period) and, unless real
        seat clients log in, a snapshot with the robot agents logged in and ready."""
        c = self.client()
        try:
            c.delete(self.keys.lease, self.keys.journal, self.keys.snapshot, self.keys.seq)
            c.set(self.keys.fence, 0)
            if not seed_agents:
                return
            from twisted.internet import task

            from callcenter.engine import Engine

            cfg = parse_config(drill_config("seed", self.directory, self.redis.url, {}), env={})
            clock = task.Clock()
            clock.advance(time.time())
            engine = Engine(cfg, clock)
            for i in range(self.agents):
                engine.agent_logged_in(f"robot-{i}", POOL, endpoint=f"PJSIP/robot-{i}")
                engine.agent_ready(f"robot-{i}")
            doc = {
                "format": SNAPSHOT_FORMAT,
                "seq": 0,
                "holder": "seed",
                "token": 0,
                "taken_at": clock.seconds(),
                "engine": engine.snapshot(),
            }
            c.set(self.keys.snapshot, json.dumps(doc))
            c.set(self.keys.seq, 0)
        finally:
            c.close()

    def active(self) -> AcdProcess | None:
        for acd in self.acds:
            if acd.alive() and acd.health() == "ok":
                return acd
        return None

    def wait_active(self, exclude: AcdProcess | None = None, timeout: float = 30.0) -> AcdProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for acd in self.acds:
                if acd is not exclude and acd.alive() and acd.health(0.2) == "ok":
                    return acd
            time.sleep(0.02)
        logs = "\n".join(f"--- {a.name}\n{a.log_text()[-3000:]}" for a in self.acds)
        raise TimeoutError(f"no active ACD within {timeout} s\n{logs}")

    def wait_standby(self, acd: AcdProcess, starts_seen: int = 0, timeout: float = 30.0) -> None:
        """Until ``acd`` has joined as a standby (more than ``starts_seen`` times in its log)."""
        deadline = time.monotonic() + timeout
        while acd.log_text().count("joining as standby") <= starts_seen:
            if time.monotonic() > deadline or not acd.alive():
                raise TimeoutError(f"{acd.name} did not join as standby\n{acd.log_text()[-3000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        for acd in self.acds:
            acd.stop()
        self.redis.stop()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
