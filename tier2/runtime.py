"""Tier2Runtime: the compiled form of a pool snapshot (pure; grown by the tier2 issue)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.config import Pool, Tier2Snapshot
from common.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Tier2Runtime:
    revision: int
    pool: Pool


def build_runtime(snapshot: Any) -> Tier2Runtime:
    if not isinstance(snapshot, Tier2Snapshot):
        raise ConfigError("tier2 needs a tier2 snapshot")
    return Tier2Runtime(snapshot.revision, snapshot.pool)
