"""The quota replica set, kept in the store under leases.

Each replica writes `<root>ratelimit/members/<replica id>` = its advertised host:port
under a lease it refreshes (`MemberRegistration`). A replica that dies stops refreshing
and its key vanishes when the lease expires; one that stops cleanly revokes the lease
so it vanishes at once. Control follows the prefix (`MemberWatcher`) and publishes the
sorted addresses in the tier1 snapshot; tier1 hashes keys onto them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from common.tasks import cancel_and_wait, guarded_task
from control.store.base import Compacted, ConfigStore, Item, Put, WatchEvent

log = logging.getLogger(__name__)

LEASE_TTL_S = 10
REFRESH_EVERY_S = 3.0
RETRY_S = 0.5


def _always() -> bool:
    return True


class MemberRegistration:
    """Keep one replica's membership key alive while the replica runs."""

    def __init__(
        self,
        store: ConfigStore,
        key: str,
        address: str,
        *,
        ttl_s: int = LEASE_TTL_S,
        refresh_s: float = REFRESH_EVERY_S,
        gate: Callable[[], bool] = _always,
    ) -> None:
        self.store = store
        self.key = key
        self.address = address
        self.ttl_s = ttl_s
        self.refresh_s = refresh_s
        self.gate = gate
        """Register only once this holds (the replica has loaded its counters)."""
        self.lease: int | None = None
        self._outage = False
        self._task: asyncio.Task[None] | None = None

    @property
    def registered(self) -> bool:
        return self.lease is not None

    async def start(self) -> None:
        self._task = guarded_task(self._run(), "quota-membership")

    async def stop(self) -> None:
        """Leave the replica set now (revoking the lease deletes the key)."""
        await cancel_and_wait(self._task)
        self._task = None
        lease, self.lease = self.lease, None
        if lease is None:
            return
        try:
            await asyncio.wait_for(self.store.revoke_lease(lease), 2.0)
        except Exception as e:
            log.warning("could not revoke membership lease (%s); it expires in %ds", e, self.ttl_s)

    async def _run(self) -> None:
        while True:
            delay = self.refresh_s
            try:
                await self._step()
                if self._outage:
                    self._outage = False
                    log.info("quota membership %s registered again", self.key)
            except Exception as e:  # StoreError mostly: keep trying, log once per outage
                delay = min(self.refresh_s, RETRY_S)
                if not self._outage:
                    self._outage = True
                    log.warning("cannot keep quota membership %s: %s; retrying", self.key, e)
            if self.lease is None and not self._outage:
                delay = min(self.refresh_s, RETRY_S)  # waiting for the gate
            await asyncio.sleep(delay)

    async def _step(self) -> None:
        if self.lease is None:
            if self.gate():
                await self._register()
            return
        if not await self.store.refresh_lease(self.lease):
            log.warning("quota membership lease expired; registering again")
            self.lease = None
            await self._register()

    async def _register(self) -> None:
        lease = await self.store.grant_lease(self.ttl_s)
        try:
            await self.store.commit([], [Put(self.key, self.address.encode(), lease=lease)])
        except BaseException:
            try:
                await self.store.revoke_lease(lease)
            except Exception:
                log.debug("revoking an unused lease failed", exc_info=True)
            raise
        self.lease = lease


class MemberWatcher:
    """The live replica set as control sees it, following the store.

    `revision` only grows, and grows whenever `addresses` changes, so a snapshot
    stamped max(resource revision, members revision) stays monotonic.
    """

    def __init__(self, store: ConfigStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix
        self.addresses: tuple[str, ...] = ()
        self.revision = 0
        self._members: dict[str, str] = {}
        self._seen = 0
        """Store revision the view is complete up to (where the watch resumes)."""
        self._loaded = False
        self._listeners: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, listener: Callable[[], None]) -> None:
        """`listener()` runs after each change of `addresses`."""
        self._listeners.append(listener)

    async def start(self) -> None:
        await self.resync()
        self._task = guarded_task(self._watch(), "quota-members-watch")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def resync(self) -> None:
        items, read_revision = await self.store.range(self.prefix)
        self._members = {i.key: address for i in items if (address := _address(i)) is not None}
        newest = max((i.mod_revision for i in items), default=0)
        # after a gap, deletions we never saw happened at most at the read revision
        self._publish(newest if not self._loaded else read_revision)
        self._loaded = True
        self._seen = max(self._seen, read_revision)

    def apply(self, ev: WatchEvent) -> None:
        if ev.kind == "delete":
            self._members.pop(ev.key, None)
        else:
            address = ev.value.decode(errors="replace").strip()
            if address:
                self._members[ev.key] = address
            else:
                self._members.pop(ev.key, None)
        self._seen = max(self._seen, ev.revision)
        self._publish(ev.revision)

    def _publish(self, revision: int) -> None:
        addresses = tuple(sorted(set(self._members.values())))
        if addresses == self.addresses:
            return
        self.addresses = addresses
        self.revision = max(self.revision, revision)
        log.info("quota replicas: %s", ", ".join(addresses) or "none")
        for listener in self._listeners:
            listener()

    async def _watch(self) -> None:
        while True:
            try:
                async for ev in self.store.watch(self.prefix, start_revision=self._seen + 1):
                    self.apply(ev)
            except Compacted:
                log.warning("quota member history compacted; resyncing from a full read")
            except Exception:
                log.exception("quota member watch failed; resyncing")
                await asyncio.sleep(RETRY_S)
            await self._resync_forever()

    async def _resync_forever(self) -> None:
        while True:
            try:
                await self.resync()
                return
            except Exception as e:
                log.warning("quota member resync failed (%s); retrying", e)
                await asyncio.sleep(RETRY_S)


def _address(item: Item) -> str | None:
    address = item.value.decode(errors="replace").strip()
    return address or None
