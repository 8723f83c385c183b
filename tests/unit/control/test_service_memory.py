"""ResourceService over the in-memory store: watch-fed cache, compaction resync, and
atomic multi-document writes (no etcd needed: the store contract suite covers both)."""

from __future__ import annotations

from typing import Any

import pytest

from common.config import parse_resource
from common.errors import Conflict, NotFound, ValidationFailed
from control.service import Change, Keys, ResourceService
from control.store.base import Put
from control.store.memory import MemoryStore
from tests.support.waiting import wait_until


def _backend(name: str, connect_s: float = 5.0) -> Any:
    return parse_resource(
        {
            "kind": "Backend",
            "name": name,
            "spec": {
                "schema": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "timeouts": {"connect_s": connect_s},
            },
        }
    )


async def test_cache_follows_writes_of_another_replica() -> None:
    store = MemoryStore()
    a, b = ResourceService(store), ResourceService(store)
    await a.start()
    await b.start()
    try:
        await a.create(_backend("x"))
        await wait_until(lambda: b.config().get("Backend", "x") is not None, what="b's cache")
        assert b.revision == a.revision
    finally:
        await a.stop()
        await b.stop()
        await store.close()


async def test_compacted_history_triggers_full_resync() -> None:
    store = MemoryStore()
    svc = ResourceService(store)
    await svc.start()
    await svc.stop()  # the watch is down while history moves on and is compacted
    keys = Keys()
    for i in range(3):
        raw = _backend(f"late-{i}").model_dump_json(by_alias=True, exclude={"revision"}).encode()
        await store.commit([], [Put(keys.resource("Backend", f"late-{i}"), raw)])
    _, head = await store.range("/")
    store.compact(head)
    await svc.start_watch_only()
    try:
        await wait_until(lambda: len(svc.config().backends) == 3, what="resync after compaction")
    finally:
        await svc.stop()
        await store.close()


async def test_batch_write_is_atomic() -> None:
    store = MemoryStore()
    svc = ResourceService(store)
    await svc.start()
    try:
        route = parse_resource(
            {
                "kind": "Route",
                "name": "r",
                "spec": {"match": {"models": ["m"]}, "backends": [{"name": "missing"}]},
            }
        )
        with pytest.raises(ValidationFailed):
            await svc.write([Change(_backend("ok"), "apply"), Change(route, "apply")])
        assert svc.config().get("Backend", "ok") is None
        with pytest.raises(NotFound):
            await svc.replace(_backend("ghost"), expect=1)
        first = (await svc.apply([_backend("ok")]))[0]
        with pytest.raises(Conflict):
            await svc.replace(_backend("ok", 2.0), expect=(first.resource.revision or 0) + 100)
        again = (await svc.apply([_backend("ok")]))[0]
        assert not again.changed and again.resource.revision == first.resource.revision
    finally:
        await svc.stop()
        await store.close()
