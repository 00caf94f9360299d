"""Pick a free TCP port on loopback (for the embedded Redis and for tests)."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port nobody listens on right now.

    The port is only free at the time of asking; a caller that then fails to
    bind it should ask again (see EmbeddedRedis.start, which retries).
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]
