"""A scheduling profile: filters → weighted, clamped scorers → picker (pure).

    total(e) = Σ_s weight_s · clamp01(score_s(e))

as GIE's `scheduler_profile.go` combines them. A filter that leaves nothing either ends
the pick (NoEndpoint) or, for the saturation filter, keeps every candidate and marks the
result saturated. The profile is assembled once (tier2.scheduling.registry) and `run`
is a straight line per request.
"""

from __future__ import annotations

from collections.abc import Sequence

from tier2.scheduling.framework import (
    FilterPlugin,
    NoEndpoint,
    Picker,
    ScorerPlugin,
    WhenNonePass,
)
from tier2.scheduling.types import Candidate, PickRequest, PickResult


class Profile:
    def __init__(
        self,
        name: str,
        filters: Sequence[FilterPlugin],
        scorers: Sequence[tuple[ScorerPlugin, float]],
        picker: Picker,
    ) -> None:
        self.name = name
        self.filters = tuple(filters)
        self.scorers = tuple(scorers)
        self.picker = picker

    def run(self, req: PickRequest, cands: list[Candidate], now: float) -> PickResult:
        if not cands:
            raise NoEndpoint("the pool has no endpoints")
        saturated = False
        for f in self.filters:
            kept = f.filter(req, cands, now)
            if kept:
                cands = kept
            elif f.when_none_pass is WhenNonePass.KEEP_ALL_SATURATED:
                saturated = True
            else:
                raise NoEndpoint(f"no endpoint can serve model {req.model!r} now")
        scores: dict[str, float] = {}
        if self.scorers:
            scores = {c.id: 0.0 for c in cands}
            for scorer, weight in self.scorers:
                for cid, s in scorer.score(req, cands, now).items():
                    if cid in scores:
                        # clamp to [0, 1] inline (hot loop); NaN fails both tests and is 0
                        scores[cid] += weight * (s if 0.0 <= s <= 1.0 else float(s > 1.0))
        ranking = self.picker.pick(req, cands, scores, now)
        return PickResult(
            ranking.ranked, scores, saturated, ranking.reason, ranking.predicted_ttft_s
        )
