"""vLLM V1's Prometheus metrics, rendered from the engine's per-step snapshots.

Names, types, label names, HELP texts and histogram bucket bounds follow vLLM's
``vllm/v1/metrics/loggers.py`` (``PrometheusStatLogger``). Every engine family carries
``model_name`` and ``engine``; counters appear as ``*_total`` with a ``*_created``
companion and histograms as ``_bucket``/``_count``/``_sum``/``_created``, exactly as
prometheus-client writes them for vLLM.

Values are those of the last completed engine step (:class:`SchedulerStats`), which
is what a scrape of a real vLLM shows. Latency histograms are in *model* seconds, so a
sped-up simulator still reports the latencies of the hardware it stands for.

:class:`PodMetrics` is pure bookkeeping; :meth:`PodMetrics.render` produces the text
exposition through prometheus-client with a registry private to the pod (several pods
may live in one process).
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.samples import Sample

from bench.vllmsim.engine import EngineConfig, Request, SchedulerStats, StepResult

__all__ = [
    "E2E_BUCKETS",
    "FINISH_REASONS",
    "ITL_BUCKETS",
    "TTFT_BUCKETS",
    "BucketHistogram",
    "PodMetrics",
]

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
               7.5, 10.0, 20.0, 40.0, 80.0)  # fmt: skip
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
               60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip
FINISH_REASONS = ("stop", "length", "abort")
_MAX_LORA_SERIES = 32


class BucketHistogram:
    """Cumulative-bucket histogram with Prometheus ``le`` semantics."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        acc = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            acc += n
            out.append((repr(float(bound)), float(acc)))
        out.append(("+Inf", float(self.count)))
        return out


class PodMetrics:
    """Everything one pod's ``/metrics`` shows, updated once per engine step."""

    def __init__(self, config: EngineConfig, created: float) -> None:
        self.config = config
        self.created = created
        self.stats: SchedulerStats | None = None
        self.success = dict.fromkeys(FINISH_REASONS, 0)
        self.ttft = BucketHistogram(TTFT_BUCKETS)
        self.itl = BucketHistogram(ITL_BUCKETS)
        self.e2e = BucketHistogram(E2E_BUCKETS)
        self.queue = BucketHistogram(E2E_BUCKETS)
        self.lora_series: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)

    # --- recording -----------------------------------------------------------------

    def record_step(self, result: StepResult, wall_time: float) -> None:
        self.stats = result.stats
        for v in result.ttfts:
            self.ttft.observe(v)
        itl = self.itl
        for req in result.emitted:
            if req.num_output > 1:
                itl.observe(req.last_token_time - req.prev_token_time)
        for req in result.finished:
            self._record_finished(req)
        if self.config.max_loras > 0:
            key = (
                ",".join(result.stats.running_lora_adapters),
                ",".join(result.stats.waiting_lora_adapters),
            )
            self.lora_series[key] = wall_time
            self.lora_series.move_to_end(key)
            while len(self.lora_series) > _MAX_LORA_SERIES:
                self.lora_series.popitem(last=False)

    def record_abort(self, req: Request) -> None:
        self._record_finished(req)

    def _record_finished(self, req: Request) -> None:
        self.success[req.finish_reason] = self.success.get(req.finish_reason, 0) + 1
        self.e2e.observe(max(0.0, req.finish_time - req.arrival_time))
        if req.first_scheduled_time >= 0:
            self.queue.observe(max(0.0, req.first_scheduled_time - req.arrival_time))

    # --- exposition ----------------------------------------------------------------

    def render(self) -> bytes:
        """The text exposition (Prometheus 0.0.4 format)."""
        return generate_latest(self._registry)

    def collect(self) -> Iterator[Metric]:
        cfg = self.config
        labels = ["model_name", "engine"]
        values = [cfg.model_name, str(cfg.engine_index)]
        s = self.stats
        created = self.created

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=labels)
            g.add_metric(values, value)
            return g

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            c = CounterMetricFamily(name, doc, labels=labels)
            c.add_metric(values, value, created=created)
            return c

        def histogram(name: str, doc: str, h: BucketHistogram) -> HistogramMetricFamily:
            f = HistogramMetricFamily(name, doc, labels=labels)
            f.add_metric(values, h.cumulative(), h.sum)
            f.samples.append(
                Sample(name + "_created", dict(zip(labels, values, strict=True)), created)
            )
            return f

        yield gauge(
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            s.num_running if s else 0,
        )
        yield gauge(
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            s.num_waiting if s else 0,
        )
        yield gauge(
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
            s.kv_cache_usage if s else 0.0,
        )
        yield counter(
            "vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.",
            s.prefix_cache_queries if s else 0,
        )
        yield counter(
            "vllm:prefix_cache_hits",
            "Prefix cache hits, in terms of number of cached tokens.",
            s.prefix_cache_hits if s else 0,
        )
        yield counter(
            "vllm:num_preemptions",
            "Cumulative number of preemption from the engine.",
            s.num_preemptions if s else 0,
        )
        yield counter(
            "vllm:prompt_tokens", "Number of prefill tokens processed.", s.prompt_tokens if s else 0
        )
        yield counter(
            "vllm:generation_tokens",
            "Number of generation tokens processed.",
            s.generation_tokens if s else 0,
        )
        success = CounterMetricFamily(
            "vllm:request_success",
            "Count of successfully processed requests.",
            labels=[*labels, "finished_reason"],
        )
        for reason, n in self.success.items():
            success.add_metric([*values, reason], n, created=created)
        yield success
        yield histogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            self.ttft,
        )
        yield histogram(
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            self.itl,
        )
        yield histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            self.e2e,
        )
        yield histogram(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            self.queue,
        )
        info = self.cache_config_labels()
        cache = GaugeMetricFamily(
            "vllm:cache_config_info",
            "Information of the LLMEngine CacheConfig",
            labels=list(info),
        )
        cache.add_metric(list(info.values()), 1.0)
        yield cache
        if cfg.max_loras > 0:
            lora = GaugeMetricFamily(
                "vllm:lora_requests_info",
                "Running stats on lora requests.",
                labels=["max_lora", "waiting_lora_adapters", "running_lora_adapters"],
            )
            for (running, waiting), ts in self.lora_series.items():
                lora.add_metric([str(cfg.max_loras), waiting, running], ts)
            yield lora

    def cache_config_labels(self) -> dict[str, str]:
        """A subset of vLLM ``CacheConfig.metrics_info()``, values stringified as vLLM does."""
        cfg = self.config
        return {
            "block_size": str(cfg.block_size),
            "cache_dtype": "auto",
            "calculate_kv_scales": "False",
            "cpu_offload_gb": "0",
            "enable_prefix_caching": str(cfg.enable_prefix_caching),
            "engine": str(cfg.engine_index),
            "gpu_memory_utilization": str(cfg.gpu_memory_utilization),
            "is_attention_free": "False",
            "num_cpu_blocks": "None",
            "num_gpu_blocks": str(cfg.num_gpu_blocks),
            "num_gpu_blocks_override": "None",
            "prefix_caching_hash_algo": "sha256",
            "sliding_window": "None",
            "swap_space": "4",
        }
