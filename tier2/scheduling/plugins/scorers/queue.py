"""`queue-scorer`: prefer endpoints with fewer requests waiting in the engine.

What: GIE's queue scorer, unchanged.
Formula: score(e) = (maxQ - q(e)) / (maxQ - minQ) over the candidates, q = scraped
`waiting`; 1.0 for all when maxQ == minQ. Min-max normalisation is scale-free
({0, 1} and {40, 41} give the same spread) and neutral while no engine queues, which
vLLM only does once KV blocks or `max_num_seqs` bind (inference-picking.md §2.4).
An endpoint whose queue is unknown scores as the worst known one (never as idle).
Category: distribution.
Inputs: `EndpointMetrics.waiting`. Parameters: none.
"""

from __future__ import annotations

from typing import ClassVar

from common.config.scheduling import NoParams
from tier2.scheduling.framework import PluginContext, ScorerCategory
from tier2.scheduling.types import Candidate, PickRequest


class QueueScorer:
    category: ClassVar[ScorerCategory] = ScorerCategory.DISTRIBUTION

    def __init__(self, params: NoParams, ctx: PluginContext) -> None:
        pass

    def score(self, req: PickRequest, cands: list[Candidate], now: float) -> dict[str, float]:
        queues = {c.id: c.state.metrics.waiting if c.state.metrics else None for c in cands}
        known = [q for q in queues.values() if q is not None]
        if not known:
            return dict.fromkeys(queues, 1.0)
        lo, hi = min(known), max(known)
        if hi == lo:
            return {cid: 1.0 if q is not None else 0.0 for cid, q in queues.items()}
        span = hi - lo
        return {cid: (hi - q) / span if q is not None else 0.0 for cid, q in queues.items()}
