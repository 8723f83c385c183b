"""`predicted-ttft-scorer`: prefer endpoints predicted to answer first, in seconds.

What: the TTFT model of inference-picking.md §8.3 (tier2.scheduling.cost) turned into a
score, for profiles that blend it with others.
Formula: score(e) = scale_s / (scale_s + T(e)), T = predicted TTFT in seconds:
1 at T = 0, 0.5 at T = scale_s. Absolute, not min-max: 0.2 s vs 0.3 s and 10.2 s vs
10.3 s are not the same choice.
Category: balance (prefix hits shorten T, load lengthens it).
Inputs: ledger view, metrics, prefix match, learned prefill rate.
Parameters: `scale_s` and the TTFT model's (common.config.scheduling.TtftModelParams).
"""

from __future__ import annotations

from typing import ClassVar

from common.config.scheduling import PredictedTtftParams
from tier2.scheduling.cost import TtftModel
from tier2.scheduling.framework import PluginContext, ScorerCategory
from tier2.scheduling.types import Candidate, PickRequest


class PredictedTtftScorer:
    category: ClassVar[ScorerCategory] = ScorerCategory.BALANCE

    def __init__(self, params: PredictedTtftParams, ctx: PluginContext) -> None:
        self.model = TtftModel.from_params(params, ctx.scrape_interval_s)
        self.scale = params.scale_s

    def score(self, req: PickRequest, cands: list[Candidate], now: float) -> dict[str, float]:
        s = self.scale
        predict = self.model.predict
        return {c.id: s / (s + predict(req, c, now)[0]) for c in cands}
