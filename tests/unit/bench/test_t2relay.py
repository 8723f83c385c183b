"""bench.tier2_bench.relay and its paced pod stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from bench.tier2_bench import relay
from bench.tier2_bench.relay_pod import serve
from common import jsonutil
from control.embedded import free_port


@pytest.fixture
async def pod() -> AsyncIterator[str]:
    port = free_port()
    ready = asyncio.Event()
    task = asyncio.create_task(serve(port, "m", 0.002, ready))
    await asyncio.wait_for(ready.wait(), 5)
    yield f"http://127.0.0.1:{port}/v1"
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_the_pod_streams_paced_vllm_chunks_to_the_openai_sdk(pod: str) -> None:
    client = openai.AsyncOpenAI(base_url=pod, api_key="none", max_retries=0)
    stream = await client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == " token" * 5
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    whole = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=3
    )
    assert whole.choices[0].message.content == " token" * 3
    with pytest.raises(openai.BadRequestError, match="does not exist"):
        await client.chat.completions.create(
            model="other", messages=[{"role": "user", "content": "hi"}]
        )
    await client.close()


def test_summary_takes_medians_and_the_ratio_per_round() -> None:
    def row(cpu: float) -> dict[str, float]:
        return {"tokens_per_s": 100.0, "cpu_us_per_token": cpu, "cpu_busy": 0.1, "errors": 0}

    rounds = [
        {"direct": row(1), "bare": row(50), "tier2": row(60)},
        {"direct": row(1), "bare": row(40), "tier2": row(60)},
        {"direct": row(1), "bare": row(60), "tier2": row(66)},
    ]
    out = relay.summarize(rounds)
    assert out["bare"]["cpu_us_per_token"] == 50
    assert out["tier2"]["ratio_to_bare"] == pytest.approx(1.2)  # of 1.2, 1.5, 1.1


@pytest.mark.slow
def test_a_tiny_real_run_relays_through_both_proxies(tmp_path: Path) -> None:
    out = tmp_path / "relay"
    argv = ["--streams", "8", "--interval-ms", "5", "--tokens", "20", "--seconds", "1"]
    argv += ["--warmup-s", "0.5", "--rounds", "1", "--out", str(out)]
    assert relay.main(argv) == 0
    doc = jsonutil.loads(out.with_suffix(".json").read_bytes())
    for name in relay.TARGETS:
        assert doc["summary"][name]["tokens_per_s"] > 100
        assert doc["summary"][name]["errors"] == 0
    assert "| tier2 |" in out.with_suffix(".md").read_text()
