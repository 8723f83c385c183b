"""extract.parse on the simulator's real /metrics text, and on missing or garbled families."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.vllmsim.engine import EngineConfig, SchedulerStats
from bench.vllmsim.metrics import PodMetrics
from tier2.datalayer.extract import missing_families, parse
from tier2.datalayer.mappings import SGLANG, VLLM, mapping_for
from tier2.datalayer.types import EndpointMetrics


def sim_text(
    *, max_loras: int = 0, lora_series: dict[tuple[str, str], float] | None = None
) -> bytes:
    cfg = EngineConfig.from_profile("gie-8b", max_loras=max_loras, num_gpu_blocks=1234)
    pod = PodMetrics(cfg, created=1.0)
    pod.stats = SchedulerStats(
        time=5.0,
        num_running=7,
        num_waiting=3,
        kv_cache_usage=0.625,
        prefix_cache_queries=1000,
        prefix_cache_hits=400,
        num_preemptions=2,
        prompt_tokens=5000,
        generation_tokens=800,
    )
    for key, ts in (lora_series or {}).items():
        pod.lora_series[key] = ts
    return pod.render()


def test_parses_the_simulators_exposition() -> None:
    m = parse(sim_text(), VLLM, scraped_at=9.0)
    assert m == EndpointMetrics(
        scraped_at=9.0,
        waiting=3,
        running=7,
        kv_usage=0.625,
        block_size=16,
        num_gpu_blocks=1234,
        prefix_queries=1000.0,
        prefix_hits=400.0,
    )
    # LoRA disabled: the family is absent, so adapters are unknown, not empty
    assert m.running_loras is None and m.max_lora is None
    assert missing_families(m, VLLM) == ("vllm:lora_requests_info",)


def test_lora_takes_the_newest_series_by_value() -> None:
    text = sim_text(
        max_loras=4,
        lora_series={("a,b", "c"): 100.0, ("sql", ""): 300.0, ("x", "y,z"): 200.0},
    )
    m = parse(text.decode(), VLLM, scraped_at=0.0)
    assert m.running_loras == ("sql",)
    assert m.waiting_loras == ()
    assert m.max_lora == 4


def test_lora_family_without_series_is_unknown() -> None:
    m = parse(sim_text(max_loras=2), VLLM, 0.0)
    assert m.running_loras is None and m.max_lora is None


BASE = """# HELP vllm:num_requests_running x
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 4.0
vllm:num_requests_waiting{engine="0",model_name="m"} 1.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5
"""


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        # counters with and without _total; _created never counts
        ('vllm:prefix_cache_hits_total{engine="0"} 12.0\n', "prefix_hits", 12.0),
        ('vllm:prefix_cache_hits{engine="0"} 12.0\n', "prefix_hits", 12.0),
        ('vllm:prefix_cache_hits_created{engine="0"} 1.7e9\n', "prefix_hits", None),
        # data-parallel ranks: counts summed, usage averaged, blocks summed
        ('vllm:num_requests_running{engine="1",model_name="m"} 6.0\n', "running", 10),
        ('vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.7\n', "kv_usage", 0.6),
        (
            'vllm:cache_config_info{block_size="32",engine="0",num_gpu_blocks="100"} 1.0\n'
            'vllm:cache_config_info{block_size="32",engine="1",num_gpu_blocks="50"} 1.0\n',
            "num_gpu_blocks",
            150,
        ),
        # garbled samples are skipped, not read as 0
        ("vllm:num_requests_running_extra 9\n", "running", 4),
        ('vllm:prefix_cache_queries{engine="0"} lots\n', "prefix_queries", None),
        ('vllm:prefix_cache_queries{engine="0" 5\n', "prefix_queries", None),
        ("vllm:prefix_cache_queries\n", "prefix_queries", None),
        ('vllm:prefix_cache_queries{engine="0"} NaN\n', "prefix_queries", None),
        ('vllm:prefix_cache_queries{engine="0"} -3\n', "prefix_queries", None),
        ('vllm:cache_config_info{block_size="None",num_gpu_blocks="x"} 1.0\n', "block_size", None),
        # no labels at all, and a sample timestamp
        ("vllm:prefix_cache_queries 7 1700000000000\n", "prefix_queries", 7.0),
        # a usage above 1 is clamped
        ('vllm:kv_cache_usage_perc{engine="1",model_name="m"} 3\n', "kv_usage", 0.75),
    ],
)
def test_families_table(text: str, field: str, expected: object) -> None:
    m = parse(BASE + text, VLLM, 0.0)
    got = getattr(m, field)
    assert got == (pytest.approx(expected) if isinstance(expected, float) else expected)


def test_missing_family_is_none_never_zero() -> None:
    m = parse('vllm:num_requests_running{engine="0"} 2\n', VLLM, 1.0)
    assert m.running == 2
    assert m.waiting is None and m.kv_usage is None and m.num_gpu_blocks is None
    assert "vllm:num_requests_waiting" in missing_families(m, VLLM)


def test_renamed_metric_is_not_read() -> None:
    # vLLM's old name must not stand in for the new one (inference-picking.md §7.7)
    m = parse('vllm:gpu_cache_usage_perc{engine="0"} 0.4\n', VLLM, 0.0)
    assert m.kv_usage is None


def test_escaped_label_values() -> None:
    text = (
        'vllm:lora_requests_info{max_lora="2",running_lora_adapters="a\\"q,b",'
        'waiting_lora_adapters=""} 5\n'
    )
    m = parse(text, VLLM, 0.0)
    assert m.running_loras == ('a"q', "b")


def test_sglang_names() -> None:
    text = (
        'sglang:num_queue_reqs{model_name="m"} 2\n'
        'sglang:num_running_reqs{model_name="m"} 5\n'
        'sglang:token_usage{model_name="m"} 0.25\n'
        'sglang:cache_config_info{page_size="1",num_pages="9000"} 1\n'
        'sglang:cached_tokens_total{model_name="m"} 70\n'
        'sglang:prompt_tokens_total{model_name="m"} 100\n'
    )
    m = parse(text, SGLANG, 0.0)
    assert (m.waiting, m.running, m.kv_usage) == (2, 5, 0.25)
    assert (m.block_size, m.num_gpu_blocks) == (1, 9000)
    assert (m.prefix_hits, m.prefix_queries) == (70.0, 100.0)
    assert missing_families(m, SGLANG) == ()


@pytest.mark.parametrize(
    ("engine", "expected"), [("vllm", VLLM), ("sglang", SGLANG), (None, VLLM), ("trt", VLLM)]
)
def test_mapping_for(engine: str | None, expected: object) -> None:
    assert mapping_for(engine) is expected


@given(st.text(max_size=400))
def test_any_text_parses_without_error(text: str) -> None:
    m = parse(BASE + text, VLLM, 0.0)
    assert m.kv_usage is None or 0.0 <= m.kv_usage <= 1.0
