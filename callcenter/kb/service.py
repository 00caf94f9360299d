"""``make_subsystem(acd)``: the public knowledge base at ``/kb`` of the admin HTTP port.

Read-only and without login (callcenter/kb/public.py).  Expose only ``/kb`` to
the Internet through the reverse proxy; the rest of that port is for operators.
"""

from __future__ import annotations

from typing import Any

__all__ = ["make_subsystem", "PublicKbSubsystem"]


class PublicKbSubsystem:
    def __init__(self, acd: Any):
        from callcenter.records.db import make_engine

        from .public import PublicKbResource
        from .store import KbStore

        self._engine = make_engine(acd.database_url)  # no connection until the first request (in a thread)
        self.resource = PublicKbResource(KbStore(self._engine), acd.reactor)
        acd.http_root.putChild(b"kb", self.resource)
        self._acd = acd
        self.listening: list[tuple[str, str]] = []

    def start(self) -> None:
        self.listening = [("public knowledge base", f"{self._acd.admin_url}/kb/")]

    def stop(self) -> None:
        self._engine.dispose()


def make_subsystem(acd: Any) -> PublicKbSubsystem:
    return PublicKbSubsystem(acd)
