"""The classic AGI script's core: relay Asterisk's pipes to the ACD, line by line.

The classic script runs no call logic of its own.  It authenticates to the
ACD's relay port (:mod:`callcenter.fastagi.handshake`), sends the environment
block pyst2 read, and from then on copies the ACD's commands to stdout and
Asterisk's replies from stdin back, so the ACD runs the very same flow as for
FastAGI.  What it translates:

* SIGHUP (classic hang-up signal, sent right after the interrupted command's
  reply, 02) becomes the ``HANGUP`` line FastAGI would send (08b): replies
  already in the pipe are forwarded first, so the order matches Asterisk's.
* EOF on stdin (``AGIEXITONHANGUP=yes``, 04) becomes ``HANGUP`` plus close.
* The ACD going away without having set ``CC_RESULT``: wait for the reply to
  the command in flight, reconnect (next address first) and resume the call
  by the id the flow set in ``CC_CALL_ID`` (``hotline?resume=<id>``).
* No ACD at call start: give up within ``START_BUDGET_S`` (< 2 s), set
  ``CC_RESULT=noacd`` and exit 1 (AGISTATUS=FAILURE, 01c) for the fallback.

Standard library only (it runs once per call; start-up cost matters).
"""

from __future__ import annotations

import errno
import os
import selectors
import signal
import socket
import time
from urllib.parse import parse_qsl, urlencode

from .protocol import AgiReader, ProtocolError, Reply

START_BUDGET_S = 1.2  # connect + handshake to any ACD at call start; the script exits well within 2 s
CONNECT_TIMEOUT_S = 0.5
RESUME_BUDGET_S = 20.0  # after a drop: time for a standby ACD to take over (lease ttl + start)
EXIT_OK = 0
EXIT_NO_ACD = 1


class AcdUnreachable(Exception):
    pass


def parse_addresses(text: str) -> list[tuple[str, int]]:
    """``"10.0.0.5:4574,10.0.0.6:4574"`` -> [(host, port), ...]."""
    out = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        host, _, port = part.rpartition(":")
        out.append((host.strip("[]") or "127.0.0.1", int(port)))
    return out


def _read_line(sock: socket.socket, deadline: float, limit: int = 512) -> bytes:
    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or len(buf) > limit:
            raise OSError("no greeting from the ACD")
        sock.settimeout(left)
        chunk = sock.recv(1)
        if not chunk:
            raise OSError("the ACD closed during the handshake")
        buf += chunk
    return buf


def connect(addresses, secret: str, env_block: bytes, budget_s: float, *, start_index: int = 0,
            max_passes: int | None = None):
    """Try each ACD in turn (wrapping) until one accepts or the budget is spent."""
    from callcenter.fastagi.handshake import auth_line

    deadline = time.monotonic() + budget_s
    i = start_index
    last = None
    tried = 0
    while time.monotonic() < deadline and addresses:
        if max_passes is not None and tried >= max_passes * len(addresses):
            break
        host, port = addresses[i % len(addresses)]
        i += 1
        tried += 1
        try:
            left = max(0.05, min(CONNECT_TIMEOUT_S, deadline - time.monotonic()))
            sock = socket.create_connection((host, port), timeout=left)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                greet = _read_line(sock, min(deadline, time.monotonic() + CONNECT_TIMEOUT_S))
                sock.settimeout(CONNECT_TIMEOUT_S)
                sock.sendall(auth_line(secret, greet) + env_block)
                sock.settimeout(None)
                sock.setblocking(False)
                return sock, (i - 1) % len(addresses)
            except (OSError, ValueError):
                sock.close()
                raise
        except (OSError, ValueError) as exc:
            last = exc
            if tried % len(addresses) == 0:
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
    raise AcdUnreachable(str(last or "no ACD address configured"))


def env_block(env: dict, script: str) -> bytes:
    lines = [("agi_network", "yes"), ("agi_network_script", script)]
    lines += [(k, v) for k, v in env.items() if k not in ("agi_network", "agi_network_script")]
    return b"".join(f"{k}: {v}\n".encode("utf-8", "surrogateescape") for k, v in lines) + b"\n"


def with_resume(script: str, call_id: str) -> str:
    path, _, query = script.partition("?")
    q = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "resume"]
    q.append(("resume", call_id))
    return f"{path}?{urlencode(q)}"


class Relay:
    """One call's relay loop.  ``hung_up()`` tells it a SIGHUP arrived (checked after each wake-up)."""

    def __init__(self, *, addresses, secret: str, env: dict, script: str, stdin_fd: int = 0, stdout_fd: int = 1,
                 hung_up=lambda: False):
        self.addresses = addresses
        self.secret = secret
        self.env = env
        self.script = script
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self.hung_up = hung_up
        self.call_id: str | None = None
        self.result: str | None = None
        self.outstanding = 0  # commands written to Asterisk whose reply has not come back yet
        self.hangup_sent = False
        self.reconnects = 0
        self._replies = AgiReader(expect_env=False)
        self._cmd_buf = b""
        self._index = 0

    # -------------------------------------------------------------- main

    def run(self) -> int:
        try:
            sock, self._index = connect(self.addresses, self.secret, env_block(self.env, self.script), START_BUDGET_S,
                                          max_passes=2)
        except AcdUnreachable:
            return EXIT_NO_ACD
        rfd, wfd = os.pipe()
        os.set_blocking(wfd, False)
        os.set_blocking(rfd, False)
        old = signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
        try:
            return self._loop(sock, rfd)
        finally:
            signal.set_wakeup_fd(old)
            os.close(rfd)
            os.close(wfd)

    def _loop(self, sock, rfd) -> int:
        sel = selectors.DefaultSelector()
        sel.register(self.stdin_fd, selectors.EVENT_READ, "stdin")
        sel.register(rfd, selectors.EVENT_READ, "wake")
        sel.register(sock, selectors.EVENT_READ, "acd")
        stdin_open = True
        while True:
            if not self.hangup_sent and self.hung_up() and sock is not None:
                self._drain_stdin(sock)
                self._to_acd(sock, b"HANGUP\n")
                self.hangup_sent = True
            for key, _ in sel.select(timeout=1.0):
                what = key.data
                if what == "wake":
                    try:
                        os.read(rfd, 512)
                    except BlockingIOError:
                        pass
                elif what == "stdin":
                    data = self._read(self.stdin_fd)
                    if not data:
                        # AGIEXITONHANGUP=yes: Asterisk closed the pipes (04)
                        stdin_open = False
                        sel.unregister(self.stdin_fd)
                        if sock is not None:
                            if not self.hangup_sent:
                                self._to_acd(sock, b"HANGUP\n")
                            sock.close()
                        return EXIT_OK
                    self._from_asterisk(sock, data)
                elif what == "acd":
                    data = self._recv(sock)
                    if data:
                        if not self._to_asterisk(data):
                            if sock is not None:
                                sock.close()
                            return EXIT_OK
                        continue
                    # the ACD closed: the call's end, or the ACD was lost
                    sel.unregister(sock)
                    sock.close()
                    sock = None
                    if self.result is not None:
                        return EXIT_OK
                    sock = self._resume(sel, stdin_open)
                    if sock is None:
                        self._set_result_noacd()
                        return EXIT_NO_ACD
                    sel.register(sock, selectors.EVENT_READ, "acd")

    # -------------------------------------------------------------- pieces

    def _read(self, fd) -> bytes:
        while True:
            try:
                return os.read(fd, 65536)
            except InterruptedError:
                continue
            except BlockingIOError:
                return b"\x00"  # nothing after all (never a real AGI byte)

    def _recv(self, sock) -> bytes:
        try:
            return sock.recv(65536)
        except BlockingIOError:
            return b"\x00"
        except OSError:
            return b""

    def _drain_stdin(self, sock) -> None:
        """Forward replies already in the pipe before the HANGUP line (reply first, then signal: 02)."""
        os.set_blocking(self.stdin_fd, False)
        try:
            while True:
                try:
                    data = os.read(self.stdin_fd, 65536)
                except BlockingIOError:
                    break
                if not data:
                    break
                self._from_asterisk(sock, data)
        finally:
            os.set_blocking(self.stdin_fd, True)

    def _from_asterisk(self, sock, data: bytes) -> None:
        if data == b"\x00":
            return
        try:
            n = sum(1 for ev in self._replies.receive_data(data) if isinstance(ev, Reply))
        except ProtocolError:
            n = 0
            self._replies = AgiReader(expect_env=False)
        self.outstanding = max(0, self.outstanding - n)
        if sock is not None:
            self._to_acd(sock, data)

    def _to_acd(self, sock, data: bytes) -> None:
        try:
            sock.setblocking(True)
            sock.sendall(data)
        except OSError:
            pass  # noticed on the next read; the reply is lost with the ACD, and resent never
        finally:
            try:
                sock.setblocking(False)
            except OSError:
                pass

    def _to_asterisk(self, data: bytes) -> bool:
        if data == b"\x00":
            return True
        self._cmd_buf += data
        lines = self._cmd_buf.split(b"\n")
        self._cmd_buf = lines.pop()
        for line in lines:
            self.outstanding += 1
            self._sniff(line)
        try:
            os.write(self.stdout_fd, data)
        except BrokenPipeError:
            return False  # Asterisk closed the pipes (04): nothing more to relay
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                return False
            raise
        return True

    def _sniff(self, line: bytes) -> None:
        """Learn the call id and the final result from the flow's own SET VARIABLE commands."""
        if not line.startswith(b"SET VARIABLE CC_"):
            return
        parts = line.decode("utf-8", "replace").split(" ", 3)
        if len(parts) == 4:
            value = parts[3].strip('"')
            if parts[2] == "CC_CALL_ID":
                self.call_id = value
            elif parts[2] == "CC_RESULT":
                self.result = value

    def _resume(self, sel, stdin_open: bool):
        """Wait for the command in flight, then reconnect and resume by call id."""
        deadline = time.monotonic() + RESUME_BUDGET_S
        while self.outstanding > 0 and stdin_open and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.5):
                if key.data == "stdin":
                    data = self._read(self.stdin_fd)
                    if not data:
                        return None
                    self._from_asterisk(None, data)
                elif key.data == "wake":
                    try:
                        os.read(key.fd, 512)
                    except BlockingIOError:
                        pass
        script = with_resume(self.script, self.call_id) if self.call_id else self.script
        self._replies = AgiReader(expect_env=False)
        try:
            sock, self._index = connect(self.addresses, self.secret, env_block(self.env, script),
                                        max(0.5, deadline - time.monotonic()), start_index=self._index + 1)
        except AcdUnreachable:
            return None
        self.reconnects += 1
        self.hangup_sent = False  # the new session must hear about a hang-up too
        return sock

    def _set_result_noacd(self) -> None:
        try:
            os.write(self.stdout_fd, b"SET VARIABLE CC_RESULT noacd\n")
        except OSError:
            pass
