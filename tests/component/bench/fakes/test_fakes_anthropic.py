"""The Anthropic dialect (and Anthropic on Vertex) against the official anthropic SDK."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest
from anthropic.types import MessageParam, ToolParam

from bench.fakes import FakeUpstreams, fake_upstreams, script_headers
from tests.support.waiting import wait_until

KEY = "sk-ant-fake"
HI: list[MessageParam] = [{"role": "user", "content": "hello there, fake"}]
TOOLS: list[ToolParam] = [
    {
        "name": "get_weather",
        "description": "The weather in a city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
RAW_HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}


@pytest.fixture
async def fakes() -> AsyncIterator[FakeUpstreams]:
    async with fake_upstreams(["an", "bn"], dialect="anthropic", api_key=KEY) as running:
        yield running


@pytest.fixture
async def client(fakes: FakeUpstreams) -> AsyncIterator[anthropic.AsyncAnthropic]:
    c = anthropic.AsyncAnthropic(api_key=KEY, base_url=fakes["an"].url, max_retries=0)
    try:
        yield c
    finally:
        await c.close()


async def test_message(client: anthropic.AsyncAnthropic, fakes: FakeUpstreams) -> None:
    raw = await client.messages.with_raw_response.create(
        model="claude-fake-1", max_tokens=100, messages=HI, system="be brief"
    )
    assert raw.headers["x-fake-instance"] == "an" and raw.headers["request-id"]
    r = await raw.parse()
    assert r.id.startswith("msg_") and (r.type, r.role) == ("message", "assistant")
    assert r.model == "claude-fake-1" and r.stop_reason == "end_turn"
    assert [(b.type, getattr(b, "text", None)) for b in r.content] == [
        ("text", "This is a fake answer")
    ]
    assert (r.usage.input_tokens, r.usage.output_tokens) == (7, 5)
    assert (r.usage.cache_read_input_tokens, r.usage.cache_creation_input_tokens) == (0, 0)
    seen = fakes["an"].last
    assert (seen.path, seen.json["system"], seen.json["max_tokens"]) == (
        "/v1/messages",
        "be brief",
        100,
    )
    assert seen.header("anthropic-version")


async def test_stream_is_the_documented_event_sequence(client: anthropic.AsyncAnthropic) -> None:
    stream = await client.messages.create(
        model="m", max_tokens=100, messages=HI, stream=True, extra_headers=script_headers(chunks=2)
    )
    events = [e async for e in stream]
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]  # fmt: skip  (the SDK drops ping)
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    assert "".join(d.text for d in deltas if d.type == "text_delta") == "This is"


async def test_tool_call_whole_and_streamed(client: anthropic.AsyncAnthropic) -> None:
    headers = script_headers(tool_call="get_weather", chunks=1)
    r = await client.messages.create(
        model="m", max_tokens=100, messages=HI, tools=TOOLS, extra_headers=headers
    )
    assert r.stop_reason == "tool_use"
    text, tool = r.content
    assert text.type == "text" and tool.type == "tool_use"
    assert (tool.name, tool.input, tool.id.startswith("toolu_")) == (
        "get_weather",
        {"query": "fake", "count": 1},
        True,
    )
    async with client.messages.stream(
        model="m", max_tokens=100, messages=HI, tools=TOOLS, extra_headers=headers
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    streamed = final.content[-1]
    assert streamed.type == "tool_use" and streamed.input == {"query": "fake", "count": 1}
    plain = await client.messages.create(
        model="m", max_tokens=9, messages=HI, extra_headers=headers
    )
    assert plain.stop_reason == "end_turn"  # no tools declared: no tool call


async def test_max_tokens_cut_and_usage_override(client: anthropic.AsyncAnthropic) -> None:
    usage = {"prompt_tokens": 100, "cached_tokens": 40, "cache_creation_tokens": 8}
    r = await client.messages.create(
        model="m", max_tokens=2, messages=HI, extra_headers=script_headers(usage=usage)
    )
    assert r.stop_reason == "max_tokens" and r.content[0].type == "text"
    assert r.content[0].text == "This is"
    assert (r.usage.input_tokens, r.usage.output_tokens) == (100, 2)
    assert (r.usage.cache_read_input_tokens, r.usage.cache_creation_input_tokens) == (40, 8)


async def test_count_tokens(client: anthropic.AsyncAnthropic) -> None:
    counted = await client.messages.count_tokens(model="m", messages=HI)
    assert counted.input_tokens == 5


@pytest.mark.parametrize(
    ("status", "error", "type_"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
async def test_scripted_statuses_use_anthropics_error_types(
    client: anthropic.AsyncAnthropic, status: int, error: type[Exception], type_: str
) -> None:
    with pytest.raises(error) as info:
        await client.messages.create(
            model="m", max_tokens=5, messages=HI, extra_headers=script_headers(status=status)
        )
    assert isinstance(info.value, anthropic.APIStatusError)
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == type_ and body["error"]["message"]


async def test_auth_version_and_shape_refusals(
    client: anthropic.AsyncAnthropic, fakes: FakeUpstreams
) -> None:
    wrong = anthropic.AsyncAnthropic(api_key="sk-other", base_url=fakes["an"].url, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        await wrong.messages.create(model="m", max_tokens=5, messages=HI)
    await wrong.close()
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.create(
            model="m", max_tokens=5, messages=HI, extra_body={"frequency_penalty": 1, "n": 2}
        )
    assert info.value.message.endswith(
        "frequency_penalty: Extra inputs are not permitted; n: Extra inputs are not permitted"
    ) or "frequency_penalty: Extra inputs are not permitted" in str(info.value.body)
    body = {"model": "m", "max_tokens": 5, "messages": HI}
    async with aiohttp.ClientSession() as http:
        url = fakes["an"].url + "/v1/messages"
        async with http.post(url, json=body, headers={"x-api-key": KEY}) as r:
            assert r.status == 400
            assert await r.json() == {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "anthropic-version: header is required"},
            }  # fmt: skip
        async with http.post(url, json=body, headers={"anthropic-version": "2023-06-01"}) as r:
            assert r.status == 401 and (await r.json())["error"]["type"] == "authentication_error"
        bad = {**body, "messages": [{"role": "user", "content": [{"type": "audio"}]}]}
        async with http.post(url, json=bad, headers=RAW_HEADERS) as r:
            error = (await r.json())["error"]
            assert r.status == 400 and error["message"].startswith(
                "messages.0.content.0.type: Input tag 'audio' found using 'type'"
            )
        async with http.post(fakes["an"].url + "/v1/complete", json=body, headers=RAW_HEADERS) as r:
            assert r.status == 404 and (await r.json())["error"]["type"] == "not_found_error"


async def test_stream_exception_mid_stream(client: anthropic.AsyncAnthropic) -> None:
    headers = script_headers(chunks=2, stream_exception="overloaded_error")
    stream = await client.messages.create(
        model="m", max_tokens=9, messages=HI, stream=True, extra_headers=headers
    )
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        async for event in stream:
            seen.append(event.type)
    assert seen.count("content_block_delta") == 2
    assert info.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


async def test_per_instance_scripting(fakes: FakeUpstreams) -> None:
    headers = {**RAW_HEADERS, **script_headers(status=529), **script_headers("bn", status=200, response_model="other")}  # fmt: skip
    body = {"model": "m", "max_tokens": 5, "messages": HI}
    async with aiohttp.ClientSession() as http:
        async with http.post(fakes["an"].url + "/v1/messages", json=body, headers=headers) as r:
            assert r.status == 529 and (await r.json())["error"]["type"] == "overloaded_error"
        async with http.post(fakes["bn"].url + "/v1/messages", json=body, headers=headers) as r:
            assert r.status == 200 and (await r.json())["model"] == "other"
    expect = script_headers(expect_model="m", expect_headers={"anthropic-beta": None})
    async with aiohttp.ClientSession() as http:
        async with http.post(
            fakes["an"].url + "/v1/messages", json=body, headers={**RAW_HEADERS, **expect}
        ) as r:
            assert r.status == 200


async def test_stall_after_keeps_the_stream_open(fakes: FakeUpstreams) -> None:
    lines: list[bytes] = []
    body = {"model": "m", "max_tokens": 9, "messages": HI, "stream": True}
    async with aiohttp.ClientSession() as http:
        with pytest.raises(asyncio.TimeoutError):
            async with http.post(
                fakes["an"].url + "/v1/messages",
                json=body,
                headers={**RAW_HEADERS, **script_headers(stall_after=1)},
                timeout=aiohttp.ClientTimeout(sock_read=0.2),
            ) as r:
                async for line in r.content:
                    if line.startswith(b"event: "):
                        lines.append(line.strip())
    assert lines == [
        b"event: message_start", b"event: content_block_start", b"event: ping",
        b"event: content_block_delta",
    ]  # fmt: skip
    await wait_until(lambda: fakes["an"].in_flight == 0, 2, "the stalled handler to end")


# --- Anthropic models on Vertex ------------------------------------------------------------


async def test_vertex_raw_predict_with_the_sdk() -> None:
    async with fake_upstreams(
        ["vx"], dialect="vertex", api_key="ya29.token", gcp_project="proj", gcp_location="us-east5"
    ) as fakes:
        fake = fakes["vx"]
        client = anthropic.AsyncAnthropicVertex(
            region="us-east5",
            project_id="proj",
            access_token="ya29.token",
            base_url=fake.url + "/v1",
            max_retries=0,
        )
        version: dict[str, Any] = {"anthropic_version": "vertex-2023-10-16"}
        try:
            r = await client.messages.create(
                model="claude-fake-1@20250929", max_tokens=50, messages=HI, extra_body=version
            )
            assert r.model == "claude-fake-1@20250929" and r.content[0].type == "text"
            assert fake.last.path == (
                "/v1/projects/proj/locations/us-east5/publishers/anthropic/models/"
                "claude-fake-1@20250929:rawPredict"
            )
            assert "model" not in fake.last.json
            stream = await client.messages.create(
                model="claude-x", max_tokens=50, messages=HI, stream=True, extra_body=version
            )
            assert [e.type async for e in stream][-1] == "message_stop"
            assert fake.last.path.endswith("/claude-x:streamRawPredict")
            with pytest.raises(anthropic.BadRequestError) as info:
                await client.messages.create(model="claude-x", max_tokens=5, messages=HI)
            assert "anthropic_version: Input should be 'vertex-2023-10-16'" in str(info.value.body)
            with pytest.raises(anthropic.RateLimitError):
                await client.messages.create(
                    model="claude-x", max_tokens=5, messages=HI, extra_body=version,
                    extra_headers=script_headers(status=429),
                )  # fmt: skip
        finally:
            await client.close()
        other = anthropic.AsyncAnthropicVertex(
            region="us-east5", project_id="proj", access_token="ya29.other",
            base_url=fake.url + "/v1", max_retries=0,
        )  # fmt: skip
        try:
            with pytest.raises(anthropic.AuthenticationError) as denied:
                await other.messages.create(
                    model="c", max_tokens=5, messages=HI, extra_body=version
                )
        finally:
            await other.close()
        assert orjson.loads(denied.value.response.content)["error"]["status"] == "UNAUTHENTICATED"
