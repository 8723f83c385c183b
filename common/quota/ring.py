"""Consistent hashing of quota keys onto the quota replicas.

Each replica takes `VNODES` points on a 64-bit ring (xxhash of address and index); a key
belongs to the first point at or after its own hash. Adding or removing a replica moves
only the keys of the arcs it gains or loses, so counters stay where they are.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import xxhash

VNODES = 64


class HashRing:
    def __init__(self, members: Sequence[str]) -> None:
        self.members: tuple[str, ...] = tuple(sorted(set(members)))
        points = sorted(
            (xxhash.xxh64_intdigest(f"{m}#{i}".encode()), m)
            for m in self.members
            for i in range(VNODES)
        )
        self._hashes = [h for h, _ in points]
        self._owners = [m for _, m in points]

    def owner(self, key: str) -> str | None:
        if not self._hashes:
            return None
        i = bisect.bisect_left(self._hashes, xxhash.xxh64_intdigest(key.encode()))
        return self._owners[i % len(self._owners)]

    def __len__(self) -> int:
        return len(self.members)
