"""Metric family names per engine type: data, not branches (pure).

The picker reads the same concepts from every engine (queued requests, running requests,
KV usage, KV block size and count, LoRA adapters, prefix-cache counters); only the names
differ. A pool's `engine` picks the mapping; an unknown engine falls back to vLLM, the
default engine of GIE and llm-d. Names follow vLLM V1's `PrometheusStatLogger` and GIE's
`core-metrics-extractor` built-ins (inference-picking.md §1.2, §1.4).

Counters are named without the `_total` suffix: the parser accepts both spellings, since
prometheus-client adds `_total` on exposition and older exporters did not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from tier2.datalayer.types import MetricMapping

VLLM: Final = MetricMapping(
    engine="vllm",
    waiting="vllm:num_requests_waiting",
    running="vllm:num_requests_running",
    kv_usage="vllm:kv_cache_usage_perc",
    cache_config="vllm:cache_config_info",
    lora_info="vllm:lora_requests_info",
    prefix_queries="vllm:prefix_cache_queries",
    prefix_hits="vllm:prefix_cache_hits",
)

SGLANG: Final = MetricMapping(
    engine="sglang",
    waiting="sglang:num_queue_reqs",
    running="sglang:num_running_reqs",
    kv_usage="sglang:token_usage",
    cache_config="sglang:cache_config_info",
    lora_info=None,
    # SGLang counts prompt tokens and, of those, the cached ones (TokenizerMetricsCollector).
    prefix_queries="sglang:prompt_tokens",
    prefix_hits="sglang:cached_tokens",
    block_size_label="page_size",
    num_blocks_label="num_pages",
)

DEFAULT_ENGINE: Final = "vllm"
MAPPINGS: Final[Mapping[str, MetricMapping]] = {"vllm": VLLM, "sglang": SGLANG}


def mapping_for(engine: str | None) -> MetricMapping:
    """The mapping of an engine type; the default (vLLM) for None or an unknown type."""
    return MAPPINGS.get(engine or DEFAULT_ENGINE, MAPPINGS[DEFAULT_ENGINE])
