"""Metrics of one quota replica, on its own registry (no process-global state).

Counters move as Syncs and checkpoints happen; the table-derived gauges (keys, holders,
remaining budget of the keys closest to their limit, checkpoint lag) are computed at
scrape time by a collector, so the Sync path never pays for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from common.clock import Clock
from common.quota.table import QuotaTable, SyncStats

TOP_KEYS = 20


class QuotaServiceMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.syncs = Counter(
            "strata_quota_syncs",
            "Sync calls answered, by result (ok, invalid)",
            ["result"],
            registry=self.registry,
        )
        self.granted = Counter(
            "strata_quota_lease_granted_units",
            "Quota units newly allotted to holders",
            registry=self.registry,
        )
        self.returned = Counter(
            "strata_quota_lease_returned_units",
            "Quota units holders gave back (allotment shrunk or not renewed)",
            registry=self.registry,
        )
        self.checkpoint_writes = Counter(
            "strata_quota_checkpoint_writes",
            "Checkpoint transactions committed to the store (each up to 64 counters)",
            registry=self.registry,
        )
        self.checkpoint_errors = Counter(
            "strata_quota_checkpoint_errors",
            "Checkpoint rounds (write, delete or initial load) that failed",
            registry=self.registry,
        )
        self._ok = self.syncs.labels("ok")
        self._invalid = self.syncs.labels("invalid")

    def synced(self, stats: SyncStats) -> None:
        self._ok.inc()
        if stats.granted:
            self.granted.inc(stats.granted)
        if stats.returned:
            self.returned.inc(stats.returned)

    def invalid(self) -> None:
        self._invalid.inc()

    def watch_table(
        self, table: QuotaTable, clock: Clock, lag: Callable[[], float | None] | None = None
    ) -> None:
        """Export the table's gauges (and the checkpoint lag, when there is a store)."""
        self.registry.register(TableCollector(table, clock, lag))


class TableCollector(Collector):
    def __init__(
        self, table: QuotaTable, clock: Clock, lag: Callable[[], float | None] | None
    ) -> None:
        self._table = table
        self._clock = clock
        self._lag = lag

    def describe(self) -> list[Metric]:
        # no samples at registration: the table is read only when scraped
        return []

    def collect(self) -> Iterator[Metric]:
        now = self._clock.monotonic()
        keys = GaugeMetricFamily("strata_quota_keys", "Counters held in memory")
        keys.add_metric([], len(self._table.counters))
        yield keys
        holders = GaugeMetricFamily(
            "strata_quota_holders", "tier1 processes that sent a Sync recently"
        )
        holders.add_metric([], self._table.active_holders(now))
        yield holders
        remaining = GaugeMetricFamily(
            "strata_quota_remaining",
            f"Units left (limit - consumed - allotted) of the {TOP_KEYS} keys closest "
            "to their limit",
            labels=["key"],
        )
        for key, _limit, left in self._table.top(TOP_KEYS, now):
            # keys join their parts with the unit separator; show them readably
            remaining.add_metric([key.replace("\x1f", ",")], left)
        yield remaining
        seconds = self._lag() if self._lag is not None else None
        if seconds is not None:
            lag = GaugeMetricFamily(
                "strata_quota_checkpoint_lag_seconds",
                "Seconds since the store last held every long-window counter (what a "
                "crash now would lose, at most)",
            )
            lag.add_metric([], seconds)
            yield lag
