"""The real-time benchmark end to end, tiny: a simulator process, the lean load generator."""

from __future__ import annotations

from bench.vllmsim.benchmark import run_real


async def test_real_benchmark_smoke() -> None:
    r = await run_real(
        pods=1, rate=20.0, seconds=1.0, max_tokens=8, sim_cpu=None, floor_seconds=0.3
    )
    assert r["requests_sent"] == r["requests_ok"] > 5 and r["errors"] == 0
    # every token reached the client as its own event, all through the fast path
    assert r["generated_tokens"] == r["client_token_events"] == r["client_usage_tokens"]
    assert r["tokens_measured"] == r["tokens_fast_path"] == r["generated_tokens"]
    assert r["tokens_slow_path"] == 0
    assert r["token_release_lateness_p99_ms"] is not None
    assert r["idle_timer_floor_p99_ms"] is not None and r["sim_cpu_ms_per_request"] > 0
    assert r["engine_ttft_mean_ms"] is not None and r["client_ttft_mean_ms"] is not None
