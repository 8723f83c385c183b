"""`inflight-load-scorer`: prefer endpoints with fewer requests in flight, as we know them.

What: load from the ledger (requests this replica sent, synchronously counted at pick
time) plus the foreign-load estimate, so a burst inside one scrape interval spreads
instead of herding (GIE #1700; llm-d's token-load and active-request scorers).
Formula: score(e) = 1 - min(1, (waiting + running + foreign) / threshold_requests).
Category: distribution.
Inputs: `LedgerView.waiting`, `.running`, `.foreign`.
Parameters: `threshold_requests` (default 64).
"""

from __future__ import annotations

from typing import ClassVar

from common.config.scheduling import InflightLoadParams
from tier2.scheduling.framework import PluginContext, ScorerCategory
from tier2.scheduling.types import Candidate, PickRequest


class InflightLoadScorer:
    category: ClassVar[ScorerCategory] = ScorerCategory.DISTRIBUTION

    def __init__(self, params: InflightLoadParams, ctx: PluginContext) -> None:
        self.threshold = params.threshold_requests

    def score(self, req: PickRequest, cands: list[Candidate], now: float) -> dict[str, float]:
        t = self.threshold
        out: dict[str, float] = {}
        for c in cands:
            led = c.ledger
            out[c.id] = 1.0 - min(1.0, (led.waiting + led.running + led.foreign) / t)
        return out
