"""ConfigAgent: apply a snapshot whole or not at all, keep the last good one.

A tier provides `build_runtime(snapshot) -> R`, a pure function that raises ConfigError
(or any exception) when it cannot serve the snapshot. The agent swaps the new runtime
in with one assignment, so a request reads either the old runtime or the new one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge

from common.clock import Clock, SystemClock
from common.config import Tier1Snapshot, Tier2Snapshot, snapshot_from_wire, snapshot_to_wire
from common.configsync import persist
from common.errors import ConfigError

log = logging.getLogger(__name__)

R = TypeVar("R")
Snapshot = Tier1Snapshot | Tier2Snapshot


@dataclass(frozen=True, slots=True)
class ApplyResult:
    ok: bool
    revision: int
    checksum: str
    reason: str = ""


class ConfigAgent(Generic[R]):
    def __init__(
        self,
        tier: str,
        build_runtime: Callable[[Snapshot], R],
        *,
        pool: str | None = None,
        state_file: Path | None = None,
        registry: CollectorRegistry | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.tier = tier
        self.pool = pool
        self._build = build_runtime
        self.state_file = state_file
        self.clock = clock or SystemClock()
        self.runtime: R | None = None
        self.snapshot: Snapshot | None = None
        self.applied_at = 0.0
        self.source = ""
        """Where the current snapshot came from: "control" or "disk"."""
        self.last_error = ""
        self.registry = registry or CollectorRegistry()
        self._revision = Gauge(
            "strata_config_revision", "Config revision this process serves", registry=self.registry
        )
        self._applies = Counter(
            "strata_config_apply",
            "Snapshot applications by result",
            ["result"],
            registry=self.registry,
        )

    @property
    def ready(self) -> bool:
        return self.runtime is not None

    @property
    def revision(self) -> int:
        return self.snapshot.revision if self.snapshot else 0

    @property
    def checksum(self) -> str:
        return self.snapshot.checksum if self.snapshot else ""

    def _check(self, snap: Snapshot) -> None:
        if snap.tier != self.tier:
            raise ConfigError(f"got a {snap.tier} snapshot but this node is {self.tier}")
        if isinstance(snap, Tier2Snapshot) and snap.pool.name != self.pool:
            raise ConfigError(
                f"got the snapshot of pool {snap.pool.name!r}, this node serves {self.pool!r}"
            )

    def apply(self, data: Any, *, source: str = "control") -> ApplyResult:
        revision = int(data.get("revision") or 0) if isinstance(data, dict) else 0
        checksum = str(data.get("checksum") or "") if isinstance(data, dict) else ""
        try:
            snap = snapshot_from_wire(data)
            self._check(snap)
            runtime = self._build(snap)
        except Exception as e:
            reason = str(e) if isinstance(e, ConfigError) else f"{type(e).__name__}: {e}"
            self.last_error = reason
            self._applies.labels("rejected").inc()
            log.error(
                "rejected config revision %d: %s (still serving revision %d)",
                revision,
                reason,
                self.revision,
            )
            return ApplyResult(False, revision, checksum, reason)
        self.runtime, self.snapshot = runtime, snap  # the atomic swap
        self.applied_at, self.source, self.last_error = self.clock.wall(), source, ""
        self._revision.set(snap.revision)
        self._applies.labels("applied").inc()
        if self.state_file is not None and source != "disk":
            try:
                persist.save(self.state_file, snapshot_to_wire(snap))
            except OSError as e:
                log.warning("could not save snapshot to %s: %s", self.state_file, e)
        log.info("applied config revision %d from %s", snap.revision, source)
        return ApplyResult(True, snap.revision, snap.checksum)

    def load_from_disk(self) -> bool:
        """Serve the last good snapshot until control answers."""
        if self.state_file is None:
            return False
        data = persist.load(self.state_file)
        return data is not None and self.apply(data, source="disk").ok

    def readiness(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) for /readyz: ready once any snapshot is applied."""
        body = {
            "ready": self.ready,
            "tier": self.tier,
            "revision": self.revision,
            "checksum": self.checksum,
            "source": self.source,
            "last_error": self.last_error,
        }
        if self.pool:
            body["pool"] = self.pool
        return (200 if self.ready else 503), body
