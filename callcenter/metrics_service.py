"""Metrics subsystem: counts engine events and exports live engine status.

The metric definitions are in :mod:`callcenter.metrics`; this shell only
subscribes the recorder to ``acd.engine`` and registers the scrape-time
collector in the default registry, which the admin HTTP port serves at
``/metrics`` (see callcenter/app.py).
"""

from __future__ import annotations

from typing import Any

from callcenter import metrics


class MetricsSubsystem:
    def __init__(self, acd: Any):
        self._acd = acd
        self.binding: metrics.MetricsBinding | None = None
        # /metrics is on the admin HTTP port, which callcenter.app already lists.
        self.listening: list[tuple[str, str]] = []

    def start(self) -> None:
        version = "unknown"
        try:
            from importlib.metadata import version as _version

            version = _version("callcenter")
        except Exception:  # noqa: BLE001 - running from a source tree
            pass
        name = getattr(getattr(getattr(self._acd, "config", None), "acd", None), "name", "")
        metrics.BUILD.info({"version": version, "acd": str(name)})
        # Bind at start, not in make_subsystem: the state subsystem (started
        # before us) may have replaced acd.engine with a restored one.
        acd = self._acd
        self.binding = metrics.MetricsBinding(
            acd.engine, clock=acd.reactor, config=getattr(acd, "config", None), reactor=acd.reactor
        )
        self.binding.bind()

    def stop(self) -> None:
        if self.binding is not None:
            self.binding.unbind()
            self.binding = None


def make_subsystem(acd: Any) -> MetricsSubsystem:
    return MetricsSubsystem(acd)
