"""`weighted-random-picker`: draw the winner with probability proportional to its score.

What: GIE's weighted-random picker (A-Res: key = U^(1/score), highest keys first), which
spreads load where max-score would herd onto the single best pod (GIE #1411).
Rule: candidates with a positive score are ranked by U^(1/score), U uniform in [0, 1)
from the injected Random, which is a weighted random permutation; zero-score candidates
follow in random order (they win only when every score is zero).
Output: every candidate ranked. Parameters: none.
"""

from __future__ import annotations

from collections.abc import Mapping

from common.config.scheduling import NoParams
from tier2.scheduling.framework import PluginContext, Ranking
from tier2.scheduling.types import Candidate, PickRequest


class WeightedRandomPicker:
    def __init__(self, params: NoParams, ctx: PluginContext) -> None:
        self.rng = ctx.rng

    def pick(
        self, req: PickRequest, cands: list[Candidate], scores: Mapping[str, float], now: float
    ) -> Ranking:
        rnd = self.rng.random
        keyed: list[tuple[float, str]] = []
        zeros: list[str] = []
        for c in cands:
            w = scores.get(c.id, 0.0)
            if w > 0:
                keyed.append((rnd() ** (1.0 / w), c.id))
            else:
                zeros.append(c.id)
        keyed.sort(reverse=True)
        self.rng.shuffle(zeros)
        return Ranking(tuple(cid for _, cid in keyed) + tuple(zeros), "weighted-random")
