"""Tier2Runtime: the compiled form of a pool snapshot (pure).

Built once per snapshot by the config agent, which keeps serving the previous runtime
if this raises, and reports the reason to control. What lives longer than one snapshot
(ledger, prefix index, endpoint states) is kept by the app, not here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from common.config import Pool, Tier2Snapshot
from common.errors import ConfigError
from tier2.scheduling.framework import PluginContext
from tier2.scheduling.registry import build_profile


@dataclass(frozen=True, slots=True)
class Tier2Runtime:
    revision: int
    pool: Pool


def build_runtime(snapshot: Any) -> Tier2Runtime:
    if not isinstance(snapshot, Tier2Snapshot):
        raise ConfigError("tier2 needs a tier2 snapshot")
    pool = snapshot.pool
    spec = pool.spec
    # the picker assembles its profile from this; a profile it cannot build is refused
    # here, whole, instead of failing when the replica applies it
    context = PluginContext(
        random.Random(0),
        spec.scrape_interval_s,
        spec.saturation.queue_depth,
        spec.saturation.kv_cache_usage,
    )
    build_profile(spec.scheduler.name, spec.scheduler.specs(), context)
    return Tier2Runtime(snapshot.revision, pool)
