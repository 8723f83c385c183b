"""Durability of long windows: batched checkpoints of persisted counters to the store.

Only counters marked persistent (windows of one hour or longer, `p=1`) are written.
Every `interval_s` the counters that changed since the last round go out in
transactions of at most `BATCH_OPS` operations, each counter as msgpack
{c: consumed, l: limit, e: window_end}; counters whose window ended are deleted the
same way. A Sync never writes: a crash loses at most the usage of one interval.

On start the whole prefix is loaded and every counter whose window is still open is
restored. Until that load has succeeded nothing is written, so a replica that started
while the store was down never overwrites good counts with its partial ones.

Replicas share the prefix. When the replica set changes a key moves to another owner,
which may hold an old count (or none) for it; so before a Sync touches a persisted key
this replica has not seen for `reload_after_s`, it reads that key from the store and
keeps the larger count (`QuotaTable.restore`). The read is short and skipped while the
store is unreachable: serving never waits on a dead store.

When the store is down the service keeps serving from memory, counts each failed
round, logs once per outage, and retries at the next interval.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from common import wire
from common.clock import Clock, SystemClock
from common.quota.protocol import SyncEntry
from common.quota.table import Counter, QuotaTable
from common.tasks import cancel_and_wait, guarded_task
from control.ratelimit.metrics import QuotaServiceMetrics
from control.store.base import ConfigStore, Delete, Item, Op, Put

log = logging.getLogger(__name__)

BATCH_OPS = 64
"""Operations per transaction: well under etcd's default limit of 128."""


def encode_counter(c: Counter) -> bytes:
    return wire.encode({"c": c.consumed, "l": c.limit, "e": c.window_end})


def decode_counter(value: bytes) -> tuple[float, float, float] | None:
    """(consumed, limit, window_end), or None for a value this version cannot read."""
    try:
        data = wire.decode(value)
        consumed, limit, end = float(data["c"]), float(data["l"]), float(data["e"])
    except Exception:
        return None
    if not all(math.isfinite(x) for x in (consumed, limit, end)):
        return None
    return consumed, limit, end


@dataclass
class Checkpointer:
    store: ConfigStore
    table: QuotaTable
    prefix: str
    """Store prefix of the counters, e.g. /strata/ratelimit/counters/."""
    metrics: QuotaServiceMetrics
    clock: Clock = field(default_factory=SystemClock)
    interval_s: float = 2.0
    reload_after_s: float = 5.0
    """A persisted key idle this long is re-read from the store before its next Sync."""
    fetch_timeout_s: float = 0.1
    """Bound on that read: tier1's Sync deadline is 0.5 s."""
    fetch_retry_s: float = 1.0
    """After a failed read, Syncs skip reading for this long (they never wait on a
    dead store more than once per period)."""
    batch_ops: int = BATCH_OPS
    loaded: bool = False
    """The initial load succeeded (writes are allowed from then on)."""
    _synced_at: float | None = None
    """Monotonic time as of which the store held every persisted counter."""
    _started_at: float = 0.0
    _deletes: set[str] = field(default_factory=set)
    _touched: dict[str, float] = field(default_factory=dict)
    _outage: bool = False
    _fetch_paused_until: float = 0.0
    _pending: dict[str, asyncio.Event] = field(default_factory=dict)
    """Keys being re-read, and the event set when that read ends."""
    _task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Load what the store holds (tolerating an outage), then checkpoint periodically."""
        self._started_at = self.clock.monotonic()
        await self.run_once()
        self._task = guarded_task(self._loop(), "quota-checkpoint")

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the loop and write once more (graceful shutdown), for at most timeout_s."""
        await cancel_and_wait(self._task)
        self._task = None
        try:
            await asyncio.wait_for(self.run_once(), timeout_s)
        except TimeoutError:
            log.warning("last quota checkpoint did not finish in %.1fs", timeout_s)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.run_once()

    async def run_once(self) -> bool:
        """One round: the initial load if still missing, then a flush. False on failure."""
        try:
            if not self.loaded:
                await self.load()
            written = await self.flush()
        except Exception as e:  # StoreError mostly; anything else must not stop the loop
            self.metrics.checkpoint_errors.inc()
            if not self._outage:
                self._outage = True
                log.warning(
                    "quota checkpoint store unavailable (%s); serving from memory, "
                    "retrying every %.1fs",
                    e,
                    self.interval_s,
                )
            return False
        if self._outage:
            self._outage = False
            log.info("quota checkpoint store reachable again; wrote %d counters", written)
        return True

    def lag(self) -> float:
        """Seconds of usage a crash now could lose (since the store last held it all)."""
        since = self._synced_at if self._synced_at is not None else self._started_at
        return max(0.0, self.clock.monotonic() - since)

    # -- load -----------------------------------------------------------------------------
    async def load(self) -> int:
        items, _ = await self.store.range(self.prefix)
        now, wall = self.clock.monotonic(), self.clock.wall()
        restored = 0
        for item in items:
            key = item.key.removeprefix(self.prefix)
            value = decode_counter(item.value)
            if value is None:
                log.error("ignoring unreadable quota counter at %s", item.key)
                continue
            consumed, limit, end = value
            if end <= wall:
                self._deletes.add(key)  # ended while no replica owned it
                continue
            self.table.restore(key, consumed, limit, end)
            self._touched[key] = now
            restored += 1
        self.loaded = True
        self._synced_at = now
        log.info("restored %d long-window quota counters from the store", restored)
        return restored

    # -- write ----------------------------------------------------------------------------
    def forget(self, keys: Sequence[str]) -> None:
        """Persisted counters whose window ended: delete them at the next round."""
        for key in keys:
            self._touched.pop(key, None)
            self._deletes.add(key)

    async def flush(self) -> int:
        """Write every changed counter and pending delete; returns counters written."""
        if not self.loaded:
            return 0
        started = self.clock.monotonic()
        dirty = self.table.dirty()
        puts: list[tuple[Op, Counter | None]] = [
            (Put(self.prefix + key, encode_counter(c)), c) for key, c in dirty
        ]
        live = self.table.counters
        deletes: list[tuple[Op, Counter | None]] = [
            (Delete(self.prefix + key), None) for key in sorted(self._deletes) if key not in live
        ]
        self._deletes.difference_update(key for key in list(self._deletes) if key in live)
        ops = puts + deletes
        done = 0
        try:
            for i in range(0, len(ops), self.batch_ops):
                chunk = ops[i : i + self.batch_ops]
                await self.store.commit([], [op for op, _ in chunk])
                self.metrics.checkpoint_writes.inc()
                for op, _ in chunk:
                    if isinstance(op, Delete):
                        self._deletes.discard(op.key.removeprefix(self.prefix))
                done = i + len(chunk)
        except BaseException:
            # what did not reach the store goes out with the next round
            for _, c in ops[done:]:
                if c is not None:
                    c.dirty = True
            raise
        self._synced_at = started
        if len(self._touched) > 2 * len(live) + 1024:
            self._touched = {k: t for k, t in self._touched.items() if k in live}
        return len(puts)

    # -- read before a Sync ---------------------------------------------------------------
    async def prepare(self, entries: Sequence[SyncEntry]) -> None:
        """Re-read the persisted keys of a Sync this replica has not seen lately; wait
        for reads another Sync already started for its keys."""
        if not self.loaded:
            return
        now, wall = self.clock.monotonic(), self.clock.wall()
        stale: list[str] = []
        waits: set[asyncio.Event] = set()
        for e in entries:
            if not e["p"] or e["e"] <= wall:
                continue
            key = e["k"]
            pending = self._pending.get(key)
            if pending is not None:
                waits.add(pending)
                continue
            last = self._touched.get(key)
            if last is None or now - last >= self.reload_after_s or key not in self.table.counters:
                stale.append(key)  # touched only once read: a paused read is retried later
            else:
                self._touched[key] = now
        if stale and now >= self._fetch_paused_until:
            for key in stale:
                self._touched[key] = now
            await self._reload(stale, now, wall)
        if waits:
            waiting = asyncio.gather(*(w.wait() for w in waits))
            try:
                await asyncio.wait_for(waiting, self.fetch_timeout_s)
            except TimeoutError:
                pass

    async def _reload(self, keys: list[str], now: float, wall: float) -> None:
        done = asyncio.Event()
        for key in keys:
            self._pending[key] = done
        try:
            items = await asyncio.wait_for(self._fetch(keys), self.fetch_timeout_s)
        except Exception as e:
            # the store is slow or down: serve from memory, try again in a while
            self._fetch_paused_until = now + self.fetch_retry_s
            log.debug("could not re-read %d quota counters: %s", len(keys), e)
            for key in keys:
                self._touched.pop(key, None)
        else:
            for item in items:
                value = decode_counter(item.value)
                if value is not None and value[2] > wall:
                    self.table.restore(item.key.removeprefix(self.prefix), *value)
        finally:
            for key in keys:
                if self._pending.get(key) is done:
                    del self._pending[key]
            done.set()

    async def _fetch(self, keys: list[str]) -> list[Item]:
        if len(keys) > self.batch_ops:
            # many at once (a window rolled over, a replica left): one range read
            wanted = {self.prefix + k for k in keys}
            items, _ = await self.store.range(self.prefix)
            return [item for item in items if item.key in wanted]
        gate = asyncio.Semaphore(16)

        async def one(key: str) -> Item | None:
            async with gate:
                return await self.store.get(self.prefix + key)

        found = await asyncio.gather(*(one(k) for k in keys))
        return [item for item in found if item is not None]
