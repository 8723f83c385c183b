"""Control publishes the live quota replicas in the tier1 snapshot: compile carries them,
MemberWatcher follows the store (also across compaction and watch failures), and a
subscribed tier1 node receives the set as replicas come and go."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from common.config import ConfigSet, Tier1Snapshot
from common.configsync import ConfigAgent, ConfigSubscriber, NodeIdentity
from control.app import ControlServer
from control.compile import compile_tier1
from control.ratelimit.members import MemberRegistration, MemberWatcher
from control.ratelimit.service import RateLimitServer
from control.service import Keys
from control.store.base import Compacted, ConfigStore, Put, StoreUnavailable, WatchEvent
from control.store.etcd import EtcdStore
from control.store.memory import MemoryStore
from tests.support.control_api import TOKEN, Api
from tests.support.waiting import wait_until

PREFIX = Keys().ratelimit_members


def test_tier1_snapshot_carries_the_sorted_replica_set() -> None:
    without = compile_tier1(ConfigSet.of([]), 5)
    with_two = compile_tier1(ConfigSet.of([]), 5, ratelimit=["q2:8092", "q1:8092", "q2:8092"])
    assert without.ratelimit == ()
    assert with_two.ratelimit == ("q1:8092", "q2:8092")
    assert with_two.checksum != without.checksum  # so control pushes the change


async def test_watcher_follows_registrations_and_departures() -> None:
    store = MemoryStore()
    watcher = MemberWatcher(store, PREFIX)
    changes: list[tuple[str, ...]] = []
    watcher.subscribe(lambda: changes.append(watcher.addresses))
    await watcher.start()
    regs = [
        MemberRegistration(store, PREFIX + f"r{i}", f"q{i}:8092", ttl_s=1, refresh_s=0.05)
        for i in (1, 2)
    ]
    try:
        for reg in regs:
            await reg.start()
        await wait_until(lambda: watcher.addresses == ("q1:8092", "q2:8092"), what="both")
        both_at = watcher.revision
        await regs[0].stop()
        await wait_until(lambda: watcher.addresses == ("q2:8092",), what="r1 gone")
        assert watcher.revision > both_at
        assert changes == [("q1:8092",), ("q1:8092", "q2:8092"), ("q2:8092",)]
    finally:
        for reg in regs:
            await reg.stop()
        await watcher.stop()
        await store.close()


class BrokenFirstWatch(MemoryStore):
    """The first watch stalls until released, then fails with `error`: the changes
    made meanwhile reach the watcher only through a resync."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error
        self.release = asyncio.Event()
        self.watches = 0

    def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[WatchEvent]:
        self.watches += 1
        if self.watches == 1:
            return self._broken()
        return super().watch(prefix, start_revision=start_revision)

    async def _broken(self) -> AsyncIterator[WatchEvent]:
        await self.release.wait()
        for event in self._fail():
            yield event

    def _fail(self) -> list[WatchEvent]:
        raise self.error


@pytest.mark.parametrize(
    "error", [Compacted(10), StoreUnavailable("etcd restarted")], ids=["compacted", "restart"]
)
async def test_watcher_resyncs_after_compaction_or_failure(error: Exception) -> None:
    store = BrokenFirstWatch(error)
    await store.commit([], [Put(PREFIX + "r0", b"q0:8092")])
    watcher = MemberWatcher(store, PREFIX)
    await watcher.start()
    try:
        assert watcher.addresses == ("q0:8092",)
        first = watcher.revision
        await store.commit([], [Put(PREFIX + "r1", b"q1:8092")])
        store.release.set()
        await wait_until(lambda: watcher.addresses == ("q0:8092", "q1:8092"), what="resync")
        assert watcher.revision > first
        await store.commit([], [Put(PREFIX + "r2", b"q2:8092")])  # the new watch works
        await wait_until(lambda: len(watcher.addresses) == 3, what="watch resumed")
        assert store.watches == 2
    finally:
        await watcher.stop()
        await store.close()


class Node:
    def __init__(self, control: str, node_id: str) -> None:
        self.agent: ConfigAgent[Any] = ConfigAgent("tier1", lambda s: s)
        self.sub = ConfigSubscriber(
            [control],
            NodeIdentity(node_id, "tier1", f"127.0.0.1:{node_id}"),
            self.agent,
            backoff_base_s=0.02,
            backoff_max_s=0.2,
        )
        self.sub.start()

    @property
    def replicas(self) -> tuple[str, ...]:
        snap = self.agent.snapshot
        return snap.ratelimit if isinstance(snap, Tier1Snapshot) else ()


async def _quota(store: ConfigStore, keys: Keys, name: str) -> RateLimitServer:
    server = RateLimitServer(
        store,
        port=0,
        metrics_port=None,
        replica_id=name,
        keys=keys,
        member_refresh_s=0.05,
    )
    await server.start()
    return server


async def _publishes_replicas_as_they_come_and_go(
    control: ControlServer, store: ConfigStore, keys: Keys
) -> None:
    node = Node(control.grpc_address, "n1")
    a = await _quota(store, keys, "qa")
    b = await _quota(store, keys, "qb")
    try:
        both = tuple(sorted([a.advertised, b.advertised]))
        await wait_until(lambda: node.replicas == both, what="both replicas published")
        revision = node.agent.revision
        async with aiohttp.ClientSession() as s:
            backend = {"name": "x", "spec": {"schema": "openai", "base_url": "http://127.0.0.1:9"}}
            _, created = await Api(s, control.rest_url).call("POST", "/v1/backends", backend)
        await wait_until(lambda: node.agent.revision == created["revision"], what="a write")
        assert node.replicas == both and created["revision"] > revision
        await a.stop()
        await wait_until(lambda: node.replicas == (b.advertised,), what="a vanished")
        assert node.agent.revision > created["revision"]  # the revision never goes back
    finally:
        await node.sub.stop()
        await a.stop()
        await b.stop()


async def test_control_publishes_replicas_memory_store() -> None:
    store = MemoryStore()
    control = ControlServer(store, TOKEN, rest_port=0, grpc_port=0)
    await control.start()
    try:
        await _publishes_replicas_as_they_come_and_go(control, store, Keys())
    finally:
        await control.stop()
        await store.close()


@pytest.mark.etcd
async def test_control_publishes_replicas_etcd(
    make_control: Any, etcd_endpoint: str, key_root: str
) -> None:
    control: ControlServer = await make_control()
    store = EtcdStore([etcd_endpoint])
    try:
        await _publishes_replicas_as_they_come_and_go(control, store, Keys(key_root))
    finally:
        await store.close()
