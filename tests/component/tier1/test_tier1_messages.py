"""The Anthropic Messages ingress through the official `anthropic` SDK, translated to
OpenAI-schema backends (a provider and a pool); errors in Anthropic's shape."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest
from anthropic import AsyncAnthropic

from bench.fakes import FakeUpstreams, Script, fake_upstreams
from common import jsonutil
from tests.support.gateway import KEY, Gateway, openai_backend, pool_backend, route, start_gateway

MSG: list[Any] = [{"role": "user", "content": "hello"}]
TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


@pytest.fixture
async def fakes() -> AsyncIterator[FakeUpstreams]:
    async with fake_upstreams(["a"], api_key="sk-upstream-secret") as f:
        yield f


@pytest.fixture
async def gw(fakes: FakeUpstreams) -> AsyncIterator[Gateway]:
    g = await start_gateway(
        [
            openai_backend("a", fakes["a"].url + "/v1"),
            route("r", ["claude-like"], ["a"]),
            *pool_backend(fakes["a"].url, authorization="Bearer sk-upstream-secret"),
            route("p", ["llama"], ["pool"]),
        ]
    )
    yield g
    await g.close()


@pytest.fixture
async def client(gw: Gateway) -> AsyncIterator[AsyncAnthropic]:
    c = AsyncAnthropic(base_url=gw.url, api_key=KEY, max_retries=0)
    yield c
    await c.close()


@pytest.mark.parametrize("model", ["claude-like", "llama"])
async def test_messages_non_stream(
    client: AsyncAnthropic, fakes: FakeUpstreams, model: str
) -> None:
    msg = await client.messages.create(model=model, max_tokens=64, messages=MSG, system="be brief")
    assert msg.model == model and msg.stop_reason == "end_turn"
    assert msg.content[0].type == "text" and msg.content[0].text
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    sent = fakes["a"].last.json
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    assert sent.get("max_completion_tokens", sent.get("max_tokens")) == 64
    assert fakes["a"].last.header("x-api-key") is None  # the client's key stays here


async def test_messages_stream(client: AsyncAnthropic) -> None:
    async with client.messages.stream(model="claude-like", max_tokens=64, messages=MSG) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text and final.content[0].text == text  # type: ignore[union-attr]
    assert final.usage.output_tokens > 0 and final.stop_reason == "end_turn"


async def test_messages_tool_call(client: AsyncAnthropic, fakes: FakeUpstreams) -> None:
    call = {
        "id": "call_1",
        "type": "chat.completion",
        "object": "chat.completion",
        "created": 1,
        "model": "claude-like",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_9",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
    }
    fakes["a"].defaults = Script(body=jsonutil.dumps(call))
    msg = await client.messages.create(
        model="claude-like", max_tokens=64, messages=MSG, tools=TOOLS
    )
    assert msg.stop_reason == "tool_use"
    block = msg.content[-1]
    assert (
        block.type == "tool_use"
        and block.name == "get_weather"
        and block.input == {"city": "Paris"}
    )
    assert fakes["a"].last.json["tools"][0]["function"]["name"] == "get_weather"


async def test_messages_streamed_tool_call(client: AsyncAnthropic, fakes: FakeUpstreams) -> None:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return (
            b"data: "
            + jsonutil.dumps(
                {
                    "id": "c",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": "x",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }
            )
            + b"\n\n"
        )

    sse = (
        chunk({"role": "assistant", "content": ""})
        + chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        )
        + chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]})
        + chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Oslo"}'}}]})
        + chunk({}, "tool_calls")
        + b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"x","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}\n\n'
        + b"data: [DONE]\n\n"
    )
    fakes["a"].defaults = Script(body=sse, content_type="text/event-stream")
    async with client.messages.stream(
        model="claude-like", max_tokens=64, messages=MSG, tools=TOOLS
    ) as stream:
        final = await stream.get_final_message()
    block = final.content[-1]
    assert block.type == "tool_use" and block.input == {"city": "Oslo"}
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 4


async def test_count_tokens(client: AsyncAnthropic) -> None:
    r = await client.messages.count_tokens(
        model="claude-like", messages=[{"role": "user", "content": "x" * 400}]
    )
    assert 80 <= r.input_tokens <= 150


async def test_errors_in_anthropic_shape(
    gw: Gateway, client: AsyncAnthropic, fakes: FakeUpstreams
) -> None:
    bad = AsyncAnthropic(base_url=gw.url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as e:
        await bad.messages.create(model="claude-like", max_tokens=5, messages=MSG)
    await bad.close()
    assert e.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError) as nf:
        await client.messages.create(model="nope", max_tokens=5, messages=MSG)
    assert nf.value.body["type"] == "error"  # type: ignore[index]
    fakes["a"].defaults = Script(status=429, headers={"retry-after": "4"})
    with pytest.raises(anthropic.RateLimitError) as rl:
        await client.messages.create(model="claude-like", max_tokens=5, messages=MSG)
    assert rl.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


async def test_image_block_becomes_image_part(client: AsyncAnthropic, fakes: FakeUpstreams) -> None:
    png = base64.b64encode(b"\x89PNG fake").decode()
    await client.messages.create(
        model="claude-like",
        max_tokens=16,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": png},
                    },
                    {"type": "text", "text": "what is this?"},
                ],
            }
        ],
    )
    parts = fakes["a"].last.json["messages"][-1]["content"]
    assert parts[0]["type"] == "image_url" and parts[0]["image_url"]["url"].startswith(
        "data:image/png;base64,"
    )
