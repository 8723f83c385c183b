"""tier1 through the official openai SDK against header-scripted fake upstreams:
endpoints, streaming, usage, errors, and what reaches the upstream."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from bench.fakes import FakeUpstreams, Script, fake_upstreams
from common import jsonutil
from tests.support.gateway import KEY, Gateway, consumer, openai_backend, route, start_gateway
from tier1.settings import Tier1Settings


@pytest.fixture
async def fakes() -> AsyncIterator[FakeUpstreams]:
    async with fake_upstreams(["a", "b"], api_key="sk-upstream-secret") as f:
        yield f


@pytest.fixture
async def gw(fakes: FakeUpstreams) -> AsyncIterator[Gateway]:
    g = await start_gateway(
        [
            openai_backend("a", fakes["a"].url + "/v1"),
            route("main", ["gpt-test", "emb-test", "gpt-glob-*"], ["a"]),
            consumer("tester", allowed_models=["gpt-*", "emb-test"]),
        ],
        Tier1Settings(max_body_bytes=64 * 1024),
    )
    yield g
    await g.close()


@pytest.fixture
async def client(gw: Gateway) -> AsyncIterator[AsyncOpenAI]:
    c = AsyncOpenAI(base_url=gw.base_url, api_key=KEY, max_retries=0)
    yield c
    await c.close()


MSG: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


async def test_chat_non_stream(client: AsyncOpenAI, fakes: FakeUpstreams) -> None:
    r = await client.chat.completions.create(model="gpt-test", messages=MSG)
    assert r.choices[0].message.content and r.usage is not None and r.usage.total_tokens > 0
    seen = fakes["a"].last
    assert seen.path == "/v1/chat/completions" and seen.json["model"] == "gpt-test"
    assert seen.header("authorization") == "Bearer sk-upstream-secret"  # ours, never the client's


async def test_chat_stream_hides_forced_usage(client: AsyncOpenAI, fakes: FakeUpstreams) -> None:
    stream = await client.chat.completions.create(model="gpt-test", messages=MSG, stream=True)
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert all(c.usage is None for c in chunks)  # the client did not ask for usage
    assert fakes["a"].last.json["stream_options"] == {"include_usage": True}  # but we did


async def test_chat_stream_with_usage_when_asked(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="gpt-test", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0


async def test_completions_embeddings_models(client: AsyncOpenAI) -> None:
    c = await client.completions.create(model="gpt-test", prompt="say hi")
    assert c.choices[0].text
    e = await client.embeddings.create(model="emb-test", input=["a", "b"])
    assert len(e.data) == 2 and len(e.data[0].embedding) > 0
    models = sorted(m.id for m in (await client.models.list()).data)
    assert models == ["emb-test", "gpt-test"]  # globs are not listed


async def test_unknown_fields_pass_through_untouched(
    client: AsyncOpenAI, fakes: FakeUpstreams
) -> None:
    await client.chat.completions.create(
        model="gpt-test", messages=MSG, extra_body={"vendor_knob": {"x": [1, 2]}}
    )
    assert fakes["a"].last.json["vendor_knob"] == {"x": [1, 2]}


async def test_glob_route(client: AsyncOpenAI, fakes: FakeUpstreams) -> None:
    await client.chat.completions.create(model="gpt-glob-7", messages=MSG)
    assert fakes["a"].last.json["model"] == "gpt-glob-7"


async def test_client_credentials_never_reach_upstream(gw: Gateway, fakes: FakeUpstreams) -> None:
    async with aiohttp.ClientSession() as s:
        for header in ({"Authorization": f"Bearer {KEY}"}, {"api-key": KEY}, {"x-api-key": KEY}):
            async with s.post(
                gw.base_url + "/chat/completions",
                json={"model": "gpt-test", "messages": MSG},
                headers={**header, "Cookie": "session=1", "x-strata-pool": "evil"},
            ) as r:
                assert r.status == 200
    for req in fakes["a"].requests:
        flat = " ".join(f"{k}:{v}" for k, v in req.headers.items()).lower()
        assert KEY.lower() not in flat and "session=1" not in flat and "x-strata-pool" not in flat


async def test_upstream_key_never_reaches_client(gw: Gateway, fakes: FakeUpstreams) -> None:
    fakes["a"].defaults = Script(
        status=401, body=b'{"error": {"message": "Incorrect API key provided: sk-upstream-secret"}}'
    )
    async with aiohttp.ClientSession() as s:
        async with s.post(
            gw.base_url + "/chat/completions",
            json={"model": "gpt-test", "messages": MSG},
            headers={"Authorization": f"Bearer {KEY}"},
        ) as r:
            text = await r.text()
            assert r.status == 502 and "sk-upstream" not in text
            assert all("sk-upstream" not in v for v in r.headers.values())


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"api_key": "sk-wrong"}, 401, "invalid_api_key"),
        ({"model": "not-routed"}, 404, "model_not_found"),
        ({"model": "gpt-forbidden-but-routed"}, 404, "model_not_found"),
    ],
)
async def test_client_errors(gw: Gateway, kwargs: dict[str, Any], status: int, code: str) -> None:
    c = AsyncOpenAI(base_url=gw.base_url, api_key=kwargs.pop("api_key", KEY), max_retries=0)
    with pytest.raises(openai.APIStatusError) as e:
        await c.chat.completions.create(model=kwargs.get("model", "gpt-test"), messages=MSG)
    await c.close()
    assert e.value.status_code == status
    assert e.value.body["code"] == code  # type: ignore[index]
    assert e.value.response.headers.get("x-request-id")


async def test_forbidden_model(fakes: FakeUpstreams) -> None:
    g = await start_gateway(
        [
            openai_backend("a", fakes["a"].url + "/v1"),
            route("r", ["m1", "m2"], ["a"]),
            consumer("tester", allowed_models=["m1"]),
        ]
    )
    c = AsyncOpenAI(base_url=g.base_url, api_key=KEY, max_retries=0)
    try:
        await c.chat.completions.create(model="m1", messages=MSG)
        with pytest.raises(openai.PermissionDeniedError):
            await c.chat.completions.create(model="m2", messages=MSG)
        assert [m.id for m in (await c.models.list()).data] == ["m1"]
    finally:
        await c.close()
        await g.close()


async def test_missing_key_is_401(gw: Gateway) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.post(gw.base_url + "/chat/completions", json={}) as r,
    ):
        body = await r.json()
        assert r.status == 401 and "missing API key" in body["error"]["message"]


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        (b"{not json", None),
        (b'{"messages": []}', "model"),
        (b'{"model": "gpt-test", "messages": "hi"}', "messages"),
        (
            b'{"model": "gpt-test", "messages": [{"role": "user", "content": "x"}], "stream": 1}',
            "stream",
        ),
    ],
)
async def test_bad_bodies_are_400(gw: Gateway, payload: bytes, param: str | None) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            gw.base_url + "/chat/completions",
            data=payload,
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        ) as r,
    ):
        body = await r.json()
        assert (
            r.status == 400
            and body["error"]["param"] == param
            and body["error"]["type"] == "invalid_request_error"
        )


async def test_body_limit_is_413(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as e:
        await client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "x" * 70_000}]
        )
    assert e.value.status_code == 413 and "limit is 65536 bytes" in e.value.message


async def test_unknown_path_is_404_in_openai_shape(gw: Gateway) -> None:
    async with aiohttp.ClientSession() as s, s.get(gw.url + "/v1/nothing-here") as r:
        body = await r.json()
        assert r.status == 404 and set(body["error"]) == {"message", "type", "param", "code"}


async def test_request_id_accepted_and_returned(client: AsyncOpenAI, fakes: FakeUpstreams) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=MSG, extra_headers={"x-request-id": "trace-42"}
    )
    assert raw.headers["x-request-id"] == "trace-42"
    assert fakes["a"].last.header("x-request-id") == "trace-42"


async def test_header_scripting_passes_through(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        await client.chat.completions.create(
            model="gpt-test",
            messages=MSG,
            extra_headers={"x-fake-status": "400"},
        )
    assert e.value.status_code == 400


async def test_metrics_and_access_log(
    client: AsyncOpenAI, gw: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="strata.access")
    await client.chat.completions.create(model="gpt-test", messages=MSG)
    line = jsonutil.loads(caplog.records[-1].getMessage())
    assert line["status"] == 200 and line["route"] == "main" and line["backend"] == "a"
    assert line["tokens"]["input"] > 0 and "hello" not in caplog.text  # no prompt text in logs
    async with aiohttp.ClientSession() as s, s.get(gw.url + "/metrics") as r:
        text = await r.text()
    for name in (
        "gen_ai_client_token_usage_bucket",
        "gen_ai_server_request_duration_seconds_bucket",
        "strata_requests_total",
        "strata_upstream_attempts_total",
        "strata_overhead_seconds",
        'gen_ai_token_type="input"',
        'gen_ai_provider_name="openai"',
    ):
        assert name in text, name
