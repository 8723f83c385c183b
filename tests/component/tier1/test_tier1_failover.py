"""Failover, timeouts, cooldown, Retry-After, overrides, pools and Azure — the client
sees one answer; the fakes show every attempt."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from bench.fakes import FakeUpstreams, Script, fake_upstreams
from control.embedded import free_port
from tests.support.gateway import KEY, Gateway, openai_backend, pool_backend, route, start_gateway

MSG: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def fakes() -> AsyncIterator[Any]:
    async with (
        fake_upstreams(["a", "b"], api_key="sk-upstream-secret") as f,
        fake_upstreams(["p"]) as pool,
    ):
        yield _Merged(f, pool)


class _Merged:
    """Fakes of two groups (with and without an API key) under one lookup."""

    def __init__(self, *groups: FakeUpstreams) -> None:
        self.groups = groups

    def __getitem__(self, name: str) -> Any:
        for g in self.groups:
            try:
                return g[name]
            except KeyError:
                continue
        raise KeyError(name)


async def _gateway(docs: list[dict[str, Any]]) -> tuple[Gateway, AsyncOpenAI]:
    g = await start_gateway(docs)
    return g, AsyncOpenAI(base_url=g.base_url, api_key=KEY, max_retries=0)


def _two(
    fakes: Any, *, a_spec: dict[str, Any] | None = None, **route_spec: Any
) -> list[dict[str, Any]]:
    return [
        openai_backend("a", fakes["a"].url + "/v1", **(a_spec or {})),
        openai_backend("b", fakes["b"].url + "/v1"),
        route(
            "r", ["m"], [{"name": "a", "priority": 0}, {"name": "b", "priority": 1}], **route_spec
        ),
    ]


async def test_5xx_fails_over(fakes: Any) -> None:
    fakes["a"].defaults = Script(status=500)
    g, c = await _gateway(_two(fakes))
    try:
        r = await c.chat.completions.with_raw_response.create(model="m", messages=MSG)
        assert r.http_response.status_code == 200
        assert len(fakes["a"].requests) == 1 and len(fakes["b"].requests) == 1
    finally:
        await c.close()
        await g.close()


async def test_connection_refused_fails_over(fakes: Any) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    docs = [
        openai_backend("a", dead),
        openai_backend("b", fakes["b"].url + "/v1"),
        route("r", ["m"], [{"name": "a", "priority": 0}, {"name": "b", "priority": 1}]),
    ]
    g, c = await _gateway(docs)
    try:
        await c.chat.completions.create(model="m", messages=MSG)
        assert len(fakes["b"].requests) == 1
    finally:
        await c.close()
        await g.close()


async def test_hang_past_timeout_fails_over(fakes: Any) -> None:
    fakes["a"].defaults = Script(hang=True)
    g, c = await _gateway(_two(fakes, a_spec={"timeouts": {"request_s": 0.3, "connect_s": 1}}))
    try:
        await c.chat.completions.create(model="m", messages=MSG)
        assert len(fakes["a"].requests) == 1 and len(fakes["b"].requests) == 1
    finally:
        await c.close()
        await g.close()


async def test_429_retry_after_is_honoured(fakes: Any) -> None:
    fakes["a"].defaults = Script(status=429, headers={"retry-after": "30"})
    g, c = await _gateway(_two(fakes))
    try:
        await c.chat.completions.create(model="m", messages=MSG)
        await c.chat.completions.create(model="m", messages=MSG)
        assert len(fakes["a"].requests) == 1  # skipped until Retry-After passes
        assert len(fakes["b"].requests) == 2
    finally:
        await c.close()
        await g.close()


async def test_429_reaches_client_when_nothing_else_can_answer(fakes: Any) -> None:
    fakes["a"].defaults = Script(status=429, headers={"retry-after": "7"})
    g, c = await _gateway(
        [
            openai_backend("a", fakes["a"].url + "/v1"),
            route("r", ["m"], ["a"], retry={"attempts": 1}),
        ]
    )
    try:
        with pytest.raises(openai.RateLimitError) as e:
            await c.chat.completions.create(model="m", messages=MSG)
        assert e.value.response.headers["retry-after"] == "7"
    finally:
        await c.close()
        await g.close()


@pytest.mark.parametrize(
    ("script", "status"),
    [(Script(status=500), 502), (Script(status=503), 502), (Script(hang=True), 504)],
)
async def test_all_attempts_failing(fakes: Any, script: Script, status: int) -> None:
    fakes["a"].defaults = script
    fakes["b"].defaults = script
    g, c = await _gateway(
        _two(fakes, a_spec={"timeouts": {"request_s": 0.3}})[:1]
        + [
            openai_backend("b", fakes["b"].url + "/v1", timeouts={"request_s": 0.3}),
            route("r", ["m"], [{"name": "a", "priority": 0}, {"name": "b", "priority": 1}]),
        ]
    )
    try:
        with pytest.raises(openai.APIStatusError) as e:
            await c.chat.completions.create(model="m", messages=MSG)
        assert e.value.status_code == status
        assert len(fakes["a"].requests) >= 1 and len(fakes["b"].requests) >= 1
    finally:
        await c.close()
        await g.close()


async def test_non_retryable_error_is_passed_through(fakes: Any) -> None:
    fakes["a"].defaults = Script(status=400)
    g, c = await _gateway(_two(fakes))
    try:
        with pytest.raises(openai.BadRequestError):
            await c.chat.completions.create(model="m", messages=MSG)
        assert len(fakes["b"].requests) == 0
    finally:
        await c.close()
        await g.close()


async def test_stream_idle_before_first_byte_fails_over(fakes: Any) -> None:
    fakes["a"].defaults = Script(delay_ms=2000)
    g, c = await _gateway(_two(fakes, a_spec={"timeouts": {"stream_idle_s": 0.3}}))
    try:
        stream = await c.chat.completions.create(model="m", messages=MSG, stream=True)
        chunks = [ch async for ch in stream]
        assert chunks and len(fakes["b"].requests) == 1
    finally:
        await c.close()
        await g.close()


async def test_stream_idle_after_first_byte_ends_with_error_event(fakes: Any) -> None:
    fakes["a"].defaults = Script(stall_after=2, chunks=5)
    g, c = await _gateway(_two(fakes, a_spec={"timeouts": {"stream_idle_s": 0.3}}))
    try:
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                g.base_url + "/chat/completions",
                json={"model": "m", "messages": MSG, "stream": True},
                headers={"Authorization": f"Bearer {KEY}"},
            ) as r,
        ):
            assert r.status == 200
            body = await r.read()
        assert b'"code":"upstream_timeout"' in body and b"[DONE]" not in body
        assert len(fakes["b"].requests) == 0  # bytes had reached the client: no failover
    finally:
        await c.close()
        await g.close()


async def test_cooldown_after_consecutive_failures(fakes: Any) -> None:
    fakes["a"].defaults = Script(status=500)
    g, c = await _gateway(
        _two(fakes, a_spec={"outlier": {"consecutive_failures": 2, "cooldown_s": 60}})
    )
    try:
        for _ in range(4):
            await c.chat.completions.create(model="m", messages=MSG)
        assert len(fakes["a"].requests) == 2 and len(fakes["b"].requests) == 4
        async with aiohttp.ClientSession() as s, s.get(g.url + "/metrics") as r:
            assert 'strata_backend_cooldown{backend="a"} 1.0' in await r.text()
    finally:
        await c.close()
        await g.close()


async def test_model_override_hidden_from_client(fakes: Any) -> None:
    docs = [
        openai_backend("a", fakes["a"].url + "/v1", model_name_override="real-model"),
        route("r", ["alias"], ["a"]),
    ]
    g, c = await _gateway(docs)
    try:
        r = await c.chat.completions.create(model="alias", messages=MSG)
        assert r.model == "alias" and fakes["a"].last.json["model"] == "real-model"
        stream = await c.chat.completions.create(model="alias", messages=MSG, stream=True)
        assert {ch.model async for ch in stream} == {"alias"}
    finally:
        await c.close()
        await g.close()


def _pool_docs(fakes: Any, **route_spec: Any) -> list[dict[str, Any]]:
    return [
        *pool_backend(fakes["p"].url, authorization="Bearer pool-internal"),
        openai_backend("b", fakes["b"].url + "/v1"),
        route(
            "r",
            ["llama"],
            [{"name": "pool", "priority": 0}, {"name": "b", "priority": 1}],
            **route_spec,
        ),
    ]


async def test_pool_backend_gets_strata_headers(fakes: Any) -> None:
    g, c = await _gateway(_pool_docs(fakes))
    try:
        raw = await c.chat.completions.with_raw_response.create(model="llama", messages=MSG)
        seen = fakes["p"].last
        assert (
            seen.header("x-strata-pool") == "gpu" and seen.header("x-strata-consumer") == "tester"
        )
        assert seen.header("x-strata-priority") == "standard"
        assert seen.header("x-strata-request-id") == raw.headers["x-request-id"]
        assert (
            seen.header("authorization") == "Bearer pool-internal"
        )  # header mutation, not the client's key
    finally:
        await c.close()
        await g.close()


async def test_pool_overflow_spills_to_external_backend(fakes: Any) -> None:
    fakes["p"].defaults = Script(status=503, headers={"x-strata-overflow": "1"})
    # retry.on leaves out 5xx: the overflow signal alone makes it retryable
    g, c = await _gateway(_pool_docs(fakes, retry={"on": ["connect_error"]}))
    try:
        r = await c.chat.completions.create(model="llama", messages=MSG)
        assert r.choices and len(fakes["p"].requests) == 1 and len(fakes["b"].requests) == 1
    finally:
        await c.close()
        await g.close()


async def test_azure_api_key_deployment_and_version() -> None:
    async with fake_upstreams(["az"], dialect="azure", api_key="az-key") as fakes:
        docs = [
            {
                "kind": "Backend",
                "name": "az",
                "spec": {
                    "schema": "azure_openai",
                    "base_url": fakes["az"].url,
                    "api_version": "2024-10-21",
                    "model_name_override": "my-deployment",
                    "auth": {"type": "azure_api_key", "key": "az-key"},
                },
            },
            route("r", ["gpt-4o"], ["az"]),
        ]
        g, c = await _gateway(docs)
        try:
            r = await c.chat.completions.create(model="gpt-4o", messages=MSG)
            seen = fakes["az"].last
            assert seen.path == "/openai/deployments/my-deployment/chat/completions"
            assert seen.query["api-version"] == "2024-10-21" and seen.header("api-key") == "az-key"
            assert r.model == "gpt-4o"
        finally:
            await c.close()
            await g.close()


async def test_azure_entra_token() -> None:
    issued: list[dict[str, str]] = []

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        issued.append({k: str(v) for k, v in form.items()})
        return web.json_response(
            {"access_token": "entra-token-1", "expires_in": 3600, "token_type": "Bearer"}
        )

    app = web.Application()
    app.router.add_post("/tenant-1/oauth2/v2.0/token", token)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with fake_upstreams(["az"], dialect="azure", api_key="entra-token-1") as fakes:
        docs = [
            {
                "kind": "Backend",
                "name": "az",
                "spec": {
                    "schema": "azure_openai",
                    "base_url": fakes["az"].url,
                    "api_version": "2024-10-21",
                    "auth": {
                        "type": "azure_entra",
                        "tenant_id": "tenant-1",
                        "client_id": "cid",
                        "client_secret": "csecret",
                        "authority": f"http://127.0.0.1:{port}",
                    },
                },
            },
            route("r", ["gpt-4o"], ["az"]),
        ]
        g, c = await _gateway(docs)
        try:
            await c.chat.completions.create(model="gpt-4o", messages=MSG)
            await c.chat.completions.create(model="gpt-4o", messages=MSG)
            assert fakes["az"].last.header("authorization") == "Bearer entra-token-1"
            assert len(issued) == 1 and issued[0]["grant_type"] == "client_credentials"
            assert issued[0]["client_secret"] == "csecret"
            assert all(
                "csecret" not in str(v) for r in fakes["az"].requests for v in r.headers.values()
            )
        finally:
            await c.close()
            await g.close()
            await runner.cleanup()


async def test_saturated_pool_alone_is_503_with_retry_after(fakes: Any) -> None:
    fakes["p"].defaults = Script(status=503, headers={"x-strata-overflow": "1", "retry-after": "3"})
    docs = [d for d in _pool_docs(fakes) if d["name"] != "b" and d["kind"] != "Route"]
    docs.append(route("r", ["llama"], ["pool"]))
    g, c = await _gateway(docs)
    try:
        with pytest.raises(openai.APIStatusError) as e:
            await c.chat.completions.create(model="llama", messages=MSG)
        assert e.value.status_code == 503 and e.value.response.headers["retry-after"] == "3"
        assert e.value.body["code"] == "pool_saturated"  # type: ignore[index]
    finally:
        await c.close()
        await g.close()
