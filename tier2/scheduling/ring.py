"""Consistent hashing with bounded loads, for placing cold prefixes (pure).

Mirrokni, Thorup and Zadimoghaddam's scheme, as KubeAI's CHWBL uses it: endpoints own
`virtual_nodes` points each on a 64-bit ring; a key walks clockwise from its hash and
takes the first endpoint whose load after this request stays within

    ceil((1 + epsilon) · (total load + 1) / endpoints)

so equal keys (the same system prompt) land together deterministically, which keeps
picker replicas consistent without sharing state, and no endpoint exceeds (1+ε) times
the mean. The ring holds every endpoint seen recently; candidates missing from a pick
(filtered out) are skipped on the walk, and the ring is rebuilt when new endpoints show
up or when it holds more than twice the candidates.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping

import xxhash


class BoundedLoadRing:
    def __init__(self, virtual_nodes: int = 64) -> None:
        self.virtual_nodes = virtual_nodes
        self._members: frozenset[str] = frozenset()
        self._points: list[int] = []
        self._owners: list[str] = []

    def _ensure(self, ids: Mapping[str, float]) -> None:
        if ids.keys() <= self._members and len(self._members) <= 2 * len(ids):
            return
        members = (
            frozenset(ids) if len(self._members) > 2 * len(ids) else self._members | ids.keys()
        )
        points = sorted(
            (xxhash.xxh64_intdigest(f"{m}#{v}".encode()), m)
            for m in members
            for v in range(self.virtual_nodes)
        )
        self._members = frozenset(members)
        self._points = [p for p, _ in points]
        self._owners = [m for _, m in points]

    def choose(
        self, key: int, loads: Mapping[str, float], epsilon: float, count: int = 1
    ) -> list[str]:
        """The first `count` endpoints for `key` within the load bound, in ring order,
        given each candidate's current load (non-empty)."""
        self._ensure(loads)
        n = len(loads)
        cap = math.ceil((1.0 + epsilon) * (sum(loads.values()) + 1.0) / n)
        owners = self._owners
        size = len(owners)
        start = bisect.bisect_left(self._points, key)
        seen: set[str] = set()
        out: list[str] = []
        for i in range(size):
            owner = owners[(start + i) % size]
            if owner in seen:
                continue
            load = loads.get(owner)
            if load is None:
                continue
            seen.add(owner)
            if load + 1.0 <= cap:
                out.append(owner)
                if len(out) == count:
                    break
            if len(seen) == n:
                break
        # fractional foreign loads can leave nobody under the cap: the least loaded then
        return out or [min(loads, key=loads.__getitem__)]
