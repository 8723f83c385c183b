"""`serves-model-filter`: drop endpoints that cannot serve the requested LoRA adapter.

What: every endpoint of a pool serves its base model (the pool is defined that way, and
tier2 refuses other models before picking), so only adapters can rule an endpoint out.
Rule: keep the endpoint unless the request names an adapter and the endpoint reports
`max_lora == 0` (LoRA disabled). An endpoint whose LoRA metric is missing is unknown,
not incapable, and is kept; vLLM loads adapters on demand up to `max_lora`.
Category: filter; if none passes, the pick fails (NoEndpoint).
Inputs: `PickRequest.adapter`, `EndpointMetrics.max_lora`. Parameters: none.
"""

from __future__ import annotations

from typing import ClassVar

from common.config.scheduling import ServesModelParams
from tier2.scheduling.framework import PluginContext, WhenNonePass
from tier2.scheduling.types import Candidate, PickRequest


class ServesModelFilter:
    when_none_pass: ClassVar[WhenNonePass] = WhenNonePass.REJECT

    def __init__(self, params: ServesModelParams, ctx: PluginContext) -> None:
        pass

    def filter(self, req: PickRequest, cands: list[Candidate], now: float) -> list[Candidate]:
        if req.adapter is None:
            return cands
        return [c for c in cands if c.state.metrics is None or c.state.metrics.max_lora != 0]
