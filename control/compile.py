"""Resources → per-tier snapshots. Pure: plain data in, frozen snapshots out.

tier1 gets everything it routes with; each tier2 gets only its own pool (least
privilege: tier2 never holds provider keys). A tier2 snapshot's revision is its pool's
mod revision, so writes that do not touch a pool never disturb that pool's nodes and
every control replica stamps the same revision.
"""

from __future__ import annotations

import hashlib
from typing import Any

from common import jsonutil
from common.config import (
    REVEAL,
    ConfigSet,
    Resource,
    Tier1Snapshot,
    Tier2Snapshot,
    validate_config,
    with_revision,
)


def checksum(content: Any) -> str:
    return "sha256:" + hashlib.sha256(jsonutil.dumps(content, sort_keys=True)).hexdigest()


def _content(resources: list[Any]) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json", by_alias=True, context=REVEAL) for r in resources]


def _bare(resources: list[Resource]) -> list[Any]:
    return [with_revision(r, None) for r in resources]


def compile_tier1(cfg: ConfigSet, revision: int) -> Tier1Snapshot:
    """Raises ValidationFailed if the set is inconsistent."""
    validate_config(cfg)
    parts = {
        "backends": _bare(list(cfg.backends)),
        "routes": _bare(list(cfg.routes)),
        "consumers": _bare(list(cfg.consumers)),
        "rate_limit_policies": _bare(list(cfg.policies)),
        "pools": _bare(list(cfg.pools)),
    }
    digest = checksum({k: _content(v) for k, v in parts.items()})
    return Tier1Snapshot(
        revision=revision, checksum=digest, **{k: tuple(v) for k, v in parts.items()}
    )


def compile_tier2(cfg: ConfigSet) -> dict[str, Tier2Snapshot]:
    """One snapshot per pool, stamped with the pool's own revision."""
    out: dict[str, Tier2Snapshot] = {}
    for pool in cfg.pools:
        bare = with_revision(pool, None)
        out[pool.name] = Tier2Snapshot(
            revision=pool.revision or 0, checksum=checksum(_content([bare])), pool=bare
        )
    return out
