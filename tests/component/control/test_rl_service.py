"""The quota replica over real gRPC on 127.0.0.1: grants, reclaiming, usage, window
expiry, request validation, metrics; checkpoints (restart keeps long windows, batching,
store outages, keys moving between replicas) and membership registration."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import grpc
import pytest
from grpc import aio

from common import wire
from common.clock import FakeClock
from common.quota.protocol import SYNC_METHOD
from control.ratelimit.checkpoint import decode_counter
from control.ratelimit.cli import build_parser, server_from_args
from control.ratelimit.service import RateLimitServer
from control.service import Keys
from control.store.base import Compare, ConfigStore, Item, Op, StoreUnavailable
from control.store.etcd import EtcdStore
from control.store.memory import MemoryStore
from tests.support.waiting import wait_until

HOUR, MINUTE = 3600.0, 60.0


class CountingStore(MemoryStore):
    """Records the size of every transaction that writes counters."""

    def __init__(self) -> None:
        super().__init__()
        self.commits: list[int] = []

    async def commit(self, compares: Sequence[Compare], ops: Sequence[Op]) -> int | None:
        if any(Keys().ratelimit_counters in op.key for op in ops):
            self.commits.append(len(ops))
        return await super().commit(compares, ops)


class FlakyStore(CountingStore):
    """A store a test can take down: every call then raises StoreUnavailable."""

    down = False

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("down for the test")

    async def get(self, key: str) -> Item | None:
        self._check()
        return await super().get(key)

    async def range(self, prefix: str) -> tuple[list[Item], int]:
        self._check()
        return await super().range(prefix)

    async def commit(self, compares: Sequence[Compare], ops: Sequence[Op]) -> int | None:
        self._check()
        return await super().commit(compares, ops)

    async def grant_lease(self, ttl_s: int) -> int:
        self._check()
        return await super().grant_lease(ttl_s)

    async def refresh_lease(self, lease_id: int) -> bool:
        self._check()
        return await super().refresh_lease(lease_id)


class Client:
    def __init__(self, address: str) -> None:
        self.channel = aio.insecure_channel(address)
        self._sync = self.channel.unary_unary(
            SYNC_METHOD, request_serializer=wire.encode, response_deserializer=wire.decode
        )
        self.raw = self.channel.unary_unary(SYNC_METHOD, response_deserializer=wire.decode)

    async def sync(self, holder: str, *entries: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = await self._sync({"holder": holder, "entries": list(entries)})
        return reply

    async def one(self, holder: str, entry: dict[str, Any]) -> dict[str, Any]:
        reply = await self.sync(holder, entry)
        grant: dict[str, Any] = reply["entries"][0]
        return grant


Factory = Callable[..., Awaitable[tuple[RateLimitServer, Client]]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_quota(clock: FakeClock) -> AsyncIterator[Factory]:
    started: list[tuple[RateLimitServer, Client]] = []

    async def factory(
        store: ConfigStore | None = None, **kwargs: Any
    ) -> tuple[RateLimitServer, Client]:
        kwargs.setdefault("clock", clock)
        server = RateLimitServer(store, port=0, metrics_port=0, **kwargs)
        await server.start()
        client = Client(server.address)
        started.append((server, client))
        return server, client

    yield factory
    for server, client in reversed(started):
        await client.channel.close()
        await server.stop()


def entry(
    key: str,
    clock: FakeClock,
    *,
    window: float = HOUR,
    d: float = 0,
    w: float = 0,
    limit: float = 100,
    persist: int | None = None,
) -> dict[str, Any]:
    return {
        "k": key,
        "l": limit,
        "e": clock.wall() + window,
        "d": d,
        "w": w,
        "p": int(window >= HOUR) if persist is None else persist,
    }


# -- serving ----------------------------------------------------------------------------------


async def test_grants_stay_within_the_limit_across_two_holders(
    make_quota: Factory, clock: FakeClock
) -> None:
    _, q = await make_quota()
    a = await q.one("a", entry("k", clock, w=70))
    b = await q.one("b", entry("k", clock, w=70))
    assert (a["a"], b["a"]) == (70, 30)
    assert b["r"] == 0
    # a spends 50 of its 70 and asks for 40 more: only its own unspent share is left
    a = await q.one("a", entry("k", clock, d=50, w=40))
    assert a["a"] == 20 and a["r"] == 0
    reply = await q.sync("b", entry("k", clock, d=30, w=10))
    assert reply["entries"][0]["a"] == 0
    assert reply["holders"] == 2 and reply["now"] == clock.wall()


async def test_an_expired_allotment_is_reclaimed(make_quota: Factory, clock: FakeClock) -> None:
    _, q = await make_quota(lease_s=1.0)
    assert (await q.one("vanishing", entry("k", clock, w=100)))["a"] == 100
    assert (await q.one("waiting", entry("k", clock, w=60)))["a"] == 0
    clock.advance(1.0)
    assert (await q.one("waiting", entry("k", clock, w=60)))["a"] == 60


async def test_usage_accumulates(make_quota: Factory, clock: FakeClock) -> None:
    _, q = await make_quota()
    for holder in ("a", "b", "a"):
        await q.one(holder, entry("k", clock, window=MINUTE, d=12.5))
    assert (await q.one("c", entry("k", clock, window=MINUTE)))["r"] == 100 - 37.5


async def test_window_end_forgets_the_key(make_quota: Factory, clock: FakeClock) -> None:
    server, q = await make_quota()
    ended = entry("k", clock, window=MINUTE, d=40)
    await q.one("a", ended)
    clock.advance(MINUTE)
    server.service.expire()
    assert "k" not in server.table.counters
    assert await q.one("a", ended) == {"k": "k", "a": 0, "r": 0, "t": 1.0}  # not recreated
    assert "k" not in server.table.counters
    assert (await q.one("a", entry("k", clock, window=MINUTE)))["r"] == 100


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ([1, 2], "a Sync request is a map"),
        ({"entries": []}, "holder must be a non-empty string"),
        ({"holder": "h", "entries": {}}, "entries must be a list"),
        ({"holder": "h", "entries": ["x"]}, "entries[0] must be a map"),
        ({"holder": "h", "entries": [{"k": "", "l": 1}]}, "entries[0].k must be a string"),
        (
            {"holder": "h", "entries": [{"k": "a", "l": "9", "e": 1, "d": 0, "w": 0, "p": 0}]},
            "entries[0].l must be a number, got str",
        ),
        (
            {"holder": "h", "entries": [{"k": "a", "l": 9, "e": 1, "d": -1, "w": 0, "p": 0}]},
            "entries[0].d must be finite and >= 0",
        ),
        (
            {"holder": "h", "entries": [{"k": "a", "l": 9, "e": 1, "w": 0, "p": 0}]},
            "entries[0].d must be a number, got nothing",
        ),
        (
            {"holder": "h", "entries": [{"k": "a", "l": 9, "e": 1, "d": 0, "w": 0, "p": 2}]},
            "entries[0].p must be 0 or 1",
        ),
    ],
)
async def test_invalid_requests_are_invalid_argument(
    make_quota: Factory, request_: Any, message: str
) -> None:
    server, q = await make_quota()
    with pytest.raises(aio.AioRpcError) as err:
        await q.raw(wire.encode(request_))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (err.value.details() or "")
    assert server.table.counters == {}


async def test_garbage_bytes_are_invalid_argument(make_quota: Factory) -> None:
    server, q = await make_quota()
    with pytest.raises(aio.AioRpcError) as err:
        await q.raw(b"\xc1\xc1")  # 0xc1 is never valid msgpack
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not msgpack" in (err.value.details() or "")


async def test_metrics_health_and_readiness(make_quota: Factory, clock: FakeClock) -> None:
    server, q = await make_quota()
    await q.one("a", entry("busy\x1fgpt", clock, d=90, w=5))
    await q.one("a", entry("quiet", clock, d=1))
    with pytest.raises(aio.AioRpcError):
        await q.raw(b"\xc1")
    base = f"http://127.0.0.1:{server.metrics_port}"
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/metrics") as r:
            text = await r.text()
        async with s.get(f"{base}/healthz") as r:
            assert r.status == 200
        async with s.get(f"{base}/readyz") as r:
            assert r.status == 200 and (await r.json())["ready"] is True
    assert 'strata_quota_syncs_total{result="ok"} 2.0' in text
    assert 'strata_quota_syncs_total{result="invalid"} 1.0' in text
    assert "strata_quota_lease_granted_units_total 5.0" in text
    assert "strata_quota_keys 2.0" in text
    assert "strata_quota_holders 1.0" in text
    assert 'strata_quota_remaining{key="busy,gpt"} 5.0' in text
    assert "strata_quota_checkpoint_lag_seconds" not in text  # no store, no checkpoints


# -- durability -------------------------------------------------------------------------------


async def _report_hour_and_minute(q: Client, clock: FakeClock) -> None:
    await q.sync(
        "a", entry("hour", clock, window=HOUR, d=30), entry("minute", clock, window=MINUTE, d=20)
    )


async def _remaining(q: Client, clock: FakeClock, key: str, window: float) -> float:
    return float((await q.one("b", entry(key, clock, window=window)))["r"])


async def test_restart_keeps_long_windows_only(make_quota: Factory, clock: FakeClock) -> None:
    store = MemoryStore()
    first, q = await make_quota(store, checkpoint_s=3600)  # only the graceful stop writes
    await _report_hour_and_minute(q, clock)
    await first.stop()
    _, q2 = await make_quota(store)
    assert await _remaining(q2, clock, "hour", HOUR) == 70
    assert await _remaining(q2, clock, "minute", MINUTE) == 100
    await store.close()


@pytest.mark.etcd
async def test_restart_keeps_long_windows_in_etcd(
    make_quota: Factory, clock: FakeClock, etcd_store: EtcdStore, key_root: str
) -> None:
    keys = Keys(key_root)
    first, q = await make_quota(etcd_store, keys=keys, checkpoint_s=0.05)
    await _report_hour_and_minute(q, clock)

    async def written() -> bool:
        return bool((await etcd_store.range(keys.ratelimit_counters))[0])

    await wait_until(written, what="a checkpoint")
    items, _ = await etcd_store.range(keys.ratelimit_counters)
    assert [(i.key, decode_counter(i.value)) for i in items] == [
        (keys.ratelimit_counters + "hour", (30, 100, clock.wall() + HOUR))
    ]
    await first.stop()
    _, q2 = await make_quota(etcd_store, keys=keys)
    assert await _remaining(q2, clock, "hour", HOUR) == 70
    assert await _remaining(q2, clock, "minute", MINUTE) == 100


async def test_checkpoints_are_batched_not_per_sync(make_quota: Factory, clock: FakeClock) -> None:
    store = CountingStore()
    server, q = await make_quota(store, checkpoint_s=3600)
    assert server.checkpoint is not None
    n = 150
    for start in range(0, n, 30):  # five Syncs of 30 keys, each reporting usage twice
        batch = [entry(f"k{i}", clock, d=1) for i in range(start, start + 30)]
        await q.sync("a", *batch)
        await q.sync("b", *batch)
    assert store.commits == []  # a Sync never writes
    assert await server.checkpoint.flush() == n
    assert len(store.commits) == math.ceil(n / 64)
    assert max(store.commits) <= 64 and sum(store.commits) == n
    assert await server.checkpoint.flush() == 0
    assert len(store.commits) == math.ceil(n / 64)  # nothing changed, nothing written
    clock.advance(HOUR)
    server.service.expire()
    await server.checkpoint.flush()
    assert store.commits[math.ceil(n / 64) :] == [64, 64, 22]  # deletes, batched too
    assert (await store.range(server.keys.ratelimit_counters))[0] == []
    await store.close()


async def test_store_outage_keeps_serving_and_catches_up(
    make_quota: Factory, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore()
    server, q = await make_quota(store, checkpoint_s=3600)
    assert server.checkpoint is not None
    store.down = True
    await q.one("a", entry("hour", clock, d=10))
    assert (await q.one("a", entry("hour", clock, d=5, w=10)))["a"] == 10
    with caplog.at_level(logging.WARNING, logger="control.ratelimit.checkpoint"):
        assert not await server.checkpoint.run_once()
        assert not await server.checkpoint.run_once()
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1
    assert _errors(server) == 2
    store.down = False
    assert await server.checkpoint.run_once()
    item = await store.get(server.keys.ratelimit_counters + "hour")
    assert item is not None and decode_counter(item.value) == (15, 100, clock.wall() + HOUR)
    await store.close()


async def test_start_with_the_store_down_serves_then_loads(
    make_quota: Factory, clock: FakeClock
) -> None:
    store = FlakyStore()
    keys = Keys()
    first, q = await make_quota(store, checkpoint_s=3600)
    await q.one("a", entry("hour", clock, d=40))
    await first.stop()
    store.down = True
    server, q2 = await make_quota(store, checkpoint_s=0.05, member_refresh_s=0.05)
    assert server.checkpoint is not None and not server.checkpoint.loaded
    assert not server.ready
    assert (await q2.one("a", entry("hour", clock, d=1)))["r"] == 99  # serving from memory
    assert _errors(server) >= 1
    membership = server.membership
    assert membership is not None and not membership.registered  # not before the load
    store.down = False
    await wait_until(lambda: server.ready and membership.registered, what="load, then register")
    assert server.table.counters["hour"].consumed == 40  # the stored count won
    item = await store.get(keys.ratelimit_members + server.replica_id)
    assert item is not None and item.value == server.advertised.encode()
    await store.close()


@pytest.mark.parametrize("n", [1, 100], ids=["one-key", "many-keys"])
async def test_keys_moving_to_another_replica_keep_their_count(
    make_quota: Factory, clock: FakeClock, n: int
) -> None:
    store = MemoryStore()
    a, qa = await make_quota(store, checkpoint_s=3600)
    b, qb = await make_quota(store, checkpoint_s=3600)  # loaded before a counted anything
    assert a.checkpoint is not None
    await qa.sync("h1", *[entry(f"k{i}", clock, d=60) for i in range(n)])
    await a.checkpoint.flush()
    # the ring changed: tier1 now sends these keys to b, which has never seen them
    reply = await qb.sync("h1", *[entry(f"k{i}", clock, w=100) for i in range(n)])
    assert {g["a"] for g in reply["entries"]} == {40}
    await store.close()


async def test_a_key_read_while_the_store_was_down_is_read_again(
    make_quota: Factory, clock: FakeClock
) -> None:
    store = FlakyStore()
    a, qa = await make_quota(store, checkpoint_s=3600)
    b, qb = await make_quota(store, checkpoint_s=3600)
    assert a.checkpoint is not None
    await qa.one("h1", entry("hour", clock, d=60))
    await a.checkpoint.flush()
    store.down = True
    assert (await qb.one("h1", entry("hour", clock, w=100)))["a"] == 100  # from memory
    store.down = False
    assert b.checkpoint is not None
    clock.advance(b.checkpoint.fetch_retry_s)  # reads pause after a failure
    assert (await qb.one("h1", entry("hour", clock, w=100)))["a"] == 40
    await store.close()


async def test_graceful_stop_writes_a_last_checkpoint(
    make_quota: Factory, clock: FakeClock
) -> None:
    store = MemoryStore()
    server, q = await make_quota(store, checkpoint_s=3600)
    await q.one("a", entry("hour", clock, d=7))
    assert (await store.range(server.keys.ratelimit_counters))[0] == []
    await server.stop()
    item = await store.get(server.keys.ratelimit_counters + "hour")
    assert item is not None and decode_counter(item.value) == (7, 100, clock.wall() + HOUR)
    await store.close()


# -- membership -------------------------------------------------------------------------------


async def test_membership_registers_renews_and_leaves(make_quota: Factory) -> None:
    store = MemoryStore()
    server, _ = await make_quota(
        store, replica_id="r1", advertise="quota-1:8092", member_ttl_s=1, member_refresh_s=0.05
    )
    key = server.keys.ratelimit_members + "r1"

    async def address() -> bytes | None:
        item = await store.get(key)
        return item.value if item else None

    await wait_until(lambda: _eq(address(), b"quota-1:8092"), what="registration")
    membership = server.membership
    assert membership is not None and membership.lease is not None
    lost = membership.lease
    await store.revoke_lease(lost)  # e.g. expired while the replica was stalled
    assert await address() is None
    await wait_until(lambda: _eq(address(), b"quota-1:8092"), what="registering again")
    assert membership.lease != lost
    await server.stop()
    assert await address() is None
    await store.close()


async def _eq(value: Awaitable[Any], expected: Any) -> bool:
    return bool(await value == expected)


def _errors(server: RateLimitServer) -> float:
    value = server.metrics.registry.get_sample_value("strata_quota_checkpoint_errors_total")
    return value or 0.0


# -- command line -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "listen", "root"),
    [
        ([], ("127.0.0.1", 8092), "/strata/"),
        (["--listen", "0.0.0.0:9000", "--root", "/prod"], ("0.0.0.0", 9000), "/prod/"),
        (["--listen", "[::1]:9001", "--key-root", "/x/"], ("::1", 9001), "/x/"),
    ],
)
def test_cli_flags(argv: list[str], listen: tuple[str, int], root: str) -> None:
    args = build_parser().parse_args(argv)
    server = server_from_args(args, None)
    assert (server.host, server.port, server.keys.root) == (*listen, root)
    assert (server.metrics_port, server.lease_s, server.checkpoint_s) == (8093, 1.0, 2.0)
    assert build_parser().parse_args(["--etcd", "http://e1:2379,e2:2379"]).etcd == (
        "http://e1:2379,e2:2379"
    )
