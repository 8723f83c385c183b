"""Every scripting key over real sockets: status, headers, body, timing, expectations."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from multidict import CIMultiDict

from bench.fakes import (
    FAKE_STATE,
    FakeUpstreams,
    Script,
    build_fake_app,
    fake_upstreams,
    script_headers,
)
from tests.support.waiting import wait_until

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
AUTH = {"authorization": "Bearer sk-up"}


@pytest.fixture
async def fakes() -> AsyncIterator[FakeUpstreams]:
    async with fake_upstreams(["a", "b"]) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def chat(
    http: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    body: dict[str, Any] | None = None,
) -> tuple[int, CIMultiDict[str], bytes]:
    async with http.post(
        url + "/v1/chat/completions", json=body or CHAT, headers={**AUTH, **headers}
    ) as r:
        return r.status, CIMultiDict(r.headers), await r.read()


async def test_error_status_uses_the_providers_error_shape(
    http: aiohttp.ClientSession, fakes: FakeUpstreams
) -> None:
    headers = script_headers(
        status=429, headers={"retry-after": "2", "x-ratelimit-remaining-requests": "0"}
    )
    status, resp_headers, body = await chat(http, fakes["a"].url, headers)
    assert status == 429
    assert resp_headers["retry-after"] == "2" and resp_headers["x-fake-instance"] == "a"
    assert orjson.loads(body) == {
        "error": {
            "message": "Rate limit reached for requests. Please try again later.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }


async def test_extra_headers_on_a_success(
    http: aiohttp.ClientSession, fakes: FakeUpstreams
) -> None:
    status, resp_headers, _ = await chat(
        http, fakes["a"].url, script_headers(headers={"openai-processing-ms": "12"})
    )
    assert status == 200 and resp_headers["openai-processing-ms"] == "12"


async def test_scripted_headers_win_over_the_fakes_own(
    http: aiohttp.ClientSession, fakes: FakeUpstreams
) -> None:
    headers = script_headers(headers={"content-type": "text/plain", "x-request-id": "mine"})
    _, resp_headers, body = await chat(http, fakes["a"].url, headers)
    assert resp_headers.getall("content-type") == ["text/plain"]
    assert resp_headers.getall("x-request-id") == ["mine"]
    assert orjson.loads(body)["object"] == "chat.completion"


async def test_per_instance_keys_win(http: aiohttp.ClientSession, fakes: FakeUpstreams) -> None:
    headers = {
        **script_headers(status=503),
        **script_headers("b", status=200, response_model="other"),
    }
    status_a, _, _ = await chat(http, fakes["a"].url, headers)
    status_b, _, body_b = await chat(http, fakes["b"].url, headers)
    assert (status_a, status_b) == (503, 200)
    assert orjson.loads(body_b)["model"] == "other"


async def test_scripted_body_and_content_type(
    http: aiohttp.ClientSession, fakes: FakeUpstreams
) -> None:
    status, resp_headers, body = await chat(
        http,
        fakes["a"].url,
        script_headers(status=502, body=b"<html>bad gateway</html>", content_type="text/html"),
    )
    assert (status, body) == (502, b"<html>bad gateway</html>")
    assert resp_headers["content-type"] == "text/html"
    _, resp_headers, body = await chat(http, fakes["a"].url, script_headers(body=b'{"ok":1}'))
    assert body == b'{"ok":1}' and resp_headers["content-type"] == "application/json"


async def test_scripted_raw_sse_body(http: aiohttp.ClientSession, fakes: FakeUpstreams) -> None:
    raw = b'event: message_start\ndata: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n'
    headers = script_headers(body=raw, content_type="text/event-stream", chunk_delay_ms=1)
    status, resp_headers, body = await chat(http, fakes["a"].url, headers)
    assert (status, body) == (200, raw)
    assert resp_headers["content-type"] == "text/event-stream"


async def test_delay_before_headers(http: aiohttp.ClientSession, fakes: FakeUpstreams) -> None:
    start = time.monotonic()
    status, _, _ = await chat(http, fakes["a"].url, script_headers("a", delay_ms=150))
    assert status == 200 and time.monotonic() - start >= 0.15


async def test_chunks_and_chunk_delay(http: aiohttp.ClientSession, fakes: FakeUpstreams) -> None:
    body = {**CHAT, "stream": True}
    headers = {**AUTH, **script_headers(chunks=3, chunk_delay_ms=40)}
    arrivals: list[float] = []
    async with http.post(fakes["a"].url + "/v1/chat/completions", json=body, headers=headers) as r:
        async for line in r.content:
            if line.startswith(b"data: "):
                arrivals.append(time.monotonic())
    assert len(arrivals) == 1 + 3 + 1 + 1  # role, content x3, finish, [DONE]
    assert arrivals[-1] - arrivals[0] >= 5 * 0.04 * 0.9


async def test_hang_until_the_client_gives_up(
    http: aiohttp.ClientSession, fakes: FakeUpstreams
) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await chat_with_timeout(http, fakes["a"].url, script_headers(hang=True), 0.2)
    assert fakes["a"].last.json == {**CHAT, "stream": True}  # recorded, never answered
    await wait_until(lambda: fakes["a"].in_flight == 0, 2, "the hung handler to end")
    assert fakes["a"].disconnects == 1
    status, _, _ = await chat(http, fakes["a"].url, {})  # the fake still serves
    assert status == 200


async def chat_with_timeout(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], timeout: float
) -> bytes:
    async with http.post(
        url + "/v1/chat/completions",
        json={**CHAT, "stream": True},
        headers={**AUTH, **headers},
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as r:
        return await r.read()


async def test_stall_after_keeps_the_stream_open(
    http: aiohttp.ClientSession, fakes: FakeUpstreams
) -> None:
    events: list[bytes] = []
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(
            fakes["a"].url + "/v1/chat/completions",
            json={**CHAT, "stream": True},
            headers={**AUTH, **script_headers(stall_after=2)},
            timeout=aiohttp.ClientTimeout(sock_read=0.2),
        ) as r:
            assert r.status == 200
            async for line in r.content:
                if line.startswith(b"data: "):
                    events.append(line)
    contents = [orjson.loads(e[6:])["choices"][0]["delta"].get("content") for e in events]
    assert contents == ["", "This", " is"]
    await wait_until(lambda: fakes["a"].in_flight == 0, 2, "the stalled handler to end")
    assert fakes["a"].disconnects == 1


async def test_usage_override(http: aiohttp.ClientSession, fakes: FakeUpstreams) -> None:
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 7,
        "cached_tokens": 40,
        "reasoning_tokens": 3,
    }
    _, _, body = await chat(http, fakes["a"].url, script_headers(usage=usage))
    assert orjson.loads(body)["usage"] == {
        "prompt_tokens": 100,
        "completion_tokens": 7,
        "total_tokens": 107,
        "prompt_tokens_details": {"cached_tokens": 40},
        "completion_tokens_details": {"reasoning_tokens": 3},
    }


async def test_expectations_met(http: aiohttp.ClientSession, fakes: FakeUpstreams) -> None:
    headers = script_headers(
        "a",
        expect_path="/v1/chat/completions",
        expect_headers={"authorization": "Bearer sk-up", "x-client-secret": None},
        expect_body={"messages": [{"role": "user"}], "stream": None},
        expect_model="gpt-4o",
        expect_query={"debug": None},
    )
    status, _, _ = await chat(http, fakes["a"].url, headers)
    assert status == 200


async def test_expectation_mismatch_is_400_with_a_diff(
    http: aiohttp.ClientSession, fakes: FakeUpstreams
) -> None:
    headers = {
        "x-client-secret": "leaked",
        **script_headers(
            expect_headers={"x-client-secret": None},
            expect_body={"messages": [{"content": "bye"}]},
            expect_model="gpt-4o-mini",
            expect_query={"api-version": "1"},
        ),
    }
    status, _, body = await chat(http, fakes["a"].url, headers)
    assert status == 400
    error = orjson.loads(body)["error"]
    assert error["type"] == "fake_expectation_failed"
    assert error["message"] == (
        "model: expected 'gpt-4o-mini', got 'gpt-4o'; "
        "query api-version: expected '1', got absent; "
        "header x-client-secret: expected absent, got 'leaked'; "
        "body messages[0].content: expected 'bye', got 'hi'"
    )


async def test_invalid_script_is_400(http: aiohttp.ClientSession, fakes: FakeUpstreams) -> None:
    status, _, body = await chat(http, fakes["a"].url, {"x-fake-status": "abc"})
    assert status == 400
    error = orjson.loads(body)["error"]
    assert error["type"] == "fake_script_invalid" and "x-fake-status" in error["message"]


async def test_defaults_set_in_python_and_over_http(
    http: aiohttp.ClientSession, fakes: FakeUpstreams
) -> None:
    fakes["a"].defaults = Script(status=500)
    assert (await chat(http, fakes["a"].url, {}))[0] == 500
    assert (await chat(http, fakes["a"].url, script_headers(status=200)))[0] == 200
    async with http.post(
        fakes["b"].url + "/_fake/script", json={"status": 503, "headers": {"retry-after": "1"}}
    ) as r:
        assert r.status == 200
    status, resp_headers, _ = await chat(http, fakes["b"].url, {})
    assert (status, resp_headers["retry-after"]) == (503, "1")
    async with http.post(fakes["b"].url + "/_fake/script", json={"status": "x"}) as r:
        assert r.status == 400
    async with http.post(fakes["b"].url + "/_fake/reset") as r:
        assert r.status == 200
    assert (await chat(http, fakes["b"].url, {}))[0] == 200


async def test_hang_without_handler_cancellation(http: aiohttp.ClientSession) -> None:
    """Served by a runner that does not cancel handlers, a hung one still sees its client leave."""
    app = build_fake_app("solo", defaults=Script(hang=True))
    runner = web.AppRunner(app, handler_cancellation=False, shutdown_timeout=0.1)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        with pytest.raises(asyncio.TimeoutError):
            await chat_with_timeout(http, f"http://{host}:{port}", {}, 0.1)
        state = app[FAKE_STATE]
        await wait_until(lambda: state.in_flight == 0, 2, "the hung handler to end")
        assert state.disconnects == 1
    finally:
        await runner.cleanup()


def test_script_headers_body_is_base64() -> None:
    assert script_headers(body=b"\x00\xff")["x-fake-body"] == base64.b64encode(b"\x00\xff").decode()
