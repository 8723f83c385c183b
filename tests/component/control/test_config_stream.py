"""The config stream end to end over real gRPC and a real etcd: initial snapshot and
updates, convergence across replicas, etcd and control failures, disk restart, NACK."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from common.config import Tier1Snapshot
from common.configsync import ConfigAgent, ConfigSubscriber, NodeIdentity
from common.errors import ConfigError
from control.app import ControlServer
from control.embedded import EmbeddedEtcd
from control.service import Keys
from control.store.etcd import EtcdStore
from tests.support.control_api import TOKEN, Api
from tests.support.waiting import wait_until

pytestmark = pytest.mark.etcd


def _backend(name: str, timeout: float = 5.0) -> dict[str, Any]:
    return {
        "name": name,
        "spec": {
            "schema": "openai",
            "base_url": "http://127.0.0.1:9/v1",
            "timeouts": {"connect_s": timeout},
        },
    }


class Node:
    def __init__(
        self,
        controls: list[str],
        node_id: str,
        *,
        state_file: Path | None = None,
        build: Any = None,
    ) -> None:
        self.agent: ConfigAgent[Any] = ConfigAgent(
            "tier1", build or (lambda s: s), state_file=state_file
        )
        self.sub = ConfigSubscriber(
            controls,
            NodeIdentity(node_id, "tier1", f"127.0.0.1:{node_id}"),
            self.agent,
            backoff_base_s=0.02,
            backoff_max_s=0.2,
        )

    def start(self) -> Node:
        self.sub.start()
        return self

    async def stop(self) -> None:
        await self.sub.stop()

    def backends(self) -> list[str]:
        snap = self.agent.snapshot
        return [b.name for b in snap.backends] if isinstance(snap, Tier1Snapshot) else []


async def test_initial_snapshot_then_updates(make_control: Any) -> None:
    control: ControlServer = await make_control()
    async with aiohttp.ClientSession() as s:
        api = Api(s, control.rest_url)
        await api.call("POST", "/v1/backends", _backend("first"))
        node = Node([control.grpc_address], "n1").start()
        try:
            await wait_until(lambda: node.backends() == ["first"], what="initial snapshot")
            _, created = await api.call("POST", "/v1/backends", _backend("second"))
            await wait_until(lambda: node.backends() == ["first", "second"], what="update")
            assert node.agent.revision == created["revision"]
            await api.call("DELETE", "/v1/backends/first")
            await wait_until(lambda: node.backends() == ["second"], what="delete")
        finally:
            await node.stop()


async def test_two_replicas_five_nodes_converge(make_control: Any) -> None:
    a: ControlServer = await make_control("a")
    b: ControlServer = await make_control("b")
    nodes = [
        Node([a.grpc_address] if i % 2 else [b.grpc_address], f"n{i}").start() for i in range(5)
    ]
    try:
        async with aiohttp.ClientSession() as s:
            api_a, api_b = Api(s, a.rest_url), Api(s, b.rest_url)
            for i in range(10):
                await (api_a if i % 2 else api_b).call("POST", "/v1/backends", _backend(f"b{i}"))
            _, last = await api_a.call("GET", "/v1/backends/b9")
            await wait_until(
                lambda: all(n.agent.revision == last["revision"] for n in nodes), what="convergence"
            )
            assert len({n.agent.checksum for n in nodes}) == 1

            async def all_in_sync(api: Api) -> bool:
                _, st = await api.call("GET", "/v1/status")
                mine = [n for n in st["nodes"] if n["node_id"].startswith("n")]
                return len(mine) == 5 and all(
                    n["in_sync"] and n["applied_revision"] == last["revision"] for n in mine
                )

            await wait_until(lambda: all_in_sync(api_a), what="status on replica a")
            await wait_until(lambda: all_in_sync(api_b), what="status on replica b")
            _, st = await api_b.call("GET", "/v1/status")
            assert {c["control_id"] for c in st["controls"]} >= {"a", "b"}
    finally:
        for n in nodes:
            await n.stop()


async def test_etcd_restart_nodes_keep_serving_and_catch_up(
    own_etcd: EmbeddedEtcd, key_root: str
) -> None:
    store = EtcdStore([own_etcd.endpoint], timeout_s=1.0)
    control = ControlServer(store, TOKEN, rest_port=0, grpc_port=0, keys=Keys(key_root))
    await control.start()
    node = Node([control.grpc_address], "n1").start()
    try:
        async with aiohttp.ClientSession() as s:
            api = Api(s, control.rest_url)
            await api.call("POST", "/v1/backends", _backend("before"))
            await wait_until(lambda: node.backends() == ["before"])
            own_etcd.stop()
            status, _ = await api.call("POST", "/v1/backends", _backend("during"))
            assert status == 503
            assert node.agent.ready and node.backends() == ["before"]  # last good config
            own_etcd.start()

            async def write_after() -> bool:
                try:
                    st, _ = await api.call("POST", "/v1/backends", _backend("after"))
                except aiohttp.ClientError:  # a keep-alive connection cut during the outage
                    return False
                return st in (201, 409)

            await wait_until(write_after, timeout_s=15, what="etcd back")
            await wait_until(
                lambda: node.backends() == ["after", "before"],
                timeout_s=15,
                what="catch-up via re-watch",
            )
    finally:
        await node.stop()
        await control.stop()
        await store.close()


async def test_control_killed_nodes_move_to_other_replica(make_control: Any) -> None:
    a: ControlServer = await make_control("a")
    b: ControlServer = await make_control("b")
    node = Node([a.grpc_address, b.grpc_address], "mover")
    node.sub._index = 0  # start on replica a
    node.start()
    try:
        async with aiohttp.ClientSession() as s:
            api_b = Api(s, b.rest_url)
            await api_b.call("POST", "/v1/backends", _backend("one"))
            await wait_until(
                lambda: node.backends() == ["one"] and node.sub.connected_to == a.grpc_address
            )
            await a.stop()
            assert node.agent.ready and node.backends() == ["one"]
            await api_b.call("POST", "/v1/backends", _backend("two"))
            await wait_until(
                lambda: node.backends() == ["one", "two"], what="update through replica b"
            )
            assert node.sub.connected_to == b.grpc_address

            async def listed_on_b() -> bool:
                _, st = await api_b.call("GET", "/v1/status")
                return any(
                    n["node_id"] == "mover" and n["control"] == "b" and n["in_sync"]
                    for n in st["nodes"]
                )

            await wait_until(listed_on_b, what="node registered by replica b")
    finally:
        await node.stop()


async def test_node_restarted_while_control_down_serves_from_disk(
    make_control: Any, tmp_path: Path
) -> None:
    control: ControlServer = await make_control()
    state = tmp_path / "tier1.snapshot"
    node = Node([control.grpc_address], "disk", state_file=state).start()
    async with aiohttp.ClientSession() as s:
        await Api(s, control.rest_url).call("POST", "/v1/backends", _backend("kept"))
    await wait_until(lambda: node.backends() == ["kept"])
    revision = node.agent.revision
    await node.stop()
    await control.stop()
    # a new process: control unreachable, config from disk
    restarted = Node([control.grpc_address], "disk", state_file=state)
    assert restarted.agent.load_from_disk()
    assert (
        restarted.agent.ready
        and restarted.backends() == ["kept"]
        and restarted.agent.revision == revision
    )
    assert restarted.agent.readiness()[1]["source"] == "disk"
    assert state.stat().st_mode & 0o077 == 0  # it holds secrets: private to the user


async def test_rejected_snapshot_is_nacked_and_old_one_kept(make_control: Any) -> None:
    def build(snapshot: Any) -> Any:
        if any(b.name == "poison" for b in snapshot.backends):
            raise ConfigError("backend 'poison' cannot be served by this build")
        return snapshot

    control: ControlServer = await make_control()
    node = Node([control.grpc_address], "picky", build=build).start()
    try:
        async with aiohttp.ClientSession() as s:
            api = Api(s, control.rest_url)
            await api.call("POST", "/v1/backends", _backend("fine"))
            await wait_until(lambda: node.backends() == ["fine"])
            good_revision = node.agent.revision
            _, poison = await api.call("POST", "/v1/backends", _backend("poison"))

            async def nack_shown() -> bool:
                _, st = await api.call("GET", "/v1/status")
                n = next((n for n in st["nodes"] if n["node_id"] == "picky"), None)
                return bool(
                    n and n["last_nack"] and n["last_nack"]["revision"] == poison["revision"]
                )

            await wait_until(nack_shown, what="NACK in /v1/status")
            _, st = await api.call("GET", "/v1/status")
            n = next(n for n in st["nodes"] if n["node_id"] == "picky")
            assert "poison" in n["last_nack"]["reason"] and not n["in_sync"]
            assert n["applied_revision"] == good_revision
            assert node.agent.revision == good_revision and node.backends() == ["fine"]
            # the next good config is applied again
            await api.call("DELETE", "/v1/backends/poison")
            await wait_until(lambda: node.agent.revision > poison["revision"], what="recovery")
    finally:
        await node.stop()
