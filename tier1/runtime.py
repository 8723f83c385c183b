"""Tier1Runtime: the compiled form of a tier1 snapshot (pure).

This is the foundation's minimal runtime: lookups the edge needs on every request,
built once per snapshot. The tier1 issue grows it (translators, plans, limits).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from common.config import Consumer, Route, Tier1Snapshot, Tier2Snapshot
from common.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Tier1Runtime:
    revision: int
    exact_routes: MappingProxyType[str, Route]
    glob_routes: tuple[tuple[str, Route], ...]
    consumers_by_key_hash: MappingProxyType[str, Consumer]

    def route_for(self, model: str) -> Route | None:
        route = self.exact_routes.get(model)
        if route is not None:
            return route
        for pattern, r in self.glob_routes:
            if fnmatch.fnmatchcase(model, pattern):
                return r
        return None


def build_runtime(snapshot: Any) -> Tier1Runtime:
    if isinstance(snapshot, Tier2Snapshot) or not isinstance(snapshot, Tier1Snapshot):
        raise ConfigError("tier1 needs a tier1 snapshot")
    exact: dict[str, Route] = {}
    globs: list[tuple[str, Route]] = []
    for route in snapshot.routes:
        for model in route.spec.match.models:
            if any(c in model for c in "*?["):
                globs.append((model, route))
            else:
                exact.setdefault(model, route)
    globs.sort(key=lambda item: -len(item[0]))  # longest pattern wins
    by_hash = {k.hash: c for c in snapshot.consumers for k in c.spec.keys}
    return Tier1Runtime(
        snapshot.revision, MappingProxyType(exact), tuple(globs), MappingProxyType(by_hash)
    )
