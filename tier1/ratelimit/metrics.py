"""Metrics of tier1's rate limiting (on the process registry)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from common.quota.lease import KeyState

LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4)


class QuotaMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.decisions = Counter(
            "strata_ratelimit_decisions_total",
            "Rate-limit decisions per policy: allowed, rejected, shadow_rejected (would "
            "have been rejected in enforce mode), fail_open (decided locally while the "
            "quota service was unreachable), fail_closed",
            ["policy", "result"],
            registry=registry,
        )
        self.granted = Counter(
            "strata_ratelimit_lease_granted_units_total",
            "Quota units newly allotted to this process",
            registry=registry,
        )
        self.returned = Counter(
            "strata_ratelimit_lease_returned_units_total",
            "Quota units this process gave back (allotment shrunk or expired unused)",
            registry=registry,
        )
        self.waits = Counter(
            "strata_ratelimit_lease_waits_total",
            "Admissions that found their lease short and waited for a Sync (a network "
            "round trip on the request path); steadily rising means allotments are sized "
            "too small for the demand or the Syncs come late",
            registry=registry,
        )
        self.lag = Histogram(
            "strata_ratelimit_reconcile_lag_seconds",
            "From a request's end to the quota service acknowledging its usage",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.up = Gauge(
            "strata_ratelimit_replica_up",
            "1 if the quota replica answered the last Sync",
            ["replica"],
            registry=registry,
        )
        self.remaining = Gauge(
            "strata_ratelimit_remaining",
            "Remaining budget of the busiest keys as this process sees it",
            ["key"],
            registry=registry,
        )
        self._children: dict[tuple[str, str], MetricWrapperBase] = {}

    def decision(self, policy: str, result: str) -> None:
        child = self._children.get((policy, result))
        if child is None:
            child = self._children[(policy, result)] = self.decisions.labels(policy, result)
        child.inc()  # type: ignore[attr-defined]

    def waited(self) -> None:
        self.waits.inc()

    def lease(self, delta: float) -> None:
        if delta > 0:
            self.granted.inc(delta)
        elif delta < 0:
            self.returned.inc(-delta)

    def reconciled(self, seconds: float) -> None:
        self.lag.observe(max(0.0, seconds))

    def top_remaining(self, keys: Iterable[KeyState], n: int = 10) -> None:
        busiest = sorted((st for st in keys if st.limit), key=lambda st: st.remaining() / st.limit)[
            :n
        ]
        self.remaining.clear()
        for st in busiest:
            self.remaining.labels(st.key.replace("\x1f", ",")).set(st.remaining())

    def replica_up(self, replica: str, up: bool) -> None:
        self.up.labels(replica).set(1 if up else 0)
