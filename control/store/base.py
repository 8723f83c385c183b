"""The ConfigStore contract, in the style of Patroni's DCS docs: each method states its
guarantee and the exception it raises when the store cannot be reached.

Every implementation passes tests/contract/test_config_store.py.

Guarantees
- A single monotonically increasing `revision` orders every change in the store.
- `commit` is atomic: either every compare holds and every op applies under one new
  revision, or nothing changes.
- `watch` delivers every change under a prefix from `start_revision` on, in revision
  order, and survives a restart of the store (it resumes where it stopped; a revision
  may be delivered twice, never skipped). If history before `start_revision` was
  compacted it raises `Compacted`, and the caller resyncs with `range`.
- Keys written with a lease vanish (with a delete event) once the lease expires.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol


class StoreError(Exception):
    """Base of store failures."""


class StoreUnavailable(StoreError):
    """The store could not be reached or did not answer in time; safe to retry."""


class Compacted(StoreError):
    """A watch asked for history the store no longer keeps."""

    def __init__(self, compacted_revision: int) -> None:
        super().__init__(f"revisions below {compacted_revision} were compacted")
        self.compacted_revision = compacted_revision


@dataclass(frozen=True, slots=True)
class Item:
    key: str
    value: bytes
    mod_revision: int
    create_revision: int


@dataclass(frozen=True, slots=True)
class WatchEvent:
    kind: Literal["put", "delete"]
    key: str
    value: bytes
    """Empty for deletes."""
    revision: int


@dataclass(frozen=True, slots=True)
class Compare:
    """Holds when `key`'s mod revision equals `mod_revision`; 0 means "key absent"."""

    key: str
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: bytes
    lease: int | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    key: str


Op = Put | Delete


class ConfigStore(Protocol):
    async def get(self, key: str) -> Item | None:
        """The current item, or None. Raises StoreUnavailable."""
        ...

    async def range(self, prefix: str) -> tuple[list[Item], int]:
        """Every item under prefix (sorted by key) and the store revision they were
        read at. Raises StoreUnavailable."""
        ...

    async def commit(self, compares: Sequence[Compare], ops: Sequence[Op]) -> int | None:
        """Apply ops atomically if every compare holds: the new revision, or None when a
        compare failed (nothing changed). Raises StoreUnavailable; after that the
        outcome is unknown, so callers re-read before retrying."""
        ...

    def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[WatchEvent]:
        """Changes under prefix with revision >= start_revision. Never ends on its own;
        resumes across store restarts; raises Compacted."""
        ...

    async def grant_lease(self, ttl_s: int) -> int:
        """A new lease id valid for ttl_s seconds unless refreshed."""
        ...

    async def refresh_lease(self, lease_id: int) -> bool:
        """Extend the lease; False when it already expired (its keys are gone)."""
        ...

    async def revoke_lease(self, lease_id: int) -> None:
        """End the lease now; its keys are deleted."""
        ...

    async def close(self) -> None: ...
