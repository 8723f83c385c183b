"""The Azure-dialect fake against openai's AsyncAzureOpenAI client and raw HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from bench.fakes import FakeUpstream, fake_upstreams, script_headers

KEY = "azure-key-1"
VERSION = "2024-10-21"
DEPLOYMENTS = {"gpt4o-prod": "gpt-4o-2024-08-06", "embed": "text-embedding-3-small"}
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]
CHAT_PATH = "/openai/deployments/gpt4o-prod/chat/completions"


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with fake_upstreams(
        ["az"], dialect="azure", api_key=KEY, deployments=DEPLOYMENTS
    ) as fakes:
        yield fakes["az"]


@pytest.fixture
async def client(fake: FakeUpstream) -> AsyncIterator[openai.AsyncAzureOpenAI]:
    c = openai.AsyncAzureOpenAI(
        api_key=KEY, api_version=VERSION, azure_endpoint=fake.url, max_retries=0
    )
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_chat_answers_with_the_deployments_model(
    client: openai.AsyncAzureOpenAI, fake: FakeUpstream
) -> None:
    r = await client.chat.completions.create(model="gpt4o-prod", messages=HELLO)
    assert r.model == "gpt-4o-2024-08-06"
    assert r.choices[0].message.content == "This is a fake answer"
    seen = fake.last
    assert seen.path == CHAT_PATH
    assert seen.query["api-version"] == VERSION
    assert seen.header("api-key") == KEY and seen.header("authorization") is None


async def test_stream_and_embeddings(client: openai.AsyncAzureOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="gpt4o-prod",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "This is a fake answer"
    )
    assert chunks[-1].usage is not None and chunks[-1].model == "gpt-4o-2024-08-06"
    emb = await client.embeddings.create(model="embed", input="x")
    assert emb.model == "text-embedding-3-small" and len(emb.data[0].embedding) == 8


async def test_entra_bearer_token() -> None:
    async with fake_upstreams(["entra"], dialect="azure") as fakes:
        c = openai.AsyncAzureOpenAI(
            azure_ad_token="eyJ.fake.token",
            api_version=VERSION,
            azure_endpoint=fakes["entra"].url,
            max_retries=0,
        )
        try:
            r = await c.chat.completions.create(model="any-deploy", messages=HELLO)
        finally:
            await c.close()
        assert r.model == "any-deploy"  # no deployment table: the deployment name
        assert fakes["entra"].last.header("authorization") == "Bearer eyJ.fake.token"


async def test_wrong_key_is_401_in_azures_format(fake: FakeUpstream) -> None:
    c = openai.AsyncAzureOpenAI(
        api_key="client-key", api_version=VERSION, azure_endpoint=fake.url, max_retries=0
    )
    try:
        with pytest.raises(openai.AuthenticationError) as info:
            await c.chat.completions.create(model="gpt4o-prod", messages=HELLO)
    finally:
        await c.close()
    assert info.value.code == "401"
    assert isinstance(info.value.body, dict) and set(info.value.body) == {"code", "message"}
    assert info.value.body["message"].startswith("Access denied due to invalid subscription key")


async def test_missing_api_version_is_400(http: aiohttp.ClientSession, fake: FakeUpstream) -> None:
    body = {"messages": HELLO}
    async with http.post(fake.url + CHAT_PATH, json=body, headers={"api-key": KEY}) as r:
        assert r.status == 400
        assert (await r.json())["error"]["code"] == "MissingApiVersionParameter"


async def test_unknown_deployment_is_404(client: openai.AsyncAzureOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model="nope", messages=HELLO)
    assert info.value.code == "DeploymentNotFound"


async def test_shape_errors_and_scripted_errors(
    client: openai.AsyncAzureOpenAI, http: aiohttp.ClientSession, fake: FakeUpstream
) -> None:
    url = f"{fake.url}{CHAT_PATH}?api-version={VERSION}"
    async with http.post(url, json={"messages": [{"role": "x"}]}, headers={"api-key": KEY}) as r:
        assert r.status == 400
        assert (await r.json())["error"]["param"] == "messages[0].role"
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(
            model="gpt4o-prod",
            messages=HELLO,
            extra_headers=script_headers("az", status=429, headers={"retry-after": "1"}),
        )
    assert info.value.code == "429" and info.value.response.headers["retry-after"] == "1"


async def test_expect_model_is_the_deployment(client: openai.AsyncAzureOpenAI) -> None:
    r = await client.chat.completions.create(
        model="gpt4o-prod",
        messages=HELLO,
        extra_headers=script_headers(
            expect_model="gpt4o-prod", expect_query={"api-version": VERSION}
        ),
    )
    assert r.model == "gpt-4o-2024-08-06"


async def test_models_and_unknown_paths(http: aiohttp.ClientSession, fake: FakeUpstream) -> None:
    async with http.get(
        f"{fake.url}/openai/models?api-version={VERSION}", headers={"api-key": KEY}
    ) as r:
        assert [m["id"] for m in (await r.json())["data"]] == list(DEPLOYMENTS.values())
    async with http.post(f"{fake.url}/v1/chat/completions", json={}) as r:
        assert r.status == 404
        assert await r.json() == {"error": {"code": "404", "message": "Resource not found"}}
