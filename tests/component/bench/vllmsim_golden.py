"""Golden list of vLLM V1 metric families the simulator must expose.

Taken from vLLM's documentation and ``vllm/v1/metrics/loggers.py``
(``PrometheusStatLogger``): name as the Prometheus text parser reports the family
(counters without ``_total``), type, and label names (``le`` excluded). The
``cache_config_info`` labels are the ``CacheConfig.metrics_info()`` fields we emit.
"""

from __future__ import annotations

ENGINE = frozenset({"engine", "model_name"})

GOLDEN: dict[str, tuple[str, frozenset[str]]] = {
    "vllm:num_requests_running": ("gauge", ENGINE),
    "vllm:num_requests_waiting": ("gauge", ENGINE),
    "vllm:kv_cache_usage_perc": ("gauge", ENGINE),
    "vllm:prefix_cache_queries": ("counter", ENGINE),
    "vllm:prefix_cache_hits": ("counter", ENGINE),
    "vllm:num_preemptions": ("counter", ENGINE),
    "vllm:prompt_tokens": ("counter", ENGINE),
    "vllm:generation_tokens": ("counter", ENGINE),
    "vllm:request_success": ("counter", ENGINE | {"finished_reason"}),
    "vllm:time_to_first_token_seconds": ("histogram", ENGINE),
    "vllm:inter_token_latency_seconds": ("histogram", ENGINE),
    "vllm:e2e_request_latency_seconds": ("histogram", ENGINE),
    "vllm:request_queue_time_seconds": ("histogram", ENGINE),
    "vllm:cache_config_info": (
        "gauge",
        frozenset(
            {
                "block_size",
                "cache_dtype",
                "calculate_kv_scales",
                "cpu_offload_gb",
                "enable_prefix_caching",
                "engine",
                "gpu_memory_utilization",
                "is_attention_free",
                "num_cpu_blocks",
                "num_gpu_blocks",
                "num_gpu_blocks_override",
                "prefix_caching_hash_algo",
                "sliding_window",
                "swap_space",
            }
        ),
    ),
    "vllm:lora_requests_info": (
        "gauge",
        frozenset({"max_lora", "running_lora_adapters", "waiting_lora_adapters"}),
    ),
}

HELP = {
    "vllm:num_requests_running": "Number of requests in model execution batches.",
    "vllm:num_requests_waiting": "Number of requests waiting to be processed.",
    "vllm:kv_cache_usage_perc": "KV-cache usage. 1 means 100 percent usage.",
    "vllm:prefix_cache_queries": "Prefix cache queries, in terms of number of queried tokens.",
    "vllm:prefix_cache_hits": "Prefix cache hits, in terms of number of cached tokens.",
    "vllm:num_preemptions": "Cumulative number of preemption from the engine.",
    "vllm:prompt_tokens": "Number of prefill tokens processed.",
    "vllm:generation_tokens": "Number of generation tokens processed.",
    "vllm:request_success": "Count of successfully processed requests.",
    "vllm:time_to_first_token_seconds": "Histogram of time to first token in seconds.",
    "vllm:inter_token_latency_seconds": "Histogram of inter-token latency in seconds.",
    "vllm:e2e_request_latency_seconds": "Histogram of e2e request latency in seconds.",
    "vllm:request_queue_time_seconds": "Histogram of time spent in WAITING phase for request.",
    "vllm:cache_config_info": "Information of the LLMEngine CacheConfig",
    "vllm:lora_requests_info": "Running stats on lora requests.",
}

BUCKETS = {
    "vllm:time_to_first_token_seconds": [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25,
                                         0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
                                         160.0, 640.0, 2560.0],
    "vllm:inter_token_latency_seconds": [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
                                         0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0],
    "vllm:e2e_request_latency_seconds": [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0,
                                         30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0,
                                         1920.0, 7680.0],
}  # fmt: skip
BUCKETS["vllm:request_queue_time_seconds"] = BUCKETS["vllm:e2e_request_latency_seconds"]


def check_exposition(text: str) -> dict[str, dict[frozenset[tuple[str, str]], float]]:
    """Assert ``text`` matches the golden list; return sample values by name and labels."""
    from prometheus_client.parser import text_string_to_metric_families

    seen: dict[str, tuple[str, frozenset[str]]] = {}
    values: dict[str, dict[frozenset[tuple[str, str]], float]] = {}
    for fam in text_string_to_metric_families(text):
        if fam.name.endswith("_created") and fam.type == "gauge":
            continue  # prometheus-client's companion series of counters and histograms
        labels = frozenset(k for s in fam.samples for k in s.labels if k != "le")
        seen[fam.name] = (fam.type, labels)
        assert fam.documentation == HELP[fam.name], fam.name
        if fam.name in BUCKETS:
            les = sorted({float(s.labels["le"]) for s in fam.samples if s.name.endswith("_bucket")})
            assert les == [*BUCKETS[fam.name], float("inf")], fam.name
        for s in fam.samples:
            values.setdefault(s.name, {})[frozenset(s.labels.items())] = s.value
    assert seen == GOLDEN
    return values
