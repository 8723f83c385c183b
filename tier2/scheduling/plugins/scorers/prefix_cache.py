"""`prefix-cache-scorer`: prefer endpoints predicted to hold the prompt's prefix.

What: GIE's prefix-cache scorer over the approximate prefix index (tier2.prefix).
Formula: score(e) = matched_blocks(e) / total_blocks, matched = leading blocks of the
request's chain held in e's index; 0 when the prompt is shorter than one block. With
`use_precision`, multiplied by the index's measured precision on e.
Category: affinity.
Inputs: `Candidate.prefix_blocks`, `.prefix_precision`, `PickRequest.block_hashes`.
Parameters: `use_precision` (default False, as GIE).
"""

from __future__ import annotations

from typing import ClassVar

from common.config.scheduling import PrefixScorerParams
from tier2.scheduling.framework import PluginContext, ScorerCategory
from tier2.scheduling.types import Candidate, PickRequest


class PrefixCacheScorer:
    category: ClassVar[ScorerCategory] = ScorerCategory.AFFINITY

    def __init__(self, params: PrefixScorerParams, ctx: PluginContext) -> None:
        self.use_precision = params.use_precision

    def score(self, req: PickRequest, cands: list[Candidate], now: float) -> dict[str, float]:
        total = len(req.block_hashes)
        if total == 0:
            return {c.id: 0.0 for c in cands}
        if self.use_precision:
            return {c.id: c.prefix_blocks / total * c.prefix_precision for c in cands}
        return {c.id: c.prefix_blocks / total for c in cands}
