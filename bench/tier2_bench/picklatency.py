"""Scenario (g): how long one ``PoolPicker.pick`` takes at 16 to 1,024 endpoints.

The picker is put in a production-like state first: every endpoint has scraped
metrics (a share of them re-scraped between picks, as staggered pollers deliver them),
the prefix index is warmed by routing b2b prompts (6,000-token system prompts, so
matches are long), and requests stay in flight (first byte, then finish with an answer,
oldest first) so the ledger is populated. Then ``time.perf_counter`` is read around
``pick`` alone, one call at a time (and ``time.thread_time``, the CPU it used, which
tells a slow pick from one preempted by other processes on a shared machine);
``build_request`` (hashing, once per request in
production as well) is timed separately. Virtual time advances 10 ms per request.
"""

from __future__ import annotations

import random
import time
from collections import deque
from typing import Any

from bench.tier2_bench.picker_router import endpoint_id, make_pool
from bench.tier2_bench.stats import percentile
from bench.tier2_bench.workloads import SharedPrefixCorpus
from bench.vllmsim import tokenizer
from bench.vllmsim.tokenizer import pseudo_output_ids
from common.config.pool import PluginConfig
from tier2.datalayer.types import EndpointMetrics, EndpointState
from tier2.picker import Pick, PoolPicker

__all__ = ["measure_pick_latency"]

_MODEL = "sim-llama-8b"
_STEP_S = 0.01


def _state(i: int, rng: random.Random, now: float) -> EndpointState:
    m = EndpointMetrics(
        scraped_at=now - rng.random() * 0.05,
        waiting=rng.choice((0, 0, 0, 1, 2)),
        running=rng.randint(5, 60),
        kv_usage=rng.uniform(0.2, 0.85),
        block_size=16,
        num_gpu_blocks=19208,
        running_loras=(),
        waiting_loras=(),
        max_lora=0,
        prefix_queries=0.0,
        prefix_hits=0.0,
    )
    return EndpointState(endpoint_id(i), m, last_attempt_at=m.scraped_at)


def measure_pick_latency(
    profile: str,
    num_endpoints: int,
    corpus: SharedPrefixCorpus,
    *,
    warm_picks: int,
    timed_picks: int,
    seed: int = 0,
    plugins: tuple[PluginConfig, ...] = (),
) -> dict[str, Any]:
    """Pick latency percentiles (microseconds) of ``profile`` at ``num_endpoints``."""
    rng = random.Random(f"pick-latency:{seed}:{num_endpoints}")
    picker = PoolPicker(
        make_pool(profile, num_endpoints, _MODEL, 0.05, plugins), random.Random(seed)
    )
    now = 1000.0
    picker.set_endpoints({endpoint_id(i): _state(i, rng, now) for i in range(num_endpoints)})
    answer = tokenizer.decode_pseudo(pseudo_output_ids(seed, 200))
    spec = corpus.spec
    inflight: deque[Pick] = deque()
    max_inflight = 8 * num_endpoints
    rescrape = max(1, num_endpoints // 10)
    pick_s: list[float] = []
    pick_cpu_s: list[float] = []
    build_s: list[float] = []
    for n in range(warm_picks + timed_picks):
        now += _STEP_S
        for _ in range(rescrape):
            i = rng.randrange(num_endpoints)
            picker.update_endpoint(_state(i, rng, now))
        g, u = rng.randrange(spec.groups), rng.randrange(spec.users)
        body = {
            "model": _MODEL,
            "messages": [corpus.systems[g].message, corpus.questions[g][u].message],
            "max_tokens": spec.output_tokens,
            "stream": True,
        }
        t0 = time.perf_counter()
        req = picker.build_request(body, request_id=f"r{n}", kind="chat")
        c1, t1 = time.thread_time(), time.perf_counter()
        pick = picker.pick(req, now)
        t2, c2 = time.perf_counter(), time.thread_time()
        if n >= warm_picks:
            build_s.append(t1 - t0)
            pick_s.append(t2 - t1)
            pick_cpu_s.append(c2 - c1)
        picker.first_byte(pick, now)
        inflight.append(pick)
        if len(inflight) > max_inflight:
            old = inflight.popleft()
            picker.finish(old, now, ok=True, generated_text=answer)
    return {
        "endpoints": num_endpoints,
        "policy": profile,
        "picks": len(pick_s),
        "pick_p50_us": 1e6 * percentile(pick_s, 0.5),
        "pick_p90_us": 1e6 * percentile(pick_s, 0.9),
        "pick_p99_us": 1e6 * percentile(pick_s, 0.99),
        "pick_max_us": 1e6 * max(pick_s),
        "pick_cpu_p50_us": 1e6 * percentile(pick_cpu_s, 0.5),
        "pick_cpu_p99_us": 1e6 * percentile(pick_cpu_s, 0.99),
        "build_request_p50_us": 1e6 * percentile(build_s, 0.5),
        "build_request_p99_us": 1e6 * percentile(build_s, 0.99),
    }
