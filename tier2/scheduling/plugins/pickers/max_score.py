"""`max-score-picker`: the highest total score wins; ties are broken at random.

What: GIE's max-score picker (shuffle, then stable sort by score, GIE PR #1205), plus
optional near-ties.
Rule: candidates are sorted by total score, best first, with a random secondary key from
the injected Random (a shuffle then a stable sort, in one pass), so exact ties come out
in random order (never "always the first pod":
GIE #1205, llm-d #2709). With `tie_epsilon` > 0 the winner is drawn uniformly from every
candidate within `tie_epsilon` of the best.
Output: every candidate ranked (the proxy tries the next on a connect failure).
Parameters: `tie_epsilon` (default 0: exact ties only, as GIE).
"""

from __future__ import annotations

from collections.abc import Mapping

from common.config.scheduling import MaxScoreParams
from tier2.scheduling.framework import PluginContext, Ranking
from tier2.scheduling.types import Candidate, PickRequest


class MaxScorePicker:
    def __init__(self, params: MaxScoreParams, ctx: PluginContext) -> None:
        self.tie_epsilon = params.tie_epsilon
        self.rng = ctx.rng

    def pick(
        self, req: PickRequest, cands: list[Candidate], scores: Mapping[str, float], now: float
    ) -> Ranking:
        # a random secondary key orders exact ties at random (cheaper than a shuffle)
        rnd = self.rng.random
        keyed = sorted((-scores.get(c.id, 0.0), rnd(), c.id) for c in cands)
        ids = [cid for _, _, cid in keyed]
        if self.tie_epsilon > 0 and len(ids) > 1:
            floor = scores.get(ids[0], 0.0) - self.tie_epsilon
            ties = 1
            while ties < len(ids) and scores.get(ids[ties], 0.0) >= floor:
                ties += 1
            if ties > 1:
                ids.insert(0, ids.pop(self.rng.randrange(ties)))
        return Ranking(tuple(ids), "max-score")
