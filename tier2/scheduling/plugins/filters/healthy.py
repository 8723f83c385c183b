"""`healthy-filter`: keep endpoints that answer, preferring those with fresh metrics.

What: drops endpoints marked unhealthy (repeated scrape failures, or a failed connect
from the proxy until the next good scrape), then those whose last good metrics are
older than `max_age_s`.
Rule: fresh = healthy and age <= max_age_s. If no endpoint is fresh, every healthy one
is kept: an all-stale pool fails open rather than refusing traffic (llm-d #2547); the
cost-based pickers already treat stale endpoints as uncertain, never as idle.
Category: filter; if no endpoint is healthy, the pick fails (NoEndpoint).
Inputs: `EndpointState.healthy`, `EndpointState.age(now)`.
Parameters: `fresh_only` (False: no freshness requirement, as GIE), `max_age_s`
(default max(2 s, 3 scrape intervals)).
"""

from __future__ import annotations

from typing import ClassVar

from common.config.scheduling import HealthyParams, default_max_age_s
from tier2.scheduling.framework import PluginContext, WhenNonePass
from tier2.scheduling.types import Candidate, PickRequest


class HealthyFilter:
    when_none_pass: ClassVar[WhenNonePass] = WhenNonePass.REJECT

    def __init__(self, params: HealthyParams, ctx: PluginContext) -> None:
        self.max_age_s: float | None = None
        if params.fresh_only:
            self.max_age_s = params.max_age_s or default_max_age_s(ctx.scrape_interval_s)

    def filter(self, req: PickRequest, cands: list[Candidate], now: float) -> list[Candidate]:
        healthy = [c for c in cands if c.state.healthy]
        max_age = self.max_age_s
        if max_age is None:
            return healthy
        fresh = [c for c in healthy if c.state.age(now) <= max_age]
        return fresh or healthy
