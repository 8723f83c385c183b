"""tier1's metrics: OpenTelemetry GenAI names in Prometheus form, plus strata_*.

One registry per process (on the app), shared with the config agent's metrics.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# bucket bounds recommended by the OTel GenAI semantic conventions
TOKEN_BUCKETS = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)

GENAI = [
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_response_model",
]


MAX_CACHED_CHILDREN = 10_000


class Tier1Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.tokens = Histogram(
            "gen_ai_client_token_usage",
            "Tokens used per request, by token type",
            [*GENAI, "gen_ai_token_type"],
            buckets=TOKEN_BUCKETS,
            registry=registry,
        )
        self.duration = Histogram(
            "gen_ai_server_request_duration_seconds",
            "Request duration as the client sees it",
            [*GENAI, "error_type"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Time to the first streamed byte of the answer",
            GENAI,
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.tpot = Histogram(
            "gen_ai_server_time_per_output_token_seconds",
            "Time per output token after the first",
            GENAI,
            buckets=TPOT_BUCKETS,
            registry=registry,
        )
        self.requests = Counter(
            "strata_requests",
            "Requests by route, final backend and status",
            ["route", "backend", "code"],
            registry=registry,
        )
        self.attempts = Counter(
            "strata_upstream_attempts",
            "Upstream attempts by backend and outcome",
            ["backend", "outcome"],
            registry=registry,
        )
        self.cooldown = Gauge(
            "strata_backend_cooldown",
            "1 while a backend is skipped after consecutive failures",
            ["backend"],
            registry=registry,
        )
        self.overhead = Histogram(
            "strata_overhead_seconds",
            "Request time minus time waiting on upstreams",
            buckets=OVERHEAD_BUCKETS,
            registry=registry,
        )

    def child(self, metric: Any, *values: str) -> Any:
        """`metric.labels(*values)`, memoized: prometheus_client's own lookup takes a lock
        and validates the labels on every call, which shows on the request path."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = metric.labels(*values)
            if len(self._children) < MAX_CACHED_CHILDREN:
                self._children[key] = found
        return found
