"""In-memory ConfigStore: the reference implementation for tests and single-process runs.

It keeps the full change history (until `compact`) so watches can start in the past,
exactly like etcd's MVCC log.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from common.clock import Clock, SystemClock
from control.store.base import Compacted, Compare, Delete, Item, Op, Put, WatchEvent


@dataclass
class _Lease:
    ttl_s: int
    expires_at: float
    keys: set[str] = field(default_factory=set)


class MemoryStore:
    def __init__(self, clock: Clock | None = None, sweep_interval_s: float = 0.1) -> None:
        self._clock = clock or SystemClock()
        self._items: dict[str, Item] = {}
        self._item_lease: dict[str, int] = {}
        self._history: list[WatchEvent] = []
        self._revision = 1  # etcd starts at 1 too
        self._compacted = 0
        self._leases: dict[int, _Lease] = {}
        self._next_lease = 1
        self._changed = asyncio.Condition()
        self._sweep_interval_s = sweep_interval_s
        self._sweeper: asyncio.Task[None] | None = None
        self._wakeups: set[asyncio.Task[None]] = set()

    # -- reads -------------------------------------------------------------------------
    async def get(self, key: str) -> Item | None:
        self._expire()
        return self._items.get(key)

    async def range(self, prefix: str) -> tuple[list[Item], int]:
        self._expire()
        items = [self._items[k] for k in sorted(self._items) if k.startswith(prefix)]
        return items, self._revision

    # -- writes ------------------------------------------------------------------------
    async def commit(self, compares: Sequence[Compare], ops: Sequence[Op]) -> int | None:
        self._expire()
        for c in compares:
            current = self._items.get(c.key)
            if (current.mod_revision if current else 0) != c.mod_revision:
                return None
        if not ops:
            return self._revision
        for op in ops:
            if isinstance(op, Put) and op.lease is not None and op.lease not in self._leases:
                raise ValueError(f"lease {op.lease} does not exist")
        self._apply(ops)
        return self._revision

    def _apply(self, ops: Sequence[Op]) -> None:
        self._revision += 1
        rev = self._revision
        events = []
        for op in ops:
            if isinstance(op, Put):
                prev = self._items.get(op.key)
                self._items[op.key] = Item(
                    op.key, op.value, rev, prev.create_revision if prev else rev
                )
                self._detach(op.key)
                if op.lease is not None:
                    self._leases[op.lease].keys.add(op.key)
                    self._item_lease[op.key] = op.lease
                events.append(WatchEvent("put", op.key, op.value, rev))
            elif op.key in self._items:
                del self._items[op.key]
                self._detach(op.key)
                events.append(WatchEvent("delete", op.key, b"", rev))
        self._history.extend(events)
        self._notify()

    def _detach(self, key: str) -> None:
        lease = self._item_lease.pop(key, None)
        if lease is not None and lease in self._leases:
            self._leases[lease].keys.discard(key)

    def _notify(self) -> None:
        async def wake() -> None:
            async with self._changed:
                self._changed.notify_all()

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: nobody can be watching
            return
        self._wakeups.add(task := loop.create_task(wake()))
        task.add_done_callback(self._wakeups.discard)

    # -- watch -------------------------------------------------------------------------
    async def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[WatchEvent]:
        if start_revision <= self._compacted:
            raise Compacted(self._compacted + 1)
        self._ensure_sweeper()
        revisions = [e.revision for e in self._history]
        pos = bisect.bisect_left(revisions, start_revision)
        while True:
            while pos < len(self._history):
                event = self._history[pos]
                pos += 1
                if event.key.startswith(prefix):
                    yield event
            async with self._changed:
                if pos >= len(self._history):
                    await self._changed.wait()

    def compact(self, revision: int) -> None:
        """Forget history below `revision` (etcd's compaction)."""
        self._history = [e for e in self._history if e.revision >= revision]
        self._compacted = max(self._compacted, revision - 1)

    # -- leases ------------------------------------------------------------------------
    async def grant_lease(self, ttl_s: int) -> int:
        lease_id = self._next_lease
        self._next_lease += 1
        self._leases[lease_id] = _Lease(ttl_s, self._clock.monotonic() + ttl_s)
        self._ensure_sweeper()
        return lease_id

    async def refresh_lease(self, lease_id: int) -> bool:
        self._expire()
        lease = self._leases.get(lease_id)
        if lease is None:
            return False
        lease.expires_at = self._clock.monotonic() + lease.ttl_s
        return True

    async def revoke_lease(self, lease_id: int) -> None:
        self._drop_lease(lease_id)

    def _drop_lease(self, lease_id: int) -> None:
        lease = self._leases.pop(lease_id, None)
        if lease and lease.keys:
            self._apply([Delete(k) for k in sorted(lease.keys)])

    def _expire(self) -> None:
        now = self._clock.monotonic()
        for lease_id in [i for i, lease in self._leases.items() if lease.expires_at <= now]:
            self._drop_lease(lease_id)

    def _ensure_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval_s)
            self._expire()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
