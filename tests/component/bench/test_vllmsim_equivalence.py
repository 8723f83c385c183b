"""Virtual time and real time run the same engine: same tokens, same hits, same steps.

One seed, one workload (three conversations of three turns each, sent one request at a
time): over HTTP against a sped-up real-time pod, and in the discrete-event simulator.
Per-request token counts and cached tokens must be equal, and the sequences of step
durations equal within a small tolerance.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

from bench.vllmsim import tokenizer as tk
from bench.vllmsim.des import RequestRecord, SimRequest, Simulation
from bench.vllmsim.pods import start_pods
from bench.vllmsim.server import SimConfig

CONFIG = SimConfig(speed=25, seed=11, record_steps=True)
CONVERSATIONS = 3
TURNS = 3
SYSTEM = {"role": "system", "content": "You answer questions about distributed caches. " * 12}


def _user(conv: int, turn: int) -> dict[str, str]:
    return {"role": "user", "content": f"conversation {conv} turn {turn}: " + "why? " * (5 + turn)}


async def _real_time() -> tuple[list[tuple[int, int, int]], list[float]]:
    out: list[tuple[int, int, int]] = []
    async with await start_pods(CONFIG, n=1) as pods:
        client = openai.AsyncOpenAI(base_url=pods.urls[0] + "/v1", api_key="x", max_retries=0)
        try:
            for conv in range(CONVERSATIONS):
                msgs: list[Any] = [SYSTEM]
                for turn in range(1, TURNS + 1):
                    msgs.append(_user(conv, turn))
                    r = await client.chat.completions.create(
                        model=CONFIG.model,
                        messages=msgs,
                        max_tokens=64,
                    )
                    u = r.usage
                    assert u is not None and u.prompt_tokens_details is not None
                    out.append(
                        (
                            u.prompt_tokens,
                            u.completion_tokens,
                            u.prompt_tokens_details.cached_tokens or 0,
                        )
                    )
                    msgs.append({"role": "assistant", "content": r.choices[0].message.content})
        finally:
            await client.close()
        log = pods[0].runner.step_log
        assert log is not None
        return out, [d for _, d in log]


def _virtual_time() -> tuple[list[tuple[int, int, int]], list[float]]:
    sim = Simulation(CONFIG, 1, keep_output_ids=True, record_steps=True)

    def submit(conv: int, turn: int, msgs: list[dict[str, Any]], at: float) -> None:
        msgs = [*msgs, _user(conv, turn)]
        sim.submit(
            SimRequest(f"c{conv}t{turn}", tk.encode_chat(msgs), 64, at, payload=(conv, turn, msgs))
        )

    def on_finish(rec: RequestRecord, s: Simulation) -> None:
        conv, turn, msgs = rec.payload
        assert rec.output_token_ids is not None
        answer = {"role": "assistant", "content": tk.decode_pseudo(rec.output_token_ids)}
        if turn < TURNS:
            submit(conv, turn + 1, [*msgs, answer], rec.finish)
        elif conv + 1 < CONVERSATIONS:
            submit(conv + 1, 1, [SYSTEM], rec.finish)

    sim.on_finish = on_finish
    submit(0, 1, [SYSTEM], 0.0)
    records = sim.run()
    assert sim.step_log is not None
    return (
        [(r.prompt_tokens, r.output_tokens, r.cached_tokens) for r in records],
        [d for _, d in sim.step_log[0]],
    )


async def test_virtual_and_real_time_agree() -> None:
    real_reqs, real_steps = await _real_time()
    virt_reqs, virt_steps = _virtual_time()
    assert len(real_reqs) == CONVERSATIONS * TURNS
    assert real_reqs == virt_reqs
    assert any(cached > 0 for _, _, cached in virt_reqs)
    assert len(real_steps) == len(virt_steps)
    assert real_steps == pytest.approx(virt_steps, rel=1e-6, abs=1e-9)
