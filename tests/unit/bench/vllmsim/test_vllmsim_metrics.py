"""Metrics: values follow the engine; histogram semantics. (Golden names: component tests.)"""

from __future__ import annotations

import random

from prometheus_client.parser import text_string_to_metric_families

from bench.vllmsim.clock import ManualClock
from bench.vllmsim.engine import Engine, EngineConfig, RequestSpec
from bench.vllmsim.metrics import BucketHistogram, PodMetrics


def test_exposition_matches_golden_and_engine_state() -> None:
    cfg = EngineConfig.from_profile("gie-8b", max_loras=2, model_name="m")
    clock = ManualClock()
    engine = Engine(cfg, clock, random.Random(0))
    engine.add_lora("sql")
    metrics = PodMetrics(cfg, created=1000.0)
    engine.add_request(RequestSpec("a", list(range(100, 400)), 20, ignore_eos=True))
    engine.add_request(RequestSpec("b", list(range(100, 400)), 5, ignore_eos=True, lora="sql"))
    while engine.has_work():
        r = engine.step(clock.now())
        assert r is not None
        clock.t = r.plan.end
        metrics.record_step(r, wall_time=2000.0 + clock.t)
    values: dict[str, dict[frozenset[tuple[str, str]], float]] = {}
    for fam in text_string_to_metric_families(metrics.render().decode()):
        for s in fam.samples:
            values.setdefault(s.name, {})[frozenset(s.labels.items())] = s.value
    eng = frozenset({("engine", "0"), ("model_name", "m")})
    assert values["vllm:generation_tokens_total"][eng] == 25
    assert values["vllm:prompt_tokens_total"][eng] == 600
    assert values["vllm:prefix_cache_queries_total"][eng] == engine.prefix_queries
    assert values["vllm:num_requests_running"][eng] == 0
    assert values["vllm:time_to_first_token_seconds_count"][eng] == 2
    assert values["vllm:inter_token_latency_seconds_count"][eng] == 19 + 4
    ok = eng | {("finished_reason", "length")}
    assert values["vllm:request_success_total"][ok] == 2
    lora = values["vllm:lora_requests_info"]
    assert max(lora.values()) > 2000.0  # value is a timestamp
    assert any(("running_lora_adapters", "sql") in k for k in lora)


def test_lora_family_absent_without_lora() -> None:
    cfg = EngineConfig.from_profile("gie-8b")
    text = PodMetrics(cfg, created=0.0).render().decode()
    assert "vllm:lora_requests_info" not in text
    assert 'num_gpu_blocks="2810"' in text and 'block_size="16"' in text


def test_bucket_histogram_le_semantics() -> None:
    h = BucketHistogram([1.0, 2.0])
    for v in (0.5, 1.0, 1.5, 3.0):
        h.observe(v)
    assert h.cumulative() == [("1.0", 2.0), ("2.0", 3.0), ("+Inf", 4.0)]
    assert h.sum == 6.0
