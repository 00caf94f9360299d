"""A minimal blocking WebSocket client over TLS (RFC 6455), for tests that drive a real
``callcenter serve`` process from plain pytest (no reactor in the test process).

Text frames only, client frames masked as RFC 6455 section 5.3 requires; enough to
speak the seat protocol.  Every read has a socket timeout, so a test never hangs.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import struct
from urllib.parse import urlsplit


class Closed(Exception):
    pass


class SyncSeat:
    def __init__(self, url: str, cafile: str, timeout: float = 10.0):
        u = urlsplit(url)
        ctx = ssl.create_default_context(cafile=cafile)
        raw = socket.create_connection((u.hostname, u.port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname=u.hostname)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise Closed("closed during the handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise Closed(f"handshake refused: {head[:80]!r}")
        self.hello = self.recv()

    def _exact(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise Closed("connection closed")
            out += chunk
        return out

    def send(self, msg: dict) -> None:
        data = json.dumps(msg).encode()
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self) -> dict:
        """The next text message (pings answered, pongs skipped); Closed on a close frame."""
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._exact(8))[0]
            payload = self._exact(n)
            op = b0 & 0x0F
            if op == 0x8:
                raise Closed(payload[2:].decode(errors="replace"))
            if op == 0x9:  # ping -> pong
                mask = os.urandom(4)
                self.sock.sendall(bytes([0x8A, 0x80 | len(payload)]) + mask
                                  + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
                continue
            if op == 0x1:
                return json.loads(payload)

    def recv_until(self, *types: str) -> dict:
        """Skip messages until one of ``types`` (or an error) arrives."""
        while True:
            msg = self.recv()
            if msg.get("type") in types or msg.get("type") == "error":
                return msg

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
