"""``make_subsystem(acd)``: mounts the admin API at ``/api`` of the admin port.

Changes made through the API are recorded in the records subsystem's
``audit_log`` table when it is running (``acd.records.audit_logged``) and
always logged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from twisted.logger import Logger

from .handlers import ApiContext, AuditEntry, load_openapi
from .resource import ApiResource

__all__ = ["make_subsystem", "ApiSubsystem"]

log = Logger()


class ApiSubsystem:
    def __init__(self, acd: Any):
        self._acd = acd
        cfg = acd.config
        base = getattr(acd, "admin_url", None) or f"http://{_host(cfg.acd.listen.host)}:{cfg.acd.listen.admin_port}"
        self.listening: list[tuple[str, str]] = [("admin API", f"{base}/api/v1")]
        self.context = ApiContext(
            engine=acd.engine,
            clock=acd.reactor,
            get_config=lambda: self._acd.config,
            audit=self.audited,
            acd_name=cfg.acd.name,
            config_path=str(acd.config_path) if getattr(acd, "config_path", None) else None,
            openapi=load_openapi(),
            orders=acd.orders,
        )
        self.resource = ApiResource(self.context, acd.reactor, config_replaced=self.config_replaced)

    def start(self) -> None:
        self._acd.http_root.putChild(b"api", self.resource)

    def stop(self) -> None:
        children = getattr(self._acd.http_root, "children", {})
        if children.get(b"api") is self.resource:
            del children[b"api"]

    def config_replaced(self, config: Any) -> None:
        self._acd.config = config

    def audited(self, entry: AuditEntry) -> None:
        """Record one change: the audit table when records run, and the log always."""
        log.info(
            "admin audit: {who} ({role}) {action} {target} {detail}",
            who=entry.who,
            role=entry.role,
            action=entry.action,
            target=entry.target,
            detail=_readable(entry.detail),
        )
        record = getattr(getattr(self._acd, "records", None), "audit_logged", None)
        if record is None:
            return
        try:
            # callcenter.records.writer.RecordsWriter.audit_logged: buffers, writes off the reactor thread
            record(
                f"{entry.who} ({entry.role})",
                f"{entry.action} {entry.target}",
                {"role": entry.role, "action": entry.action, "target": entry.target, **entry.detail},
                at=entry.at,
            )
        except Exception:
            log.failure("admin API: could not record the audit entry {entry}", entry=entry.to_dict())


def _readable(detail: dict) -> dict:
    """Epoch seconds as UTC times, so the log's number masking leaves them legible."""
    return {
        k: datetime.fromtimestamp(v, UTC).isoformat(timespec="seconds")
        if k.endswith("_at") and isinstance(v, float)
        else v
        for k, v in detail.items()
    }


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def make_subsystem(acd: Any) -> ApiSubsystem:
    return ApiSubsystem(acd)
