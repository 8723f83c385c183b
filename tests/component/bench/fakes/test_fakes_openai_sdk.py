"""The OpenAI-dialect fake against the official openai SDK and raw HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from bench.fakes import FakeUpstream, fake_upstreams

KEY = "sk-upstream-key"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there, fake"}]


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with fake_upstreams(["a"], api_key=KEY) as fakes:
        yield fakes["a"]


@pytest.fixture
async def client(fake: FakeUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    c = openai.AsyncOpenAI(base_url=fake.url + "/v1", api_key=KEY, max_retries=0)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_chat(client: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=HELLO,
        max_tokens=50,
    )
    assert raw.headers["x-fake-instance"] == "a"
    r = raw.parse()
    assert r.model == "gpt-4o"
    assert r.choices[0].message.content == "This is a fake answer"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (5, 5, 10)
    assert r.usage.prompt_tokens_details is not None
    assert r.usage.prompt_tokens_details.cached_tokens == 0
    seen = fake.last
    assert (seen.method, seen.path, seen.instance) == ("POST", "/v1/chat/completions", "a")
    assert seen.header("authorization") == f"Bearer {KEY}"
    assert seen.json["messages"] == HELLO and seen.json["max_tokens"] == 50


async def test_max_tokens_below_chunks_finishes_with_length(client: openai.AsyncOpenAI) -> None:
    r = await client.chat.completions.create(
        model="m",
        messages=HELLO,
        max_completion_tokens=2,
    )
    assert r.choices[0].message.content == "This is"
    assert r.choices[0].finish_reason == "length"


@pytest.mark.parametrize("include_usage", [True, False])
async def test_chat_stream(client: openai.AsyncOpenAI, include_usage: bool) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": include_usage},
    )
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "This is a fake answer"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    if include_usage:
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == 5
        assert all(c.usage is None for c in chunks[:-1])
    else:
        assert all(c.choices and c.usage is None for c in chunks)


async def test_raw_stream_framing(http: aiohttp.ClientSession, fake: FakeUpstream) -> None:
    body = {"model": "m", "messages": HELLO, "stream": True, "n": 2}
    headers = {"authorization": f"Bearer {KEY}", "x-fake-chunks": "1"}
    async with http.post(fake.url + "/v1/chat/completions", json=body, headers=headers) as r:
        assert r.status == 200
        assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
        data = await r.read()
    events = data.split(b"\n\n")
    assert events[-1] == b"" and events[-2] == b"data: [DONE]"
    assert len(events) == 2 + 2 + 2 + 1 + 1  # role x2, content x2, finish x2, DONE, tail
    assert all(e.startswith(b"data: {") for e in events[:-2])


async def test_completions(client: openai.AsyncOpenAI) -> None:
    r = await client.completions.create(model="davinci-002", prompt=["one", "two"], n=2)
    assert len(r.choices) == 4
    assert r.choices[0].text == "This is a fake answer"
    assert r.usage is not None and r.usage.completion_tokens == 20
    stream = await client.completions.create(
        model="davinci-002", prompt="hi", stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "This is a fake answer"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 1


async def test_embeddings(
    client: openai.AsyncOpenAI, http: aiohttp.ClientSession, fake: FakeUpstream
) -> None:
    # The SDK asks for base64 and decodes it; raw HTTP below checks the float default.
    r = await client.embeddings.create(model="text-embedding-3-small", input=["a", "bb"])
    assert [len(d.embedding) for d in r.data] == [8, 8]
    assert r.usage.prompt_tokens == 2 and r.usage.total_tokens == 2
    again = await client.embeddings.create(model="e", input="a", dimensions=3)
    assert again.data[0].embedding == pytest.approx(r.data[0].embedding[:3])
    assert fake.last.json["encoding_format"] == "base64"
    headers = {"authorization": f"Bearer {KEY}"}
    body = {"model": "e", "input": "a"}
    async with http.post(fake.url + "/v1/embeddings", json=body, headers=headers) as resp:
        floats = (await resp.json())["data"][0]["embedding"]
    assert floats == pytest.approx(r.data[0].embedding, abs=1e-6)


async def test_models(client: openai.AsyncOpenAI) -> None:
    page = await client.models.list()
    assert [m.id for m in page.data] == ["fake-model"]
    model = await client.models.retrieve("anything")
    assert model.id == "anything" and model.owned_by == "fake-a"


async def test_configured_models_are_enforced() -> None:
    async with fake_upstreams(["m"], models=["gpt-4o"]) as fakes:
        c = openai.AsyncOpenAI(base_url=fakes["m"].url + "/v1", api_key="k", max_retries=0)
        try:
            assert [m.id for m in (await c.models.list()).data] == ["gpt-4o"]
            with pytest.raises(openai.NotFoundError) as info:
                await c.chat.completions.create(model="gpt-5", messages=HELLO)
            assert info.value.code == "model_not_found"
            with pytest.raises(openai.NotFoundError):
                await c.models.retrieve("gpt-5")
        finally:
            await c.close()


async def test_wrong_key_is_401_in_openais_format(fake: FakeUpstream) -> None:
    c = openai.AsyncOpenAI(base_url=fake.url + "/v1", api_key="sk-client-key", max_retries=0)
    try:
        with pytest.raises(openai.AuthenticationError) as info:
            await c.chat.completions.create(model="m", messages=HELLO)
    finally:
        await c.close()
    assert info.value.code == "invalid_api_key"
    assert "sk-client-key" not in str(info.value)  # masked, as OpenAI does


async def test_missing_key_is_401(http: aiohttp.ClientSession, fake: FakeUpstream) -> None:
    async with http.post(fake.url + "/v1/chat/completions", json={}) as r:
        assert r.status == 401
        error = (await r.json())["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "didn't provide an API key" in error["message"]


async def post(
    http: aiohttp.ClientSession, fake: FakeUpstream, body: Any, path: str = "/v1/chat/completions"
) -> tuple[int, dict[str, Any]]:
    headers = {"authorization": f"Bearer {KEY}"}
    data = body if isinstance(body, bytes) else None
    payload = None if isinstance(body, bytes) else body
    async with http.post(fake.url + path, json=payload, data=data, headers=headers) as r:
        return r.status, await r.json()


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": HELLO}, None),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": []}, "messages"),
        (
            {"model": "m", "messages": HELLO, "stream_options": {"include_usage": True}},
            "stream_options",
        ),
        ({"model": "m", "messages": HELLO, "max_tokens": 0}, "max_tokens"),
        (b"{not json", None),
    ],
)
async def test_bad_shapes_are_400(
    http: aiohttp.ClientSession, fake: FakeUpstream, body: Any, param: str | None
) -> None:
    status, payload = await post(http, fake, body)
    assert status == 400
    assert payload["error"]["type"] == "invalid_request_error"
    assert payload["error"]["param"] == param


async def test_unknown_fields_pass_and_are_recorded(
    client: openai.AsyncOpenAI, fake: FakeUpstream
) -> None:
    await client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "x", "vendor_tag": 1}],  # type: ignore[list-item]
        extra_body={"guardrails": {"mode": "strict"}, "top_k": 3},
    )
    assert fake.last.json["guardrails"] == {"mode": "strict"}
    assert fake.last.json["messages"][0]["vendor_tag"] == 1


async def test_recorded_requests_over_http(
    client: openai.AsyncOpenAI, http: aiohttp.ClientSession, fake: FakeUpstream
) -> None:
    await client.embeddings.create(model="e", input="x")
    await client.models.list()
    assert [r.path for r in fake.requests] == ["/v1/embeddings", "/v1/models"]
    async with http.get(fake.url + "/_fake/requests") as r:
        listed = await r.json()
    assert [x["path"] for x in listed] == ["/v1/embeddings", "/v1/models"]
    assert listed[0]["json"]["input"] == "x"
    assert listed[0]["headers"]["authorization"] == f"Bearer {KEY}"
    async with http.post(fake.url + "/_fake/reset") as r:
        assert r.status == 200
    assert fake.requests == []
    await client.models.list()
    fake.clear()
    assert fake.requests == []
    with pytest.raises(LookupError):
        _ = fake.last


async def test_unknown_path_is_404_and_recorded(
    http: aiohttp.ClientSession, fake: FakeUpstream
) -> None:
    async with http.get(fake.url + "/v1/chat/completions") as r:
        assert r.status == 404
        assert r.headers["x-fake-instance"] == "a"
        assert (await r.json())["error"]["message"] == "Invalid URL (GET /v1/chat/completions)"
    assert fake.last.method == "GET"
