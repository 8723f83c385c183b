"""Accuracy of global limits: 4 tier1 worker processes (`strata tier1 --workers 4`) and
2 quota replicas, every client on ONE key, at max rate, for the whole run.

1. Calibration: the same processes under a policy nothing reaches, consumer `calib`
   (a key of its own): admitted requests/s at max rate.
2. The limits are sized from it so the budget runs out after about 2/3 of the run: a
   requests limit, and a tokens limit (`input + 4*output`) worth exactly as many
   requests at the fake's fixed usage, in a window that does not roll during the run.
   tier1 restarts with that snapshot.
3. The run: `concurrency` keep-alive connections (spread over the 4 workers by
   SO_REUSEPORT) send back to back for `duration_s`. Counted: 2xx and 429 at the
   client, answers the fake upstream gave, what the quota replicas consumed, and from
   each worker's /metrics its decisions and strata_ratelimit_reconcile_lag_seconds.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.ratelimit_bench.config import (
    ACC_POLICY,
    CALIB_KEY,
    CLIENT_KEY,
    HUGE,
    LIMITED_MODEL,
    TOKEN_COST,
    Sizing,
    accuracy_docs,
    size_limits,
    stable_window,
    tier1_wire,
    usage_cost,
)
from bench.ratelimit_bench.stack import (
    REPLICA_BOOST,
    Replica,
    Stack,
    Tier1,
    metrics_text,
    pin_all,
)
from bench.ratelimit_bench.summary import (
    Histogram,
    accuracy_row,
    histogram,
    labelled,
    merge,
    milestones,
    sample,
    samples,
    token_estimate,
)
from bench.tier1_bench.load import request_body
from bench.tier1_bench.rawclient import Tally, start_workers
from common.config.ratelimit import parse_token_cost, parse_window

WORKERS = 4
LAG = "strata_ratelimit_reconcile_lag_seconds"
DECISIONS = "strata_ratelimit_decisions_total"
LEASE_WAITS = "strata_ratelimit_lease_waits_total"
"""Counted by tier1 builds that have it; NaN otherwise."""
Say = Callable[[str], None]


@dataclass
class StatusTally(Tally):
    """rawclient's tally, also counting each non-200 answer by its reason."""

    statuses: Counter[str] = field(default_factory=Counter)

    def error(self, what: str) -> None:
        super().error(what)
        self.statuses[what] += 1


def place(tier1: Tier1, replicas: list[Replica]) -> str:
    """Workers split evenly over the two cores, one replica per core (the replicas run
    ahead in priority, see Stack.start_replica). Returns the layout in words."""
    pids = tier1.workers or [tier1.child.pid]
    on: dict[int, list[str]] = {0: [], 1: []}
    for i, pid in enumerate(pids):
        cpu = i * 2 // len(pids)
        pin_all(pid, cpu)
        on[cpu].append(str(i))
    w0, w1 = ",".join(on[0]) or "none", ",".join(on[1]) or "none"
    return (
        f"CPU 0: tier1 worker(s) {w0}, quota replica A, fake upstream; CPU 1: tier1 "
        f"worker(s) {w1}, quota replica B, load generator; quota replicas "
        f"{REPLICA_BOOST} nice levels ahead of the rest"
    )


async def drive(
    url: str,
    key: str,
    *,
    concurrency: int,
    seconds: float,
    warmup_s: float = 0.0,
    every_s: float = 0.1,
) -> tuple[StatusTally, list[tuple[float, int, int]], float]:
    """Closed loop at max rate; (tally, timeline of (t, ok, rejected), ok/s after the
    warm-up)."""
    body = request_body(LIMITED_MODEL, stream=False)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    tally = StatusTally()
    stop = False
    workers = await start_workers(url, headers, body, concurrency, tally, lambda: not stop)
    timeline: list[tuple[float, int, int]] = []
    try:
        await asyncio.sleep(warmup_s)
        t0, ok0 = time.perf_counter(), tally.ok
        while (now := time.perf_counter()) - t0 < seconds:
            timeline.append((now - t0, tally.ok, tally.statuses["HTTP 429"]))
            await asyncio.sleep(min(every_s, max(0.0, seconds - (now - t0))))
        rate = (tally.ok - ok0) / (time.perf_counter() - t0)
        timeline.append((time.perf_counter() - t0, tally.ok, tally.statuses["HTTP 429"]))
        stop = True
        await asyncio.wait([w.done for w in workers], timeout=30)
    finally:
        for w in workers:
            w.close()
    return tally, timeline, rate


def worker_metrics(tier1: Tier1, workers: int, tries: int = 120) -> list[dict[Any, float]]:
    """/metrics of each worker: new connections land on workers at random
    (SO_REUSEPORT), so scrape until `workers` different answers were seen."""
    seen: dict[tuple[float, ...], dict[Any, float]] = {}
    for _ in range(tries):
        values = samples(metrics_text(tier1.base + "/metrics"))
        ident = tuple(v for (n, _), v in sorted(values.items()) if n.startswith(DECISIONS))
        ident += (sample(values, LAG + "_count"), sample(values, LAG + "_sum"))
        seen.setdefault(ident, values)
        if len(seen) >= workers:
            break
    return list(seen.values())


def consumed(replicas: list[Replica], sizing: Sizing, window_start: int) -> dict[str, Any]:
    """What the replicas hold as consumed (limit − remaining, leases returned) per key."""
    out: dict[str, Any] = {}
    for r in replicas:
        values = samples(metrics_text(r.metrics_url))
        for labels, remaining in labelled(values, "strata_quota_remaining"):
            key = labels.get("key", "")
            for suffix, limit in (("r", sizing.requests), ("t", sizing.tokens)):
                if key == f"{ACC_POLICY}/0/bench/{window_start}/{suffix}":
                    out[suffix] = {"replica": r.name, "consumed": limit - remaining}
    return out


async def run_accuracy(
    stack: Stack,
    *,
    duration_s: float,
    calib_s: float,
    concurrency: int,
    say: Say,
    calib_rps: float = 0.0,
    workers: int = WORKERS,
) -> dict[str, Any]:
    """`calib_rps` > 0 skips the calibration (and the restart it needs)."""
    base, replicas = stack.ensure(0, {"quota-a": 0, "quota-b": 1})
    up_v1 = base + "/v1"
    window = stable_window(time.time(), calib_s + duration_s + 60)
    placement = ""
    rate = calib_rps
    if rate <= 0:  # 1. calibration
        calib_wire = tier1_wire(accuracy_docs(up_v1, window, HUGE, HUGE), 1)
        tier1 = stack.start_tier1("tier1-acc", calib_wire, replicas, cpu=None, workers=workers)
        placement = place(tier1, replicas)
        say(f"  placement: {placement}")
        tally, _, rate = await drive(
            tier1.url, CALIB_KEY, concurrency=concurrency, seconds=calib_s, warmup_s=2.0
        )
        say(f"  calibration: {rate:,.0f} admitted req/s at max rate ({tally.errors} non-2xx)")
        if rate <= 0:
            raise RuntimeError(f"calibration admitted nothing: {tally.first_error}")
        stack.stop("tier1-acc")
    # 2. limits sized from it
    sizing = size_limits(rate, duration_s)
    wire = tier1_wire(accuracy_docs(up_v1, window, sizing.requests, sizing.tokens), 2)
    tier1 = stack.start_tier1("tier1-acc", wire, replicas, cpu=None, workers=workers)
    placement = place(tier1, replicas)
    if not calib_rps:
        placement += "; calibration and run alike"
    say(
        f"  limits: {sizing.requests:,} requests and {sizing.tokens:,} tokens "
        f"({TOKEN_COST}) per {window}; running {duration_s:g} s"
    )
    # 3. the run
    before = stack.upstream_counts()
    tally, timeline, _ = await drive(
        tier1.url, CLIENT_KEY, concurrency=concurrency, seconds=duration_s
    )
    await asyncio.sleep(2.5)  # idle leases go back, the last usage reaches the replicas
    after = stack.upstream_counts()
    received = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    scraped = worker_metrics(tier1, workers)
    window_start = _window_start(window, int(time.time()))
    service = consumed(replicas, sizing, window_start)
    return _result(
        sizing, window, tally, timeline, received, scraped, service, placement, concurrency, workers
    )


def _window_start(window: str, wall: int) -> int:
    length = parse_window(window)
    assert isinstance(length, int)
    return wall // length * length


def _result(
    sizing: Sizing,
    window: str,
    tally: StatusTally,
    timeline: list[tuple[float, int, int]],
    received: dict[str, int],
    workers: list[dict[Any, float]],
    service: dict[str, Any],
    placement: str,
    concurrency: int,
    n_workers: int,
) -> dict[str, Any]:
    cost = usage_cost()
    admitted = tally.ok
    estimate = token_estimate(
        len(request_body(LIMITED_MODEL, stream=False)), 64, parse_token_cost(TOKEN_COST)
    )
    per_request_excess = {"requests": 0.0, "tokens": max(0.0, cost - estimate)}
    rows = [
        accuracy_row(
            "requests",
            sizing.requests,
            admitted,
            upstream_received=received.get("200", 0),
            service_consumed=service.get("r", {}).get("consumed", math.nan),
            bound=concurrency * per_request_excess["requests"],
        ),
        accuracy_row(
            "tokens",
            sizing.tokens,
            admitted * cost,
            upstream_received=received.get("200", 0) * cost,
            service_consumed=service.get("t", {}).get("consumed", math.nan),
            bound=concurrency * per_request_excess["tokens"],
        ),
    ]
    lags = [h for v in workers if (h := histogram(v, LAG)) is not None]
    lag = merge(lags)
    per_worker = [
        {
            "allowed": sample(v, DECISIONS, policy=ACC_POLICY, result="allowed"),
            "rejected": sample(v, DECISIONS, policy=ACC_POLICY, result="rejected"),
            "lag_count": sample(v, LAG + "_count"),
            "lease_waits": sample(v, LEASE_WAITS),
        }
        for v in workers
    ]
    run_s = timeline[-1][0] if timeline else math.nan
    marks = milestones(timeline, sizing.requests)
    return {
        "workers": n_workers,
        "replicas": 2,
        "concurrency": concurrency,
        "placement": placement,
        "window": window,
        "sizing": {
            "calibrated_rps": sizing.rate,
            "requests": sizing.requests,
            "tokens": sizing.tokens,
            "token_cost": TOKEN_COST,
            "cost_per_request": cost,
            "estimate_per_request": estimate,
        },
        "run_s": run_s,
        **marks,
        "exhausted_at_fraction": marks["t99_s"] / run_s if run_s else math.nan,
        "client": {
            "2xx": admitted,
            "429": tally.statuses["HTTP 429"],
            "other": dict(tally.statuses),
        },
        "upstream_received": received,
        "rows": rows,
        "bound_note": (
            "overshoot ≤ Σ over requests in flight of max(0, actual − estimate): requests "
            f"count 1 at admission and at settle; tokens reserve {estimate:g} and use {cost:g} "
            f"per request, so the bound is 0 for both (≤ {concurrency} requests in flight)"
        ),
        "reconcile_lag": _lag(lag),
        "per_worker": per_worker,
        "workers_scraped": len(workers),
        "service": service,
        "timeline": timeline[:: max(1, len(timeline) // 200)],
    }


def _lag(h: Histogram | None) -> dict[str, Any]:
    if h is None:
        return {}
    return {
        "count": h.count,
        "mean_s": h.mean,
        "p50_s": h.quantile(0.5),
        "p99_s": h.quantile(0.99),
        "buckets": {str(b): c for b, c in h.buckets},
    }
