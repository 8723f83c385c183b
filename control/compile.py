"""Resources → per-tier snapshots. Pure: plain data in, plain data out.

tier1 gets everything it routes with; each tier2 gets only its own pool (least
privilege: tier2 never holds provider keys). A tier2 snapshot's revision is its pool's
mod revision, so writes that do not touch a pool never disturb that pool's nodes and
every control replica stamps the same revision.

The wire form (a dict) is what control sends; `compile_tier1`/`compile_tier2` parse it
into the typed snapshots a node would build. `dump` lets control memoize each
resource's dump by revision, so a write costs one dump, not one per resource.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from common import jsonutil
from common.config import (
    REVEAL,
    SCHEMA_VERSION,
    ConfigSet,
    Resource,
    Tier1Snapshot,
    Tier2Snapshot,
    validate_config,
)

Dump = Callable[[Resource], dict[str, Any]]


def dump_resource(resource: Resource) -> dict[str, Any]:
    """A resource as a node receives it: secrets in clear, no store revision."""
    return resource.model_dump(mode="json", by_alias=True, context=REVEAL, exclude={"revision"})


def checksum(content: Any) -> str:
    return "sha256:" + hashlib.sha256(jsonutil.dumps(content, sort_keys=True)).hexdigest()


def tier1_wire(
    cfg: ConfigSet,
    revision: int,
    dump: Dump = dump_resource,
    *,
    ratelimit: Sequence[str] = (),
) -> dict[str, Any]:
    """`ratelimit`: the live quota replica addresses. Raises ValidationFailed if the
    set is inconsistent."""
    validate_config(cfg)
    parts = {
        "backends": [dump(r) for r in cfg.backends],
        "routes": [dump(r) for r in cfg.routes],
        "consumers": [dump(r) for r in cfg.consumers],
        "rate_limit_policies": [dump(r) for r in cfg.policies],
        "pools": [dump(r) for r in cfg.pools],
        "ratelimit": sorted(set(ratelimit)),
    }
    return {
        "tier": "tier1",
        "schema_version": SCHEMA_VERSION,
        "revision": revision,
        "checksum": checksum(parts),
        **parts,
    }


def tier2_wires(cfg: ConfigSet, dump: Dump = dump_resource) -> dict[str, dict[str, Any]]:
    """One snapshot per pool, stamped with the pool's own revision."""
    out = {}
    for pool in cfg.pools:
        content = dump(pool)
        out[pool.name] = {
            "tier": "tier2",
            "schema_version": SCHEMA_VERSION,
            "revision": pool.revision or 0,
            "checksum": checksum(content),
            "pool": content,
        }
    return out


def compile_tier1(cfg: ConfigSet, revision: int, ratelimit: Sequence[str] = ()) -> Tier1Snapshot:
    return Tier1Snapshot.model_validate(tier1_wire(cfg, revision, ratelimit=ratelimit))


def compile_tier2(cfg: ConfigSet) -> dict[str, Tier2Snapshot]:
    return {name: Tier2Snapshot.model_validate(w) for name, w in tier2_wires(cfg).items()}
