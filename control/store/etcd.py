"""ConfigStore over etcd v3 with aetcd: the only module that imports the etcd client.

aetcd's watch ends with ConnectionFailedError when etcd restarts; `watch` here resumes
from the last revision it delivered, so callers see one endless, gap-free stream.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aetcd
import aetcd.exceptions as aetcd_errors

from control.store.base import (
    Compacted,
    Compare,
    Delete,
    Item,
    Op,
    Put,
    StoreUnavailable,
    WatchEvent,
)

log = logging.getLogger(__name__)

_UNAVAILABLE = (
    aetcd_errors.ConnectionFailedError,
    aetcd_errors.ConnectionTimeoutError,
    aetcd_errors.InternalError,
    asyncio.TimeoutError,
    OSError,
)


def _range_end(prefix: bytes) -> bytes:
    return aetcd.utils.prefix_range_end(prefix)  # type: ignore[no-any-return]


def _split(endpoint: str) -> tuple[str, int]:
    endpoint = endpoint.removeprefix("http://")
    host, _, port = endpoint.rpartition(":")
    return host or "127.0.0.1", int(port or 2379)


class EtcdStore:
    def __init__(self, endpoints: Sequence[str], *, timeout_s: float = 5.0) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self._endpoints = list(endpoints)
        self._current = 0
        self._timeout_s = timeout_s
        self._client: aetcd.Client | None = None

    def _new_client(self, index: int) -> aetcd.Client:
        host, port = _split(self._endpoints[index % len(self._endpoints)])
        return aetcd.Client(host=host, port=port, timeout=int(self._timeout_s) or 1)

    async def _kv(self) -> aetcd.Client:
        if self._client is None:
            self._client = self._new_client(self._current)
        return self._client

    async def _call(self, fn: Any) -> Any:
        """Run one request; on a connection failure move to the next endpoint once."""
        for attempt in range(2):
            client = await self._kv()
            try:
                async with asyncio.timeout(self._timeout_s):
                    return await fn(client)
            except _UNAVAILABLE as e:
                await self._rotate()
                if attempt == 1:
                    raise StoreUnavailable(f"etcd unreachable: {type(e).__name__}") from None
            except aetcd_errors.ClientError as e:
                raise StoreUnavailable(f"etcd error: {e}") from None
        raise AssertionError("unreachable")

    async def _rotate(self) -> None:
        client, self._client = self._client, None
        self._current += 1
        if client is not None:
            try:
                await client.close()
            except Exception:  # the channel is already broken
                log.debug("closing a broken etcd client failed", exc_info=True)

    async def get(self, key: str) -> Item | None:
        r = await self._call(lambda c: c.get(key.encode()))
        if r is None:
            return None
        return Item(key, r.value, r.mod_revision, r.create_revision)

    async def range(self, prefix: str) -> tuple[list[Item], int]:
        r = await self._call(lambda c: c.get_prefix(prefix.encode(), sort_target="key"))
        items = [Item(kv.key.decode(), kv.value, kv.mod_revision, kv.create_revision) for kv in r]
        return items, r.header.revision

    async def commit(self, compares: Sequence[Compare], ops: Sequence[Op]) -> int | None:
        async def run(c: aetcd.Client) -> int | None:
            t = c.transactions
            conds = [t.mod(cmp.key.encode()) == cmp.mod_revision for cmp in compares]
            success = []
            for op in ops:
                if isinstance(op, Put):
                    success.append(t.put(op.key.encode(), op.value, lease=op.lease))
                elif isinstance(op, Delete):
                    success.append(t.delete(op.key.encode()))
            if not success:
                # a read-only txn still tells us the revision
                success.append(t.get(b"\0"))
            ok, responses = await c.transaction(compare=conds, success=success, failure=[])
            if not ok:
                return None
            for resp in reversed(responses):
                kind = resp.WhichOneof("response") if hasattr(resp, "WhichOneof") else None
                if kind is not None:
                    return int(getattr(resp, kind).header.revision)
            status = await c.get(b"\0")
            return int(status.header.revision) if status is not None else None

        result: int | None = await self._call(run)
        return result

    async def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[WatchEvent]:
        next_rev = start_revision
        failures = 0
        key = prefix.encode()
        while True:
            client = self._new_client(self._current + failures)
            try:
                async with asyncio.timeout(self._timeout_s):
                    await client.connect()
                    stream = await client.watch(
                        key, range_end=_range_end(key), start_revision=next_rev
                    )
                async for ev in stream:
                    failures = 0
                    rev = int(ev.kv.mod_revision)
                    key_name = ev.kv.key.decode()
                    if ev.kind == "PUT":
                        yield WatchEvent("put", key_name, ev.kv.value, rev)
                    else:
                        yield WatchEvent("delete", key_name, b"", rev)
                    # resume *at* the last revision seen: a txn's events share one revision,
                    # so a break mid-revision re-delivers it rather than skipping the rest
                    next_rev = rev
            except aetcd_errors.RevisionCompactedError as e:
                raise Compacted(int(e.compacted_revision)) from None
            except (*_UNAVAILABLE, aetcd_errors.ClientError) as e:
                failures += 1
                delay = min(2.0, 0.05 * 2 ** min(failures, 6)) * (0.5 + random.random())
                log.warning(
                    "etcd watch on %s broke (%s); re-watching from revision %d in %.2fs",
                    prefix,
                    type(e).__name__,
                    next_rev,
                    delay,
                )
                await asyncio.sleep(delay)
            finally:
                try:
                    await client.close()
                except Exception:
                    log.debug("closing etcd watch client failed", exc_info=True)

    async def grant_lease(self, ttl_s: int) -> int:
        lease = await self._call(lambda c: c.lease(ttl_s))
        return int(lease.id)

    async def refresh_lease(self, lease_id: int) -> bool:
        reply = await self._call(lambda c: c.refresh_lease(lease_id))
        return reply is not None and int(reply.TTL) > 0

    async def revoke_lease(self, lease_id: int) -> None:
        try:
            await self._call(lambda c: c.revoke_lease(lease_id))
        except StoreUnavailable:
            raise
        except Exception:  # already expired
            log.debug("revoking lease %d failed", lease_id, exc_info=True)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
