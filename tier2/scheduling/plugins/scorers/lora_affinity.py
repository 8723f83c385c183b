"""`lora-affinity-scorer`: prefer endpoints that have the requested adapter loaded.

What: GIE's lora-affinity scorer.
Formula, for a request naming adapter a, checked in this order:
  1.0  a is in the endpoint's running adapters;
  0.8  running + waiting adapters < max_lora (a slot is free to load a);
  0.6  a is in the endpoint's waiting adapters;
  0.0  otherwise.
A base-model request scores 1.0 everywhere; an endpoint without LoRA metrics scores 0.5
(unknown: neither preferred nor avoided).
Category: affinity.
Inputs: `EndpointMetrics.running_loras`, `.waiting_loras`, `.max_lora`. Parameters: none.
"""

from __future__ import annotations

from typing import ClassVar

from common.config.scheduling import NoParams
from tier2.datalayer.types import EndpointMetrics
from tier2.scheduling.framework import PluginContext, ScorerCategory
from tier2.scheduling.types import Candidate, PickRequest


def lora_score(adapter: str, m: EndpointMetrics | None) -> float:
    if m is None or m.running_loras is None:
        return 0.5
    if adapter in m.running_loras:
        return 1.0
    waiting = m.waiting_loras or ()
    if m.max_lora is not None and len(m.running_loras) + len(waiting) < m.max_lora:
        return 0.8
    if adapter in waiting:
        return 0.6
    return 0.0


class LoraAffinityScorer:
    category: ClassVar[ScorerCategory] = ScorerCategory.AFFINITY

    def __init__(self, params: NoParams, ctx: PluginContext) -> None:
        pass

    def score(self, req: PickRequest, cands: list[Candidate], now: float) -> dict[str, float]:
        adapter = req.adapter
        if adapter is None:
            return {c.id: 1.0 for c in cands}
        return {c.id: lora_score(adapter, c.state.metrics) for c in cands}
