"""`saturation-filter`: avoid endpoints with no room, unless all of them are full.

What: GIE's utilization detector in its filter role (inference-picking.md §2.6).
Rule: an endpoint is saturated when its metrics are missing or older than `max_age_s`
(no evidence of room), or scraped waiting >= `queue_depth`, or KV usage >=
`kv_cache_usage`, where usage adds the KV tokens the ledger sent since that scrape. Saturated endpoints are dropped; if all are saturated, all are kept
and the pick is reported saturated (the shell may queue or shed).
Category: filter (keep all when none passes).
Inputs: `EndpointMetrics.waiting`, `.kv_usage`, `.scraped_at`,
`LedgerView.kv_new_since_scrape`.
Parameters: `queue_depth`, `kv_cache_usage` (default: the pool's `saturation`),
`max_age_s` (default max(2 s, 3 scrape intervals)). `endpoint_saturated` is also the pool-level test of `PoolPicker`.
"""

from __future__ import annotations

from typing import ClassVar

from common.config.scheduling import SaturationParams, default_max_age_s
from tier2.datalayer.types import EndpointState
from tier2.scheduling.framework import PluginContext, WhenNonePass
from tier2.scheduling.types import Candidate, PickRequest


def endpoint_saturated(
    state: EndpointState,
    now: float,
    *,
    queue_depth: int,
    kv_usage: float,
    max_age_s: float,
    kv_tokens_since_scrape: int = 0,
) -> bool:
    """`kv_tokens_since_scrape`: KV tokens sent after the scrape (the ledger's), added to
    the scraped usage when the capacity is known."""
    m = state.metrics
    if m is None or now - m.scraped_at > max_age_s:
        return True
    if m.waiting is not None and m.waiting >= queue_depth:
        return True
    if m.kv_usage is None:
        return False
    usage = m.kv_usage
    if kv_tokens_since_scrape and m.num_gpu_blocks and m.block_size:
        usage += kv_tokens_since_scrape / (m.num_gpu_blocks * m.block_size)
    return usage >= kv_usage


class SaturationFilter:
    when_none_pass: ClassVar[WhenNonePass] = WhenNonePass.KEEP_ALL_SATURATED

    def __init__(self, params: SaturationParams, ctx: PluginContext) -> None:
        self.queue_depth = (
            params.queue_depth if params.queue_depth is not None else ctx.saturation_queue_depth
        )
        self.kv_usage = (
            params.kv_cache_usage if params.kv_cache_usage is not None else ctx.saturation_kv_usage
        )
        self.max_age_s = params.max_age_s or default_max_age_s(ctx.scrape_interval_s)

    def filter(self, req: PickRequest, cands: list[Candidate], now: float) -> list[Candidate]:
        return [
            c
            for c in cands
            if not endpoint_saturated(
                c.state,
                now,
                queue_depth=self.queue_depth,
                kv_usage=self.kv_usage,
                max_age_s=self.max_age_s,
                kv_tokens_since_scrape=c.ledger.kv_new_since_scrape,
            )
        ]
