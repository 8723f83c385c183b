"""A real tier1 app on a loopback port, configured by compiling resources directly
(no control needed) — or, for config-push tests, by a real control replica."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from common.config import ConfigSet, hash_api_key, parse_resource, snapshot_to_wire
from common.configsync.agent import ConfigAgent
from common.configsync.http import add_config_routes
from control.compile import compile_tier1
from tier1.app import build_app
from tier1.runtime import build_runtime
from tier1.settings import Tier1Settings

KEY = "sk-strata-test-key-0123456789"


def consumer(name: str = "tester", key: str = KEY, **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Consumer",
        "name": name,
        "spec": {"keys": [{"id": f"k-{name}", "hash": hash_api_key(key)}], **spec},
    }


def openai_backend(
    name: str, url: str, key: str = "sk-upstream-secret", **spec: Any
) -> dict[str, Any]:
    return {
        "kind": "Backend",
        "name": name,
        "spec": {
            "schema": "openai",
            "base_url": url,
            "auth": {"type": "api_key", "key": key},
            **spec,
        },
    }


def route(
    name: str, models: list[str], backends: Sequence[str | dict[str, Any]], **spec: Any
) -> dict[str, Any]:
    refs = [b if isinstance(b, dict) else {"name": b} for b in backends]
    return {
        "kind": "Route",
        "name": name,
        "spec": {"match": {"models": models}, "backends": refs, **spec},
    }


def pool_backend(tier2_url: str, *, authorization: str | None = None) -> list[dict[str, Any]]:
    """A Pool named `gpu` whose tier2 is the given fake, and the Backend `pool` for it.
    The fake asks for a bearer, so the backend can set one (a header mutation)."""
    spec: dict[str, Any] = {"schema": "pool", "pool": "gpu"}
    if authorization:
        spec["headers"] = {"set": {"Authorization": authorization}}
    addresses = {"type": "static", "addresses": ["10.0.0.1:8000"]}
    return [
        {
            "kind": "Pool",
            "name": "gpu",
            "spec": {
                "model": "llama",
                "endpoints": addresses,
                "tier2": [tier2_url.removeprefix("http://")],
            },
        },
        {"kind": "Backend", "name": "pool", "spec": spec},
    ]


@dataclass
class Gateway:
    agent: ConfigAgent[Any]
    runner: web.AppRunner
    url: str = ""
    revision: int = 0
    docs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def apply(self, docs: list[dict[str, Any]]) -> None:
        self.revision += 1
        if not any(d["kind"] == "Consumer" for d in docs):
            docs = [*docs, consumer()]
        snap = compile_tier1(ConfigSet.of(parse_resource(d) for d in docs), self.revision)
        result = self.agent.apply(snapshot_to_wire(snap))
        assert result.ok, result.reason
        self.docs = docs

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_gateway(
    docs: list[dict[str, Any]], settings: Tier1Settings | None = None, **kw: Any
) -> Gateway:
    agent: ConfigAgent[Any] = ConfigAgent("tier1", build_runtime)
    app = build_app(agent, settings, **kw)
    add_config_routes(app, agent)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    gw = Gateway(agent, runner, f"http://127.0.0.1:{port}")
    gw.apply(docs)
    return gw
