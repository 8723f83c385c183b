"""Compiled per-tier snapshots: what control pushes and what a node applies whole.

`revision` is the store revision the snapshot was built from; `checksum` covers the
content (secrets included, as the node receives them), so a node and control can tell
whether they hold the same configuration without comparing it.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import Field, ValidationError

from common.config.base import REVEAL, Frozen
from common.config.resources import Backend, Consumer, Pool, RateLimitPolicy, Route
from common.errors import ConfigError

SCHEMA_VERSION: Final = 1
"""Bumped on an incompatible change; a node refuses a snapshot of another major."""


class Tier1Snapshot(Frozen):
    tier: Literal["tier1"] = "tier1"
    schema_version: int = SCHEMA_VERSION
    revision: int = Field(ge=0)
    checksum: str
    backends: tuple[Backend, ...] = ()
    routes: tuple[Route, ...] = ()
    consumers: tuple[Consumer, ...] = ()
    rate_limit_policies: tuple[RateLimitPolicy, ...] = ()
    pools: tuple[Pool, ...] = ()
    """Pools tier1 forwards to (their tier2 addresses)."""
    ratelimit: tuple[str, ...] = ()
    """host:port of the live quota replicas (`strata ratelimit`), sorted."""


class Tier2Snapshot(Frozen):
    tier: Literal["tier2"] = "tier2"
    schema_version: int = SCHEMA_VERSION
    revision: int = Field(ge=0)
    checksum: str
    pool: Pool


Snapshot = Tier1Snapshot | Tier2Snapshot


def snapshot_to_wire(snapshot: Snapshot) -> dict[str, Any]:
    """Plain data for msgpack or a file, secrets in clear (nodes need them)."""
    return snapshot.model_dump(mode="json", by_alias=True, context=REVEAL)


def snapshot_from_wire(data: Any) -> Snapshot:
    """Parse a snapshot; ConfigError says why it cannot be applied."""
    if not isinstance(data, dict):
        raise ConfigError("snapshot is not an object")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ConfigError(
            f"snapshot schema_version {version!r} is not {SCHEMA_VERSION}; "
            "control and this node run incompatible versions"
        )
    model: type[Snapshot]
    tier = data.get("tier")
    if tier == "tier1":
        model = Tier1Snapshot
    elif tier == "tier2":
        model = Tier2Snapshot
    else:
        raise ConfigError(f"snapshot tier {tier!r} is neither tier1 nor tier2")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        path = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid snapshot at {path}: {first['msg']}") from None
