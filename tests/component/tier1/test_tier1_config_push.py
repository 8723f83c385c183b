"""Configuration pushed by a real control replica while requests flow: nothing lost."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.fakes import fake_upstreams
from common.configsync.agent import ConfigAgent
from common.configsync.node import NodeSettings, serve_node
from control.embedded import free_port
from tests.support.control_api import Api
from tests.support.gateway import KEY, consumer, openai_backend, route
from tests.support.waiting import wait_until
from tier1.app import build_app
from tier1.runtime import build_runtime

pytestmark = pytest.mark.etcd


async def test_config_changes_mid_load_lose_no_request(make_control: Any, tmp_path: Path) -> None:
    control = await make_control()
    port = free_port()
    stop = asyncio.Event()
    node = NodeSettings("tier1", "127.0.0.1", port, [control.grpc_address], "edge-load", tmp_path)

    def app_factory(agent: ConfigAgent[Any]) -> Any:
        return build_app(agent)

    server = asyncio.create_task(serve_node(node, build_runtime, app_factory, stop=stop))
    base = f"http://127.0.0.1:{port}/v1"
    async with fake_upstreams(["a", "b"]) as fakes, aiohttp.ClientSession() as s:
        api = Api(s, control.rest_url)
        docs = [
            openai_backend("a", fakes["a"].url + "/v1"),
            openai_backend("b", fakes["b"].url + "/v1"),
            route("r1", ["m1"], [{"name": "a", "weight": 1}, {"name": "b", "weight": 0}]),
            consumer(),
        ]
        status, _ = await api.call("POST", "/v1/apply", {"documents": docs})
        assert status == 200

        async def ready() -> bool:
            try:
                async with s.get(f"http://127.0.0.1:{port}/readyz") as r:
                    return r.status == 200 and (await r.json())["revision"] > 0
            except aiohttp.ClientError:
                return False

        await wait_until(ready, what="tier1 configured by control")
        results: list[int] = []
        done = asyncio.Event()

        async def load() -> None:
            body = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}
            while not done.is_set():
                async with s.post(
                    base + "/chat/completions",
                    json=body,
                    headers={"Authorization": f"Bearer {KEY}"},
                ) as r:
                    await r.read()
                    results.append(r.status)

        workers = [asyncio.create_task(load()) for _ in range(8)]
        await asyncio.sleep(0.3)
        # shift weights to b, add a route, then shift back: all while requests flow
        changes = [
            [route("r1", ["m1"], [{"name": "a", "weight": 0}, {"name": "b", "weight": 1}])],
            [route("r2", ["m2"], ["a"])],
            [route("r1", ["m1"], [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}])],
        ]
        for change in changes:
            status, _ = await api.call("POST", "/v1/apply", {"documents": change})
            assert status == 200
            await asyncio.sleep(0.3)
        done.set()
        await asyncio.gather(*workers)
        assert len(results) > 50 and set(results) == {200}, {
            c: results.count(c) for c in set(results)
        }
        assert fakes["b"].requests, "the weight change reached tier1"
        async with s.post(
            base + "/chat/completions",
            json={"model": "m2", "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": f"Bearer {KEY}"},
        ) as r:
            assert r.status == 200  # the route added mid-load serves
    stop.set()
    await server
