"""The simulator's HTTP server against the official openai SDK and raw aiohttp."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from vllmsim_golden import check_exposition  # type: ignore[import-not-found]

from bench.vllmsim import tokenizer as tk
from bench.vllmsim.clock import ManualClock
from bench.vllmsim.engine import Engine, EngineConfig, RequestSpec
from bench.vllmsim.faults import FaultSpec
from bench.vllmsim.metrics import PodMetrics
from bench.vllmsim.pods import SimPods, start_pods
from bench.vllmsim.server import SimConfig

MODEL = "sim-llama-8b"


@pytest.fixture
async def pods() -> AsyncIterator[SimPods]:
    handle = await start_pods(SimConfig(speed=20, max_loras=1, loras=("sql",)), n=2)
    try:
        yield handle
    finally:
        await handle.close()


@pytest.fixture
async def client(pods: SimPods) -> AsyncIterator[openai.AsyncOpenAI]:
    c = openai.AsyncOpenAI(base_url=pods.urls[0] + "/v1", api_key="unused", max_retries=0)
    try:
        yield c
    finally:
        await c.close()


async def test_chat_non_streaming(client: openai.AsyncOpenAI) -> None:
    r = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=12,
        extra_body={"ignore_eos": True},
    )
    assert r.object == "chat.completion"
    assert r.choices[0].finish_reason == "length"
    text = r.choices[0].message.content
    assert text is not None and len(tk.encode(text)) == 12
    assert r.usage is not None and r.usage.completion_tokens == 12
    assert r.usage.prompt_tokens == len(tk.encode_chat([{"role": "user", "content": "hello"}]))


async def test_chat_streaming_with_usage(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "stream please"}],
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(tk.encode(content)) == 8
    finals = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finals[-1] == "length" and all(f is None for f in finals[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 8


async def test_chat_stream_role_chunk_comes_with_the_first_token(pods: SimPods) -> None:
    # vLLM sends nothing of the body before the first engine output: a proxy may take the
    # first byte as the end of prefill.
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "word " * 2000}],
        "max_tokens": 4,
        "stream": True,
        "ignore_eos": True,
    }
    async with (
        aiohttp.ClientSession(pods.urls[0]) as s,
        s.post("/v1/chat/completions", json=body) as r,
    ):
        assert r.status == 200
        first = await r.content.readany()
        rest = await r.content.read()
    events = [e for e in first.split(b"\n\n") if e]
    assert b'"role":"assistant"' in events[0]
    assert len(events) >= 2 and b'"content":"' in events[1] and b'"content":""' not in events[1]
    assert b'"role"' not in rest


async def test_completions_both_ways(client: openai.AsyncOpenAI) -> None:
    r = await client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5)
    assert r.usage is not None
    assert r.usage.completion_tokens <= 5
    stream = await client.completions.create(
        model=MODEL,
        prompt="Once upon a time",
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6


async def test_models_and_lora_admin(pods: SimPods, client: openai.AsyncOpenAI) -> None:
    ids = [m.id async for m in client.models.list()]
    assert ids == [MODEL, "sql"]
    async with aiohttp.ClientSession(pods.urls[0]) as s:
        r = await s.post("/v1/load_lora_adapter", json={"lora_name": "tweet", "lora_path": "/x"})
        assert r.status == 200
        r = await s.post("/v1/load_lora_adapter", json={"lora_name": "tweet", "lora_path": "/x"})
        assert r.status == 400
        assert [m.id async for m in client.models.list()] == [MODEL, "sql", "tweet"]
        r = await s.post("/v1/unload_lora_adapter", json={"lora_name": "tweet"})
        assert r.status == 200
        r = await s.post("/v1/unload_lora_adapter", json={"lora_name": "tweet"})
        assert r.status == 404
    r2 = await client.chat.completions.create(
        model="sql", messages=[{"role": "user", "content": "select"}], max_tokens=3
    )
    assert r2.model == "sql"


async def test_errors_are_shaped_like_vllm(pods: SimPods, client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "word " * 9000}], max_tokens=10
        )
    assert "This model's maximum context length is 8192 tokens" in str(exc.value)
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}], max_tokens=2
        )
    async with aiohttp.ClientSession(pods.urls[0]) as s:
        for body in (
            b"{not json",
            b"[]",
            b'{"model": "sim-llama-8b"}',
            b'{"model": "sim-llama-8b", "messages": [{"role": 1}]}',
            b'{"model": "sim-llama-8b", "messages": [], "max_tokens": "x"}',
        ):
            r = await s.post("/v1/chat/completions", data=body)
            assert r.status == 400, body
            assert (await r.json())["error"]["code"] == 400
        r = await s.post("/v1/completions", data=b'{"model": "sim-llama-8b", "prompt": 5}')
        assert r.status == 400
        assert (await s.get("/health")).status == 200


async def test_cached_tokens_and_restart_clears_cache(pods: SimPods) -> None:
    msgs: list[Any] = [
        {"role": "system", "content": "Shared preamble. " * 80},
        {"role": "user", "content": "q"},
    ]
    c = openai.AsyncOpenAI(base_url=pods.urls[1] + "/v1", api_key="x", max_retries=0)
    try:

        async def cached() -> int:
            r = await c.chat.completions.create(model=MODEL, messages=msgs, max_tokens=2)
            assert r.usage is not None and r.usage.prompt_tokens_details is not None
            return r.usage.prompt_tokens_details.cached_tokens or 0

        assert await cached() == 0
        assert await cached() > 300
        await pods.restart(1)
        assert await cached() == 0
    finally:
        await c.close()


async def test_metrics_over_http_match_golden(pods: SimPods, client: openai.AsyncOpenAI) -> None:
    await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    async with aiohttp.ClientSession(pods.urls[0]) as s:
        r = await s.get("/metrics")
        assert r.status == 200
        values = check_exposition(await r.text())
    eng = frozenset({("engine", "0"), ("model_name", MODEL)})
    assert values["vllm:time_to_first_token_seconds_count"][eng] == 1


def test_direct_render_matches_golden() -> None:
    cfg = EngineConfig.from_profile("gie-8b", max_loras=2)
    clock = ManualClock()
    engine = Engine(cfg, clock, __import__("random").Random(0))
    metrics = PodMetrics(cfg, created=0.0)
    engine.add_request(RequestSpec("a", list(range(100, 200)), 5))
    while engine.has_work():
        res = engine.step(clock.now())
        assert res is not None
        clock.t = res.plan.end
        metrics.record_step(res, 1.0)
    check_exposition(metrics.render().decode())


async def test_faults(pods: SimPods) -> None:
    url = pods.urls[0]
    body = {"model": MODEL, "prompt": "x", "max_tokens": 2}
    async with aiohttp.ClientSession(url) as s:
        r = await s.post("/sim/faults", json={"error_rate": 1.0})
        assert r.status == 200 and (await r.json())["error_rate"] == 1.0
        r = await s.post("/v1/completions", json=body)
        assert r.status == 500
        pods.set_faults(0, FaultSpec(hang_rate=1.0))
        with pytest.raises(asyncio.TimeoutError):
            async with asyncio.timeout(0.3):
                await s.post("/v1/completions", json=body)
        pods.set_faults(0, FaultSpec(stall_rate=1.0, stall_ms=300))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        r = await s.post("/v1/completions", json=body)
        assert r.status == 200 and loop.time() - t0 >= 0.3
        r = await s.post("/sim/faults", json={"nope": 1})
        assert r.status == 400


async def test_crash_after_n_requests() -> None:
    async with await start_pods(SimConfig(speed=20, faults=FaultSpec(crash_after=2)), n=1) as p:
        body = {"model": MODEL, "prompt": "x", "max_tokens": 2}
        async with aiohttp.ClientSession(p.urls[0]) as s:
            for _ in range(2):
                assert (await s.post("/v1/completions", json=body)).status == 200
            with pytest.raises(aiohttp.ClientError):
                await s.post("/v1/completions", json=body)
            await asyncio.sleep(0.05)
            with pytest.raises(aiohttp.ClientError):
                await s.get("/health")


async def test_echo_mode() -> None:
    async with await start_pods(SimConfig(speed=20, mode="echo"), n=1) as p:
        c = openai.AsyncOpenAI(base_url=p.urls[0] + "/v1", api_key="x", max_retries=0)
        try:
            r = await c.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "repeat after me"}],
                max_tokens=50,
            )
            assert r.choices[0].message.content == "repeat after me"
            assert r.choices[0].finish_reason == "stop"
        finally:
            await c.close()


async def test_lora_request_waits_for_a_slot_over_http() -> None:
    cfg = SimConfig(speed=2, max_loras=1, loras=("a", "b"))
    async with await start_pods(cfg, n=1) as p:
        engine = p[0].engine
        c = openai.AsyncOpenAI(base_url=p.urls[0] + "/v1", api_key="x", max_retries=0)
        try:
            first = asyncio.ensure_future(
                c.chat.completions.create(
                    model="a",
                    messages=[{"role": "user", "content": "x"}],
                    max_tokens=40,
                    extra_body={"ignore_eos": True},
                )
            )
            while engine.last_stats.running_lora_adapters != ("a",):
                await asyncio.sleep(0.005)
            second = asyncio.ensure_future(
                c.chat.completions.create(
                    model="b", messages=[{"role": "user", "content": "y"}], max_tokens=2
                )
            )
            while not engine.last_stats.waiting_lora_adapters:
                await asyncio.sleep(0.005)
            assert engine.last_stats.waiting_lora_adapters == ("b",)
            assert engine.last_stats.num_waiting == 1
            await first
            await second
        finally:
            await c.close()
