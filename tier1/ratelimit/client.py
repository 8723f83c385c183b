"""The quota client: talks to the quota replicas for one tier1 process (I/O shell).

A background loop sends one batched Sync per owner replica every `sync_interval_s`
for the keys that need it (usage to report, allotment to renew or top up). A request
whose lease is short calls `sync_now`, which wakes the loop and waits for the next
round; that is the only time a request waits on the network, and it is bounded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import grpc
from grpc import aio

from common import wire
from common.clock import Clock, SystemClock
from common.identity import process_id
from common.quota.lease import KeyState, LeaseBook
from common.quota.protocol import SYNC_METHOD, Grant
from common.quota.ring import HashRing
from common.tasks import cancel_and_wait, guarded_task
from tier1.ratelimit.metrics import QuotaMetrics

log = logging.getLogger(__name__)


class QuotaClient:
    def __init__(
        self,
        book: LeaseBook,
        metrics: QuotaMetrics,
        *,
        holder: str | None = None,
        clock: Clock | None = None,
        rpc_timeout_s: float = 0.5,
    ) -> None:
        self.book = book
        self.metrics = metrics
        self.holder = holder or process_id()
        self.clock = clock or SystemClock()
        self.rpc_timeout_s = rpc_timeout_s
        self.ring = HashRing(())
        self._channels: dict[str, aio.Channel] = {}
        self._calls: dict[str, Any] = {}
        self._urgent: set[str] = set()
        self._kick = asyncio.Event()
        self._round_done = asyncio.Condition()
        self._started = 0
        self._completed = 0
        self._task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    # -- replicas -----------------------------------------------------------------------

    def set_replicas(self, addresses: Sequence[str]) -> None:
        if tuple(sorted(set(addresses))) == self.ring.members:
            return
        self.ring = HashRing(addresses)
        for addr in [a for a in self._channels if a not in self.ring.members]:
            channel = self._channels.pop(addr)
            self._calls.pop(addr, None)
            self.book.down.discard(addr)
            task = asyncio.get_running_loop().create_task(channel.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        for st in self.book.keys.values():
            st.owner = self.ring.owner(st.key)
        log.info("quota replicas: %s", ", ".join(self.ring.members) or "none")

    def owner(self, key: str) -> str | None:
        return self.ring.owner(key)

    def _call(self, addr: str) -> Any:
        call = self._calls.get(addr)
        if call is None:
            channel = self._channels[addr] = aio.insecure_channel(addr)
            call = self._calls[addr] = channel.unary_unary(
                SYNC_METHOD, request_serializer=wire.encode, response_deserializer=wire.decode
            )
        return call

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._task = guarded_task(self._loop(), "quota-sync")

    async def stop(self) -> None:
        """Report what is unsent and give allotments back, then close."""
        await cancel_and_wait(self._task)
        self._task = None
        for st in self.book.keys.values():
            st.last_active = -1e18  # idle: the final Sync returns every allotment
        try:
            await asyncio.wait_for(self._round(final=True), self.rpc_timeout_s * 2)
        except (TimeoutError, grpc.RpcError):
            pass
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._calls.clear()

    async def sync_now(self, keys: Sequence[str], timeout_s: float) -> None:
        """Wake the loop for `keys` and wait (at most timeout_s) for a round that
        started after this call to finish."""
        self._urgent.update(keys)
        need = self._started + 1
        self._kick.set()
        async with self._round_done:
            try:
                await asyncio.wait_for(
                    self._round_done.wait_for(lambda: self._completed >= need), timeout_s
                )
            except TimeoutError:
                pass

    async def _loop(self) -> None:
        interval = self.book.sync_interval_s
        while True:
            try:
                await asyncio.wait_for(self._kick.wait(), interval)
            except TimeoutError:
                pass
            self._kick.clear()
            await self._round()

    async def _round(self, *, final: bool = False) -> None:
        self._started += 1
        urgent, self._urgent = self._urgent, set()
        now = self.clock.monotonic()
        owners = {st.owner for st in self.book.keys.values() if st.owner is not None}
        jobs = []
        for owner in owners:
            due = self.book.due(now, owner, urgent=list(urgent))
            if final:
                due = [st for st in self.book.keys.values() if st.owner == owner and not st.sending]
            if due:
                jobs.append(self._sync(owner, due, now))
        if jobs:
            await asyncio.gather(*jobs)
        self.book.forget_idle(now, self.clock.wall())
        self.metrics.top_remaining(self.book.keys.values())
        self._completed = self._started
        async with self._round_done:
            self._round_done.notify_all()

    async def _sync(self, owner: str, due: list[KeyState], sent_at: float) -> None:
        entries = [self.book.begin(st, sent_at) for st in due]
        try:
            reply = await self._call(owner)(
                {"holder": self.holder, "entries": entries}, timeout=self.rpc_timeout_s
            )
            grants: list[Grant] = reply["entries"]
            if len(grants) != len(due):
                raise ValueError(f"{len(grants)} grants for {len(due)} entries")
        except (grpc.RpcError, KeyError, TypeError, ValueError) as e:
            for st in due:
                self.book.failed(st)
            if owner not in self.book.down:
                self.book.down.add(owner)
                log.warning(
                    "quota replica %s unreachable (%s); policies fall back to their "
                    "on_unavailable setting until it answers",
                    owner,
                    _reason(e),
                )
            self.metrics.replica_up(owner, False)
            return
        if owner in self.book.down:
            self.book.down.discard(owner)
            log.info("quota replica %s answers again", owner)
        self.metrics.replica_up(owner, True)
        self.book.holders = max(1, int(reply.get("holders") or 1))
        received = self.clock.monotonic()
        for st, entry, grant in zip(due, entries, grants, strict=True):
            before, since = st.allotment, st.sending_since
            self.book.granted(st, grant, sent_at)
            self.metrics.lease(grant["a"] - before)
            if entry["d"]:
                self.metrics.reconciled(received - since)


def _reason(e: Exception) -> str:
    if isinstance(e, grpc.RpcError):
        code = e.code() if hasattr(e, "code") else None
        return f"{code.name if code else 'error'}: {e.details() if hasattr(e, 'details') else e}"
    return str(e)
