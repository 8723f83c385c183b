"""The openai SDK through tier1 to each provider's fake — Anthropic, Bedrock (SigV4
checked by the fake with botocore), Gemini, Vertex (Google and Anthropic models, OAuth
from a service account) — streamed and not, with tools; and failover from an overloaded
Anthropic to Bedrock with a fresh translation and signature."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from openai import AsyncOpenAI
from openai.types.chat import (
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)

from bench.fakes import AwsTestCredentials, Script, fake_upstreams
from common import jsonutil
from control.embedded import free_port
from tests.support.gateway import KEY, Gateway, route, start_gateway

MSG: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "hello"},
]
TOOLS: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
AWS = AwsTestCredentials()


async def _exercise(gw: Gateway, model: str, fake: Any) -> None:
    c = AsyncOpenAI(base_url=gw.base_url, api_key=KEY, max_retries=0)
    try:
        r = await c.chat.completions.create(model=model, messages=MSG, max_tokens=64)
        assert r.choices[0].message.content and r.usage is not None and r.usage.prompt_tokens > 0
        assert r.model == model
        stream = await c.chat.completions.create(
            model=model,
            messages=MSG,
            max_tokens=64,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [ch async for ch in stream]
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        assert text and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
        tool = await c.chat.completions.create(
            model=model,
            messages=MSG,
            tools=TOOLS,
            max_tokens=64,
            extra_headers={"x-fake-tool-call": "get_weather"},
        )
        calls = tool.choices[0].message.tool_calls or []
        assert tool.choices[0].finish_reason == "tool_calls" and len(calls) == 1
        call = calls[0]
        assert (
            isinstance(call, ChatCompletionMessageFunctionToolCall)
            and call.function.name == "get_weather"
        )
        jsonutil.loads(call.function.arguments)
        streamed = await c.chat.completions.create(
            model=model,
            messages=MSG,
            tools=TOOLS,
            max_tokens=64,
            stream=True,
            extra_headers={"x-fake-tool-call": "get_weather"},
        )
        names = [
            tc.function.name
            for ch in [x async for x in streamed]
            if ch.choices
            for tc in (ch.choices[0].delta.tool_calls or [])
            if tc.function and tc.function.name
        ]
        assert names == ["get_weather"]
        assert all(KEY not in str(v) for req in fake.requests for v in req.headers.values())
    finally:
        await c.close()


async def test_anthropic() -> None:
    async with fake_upstreams(["an"], dialect="anthropic", api_key="sk-ant-upstream") as fakes:
        gw = await start_gateway(
            [
                {
                    "kind": "Backend",
                    "name": "an",
                    "spec": {
                        "schema": "anthropic",
                        "base_url": fakes["an"].url,
                        "auth": {"type": "api_key", "key": "sk-ant-upstream"},
                    },
                },
                route("r", ["claude-x"], ["an"]),
            ]
        )
        try:
            await _exercise(gw, "claude-x", fakes["an"])
            seen = fakes["an"].requests[0]
            assert seen.path == "/v1/messages" and seen.header("x-api-key") == "sk-ant-upstream"
            assert (
                seen.header("anthropic-version") == "2023-06-01"
                and seen.json["system"] == "be brief"
            )
        finally:
            await gw.close()


def _bedrock(name: str, url: str, schema: str = "bedrock") -> dict[str, Any]:
    return {
        "kind": "Backend",
        "name": name,
        "spec": {
            "schema": schema,
            "base_url": url,
            "region": AWS.region,
            "auth": {
                "type": "aws",
                "access_key_id": AWS.access_key_id,
                "secret_access_key": AWS.secret_access_key,
            },
        },
    }


async def test_bedrock_converse_signed() -> None:
    async with fake_upstreams(["br"], dialect="bedrock", aws=AWS) as fakes:
        gw = await start_gateway(
            [_bedrock("br", fakes["br"].url), route("r", ["anthropic.claude-3-5:0"], ["br"])]
        )
        try:
            await _exercise(gw, "anthropic.claude-3-5:0", fakes["br"])
            seen = fakes["br"].requests[0]
            assert seen.path == "/model/anthropic.claude-3-5:0/converse" or "%3A" in seen.path
            assert seen.header(
                "authorization",
            ).startswith("AWS4-HMAC-SHA256")  # type: ignore[union-attr]
        finally:
            await gw.close()


async def test_bedrock_anthropic_invoke() -> None:
    async with fake_upstreams(["bra"], dialect="bedrock", aws=AWS) as fakes:
        gw = await start_gateway(
            [
                _bedrock("bra", fakes["bra"].url, "bedrock_anthropic"),
                route("r", ["anthropic.claude-sonnet"], ["bra"]),
            ]
        )
        try:
            await _exercise(gw, "anthropic.claude-sonnet", fakes["bra"])
            assert fakes["bra"].requests[0].json["anthropic_version"] == "bedrock-2023-05-31"
        finally:
            await gw.close()


async def test_gemini() -> None:
    async with fake_upstreams(["ge"], dialect="gemini", api_key="g-key") as fakes:
        gw = await start_gateway(
            [
                {
                    "kind": "Backend",
                    "name": "ge",
                    "spec": {
                        "schema": "gemini",
                        "base_url": fakes["ge"].url,
                        "auth": {"type": "api_key", "key": "g-key"},
                    },
                },
                route("r", ["gemini-2.5-flash"], ["ge"]),
            ]
        )
        try:
            await _exercise(gw, "gemini-2.5-flash", fakes["ge"])
            seen = fakes["ge"].requests[0]
            assert (
                seen.path == "/v1beta/models/gemini-2.5-flash:generateContent"
                and seen.header("x-goog-api-key") == "g-key"
            )
        finally:
            await gw.close()


@pytest.fixture
async def google_token_server() -> AsyncIterator[tuple[str, list[str]]]:
    grants: list[str] = []

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        grants.append(str(form.get("grant_type")))
        return web.json_response(
            {"access_token": "ya29.test-token", "expires_in": 3600, "token_type": "Bearer"}
        )

    app = web.Application()
    app.router.add_post("/token", token)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/token", grants
    await runner.cleanup()


def _service_account(token_uri: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return jsonutil.dumps_str(
        {
            "type": "service_account",
            "project_id": "proj",
            "private_key_id": "k1",
            "private_key": pem.decode(),
            "client_email": "strata@proj.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": token_uri,
        }
    )


@pytest.mark.parametrize(
    ("schema", "model"),
    [("vertex", "gemini-2.5-pro"), ("vertex_anthropic", "claude-sonnet-4@20250514")],
)
async def test_vertex_with_service_account(
    google_token_server: tuple[str, list[str]], schema: str, model: str
) -> None:
    token_uri, grants = google_token_server
    async with fake_upstreams(
        ["vx"],
        dialect="vertex",
        api_key="ya29.test-token",
        gcp_project="proj",
        gcp_location="us-east5",
    ) as fakes:
        gw = await start_gateway(
            [
                {
                    "kind": "Backend",
                    "name": "vx",
                    "spec": {
                        "schema": schema,
                        "base_url": fakes["vx"].url,
                        "project": "proj",
                        "region": "us-east5",
                        "auth": {
                            "type": "gcp",
                            "service_account_json": _service_account(token_uri),
                        },
                    },
                },
                route("r", [model], ["vx"]),
            ]
        )
        try:
            await _exercise(gw, model, fakes["vx"])
            assert fakes["vx"].requests[0].header("authorization") == "Bearer ya29.test-token"
            assert grants == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]  # one token, cached
        finally:
            await gw.close()


async def test_overloaded_anthropic_fails_over_to_bedrock() -> None:
    async with (
        fake_upstreams(["an"], dialect="anthropic", api_key="sk-ant") as ant,
        fake_upstreams(["br"], dialect="bedrock", aws=AWS) as br,
    ):
        ant["an"].defaults = Script(status=529)
        gw = await start_gateway(
            [
                {
                    "kind": "Backend",
                    "name": "an",
                    "spec": {
                        "schema": "anthropic",
                        "base_url": ant["an"].url,
                        "auth": {"type": "api_key", "key": "sk-ant"},
                    },
                },
                _bedrock("br", br["br"].url),
                route(
                    "r",
                    ["claude"],
                    [
                        {"name": "an", "priority": 0},
                        {"name": "br", "priority": 1, "model_name_override": "anthropic.claude-v3"},
                    ],
                ),
            ]
        )
        c = AsyncOpenAI(base_url=gw.base_url, api_key=KEY, max_retries=0)
        try:
            t0 = time.monotonic()
            r = await c.chat.completions.create(model="claude", messages=MSG, max_tokens=32)
            assert (
                r.choices[0].message.content and r.model == "claude" and time.monotonic() - t0 < 5
            )
            assert len(ant["an"].requests) == 1 and len(br["br"].requests) == 1
            sent = br["br"].requests[0]
            assert (
                "messages" in sent.json and "anthropic.claude-v3" in sent.path
            )  # fresh Converse translation
            assert sent.header("authorization").startswith("AWS4-HMAC-SHA256")  # type: ignore[union-attr]
        finally:
            await c.close()
            await gw.close()
