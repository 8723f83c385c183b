"""The plugin contracts of a scheduling profile: filters, scorers, one picker (pure).

GIE's shape (STYLE.md §2.4) with typed Python: a profile runs its filters in order,
then its scorers (each score clamped to [0, 1] and weighted), then its picker, which
ranks every surviving candidate best first (the proxy walks the ranking on connect
failures). Plugins are built once per profile from their parameter models
(common.config.scheduling) and a `PluginContext`; per request they see only
`PickRequest`, `Candidate`s and the time.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol

from common.errors import Unavailable
from tier2.scheduling.types import Candidate, PickRequest


class NoEndpoint(Unavailable):
    """No endpoint can take the request (none healthy, none serving its model)."""

    code = "no_endpoint"


class ScorerCategory(enum.Enum):
    AFFINITY = "affinity"
    """Prefers endpoints holding what the request needs (prefix, adapter)."""
    DISTRIBUTION = "distribution"
    """Spreads load (queue, KV usage, in-flight)."""
    BALANCE = "balance"
    """Weighs both (predicted latency)."""


class WhenNonePass(enum.Enum):
    REJECT = "reject"
    """No candidate left: the request cannot be served (NoEndpoint)."""
    KEEP_ALL_SATURATED = "keep-all-saturated"
    """Keep every candidate and report the pick as saturated."""


@dataclass(frozen=True, slots=True)
class PluginContext:
    """Pool-level facts plugins may need when they are built."""

    rng: random.Random
    scrape_interval_s: float = 0.1
    saturation_queue_depth: int = 5
    saturation_kv_usage: float = 0.8


class FilterPlugin(Protocol):
    when_none_pass: ClassVar[WhenNonePass]

    def filter(self, req: PickRequest, cands: list[Candidate], now: float) -> list[Candidate]: ...


class ScorerPlugin(Protocol):
    category: ClassVar[ScorerCategory]

    def score(self, req: PickRequest, cands: list[Candidate], now: float) -> dict[str, float]:
        """A score per candidate id, meant to be in [0, 1] (the profile clamps)."""
        ...


@dataclass(frozen=True, slots=True)
class Ranking:
    ranked: tuple[str, ...]
    """Every candidate id, best first."""
    reason: str
    predicted_ttft_s: dict[str, float] | None = None


class Picker(Protocol):
    def pick(
        self, req: PickRequest, cands: list[Candidate], scores: Mapping[str, float], now: float
    ) -> Ranking: ...
