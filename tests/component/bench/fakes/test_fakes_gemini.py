"""The Gemini and Vertex dialects over raw HTTP and with the google-genai SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from bench.fakes import FakeUpstreams, fake_upstreams, script_headers

KEY = "AIza-fake-key"
TOKEN = "ya29.fake-token"
BODY = {"contents": [{"role": "user", "parts": [{"text": "hello gemini"}]}]}
FUNCTIONS = [{"functionDeclarations": [{"name": "lookup", "parameters": {"type": "OBJECT", "properties": {}}}]}]  # fmt: skip
GEMINI_PATH = "/v1beta/models/gemini-fake:generateContent"
VERTEX_BASE = "/v1/projects/proj/locations/us-central1/publishers/google/models/gemini-fake"


@pytest.fixture
async def gemini() -> AsyncIterator[FakeUpstreams]:
    async with fake_upstreams(["gm", "hm"], dialect="gemini", api_key=KEY) as running:
        yield running


@pytest.fixture
async def vertex() -> AsyncIterator[FakeUpstreams]:
    async with fake_upstreams(
        ["vx"], dialect="vertex", api_key=TOKEN, gcp_project="proj", gcp_location="us-central1"
    ) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession, url: str, body: Any = BODY, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    async with http.post(url, json=body, headers=headers or {}) as r:
        return r.status, dict(r.headers), await r.read()


async def test_generate_content(gemini: FakeUpstreams, http: aiohttp.ClientSession) -> None:
    usage = {"cached_tokens": 2}
    status, headers, raw = await post(
        http, gemini["gm"].url + GEMINI_PATH, headers={"x-goog-api-key": KEY, **script_headers(usage=usage)}
    )  # fmt: skip
    assert status == 200 and headers["x-fake-instance"] == "gm"
    body = orjson.loads(raw)
    assert body["candidates"] == [
        {"content": {"role": "model", "parts": [{"text": "This is a fake answer"}]}, "finishReason": "STOP", "index": 0}
    ]  # fmt: skip
    assert body["usageMetadata"] == {
        "promptTokenCount": 3, "candidatesTokenCount": 5, "totalTokenCount": 8, "cachedContentTokenCount": 2,
    }  # fmt: skip
    assert body["modelVersion"] == "gemini-fake"
    status, _, raw = await post(
        http, f"{gemini['gm'].url}/v1/models/gemini-fake:generateContent?key={KEY}"
    )
    assert status == 200


async def test_stream_generate_content_sse(
    gemini: FakeUpstreams, http: aiohttp.ClientSession
) -> None:
    url = gemini["gm"].url + "/v1beta/models/gemini-fake:streamGenerateContent?alt=sse"
    body = {**BODY, "tools": FUNCTIONS}
    status, headers, raw = await post(http, url, body, {"x-goog-api-key": KEY, **script_headers(chunks=2, tool_call="lookup")})  # fmt: skip
    assert status == 200 and headers["Content-Type"] == "text/event-stream"
    events = raw.split(b"\r\n\r\n")
    assert events[-1] == b"" and all(e.startswith(b"data: ") for e in events[:-1])
    chunks = [orjson.loads(e[6:]) for e in events[:-1]]
    parts = [c["candidates"][0]["content"]["parts"][0] for c in chunks]
    assert parts == [{"text": "This"}, {"text": " is"}, {"functionCall": {"name": "lookup", "args": {"query": "fake", "count": 1}}}]  # fmt: skip
    assert "usageMetadata" in chunks[-1] and "usageMetadata" not in chunks[0]
    array_url = gemini["gm"].url + "/v1beta/models/gemini-fake:streamGenerateContent"
    status, _, raw = await post(
        http, array_url, BODY, {"x-goog-api-key": KEY, **script_headers(chunks=2)}
    )
    assert status == 200 and len(orjson.loads(raw)) == 2


async def test_gemini_auth_and_shape_refusals(
    gemini: FakeUpstreams, http: aiohttp.ClientSession
) -> None:
    url = gemini["gm"].url + GEMINI_PATH
    status, _, raw = await post(http, url)
    assert status == 403 and orjson.loads(raw)["error"]["status"] == "PERMISSION_DENIED"
    status, _, raw = await post(http, url, headers={"x-goog-api-key": "wrong"})
    assert (status, orjson.loads(raw)["error"]["message"]) == (
        400,
        "API key not valid. Please pass a valid API key.",
    )
    bad = {**BODY, "generationConfig": {"maxTokens": 5}}
    status, _, raw = await post(http, url, bad, {"x-goog-api-key": KEY})
    error = orjson.loads(raw)["error"]
    assert (status, error["status"]) == (400, "INVALID_ARGUMENT")
    assert (
        error["message"]
        == "Invalid JSON payload received. Unknown name \"maxTokens\" at 'generation_config': Cannot find field."
    )
    assert error["details"][0]["fieldViolations"][0]["field"] == "generation_config"
    status, _, raw = await post(http, gemini["gm"].url + "/v1beta/models/gemini-fake:embedContent", BODY, {"x-goog-api-key": KEY})  # fmt: skip
    assert status == 404 and orjson.loads(raw)["error"]["status"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("code", "status"),
    [(400, "INVALID_ARGUMENT"), (401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED"), (404, "NOT_FOUND"),
     (429, "RESOURCE_EXHAUSTED"), (500, "INTERNAL"), (503, "UNAVAILABLE")],
)  # fmt: skip
async def test_scripted_statuses_use_googles_error_shape(
    gemini: FakeUpstreams, http: aiohttp.ClientSession, code: int, status: str
) -> None:
    got, _, raw = await post(http, gemini["gm"].url + GEMINI_PATH, headers={"x-goog-api-key": KEY, **script_headers(status=code)})  # fmt: skip
    error = orjson.loads(raw)["error"]
    assert (got, error["code"], error["status"]) == (code, code, status)


async def test_per_instance_scripting(gemini: FakeUpstreams, http: aiohttp.ClientSession) -> None:
    headers = {"x-goog-api-key": KEY, **script_headers(status=429), **script_headers("hm", status=200, response_model="gemini-other")}  # fmt: skip
    assert (await post(http, gemini["gm"].url + GEMINI_PATH, headers=headers))[0] == 429
    status, _, raw = await post(http, gemini["hm"].url + GEMINI_PATH, headers=headers)
    assert status == 200 and orjson.loads(raw)["modelVersion"] == "gemini-other"
    expect = script_headers(
        expect_model="gemini-fake", expect_body={"contents": [{"role": "user"}]}
    )
    assert (
        await post(http, gemini["gm"].url + GEMINI_PATH, headers={"x-goog-api-key": KEY, **expect})
    )[0] == 200
    wrong = script_headers(expect_model="gemini-pro")
    status, _, raw = await post(
        http, gemini["gm"].url + GEMINI_PATH, headers={"x-goog-api-key": KEY, **wrong}
    )
    assert status == 400 and b"model: expected 'gemini-pro', got 'gemini-fake'" in raw


async def test_vertex(vertex: FakeUpstreams, http: aiohttp.ClientSession) -> None:
    base = vertex["vx"].url + VERTEX_BASE
    auth = {"Authorization": f"Bearer {TOKEN}"}
    labelled = {**BODY, "labels": {"team": "a"}}
    status, _, raw = await post(http, base + ":generateContent", labelled, auth)
    assert status == 200 and orjson.loads(raw)["candidates"][0]["finishReason"] == "STOP"
    status, _, raw = await post(http, base + ":streamGenerateContent?alt=sse", BODY, {**auth, **script_headers(chunks=1)})  # fmt: skip
    assert status == 200 and raw.count(b"\r\n\r\n") == 1
    status, _, raw = await post(
        http, base + ":generateContent", BODY, {"Authorization": "Bearer other"}
    )
    assert (status, orjson.loads(raw)["error"]["status"]) == (401, "UNAUTHENTICATED")
    other = vertex["vx"].url + VERTEX_BASE.replace("/proj/", "/elsewhere/")
    status, _, raw = await post(http, other + ":generateContent", BODY, auth)
    assert (status, orjson.loads(raw)["error"]["status"]) == (403, "PERMISSION_DENIED")
    status, _, raw = await post(
        http, base + ":generateContent", {"contents": [{"parts": [{}]}]}, auth
    )
    assert status == 400 and b"required oneof field 'data'" in raw


# --- the google-genai SDK --------------------------------------------------------------------


async def test_google_genai_against_gemini_and_vertex(
    gemini: FakeUpstreams, vertex: FakeUpstreams
) -> None:
    genai = pytest.importorskip("google.genai")
    from google.genai import types
    from google.oauth2.credentials import Credentials

    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=gemini["gm"].url))
    config = types.GenerateContentConfig(
        system_instruction="be brief",
        max_output_tokens=3,
        temperature=0.1,
        safety_settings=[types.SafetySetting(category="HARM_CATEGORY_HARASSMENT", threshold="BLOCK_NONE")],
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(
            name="lookup", description="d",
            parameters=types.Schema(type="OBJECT", properties={"q": types.Schema(type="STRING")}),
        )])],
    )  # fmt: skip
    r = await client.aio.models.generate_content(
        model="gemini-fake", contents="hello", config=config
    )
    assert (
        r.text == "This is a"
        and r.candidates
        and r.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    )
    sent = gemini["gm"].last.json
    assert set(sent) == {
        "contents",
        "systemInstruction",
        "generationConfig",
        "safetySettings",
        "tools",
    }
    chunks = [c.text async for c in await client.aio.models.generate_content_stream(model="gemini-fake", contents="hi")]  # fmt: skip
    assert "".join(c or "" for c in chunks) == "This is a fake answer"
    vertex_client = genai.Client(
        vertexai=True, project="proj", location="us-central1", credentials=Credentials(token=TOKEN),  # type: ignore[no-untyped-call]
        http_options=types.HttpOptions(base_url=vertex["vx"].url),
    )  # fmt: skip
    r = await vertex_client.aio.models.generate_content(
        model="gemini-fake",
        contents="hello",
        config=types.GenerateContentConfig(labels={"team": "a"}),
    )
    assert r.text == "This is a fake answer"
    assert (
        "/projects/proj/locations/us-central1/publishers/google/models/gemini-fake:generateContent"
        in vertex["vx"].last.path
    )
