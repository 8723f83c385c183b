"""The Bedrock dialect against botocore: its bedrock-runtime client and SigV4-signed raw HTTP."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import botocore.session
import orjson
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError

from bench.fakes import AwsTestCredentials, FakeUpstreams, Script, fake_upstreams, script_headers

CREDS = AwsTestCredentials(access_key_id="AKIAFAKETESTS0000001", secret_access_key="s3cr3t/for/tests", region="eu-west-3")  # fmt: skip
MODEL = "anthropic.claude-fake-v1:0"
RAW_MODEL = "anthropic.claude-fake-v1"
HI = [{"role": "user", "content": [{"text": "hello bedrock"}]}]
TOOLS = {"tools": [{"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}}]}
INVOKE = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
_SESSION = botocore.session.get_session()


_OPEN: list[Any] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Any:
    yield
    while _OPEN:
        _OPEN.pop().close()  # else urllib3's pooled sockets leak (ResourceWarning)


def bedrock(url: str, secret: str = CREDS.secret_access_key) -> Any:
    """A botocore bedrock-runtime client for ``url``, closed after the test."""
    client = _SESSION.create_client(
        "bedrock-runtime",
        region_name=CREDS.region,
        endpoint_url=url,
        aws_access_key_id=CREDS.access_key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )
    _OPEN.append(client)
    return client


def signed(url: str, body: bytes, *, key_id: str = CREDS.access_key_id, secret: str = CREDS.secret_access_key) -> dict[str, str]:  # fmt: skip
    request = AWSRequest("POST", url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(key_id, secret), "bedrock", CREDS.region).add_auth(request)
    return dict(request.headers.items())


def decode(raw: bytes) -> list[tuple[dict[str, Any], Any]]:
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    return [(m.headers, orjson.loads(m.payload)) for m in buffer]


@pytest.fixture
async def fakes() -> AsyncIterator[FakeUpstreams]:
    async with fake_upstreams(["br", "cr"], dialect="bedrock", aws=CREDS) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession, url: str, body: Any, extra: dict[str, str] | None = None, **kw: Any
) -> tuple[int, dict[str, str], bytes]:
    raw = orjson.dumps(body)
    headers = {**signed(url, raw, **kw), **(extra or {})}
    async with http.post(url, data=raw, headers=headers) as r:
        return r.status, dict(r.headers), await r.read()


async def test_converse_with_botocores_client(fakes: FakeUpstreams) -> None:
    fake = fakes["br"]
    assert fake.aws == CREDS
    client = bedrock(fake.url)
    r = await asyncio.to_thread(
        client.converse, modelId=MODEL, messages=HI, inferenceConfig={"maxTokens": 3}
    )
    assert r["output"] == {"message": {"role": "assistant", "content": [{"text": "This is a"}]}}
    assert r["stopReason"] == "max_tokens"
    assert r["usage"] == {"inputTokens": 4, "outputTokens": 3, "totalTokens": 7}
    assert r["metrics"]["latencyMs"] >= 1
    seen = fake.last
    assert seen.path == f"/model/{MODEL}/converse" and seen.json == {"messages": HI, "inferenceConfig": {"maxTokens": 3}}  # fmt: skip
    assert seen.header(
        "Authorization",
    ).startswith(f"AWS4-HMAC-SHA256 Credential={CREDS.access_key_id}/")  # type: ignore[union-attr]
    fake.defaults = Script(tool_call="lookup", usage={"cached_tokens": 2})
    r = await asyncio.to_thread(client.converse, modelId=MODEL, messages=HI, toolConfig=TOOLS)
    assert r["stopReason"] == "tool_use"
    assert r["output"]["message"]["content"][1]["toolUse"]["input"] == {"query": "fake", "count": 1}
    assert r["usage"]["cacheReadInputTokens"] == 2


async def test_converse_stream_with_botocores_client(fakes: FakeUpstreams) -> None:
    fake = fakes["br"]
    fake.defaults = Script(chunks=2, tool_call="lookup")
    client = bedrock(fake.url)

    def events() -> list[dict[str, Any]]:
        stream = client.converse_stream(modelId=MODEL, messages=HI, toolConfig=TOOLS)["stream"]
        try:
            return list(stream)
        finally:
            stream.close()

    got = await asyncio.to_thread(events)
    assert [next(iter(e)) for e in got] == [
        "messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockStop",
        "contentBlockStart", "contentBlockDelta", "contentBlockDelta", "contentBlockDelta",
        "contentBlockStop", "messageStop", "metadata",
    ]  # fmt: skip
    assert got[4]["contentBlockStart"]["start"]["toolUse"]["name"] == "lookup"
    assert got[-2] == {"messageStop": {"stopReason": "tool_use"}}
    assert got[-1]["metadata"]["usage"] == {"inputTokens": 4, "outputTokens": 2, "totalTokens": 6}
    fake.defaults = Script(chunks=3, stream_exception="ThrottlingException")
    with pytest.raises(EventStreamError) as info:
        await asyncio.to_thread(events)
    assert info.value.response["Error"]["Code"] == "throttlingException"


async def test_invoke_model_pair_with_botocores_client(fakes: FakeUpstreams) -> None:
    client = bedrock(fakes["br"].url)
    body = orjson.dumps(INVOKE)
    r = await asyncio.to_thread(client.invoke_model, modelId=MODEL, body=body)
    message = orjson.loads(r["body"].read())
    assert message["type"] == "message" and message["model"] == MODEL
    assert message["content"] == [{"type": "text", "text": "This is a fake answer"}]

    def streamed() -> list[Any]:
        stream = client.invoke_model_with_response_stream(modelId=MODEL, body=body)["body"]
        try:
            return [orjson.loads(e["chunk"]["bytes"]) for e in stream]
        finally:
            stream.close()

    events = await asyncio.to_thread(streamed)
    assert [e["type"] for e in events][:3] == ["message_start", "content_block_start", "ping"]
    assert events[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == 5
    with pytest.raises(ClientError) as info:
        await asyncio.to_thread(client.invoke_model, modelId=MODEL, body=orjson.dumps({**INVOKE, "model": "x"}))  # fmt: skip
    assert info.value.response["Error"] == {"Code": "ValidationException", "Message": "model: Extra inputs are not permitted"}  # fmt: skip


async def test_wrong_signatures_are_403(fakes: FakeUpstreams, http: aiohttp.ClientSession) -> None:
    client = bedrock(fakes["br"].url, secret="not-the-secret")
    with pytest.raises(ClientError) as info:
        await asyncio.to_thread(client.converse, modelId=MODEL, messages=HI)
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    url = f"{fakes['br'].url}/model/{RAW_MODEL}/converse"
    status, headers, body = await post(http, url, {"messages": HI}, secret="wrong")
    assert (status, headers["x-amzn-errortype"]) == (403, "InvalidSignatureException")
    assert orjson.loads(body)["message"].startswith(
        "The request signature we calculated does not match"
    )
    status, headers, body = await post(http, url, {"messages": HI}, key_id="AKIAUNKNOWN")
    assert (status, headers["x-amzn-errortype"]) == (403, "UnrecognizedClientException")
    async with http.post(url, json={"messages": HI}) as r:
        assert (r.status, r.headers["x-amzn-errortype"]) == (
            403,
            "MissingAuthenticationTokenException",
        )


async def test_raw_signed_stream_decodes_with_event_stream_buffer(
    fakes: FakeUpstreams, http: aiohttp.ClientSession
) -> None:
    url = f"{fakes['br'].url}/model/{RAW_MODEL}/converse-stream"
    status, headers, raw = await post(http, url, {"messages": HI}, script_headers(chunks=2))
    assert status == 200 and headers["Content-Type"] == "application/vnd.amazon.eventstream"
    frames = decode(raw)
    assert [h[":event-type"] for h, _ in frames] == [
        "messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata",
    ]  # fmt: skip
    assert all(
        h[":message-type"] == "event" and h[":content-type"] == "application/json"
        for h, _ in frames
    )
    assert [p["delta"]["text"] for h, p in frames if h[":event-type"] == "contentBlockDelta"] == [
        "This",
        " is",
    ]
    invoke = f"{fakes['br'].url}/model/{RAW_MODEL}/invoke-with-response-stream"
    _, _, raw = await post(http, invoke, INVOKE, script_headers(chunks=1, stream_exception="modelStreamErrorException"))  # fmt: skip
    frames = decode(raw)
    assert frames[-1][0][":message-type"] == "exception"
    assert frames[-1][0][":exception-type"] == "modelStreamErrorException"
    chunk = orjson.loads(base64.b64decode(frames[-2][1]["bytes"]))
    assert chunk["delta"] == {"type": "text_delta", "text": "This"}


async def test_validation_and_scripted_errors(
    fakes: FakeUpstreams, http: aiohttp.ClientSession
) -> None:
    url = f"{fakes['br'].url}/model/{RAW_MODEL}/converse"
    status, headers, body = await post(http, url, {"messages": HI, "temperature": 0.5})
    assert (status, headers["x-amzn-errortype"]) == (400, "ValidationException")
    assert orjson.loads(body)["message"].startswith('Unknown parameter in input: "temperature"')
    status, headers, body = await post(http, url, {"messages": [{"role": "user", "content": [{}]}]})
    assert status == 400 and "tagged union" in orjson.loads(body)["message"]
    for code, name in [(429, "ThrottlingException"), (503, "ServiceUnavailableException"), (408, "ModelTimeoutException")]:  # fmt: skip
        status, headers, body = await post(http, url, {"messages": HI}, script_headers(status=code))
        assert (status, headers["x-amzn-errortype"]) == (code, name)
        assert set(orjson.loads(body)) == {"message"}
    stream_url = f"{fakes['br'].url}/model/{RAW_MODEL}/converse-stream"
    status, headers, _ = await post(http, stream_url, {"messages": HI}, script_headers(status=429))
    assert (status, headers["x-amzn-errortype"]) == (429, "ThrottlingException")


async def test_per_instance_scripting_and_bearer_keys(http: aiohttp.ClientSession) -> None:
    async with fake_upstreams(["br", "cr"], dialect="bedrock", aws=CREDS, api_key="bedrock-api-key") as fakes:  # fmt: skip
        script = {**script_headers(status=503), **script_headers("cr", status=200, chunks=1)}
        results = []
        for name in ("br", "cr"):
            url = f"{fakes[name].url}/model/{RAW_MODEL}/converse"
            results.append(await post(http, url, {"messages": HI}, script))
        assert [r[0] for r in results] == [503, 200]
        assert orjson.loads(results[1][2])["output"]["message"]["content"] == [{"text": "This"}]
        assert results[1][1]["x-fake-instance"] == "cr" and results[1][1]["x-amzn-RequestId"]
        url = f"{fakes['br'].url}/model/{RAW_MODEL}/converse"
        async with http.post(url, json={"messages": HI}, headers={"Authorization": "Bearer bedrock-api-key"}) as r:  # fmt: skip
            assert r.status == 200
        async with http.post(url, json={"messages": HI}, headers={"Authorization": "Bearer nope"}) as r:  # fmt: skip
            assert (r.status, r.headers["x-amzn-errortype"]) == (403, "UnrecognizedClientException")
