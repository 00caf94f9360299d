"""A real Asterisk 22 for end-to-end tests and benchmarks/asterisk.py.

``find_asterisk()`` asks tests/support/ensure_asterisk.sh (``--where``) for the cached install;
``Asterisk(prefix).start()`` runs it from scratch directories of its own:

* ``asterisk.conf`` whose ``[directories]`` all point into the scratch folder (so it runs
  next to any other Asterisk, unprivileged-style), started with ``asterisk -C <conf> -f``
  and waited for with ``core waitfullybooted`` over ``asterisk -rx`` (shared/asterisk/README.md);
* ``modules.conf`` with ``autoload = no`` and an explicit ``load =>`` list;
* AMI on 127.0.0.1 on a free port (Originate, DBPut), see :class:`Ami`;
* cdr_csv writing ``Master.csv`` with the unique id, user field and linked id columns
  (cdr/cdr_csv.c: ``loguniqueid``, ``loguserfield``, ``newcdrcolumns``), read by :meth:`Asterisk.cdrs`.

The project's dialplan files are copied in with only addresses substituted (the caller passes
the substitutions); test-only contexts are appended in a file of their own.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from callcenter.ports import free_port
from callcenter.testing.polling import wait_until

REPO = Path(__file__).resolve().parent.parent.parent
ENSURE = REPO / "tests" / "support" / "ensure_asterisk.sh"

MODULES = (
    "pbx_config.so", "pbx_spool.so",
    "app_dial.so", "app_queue.so", "app_playback.so", "app_stack.so", "app_exec.so", "app_echo.so",
    "app_verbose.so", "app_senddtmf.so", "app_originate.so",
    "res_speech.so", "res_agi.so", "res_musiconhold.so", "res_timing_timerfd.so",
    "func_callerid.so", "func_cdr.so", "func_logic.so", "func_db.so", "func_strings.so", "func_channel.so",
    "func_global.so",
    "cdr_csv.so",
    "bridge_simple.so", "bridge_builtin_features.so", "bridge_holding.so",
    "codec_ulaw.so", "codec_alaw.so", "codec_a_mu.so",
    "format_wav.so", "format_pcm.so", "format_sln.so",
)

# Every sound file the dialplan and the ACD's flow play (one second of ulaw silence each): with
# a missing file STREAM FILE answers -1 and the flow takes it for a possible hang-up (docs/agi.md).
SOUNDS = (
    "cc-sorry-busy", "cc-call-later", "cc-callback-connecting", "cc-callback-no-number", "cc-callback-confirmed",
    "cc-expected-wait", "cc-minutes", "cc-policy-notice", "cc-press-2-for-callback", "cc-your-position",
    "cc-emergency", "beep",
    *(f"digits/{n}" for n in (*range(0, 21), 30, 40, 50, 60, 70, 80, 90, "hundred", "thousand", "million")),
)


def find_asterisk() -> tuple[Path | None, str]:
    """(prefix, "") when the cached build exists, else (None, the one reason the tests skip)."""
    if os.environ.get("CALLCENTER_ASTERISK_PREFIX_OVERRIDE"):
        return Path(os.environ["CALLCENTER_ASTERISK_PREFIX_OVERRIDE"]), ""
    out = subprocess.run(["bash", str(ENSURE), "--where"], capture_output=True, text=True, timeout=30)
    text = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr.strip()
    if out.returncode == 0:
        return Path(text), ""
    return None, text or "tests/support/ensure_asterisk.sh --where failed"


@dataclass
class CdrRow:
    """One line of cdr_csv's Master.csv (column order: cdr/cdr_csv.c build_csv_record)."""

    accountcode: str
    src: str
    dst: str
    dcontext: str
    clid: str
    channel: str
    dstchannel: str
    lastapp: str
    lastdata: str
    start: str
    answer: str
    end: str
    duration: int
    billsec: int
    disposition: str
    amaflags: str
    uniqueid: str
    userfield: str
    peeraccount: str
    linkedid: str
    sequence: int


class Ami:
    """A minimal blocking Asterisk Manager Interface client (events off): enough for Originate,
    DBPut and Hangup.  Bounded: responses larger than 1 MiB are refused."""

    def __init__(self, port: int, username: str, secret: str, timeout: float = 10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.seq = 0
        self._read_line()  # "Asterisk Call Manager/x.y.z"
        r = self.action("Login", Username=username, Secret=secret, Events="off")
        if r.get("Response") != "Success":
            raise RuntimeError(f"AMI login refused: {r}")

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("AMI closed")
            self.buf += chunk
            if len(self.buf) > 1 << 20:
                raise RuntimeError("AMI: oversized message")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read_message(self) -> dict[str, str]:
        msg: dict[str, str] = {}
        while True:
            line = self._read_line()
            if not line:
                if msg:
                    return msg
                continue
            k, _, v = line.decode("utf-8", "replace").partition(":")
            msg[k.strip()] = v.strip()

    def action(self, name: str, **fields) -> dict[str, str]:
        self.seq += 1
        aid = f"a{self.seq}"
        lines = [f"Action: {name}", f"ActionID: {aid}"]
        for k, v in fields.items():
            for item in v if isinstance(v, list | tuple) else [v]:
                lines.append(f"{k}: {item}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while True:
            msg = self._read_message()
            if msg.get("ActionID") == aid and "Response" in msg:
                return msg

    def close(self) -> None:
        try:
            self.action("Logoff")
        except (OSError, ConnectionError, RuntimeError):
            pass
        self.sock.close()


class Asterisk:
    """One Asterisk process in a scratch folder of its own."""

    AMI_USER, AMI_SECRET = "e2e", "e2e-secret"

    def __init__(self, prefix: Path, *, dialplan: str, extra_dialplan: str = "", musiconhold: str = "",
                 queues: str = "", verbose: int = 0, env: dict[str, str] | None = None):
        self.prefix = Path(prefix)
        # short: the control socket's path must fit a sockaddr_un (108 bytes)
        self.root = Path(tempfile.mkdtemp(prefix="cc-ast-"))
        self.dialplan, self.extra_dialplan = dialplan, extra_dialplan
        self.musiconhold, self.queues = musiconhold, queues
        # CALLCENTER_E2E_VERBOSE=3: Asterisk's verbose messages into messages.log (debugging a test)
        self.verbose = verbose or int(os.environ.get("CALLCENTER_E2E_VERBOSE", "0") or 0)
        self.ami_port = free_port()
        # Asterisk's environment is what classic AGI scripts inherit (e.g. CALLCENTER_AGI_SECRET)
        self.env = dict(os.environ, **(env or {}))
        self.proc: subprocess.Popen | None = None
        self._ami: Ami | None = None

    # ---------------------------------------------------------------- layout
    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def outgoing(self) -> Path:
        return self.spool / "outgoing"

    @property
    def moh_dir(self) -> Path:
        return self.root / "moh" / "cc-hold"

    @property
    def master_csv(self) -> Path:
        return self.root / "log" / "cdr-csv" / "Master.csv"

    @property
    def conf(self) -> Path:
        return self.etc / "asterisk.conf"

    def _write_config(self) -> None:
        for d in ("etc", "run", "log/cdr-csv", "lib/astdb", "spool/outgoing", "data/sounds/en/digits",
                  "keys", "agi-bin", "moh/cc-hold"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        lib = self.prefix / "lib" / "asterisk" / "modules"
        (self.etc / "asterisk.conf").write_text(f"""[directories]
astetcdir => {self.etc}
astmoddir => {lib}
astvarlibdir => {self.root / 'lib'}
astdbdir => {self.root / 'lib' / 'astdb'}
astkeydir => {self.root / 'keys'}
astdatadir => {self.root / 'data'}
astagidir => {self.root / 'agi-bin'}
astspooldir => {self.spool}
astrundir => {self.root / 'run'}
astlogdir => {self.root / 'log'}
astsbindir => {self.prefix / 'sbin'}

[options]
verbose = {self.verbose}
debug = 0
maxfiles = 65536
transmit_silence = no
hideconnect = yes
""")
        (self.etc / "modules.conf").write_text(
            "[modules]\nautoload = no\n" + "".join(f"load => {m}\n" for m in MODULES))
        (self.etc / "logger.conf").write_text(
            "[general]\ndateformat = %F %T.%3q\n[logfiles]\nmessages.log => notice,warning,error"
            + (",verbose" if self.verbose else "") + "\n")
        (self.etc / "manager.conf").write_text(f"""[general]
enabled = yes
bindaddr = 127.0.0.1
port = {self.ami_port}
webenabled = no

[{self.AMI_USER}]
secret = {self.AMI_SECRET}
permit = 127.0.0.1/255.255.255.255
read = all
write = all
""")
        # cdr_csv reads the [csv] section of cdr.conf (cdr/cdr_csv.c load_config)
        (self.etc / "cdr.conf").write_text(
            "[general]\nenable = yes\nunanswered = yes\ncongestion = yes\nbatch = no\n"
            "[csv]\nusegmtime = yes\nloguniqueid = yes\nloguserfield = yes\naccountlogs = no\nnewcdrcolumns = yes\n")
        # Ringing()/Busy()/Congestion() play tones from indications.conf
        (self.etc / "indications.conf").write_text(
            "[general]\ncountry = us\n[us]\ndescription = United States\nringcadence = 2000,4000\n"
            "dial = 350+440\nbusy = 480+620/500,0/500\nring = 440+480/2000,0/4000\n"
            "congestion = 480+620/250,0/250\n")
        for quiet in ("features.conf", "cel.conf", "acl.conf", "udptl.conf", "ccss.conf", "stasis.conf"):
            (self.etc / quiet).write_text("")
        (self.etc / "extensions-callcenter.conf").write_text(self.dialplan)
        (self.etc / "extensions-e2e.conf").write_text(self.extra_dialplan)
        (self.etc / "extensions.conf").write_text(
            "[general]\nstatic = yes\nwriteprotect = yes\n"
            '#include "extensions-callcenter.conf"\n#include "extensions-e2e.conf"\n')
        (self.etc / "musiconhold.conf").write_text("[general]\n" + self.musiconhold)
        (self.etc / "queues.conf").write_text("[general]\nshared_lastcall = no\n" + self.queues)
        (self.etc / "agi.conf").write_text("")
        (self.etc / "pbx_spool.conf").write_text("")
        silence = b"\xff" * 8000  # one second of mu-law silence
        for name in SOUNDS:
            (self.root / "data" / "sounds" / "en" / f"{name}.ulaw").write_bytes(silence)
        (self.moh_dir / "hold.ulaw").write_bytes(silence * 5)

    # ---------------------------------------------------------------- life
    def start(self, timeout: float = 60.0) -> Asterisk:
        self._write_config()
        self.log = open(self.root / "console.log", "wb")
        # -f: no fork; -n: no colour; -q: quiet console; stdin from /dev/null so it does not read a tty.
        self.proc = subprocess.Popen(
            [str(self.prefix / "sbin" / "asterisk"), "-C", str(self.conf), "-f", "-n", "-q"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env=self.env)
        wait_until(lambda: self.proc.poll() is not None or (self.root / "run" / "asterisk.ctl").exists(),
                   timeout, "Asterisk's control socket")
        if self.proc.poll() is not None:
            raise RuntimeError(f"Asterisk exited with {self.proc.returncode}: {self.console_tail()}")
        self.rx("core waitfullybooted", timeout=timeout)
        wait_until(lambda: self._ami_ready(), timeout, "AMI listening")
        return self

    def _ami_ready(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.ami_port), timeout=1).close()
            return True
        except OSError:
            return False

    def console_tail(self, n: int = 4000) -> str:
        try:
            return (self.root / "console.log").read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def messages(self) -> str:
        try:
            return (self.root / "log" / "messages.log").read_text("utf-8", "replace")
        except OSError:
            return ""

    def rx(self, command: str, timeout: float = 30.0) -> str:
        out = subprocess.run([str(self.prefix / "sbin" / "asterisk"), "-C", str(self.conf), "-rx", command],
                             capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"asterisk -rx {command!r} failed ({out.returncode}): {out.stderr or out.stdout}")
        return out.stdout

    @property
    def ami(self) -> Ami:
        if self._ami is None:
            self._ami = Ami(self.ami_port, self.AMI_USER, self.AMI_SECRET)
        return self._ami

    def active_channels(self) -> int:
        """``core show channels count``: '<n> active channel(s)'."""
        for line in self.rx("core show channels count").splitlines():
            if "active channel" in line:
                return int(line.split()[0])
        raise RuntimeError("no channel count in core show channels count")

    def originate(self, channel: str, *, context: str, exten: str, callerid: str = "",
                  variables: dict[str, str] | None = None, timeout_ms: int = 60000) -> dict[str, str]:
        fields: dict = {"Channel": channel, "Context": context, "Exten": exten, "Priority": "1",
                        "Async": "true", "Timeout": str(timeout_ms)}
        if callerid:
            fields["CallerID"] = callerid
        if variables:
            fields["Variable"] = [f"{k}={v}" for k, v in variables.items()]
        r = self.ami.action("Originate", **fields)
        if r.get("Response") != "Success":
            raise RuntimeError(f"Originate refused: {r}")
        return r

    def cdrs(self) -> list[CdrRow]:
        try:
            text = self.master_csv.read_text("utf-8", "replace")
        except FileNotFoundError:
            return []
        rows = []
        for rec in csv.reader(text.splitlines()):
            if len(rec) != 21:
                raise AssertionError(f"Master.csv line with {len(rec)} columns, expected 21: {rec}")
            rec[12], rec[13], rec[20] = int(rec[12]), int(rec[13]), int(rec[20])
            rows.append(CdrRow(*rec))
        return rows

    def cpu_seconds(self) -> float:
        """utime + stime of the Asterisk process (all its threads), from /proc/<pid>/stat."""
        return proc_tree_cpu(self.proc.pid)

    def stop(self) -> None:
        if self._ami is not None:
            self._ami.close()
            self._ami = None
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.rx("core stop now", timeout=10)
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def proc_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and every live descendant, from /proc."""
    tck = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        rest = raw[raw.rindex(")") + 2:].split()
        ppid = int(rest[1])
        children.setdefault(ppid, []).append(int(entry))
        stats[int(entry)] = (int(rest[11]) + int(rest[12])) / tck
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, 0.0)
        todo.extend(children.get(p, []))
    return total

