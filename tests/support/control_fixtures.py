"""Fixtures: a real control replica (REST + gRPC) on loopback over the session's real etcd."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from control.app import ControlServer
from control.service import Keys
from control.store.etcd import EtcdStore
from tests.support.control_api import TOKEN, Api

ControlFactory = Callable[..., Awaitable[ControlServer]]


@pytest.fixture
async def make_control(etcd_endpoint: str, key_root: str) -> AsyncIterator[ControlFactory]:
    started: list[tuple[ControlServer, EtcdStore]] = []

    async def factory(control_id: str = "c0", **kwargs: Any) -> ControlServer:
        store = EtcdStore([etcd_endpoint])
        server = ControlServer(
            store,
            TOKEN,
            rest_port=0,
            grpc_port=0,
            keys=Keys(key_root),
            control_id=control_id,
            **kwargs,
        )
        await server.start()
        started.append((server, store))
        return server

    yield factory
    for server, store in reversed(started):
        await server.stop()
        await store.close()


@pytest.fixture
async def control(make_control: ControlFactory) -> ControlServer:
    return await make_control()


@pytest.fixture
async def api(control: ControlServer) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, control.rest_url)
