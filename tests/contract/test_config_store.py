"""One suite, every ConfigStore: memory (reference) and etcd (real binary)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from common.clock import FakeClock
from control.store.base import Compacted, Compare, ConfigStore, Delete, Put, WatchEvent
from control.store.etcd import EtcdStore
from control.store.memory import MemoryStore


@pytest.fixture(params=["memory", pytest.param("etcd", marks=pytest.mark.etcd)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ConfigStore]:
    if request.param == "memory":
        s: ConfigStore = MemoryStore()
        yield s
        await s.close()
    else:
        etcd = EtcdStore([request.getfixturevalue("etcd_endpoint")])
        yield etcd
        await etcd.close()


async def test_create_only_then_cas(store: ConfigStore, key_root: str) -> None:
    k = key_root + "a"
    rev = await store.commit([Compare(k, 0)], [Put(k, b"1")])
    assert rev is not None
    assert await store.commit([Compare(k, 0)], [Put(k, b"again")]) is None  # exists
    item = await store.get(k)
    assert item is not None and item.value == b"1" and item.mod_revision == rev
    rev2 = await store.commit([Compare(k, rev)], [Put(k, b"2")])
    assert rev2 is not None and rev2 > rev
    assert await store.commit([Compare(k, rev)], [Put(k, b"stale")]) is None
    assert (await store.get(k)).value == b"2"  # type: ignore[union-attr]


async def test_txn_is_atomic(store: ConfigStore, key_root: str) -> None:
    a, b = key_root + "a", key_root + "b"
    await store.commit([], [Put(a, b"x")])
    # second compare fails: neither put nor delete may apply
    assert await store.commit([Compare(a, 0)], [Put(b, b"y"), Delete(a)]) is None
    assert await store.get(b) is None and await store.get(a) is not None
    rev = await store.commit([Compare(b, 0)], [Put(b, b"y"), Delete(a)])
    assert rev is not None
    items, header = await store.range(key_root)
    assert [i.key for i in items] == [b] and header >= rev


async def test_range_is_sorted_and_scoped(store: ConfigStore, key_root: str) -> None:
    for name in ["c", "a", "b"]:
        await store.commit([], [Put(key_root + "p/" + name, name.encode())])
    await store.commit([], [Put(key_root + "q/z", b"z")])
    items, _ = await store.range(key_root + "p/")
    assert [i.value for i in items] == [b"a", b"b", b"c"]


async def _take(it: AsyncIterator[WatchEvent], n: int) -> list[WatchEvent]:
    out = []
    async with asyncio.timeout(5):
        async for ev in it:
            out.append(ev)
            if len(out) == n:
                break
    return out


async def test_watch_from_past_and_live(store: ConfigStore, key_root: str) -> None:
    r1 = await store.commit([], [Put(key_root + "x", b"1")])
    assert r1 is not None
    await store.commit([], [Put(key_root + "other/../y", b"2")])
    await store.commit([], [Delete(key_root + "x")])
    it = store.watch(key_root, start_revision=r1)
    got = await _take(it, 3)
    assert [(e.kind, e.key) for e in got] == [
        ("put", key_root + "x"),
        ("put", key_root + "other/../y"),
        ("delete", key_root + "x"),
    ]
    assert [e.revision for e in got] == sorted(e.revision for e in got)
    it2 = store.watch(key_root, start_revision=got[-1].revision + 1)
    task = asyncio.ensure_future(_take(it2, 1))
    await asyncio.sleep(0.05)
    await store.commit([], [Put(key_root + "live", b"L")])
    live = await task
    assert live[0].key == key_root + "live" and live[0].value == b"L"
    await it.aclose()  # type: ignore[attr-defined]
    await it2.aclose()  # type: ignore[attr-defined]


async def test_lease_expiry_deletes_keys(store: ConfigStore, key_root: str) -> None:
    lease = await store.grant_lease(1)
    k = key_root + "leased"
    rev = await store.commit([], [Put(k, b"alive", lease=lease)])
    assert rev is not None
    assert await store.refresh_lease(lease)
    it = store.watch(key_root, start_revision=rev + 1)
    ev = (await asyncio.wait_for(_take(it, 1), 6))[0]
    assert ev.kind == "delete" and ev.key == k
    assert await store.get(k) is None
    assert not await store.refresh_lease(lease)
    await it.aclose()  # type: ignore[attr-defined]


async def test_revoke_lease(store: ConfigStore, key_root: str) -> None:
    lease = await store.grant_lease(30)
    await store.commit([], [Put(key_root + "l", b"v", lease=lease)])
    await store.revoke_lease(lease)
    assert await store.get(key_root + "l") is None


async def test_memory_compaction_raises() -> None:
    s = MemoryStore(clock=FakeClock())
    for i in range(5):
        await s.commit([], [Put(f"/k{i}", b"v")])
    s.compact(4)
    with pytest.raises(Compacted):
        await anext(s.watch("/", start_revision=2))
    await s.close()
