"""Which nodes and control replicas are alive, kept in the store under leases.

Each control replica holds one lease and writes one status key per node connected to
it (and one for itself). If a replica dies its lease expires and its nodes vanish from
`/v1/status` until they reconnect elsewhere; a node that moves to another replica is
re-registered there, and the old replica's cleanup never deletes the new entry
(compare on the revision it wrote).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from common import jsonutil
from common.clock import Clock, SystemClock
from common.tasks import guarded_task
from control.service import Keys
from control.store.base import Compare, ConfigStore, Delete, Put, StoreError

log = logging.getLogger(__name__)

LEASE_TTL_S = 10
REFRESH_EVERY_S = 3.0
HEARTBEAT_WRITE_EVERY_S = 10.0
FLUSH_EVERY_S = 0.25


@dataclass
class NodeStatus:
    node_id: str
    tier: str
    pool: str | None
    address: str
    control: str
    """Id of the control replica this node is connected to."""
    applied_revision: int = 0
    applied_checksum: str = ""
    last_nack: dict[str, Any] | None = None
    """{"revision", "reason", "at"} of the newest rejected snapshot."""
    connected_at: float = 0.0
    last_seen: float = 0.0
    pending_revision: int = 0
    """Newest revision sent and not yet answered."""
    message: str = ""


@dataclass
class _Entry:
    status: NodeStatus
    written_rev: int = 0
    written_at: float = 0.0
    dirty: bool = True


@dataclass
class NodeRegistry:
    store: ConfigStore
    keys: Keys
    control_id: str
    control_info: dict[str, Any] = field(default_factory=dict)
    clock: Clock = field(default_factory=SystemClock)
    _lease: int | None = None
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _cleanups: set[asyncio.Task[None]] = field(default_factory=set)

    def node_key(self, node_id: str) -> str:
        return f"{self.keys.status}nodes/{node_id}"

    def control_key(self) -> str:
        return f"{self.keys.status}controls/{self.control_id}"

    # called by the distributor (sync, never blocks the stream) -------------------------
    def update(self, status: NodeStatus, *, when: Literal["now", "soon", "lazy"] = "now") -> None:
        """Record a node's status. `now` writes it at once (connects, NACKs); `soon`
        within FLUSH_EVERY_S, batched with others (ACKs: 50 nodes ACKing one snapshot
        cost one etcd write); `lazy` with the next heartbeat write."""
        entry = self._entries.setdefault(status.node_id, _Entry(status))
        entry.status = status
        if when != "lazy":
            entry.dirty = True
        if when == "now":
            self._wake.set()

    def remove(self, node_id: str) -> None:
        entry = self._entries.pop(node_id, None)
        if entry is not None and entry.written_rev:
            self._cleanups.add(
                task := guarded_task(self._delete(node_id, entry.written_rev), "node-cleanup")
            )
            task.add_done_callback(self._cleanups.discard)

    async def _delete(self, node_id: str, written_rev: int) -> None:
        try:
            await self.store.commit(
                [Compare(self.node_key(node_id), written_rev)], [Delete(self.node_key(node_id))]
            )
        except StoreError as e:
            log.debug("could not remove status of %s: %s", node_id, e)

    # background writer -----------------------------------------------------------------
    async def start(self) -> None:
        self._task = guarded_task(self._run(), "node-registry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self._lease is not None:
            try:
                await self.store.revoke_lease(self._lease)
            except StoreError:
                pass

    async def _run(self) -> None:
        last_refresh = 0.0
        while True:
            try:
                now = self.clock.monotonic()
                if self._lease is None:
                    await self._new_lease()
                    last_refresh = now
                elif now - last_refresh >= REFRESH_EVERY_S:
                    if not await self.store.refresh_lease(self._lease):
                        log.warning("status lease expired; registering again")
                        await self._new_lease()
                    last_refresh = now
                await self._flush(now)
            except StoreError as e:
                log.warning("cannot write node status: %s", e)
                await asyncio.sleep(0.5)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=FLUSH_EVERY_S)
            except TimeoutError:
                pass
            self._wake.clear()

    async def _new_lease(self) -> None:
        self._lease = await self.store.grant_lease(LEASE_TTL_S)
        for entry in self._entries.values():
            entry.dirty, entry.written_rev = True, 0
        info = {"control_id": self.control_id, **self.control_info, "started_at": self.clock.wall()}
        await self.store.commit(
            [], [Put(self.control_key(), jsonutil.dumps(info), lease=self._lease)]
        )

    async def _flush(self, now: float) -> None:
        ops: list[tuple[str, _Entry]] = []
        for node_id, entry in list(self._entries.items()):
            if entry.dirty or now - entry.written_at >= HEARTBEAT_WRITE_EVERY_S:
                ops.append((node_id, entry))
        if not ops:
            return
        # one transaction for the whole batch: 50 ACKs cost one etcd write, not 50
        puts = []
        for node_id, entry in ops:
            entry.dirty = False
            puts.append(
                Put(self.node_key(node_id), jsonutil.dumps(asdict(entry.status)), lease=self._lease)
            )
        try:
            rev = await self.store.commit([], puts)
        except StoreError:
            for _, entry in ops:
                entry.dirty = True
            raise
        for _, entry in ops:
            entry.written_rev = rev or 0
            entry.written_at = now


async def read_status(store: ConfigStore, keys: Keys) -> dict[str, Any]:
    items, revision = await store.range(keys.status)
    nodes, controls = [], []
    for item in items:
        data = jsonutil.loads(item.value)
        if item.key.startswith(f"{keys.status}nodes/"):
            nodes.append(data)
        elif item.key.startswith(f"{keys.status}controls/"):
            controls.append(data)
    return {"nodes": nodes, "controls": controls, "store_revision": revision}
