"""`kv-cache-scorer`: prefer endpoints with more free KV cache.

What: GIE's kv-cache-utilization scorer, unchanged.
Formula: score(e) = 1 - kv_usage(e), absolute. vLLM's usage counts blocks pinned by
live requests; evictable cached prefix blocks count as free (inference-picking.md §1.2).
An endpoint whose usage is unknown scores 0 (never treated as empty).
Category: distribution.
Inputs: `EndpointMetrics.kv_usage`. Parameters: none.
"""

from __future__ import annotations

from typing import ClassVar

from common.config.scheduling import NoParams
from tier2.scheduling.framework import PluginContext, ScorerCategory
from tier2.scheduling.types import Candidate, PickRequest


class KvCacheScorer:
    category: ClassVar[ScorerCategory] = ScorerCategory.DISTRIBUTION

    def __init__(self, params: NoParams, ctx: PluginContext) -> None:
        pass

    def score(self, req: PickRequest, cands: list[Candidate], now: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for c in cands:
            m = c.state.metrics
            usage = m.kv_usage if m is not None else None
            out[c.id] = 1.0 - usage if usage is not None else 0.0
        return out
