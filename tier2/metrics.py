"""tier2's Prometheus metrics, on the process registry shared with the config agent.

Per-endpoint series are removed when discovery drops the endpoint, so a pool whose pods
churn does not grow the exposition forever. Staleness and health are read from the
EndpointStore at scrape time (a collector), so they are exact whenever Prometheus asks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from tier2.datalayer.types import EndpointState
from tier2.picker import PickerStats

PICK_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
)
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Tier2Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.pick_duration = Histogram(
            "strata_pick_duration_seconds",
            "Time to score and pick an endpoint for one request",
            buckets=PICK_BUCKETS,
            registry=registry,
        )
        self.picks = Counter(
            "strata_tier2_picks",
            "Requests sent to each endpoint (retries after a failed connect included)",
            ["endpoint"],
            registry=registry,
        )
        self.requests = Counter(
            "strata_tier2_requests",
            "Requests answered, by HTTP status",
            ["code"],
            registry=registry,
        )
        self.queue_length = Gauge(
            "strata_tier2_queue_length",
            "Requests waiting in tier2 for pool capacity",
            ["priority"],
            registry=registry,
        )
        self.queue_wait = Histogram(
            "strata_tier2_queue_wait_seconds",
            "Time requests waited for pool capacity, by how the wait ended",
            ["priority", "outcome"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.rejected = Counter(
            "strata_tier2_rejected",
            "Requests refused by admission: shed (429) or overflow (503)",
            ["priority", "reason"],
            registry=registry,
        )
        self.connect_failures = Counter(
            "strata_tier2_connect_failures",
            "Failed connections to an endpoint before any byte (the next-best was tried)",
            ["endpoint"],
            registry=registry,
        )
        self.scrape_errors = Counter(
            "strata_tier2_scrape_errors",
            "Failed /metrics scrapes (unreachable, timeout, bad status, unparsable)",
            ["endpoint"],
            registry=registry,
        )
        self._per_endpoint: tuple[Any, ...] = (
            self.picks,
            self.connect_failures,
            self.scrape_errors,
        )

    def forget(self, endpoints: Iterable[str]) -> None:
        """Drop the series of endpoints that left the pool."""
        for endpoint in endpoints:
            for metric in self._per_endpoint:
                try:
                    metric.remove(endpoint)
                except KeyError:
                    pass

    def watch_endpoints(
        self, states: Callable[[], Mapping[str, EndpointState]], now: Callable[[], float]
    ) -> None:
        self.registry.register(_EndpointCollector(states, now))

    def watch_picker(self, stats: Callable[[], PickerStats | None]) -> None:
        self.registry.register(_PickerCollector(stats))


class _EndpointCollector(Collector):
    """Age of each endpoint's last good scrape, and whether it is in the pick set."""

    def __init__(
        self, states: Callable[[], Mapping[str, EndpointState]], now: Callable[[], float]
    ) -> None:
        self._states = states
        self._now = now

    def collect(self) -> Iterator[GaugeMetricFamily]:
        age = GaugeMetricFamily(
            "strata_tier2_endpoint_metrics_age_seconds",
            "Seconds since the endpoint's last good scrape (+Inf before the first)",
            labels=["endpoint"],
        )
        healthy = GaugeMetricFamily(
            "strata_tier2_endpoint_healthy",
            "1 if the endpoint may be picked (scrapes and connects succeed), else 0",
            labels=["endpoint"],
        )
        now = self._now()
        for endpoint, state in self._states().items():
            age.add_metric([endpoint], state.age(now))
            healthy.add_metric([endpoint], 1.0 if state.healthy else 0.0)
        yield age
        yield healthy

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


class _PickerCollector(Collector):
    """The picker's own counters: prefix hits predicted vs reported, decision reasons."""

    def __init__(self, stats: Callable[[], PickerStats | None]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        stats = self._stats()
        if stats is None:
            return
        predicted = CounterMetricFamily(
            "strata_tier2_prefix_predicted_tokens",
            "Prompt tokens the picker predicted cached on the endpoint it chose, over "
            "requests whose answer reported cached tokens",
            labels=["endpoint"],
        )
        actual = CounterMetricFamily(
            "strata_tier2_prefix_actual_tokens",
            "Prompt tokens those endpoints reported cached (usage.prompt_tokens_details)",
            labels=["endpoint"],
        )
        for endpoint, tokens in stats.predicted_cached_tokens.items():
            predicted.add_metric([endpoint], tokens)
        for endpoint, tokens in stats.actual_cached_tokens.items():
            actual.add_metric([endpoint], tokens)
        reasons = CounterMetricFamily(
            "strata_tier2_pick_reasons",
            "Picks by the rule that decided them (warm, ring, valve, max-score, ...)",
            labels=["reason"],
        )
        for reason, count in stats.reasons.items():
            reasons.add_metric([reason], count)
        yield predicted
        yield actual
        yield reasons

    def describe(self) -> Iterator[CounterMetricFamily]:
        return iter(())
