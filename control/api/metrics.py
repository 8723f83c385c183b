"""Control's own metrics, on a registry per app (no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.writes = Counter(
            "strata_control_writes",
            "Resource writes by kind and outcome",
            ["kind", "outcome"],
            registry=self.registry,
        )
