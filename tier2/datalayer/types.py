"""What the datalayer knows about an endpoint: plain, immutable values (pure).

`EndpointMetrics` is one successful scrape, parsed. Every field is None when the pod
did not expose the family ("unknown", never 0). `EndpointState` adds what the poller
knows about scraping itself, so a failed scrape is visible apart from a missing metric
and the last good metrics keep their own timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MetricMapping:
    """Metric family names of one engine type (data, not branches)."""

    engine: str
    waiting: str
    running: str
    kv_usage: str
    cache_config: str | None
    """Info gauge with labels `block_size` and `num_gpu_blocks`."""
    lora_info: str | None
    """Info gauge with labels `running_lora_adapters`, `waiting_lora_adapters`,
    `max_lora`; the newest series (highest value = timestamp) wins."""
    prefix_queries: str | None
    prefix_hits: str | None
    """Counters, named without `_total`: both spellings are read."""
    block_size_label: str = "block_size"
    """Label of `cache_config` giving tokens per KV block (SGLang: `page_size`)."""
    num_blocks_label: str = "num_gpu_blocks"
    """Label of `cache_config` giving the KV capacity in blocks (SGLang: `num_pages`)."""


@dataclass(frozen=True, slots=True)
class EndpointMetrics:
    scraped_at: float
    """Monotonic time the scrape that produced these values completed."""
    waiting: int | None = None
    running: int | None = None
    kv_usage: float | None = None
    """Fraction in [0, 1]."""
    block_size: int | None = None
    num_gpu_blocks: int | None = None
    running_loras: tuple[str, ...] | None = None
    waiting_loras: tuple[str, ...] | None = None
    max_lora: int | None = None
    prefix_queries: float | None = None
    """Counter: prompt tokens looked up in the prefix cache since the pod started."""
    prefix_hits: float | None = None
    """Counter: of those, tokens found cached."""


@dataclass(frozen=True, slots=True)
class EndpointState:
    """One endpoint as scheduling sees it: identity, last good metrics, scrape health."""

    id: str
    """`host:port`; also the value of x-gateway-destination-endpoint."""
    metrics: EndpointMetrics | None = None
    """Last good scrape (None until the first one succeeds)."""
    last_attempt_at: float = 0.0
    last_error: str | None = None
    """Error of the newest scrape attempt, None if it succeeded."""
    consecutive_failures: int = 0
    healthy: bool = True
    """False after repeated failed scrapes or a failed connect from the proxy."""

    def age(self, now: float) -> float:
        """Seconds since the last good scrape (inf if none)."""
        return now - self.metrics.scraped_at if self.metrics else float("inf")
