"""A throwaway real PostgreSQL server for tests: initdb into a temp dir, pg_ctl start on a free port.

* Binaries: ``pg_ctl``/``initdb`` on PATH, else the newest /usr/lib/postgresql/*/bin.
  tests/support/ensure_postgres.sh installs Debian's ``postgresql`` package when
  neither exists (``make test`` and .ci/run call it before pytest).
* Trust authentication, TCP on 127.0.0.1 only, the unix socket in the temp dir,
  fsync off (it is thrown away).
* PostgreSQL refuses to run as root: as root, the server runs as the ``postgres``
  user (created by the Debian package or ensure_postgres.sh), else ``nobody``,
  through ``runuser``.
* :meth:`stop` / :meth:`start` can be called in the middle of a test (the
  records writer's outage test); :meth:`close` stops it and removes the files.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    pass


def find_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found and (Path(found).resolve().parent / "initdb").exists():
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise PostgresUnavailable("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


class PostgresServer:
    def __init__(self, bindir: Path | None = None):
        self.bindir = bindir or find_bindir()
        if self.bindir is None:
            raise PostgresUnavailable(
                "no PostgreSQL binaries (pg_ctl/initdb) on PATH or under /usr/lib/postgresql/*/bin; "
                "run tests/support/ensure_postgres.sh (make test does)")
        self.user = _run_as()
        self.base = Path(tempfile.mkdtemp(prefix="callcenter-pg-"))
        self.data = self.base / "data"
        self.logfile = self.base / "postgres.log"
        self.port = _free_port()
        self.running = False
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        self._cmd(["initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                   "--locale=C", "--no-sync"], timeout=120)

    def _cmd(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        argv = [str(self.bindir / argv[0]), *argv[1:]]
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=self.base)
        if proc.returncode != 0:
            log = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
            raise PostgresUnavailable(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}\n{log}")
        return proc

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> PostgresServer:
        opts = (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
        self._cmd(["pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.logfile), "-o", opts],
                  timeout=90)
        self.running = True
        return self

    def stop(self, mode: str = "fast") -> None:
        if self.running:
            self._cmd(["pg_ctl", "stop", "-w", "-t", "60", "-D", str(self.data), "-m", mode], timeout=90)
            self.running = False

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def close(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
