"""Plugin type name → class, and the assembly of a profile from config (pure).

An explicit table (no import-time registration, no global mutable registry): the type
names and parameter models live in common.config.scheduling, where control validates a
Pool before pushing it; this module maps the same names to classes. Producers
(`prefix-index`, `ledger`) are not plugins the profile runs: their parameters configure
the PoolPicker's index and ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from common.config.scheduling import (
    PLUGIN_TYPES,
    LedgerParams,
    PluginKind,
    PluginSpec,
    PrefixIndexParams,
    parse_params,
    profile_errors,
)
from common.errors import ConfigError
from tier2.scheduling.framework import FilterPlugin, Picker, PluginContext, ScorerPlugin
from tier2.scheduling.plugins.filters.healthy import HealthyFilter
from tier2.scheduling.plugins.filters.saturation import SaturationFilter
from tier2.scheduling.plugins.filters.serves_model import ServesModelFilter
from tier2.scheduling.plugins.pickers.max_score import MaxScorePicker
from tier2.scheduling.plugins.pickers.strata import StrataPicker
from tier2.scheduling.plugins.pickers.weighted_random import WeightedRandomPicker
from tier2.scheduling.plugins.scorers.inflight_load import InflightLoadScorer
from tier2.scheduling.plugins.scorers.kv_cache import KvCacheScorer
from tier2.scheduling.plugins.scorers.lora_affinity import LoraAffinityScorer
from tier2.scheduling.plugins.scorers.predicted_ttft import PredictedTtftScorer
from tier2.scheduling.plugins.scorers.prefix_cache import PrefixCacheScorer
from tier2.scheduling.plugins.scorers.queue import QueueScorer
from tier2.scheduling.profile import Profile

FILTERS: Final[Mapping[str, Callable[[Any, PluginContext], FilterPlugin]]] = {
    "serves-model-filter": ServesModelFilter,
    "healthy-filter": HealthyFilter,
    "saturation-filter": SaturationFilter,
}
SCORERS: Final[Mapping[str, Callable[[Any, PluginContext], ScorerPlugin]]] = {
    "queue-scorer": QueueScorer,
    "kv-cache-scorer": KvCacheScorer,
    "prefix-cache-scorer": PrefixCacheScorer,
    "lora-affinity-scorer": LoraAffinityScorer,
    "inflight-load-scorer": InflightLoadScorer,
    "predicted-ttft-scorer": PredictedTtftScorer,
}
PICKERS: Final[Mapping[str, Callable[[Any, PluginContext], Picker]]] = {
    "max-score-picker": MaxScorePicker,
    "weighted-random-picker": WeightedRandomPicker,
    "strata-picker": StrataPicker,
}


@dataclass(frozen=True, slots=True)
class Assembly:
    """A runnable profile plus the settings of the data it reads."""

    profile: Profile
    prefix: PrefixIndexParams | None
    """None: the profile hashes no prompts (no prefix affinity)."""
    ledger: LedgerParams


def build_profile(name: str, specs: Sequence[PluginSpec], ctx: PluginContext) -> Assembly:
    """Assemble a profile; ConfigError names every problem (as control's validation does)."""
    errors = profile_errors(specs)
    if errors:
        raise ConfigError(f"scheduler profile {name!r}: " + "; ".join(errors))
    filters: list[FilterPlugin] = []
    scorers: list[tuple[ScorerPlugin, float]] = []
    pickers: list[Picker] = []
    prefix: PrefixIndexParams | None = None
    ledger = LedgerParams()
    for spec in specs:
        params = parse_params(spec.type, spec.parameters)
        kind = PLUGIN_TYPES[spec.type].kind
        if kind is PluginKind.FILTER:
            filters.append(FILTERS[spec.type](params, ctx))
        elif kind is PluginKind.SCORER:
            scorers.append((SCORERS[spec.type](params, ctx), spec.weight))
        elif kind is PluginKind.PICKER:
            pickers.append(PICKERS[spec.type](params, ctx))
        elif isinstance(params, PrefixIndexParams):
            prefix = params
        elif isinstance(params, LedgerParams):
            ledger = params
    return Assembly(Profile(name, filters, scorers, pickers[0]), prefix, ledger)
