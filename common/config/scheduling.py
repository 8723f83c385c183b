"""Scheduler plugins as config: each plugin type's parameter model, and the named profiles.

This is the half of tier2's plugin registry that control needs to validate a Pool before
pushing it: which plugin types exist, what kind each is (filter, scorer, picker, or a
producer of data the others read), and what parameters each accepts. tier2's own
registry (`tier2.scheduling.registry`) maps the same type names to the classes.

A profile is a list of `PluginConfig`s (`type`, `weight`, `parameters`) with exactly
one picker, at most one of each producer, and any number of filters and scorers.
Two named profiles ship:

- `gie-default`: an emulation of the Gateway API Inference Extension v1.5 default
  (queue 2, kv-cache 2, prefix 3, max-score picker; prefix index on 64-character blocks
  of the JSON of the messages, prompt only, capacity = the pod's whole `num_gpu_blocks`).
- `strata`: the predicted-TTFT rule of inference-picking.md §8 (warm set with a
  saturation valve, bounded-load consistent hashing for cold prefixes, near-tie
  sampling, reservation at pick time, answer blocks recorded, cached_tokens feedback).
  Its index keeps the full `num_gpu_blocks` capacity, shrunk only by cached_tokens
  feedback: in the simulator, the `effective` capacity (minus the answers in flight)
  forgot warm pods under load and scattered prefix groups (hit rate 0.73 against 0.92
  on the shared-prefix workload), while a pod that really evicted a prefix costs one
  recompute on the same pod, which the feedback then learns from.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pydantic import Field, ValidationError

from common.config.base import Frozen


class PluginKind(enum.Enum):
    FILTER = "filter"
    SCORER = "scorer"
    PICKER = "picker"
    PRODUCER = "producer"
    """Maintains data other plugins read (the prefix index, the ledger)."""


# --- filters -----------------------------------------------------------------------


def default_max_age_s(scrape_interval_s: float) -> float:
    """How old metrics may get before they count as stale, for a scrape interval."""
    return max(2.0, 3.0 * scrape_interval_s)


class ServesModelParams(Frozen):
    """`serves-model-filter` has no parameters."""


class HealthyParams(Frozen):
    fresh_only: bool = True
    """Drop endpoints with stale metrics unless none is fresh. False: any healthy
    endpoint passes however old its metrics (GIE)."""
    max_age_s: float | None = Field(None, gt=0)
    """Metrics older than this are stale. None: max(2 s, 3 scrape intervals), so a slow
    scrape interval does not make most endpoints stale between two scrapes."""


class SaturationParams(Frozen):
    queue_depth: int | None = Field(None, ge=0)
    """Waiting requests at or above which an endpoint is saturated (None: the pool's
    `saturation.queue_depth`)."""
    kv_cache_usage: float | None = Field(None, ge=0, le=1)
    """KV usage at or above which an endpoint is saturated (None: the pool's setting)."""
    max_age_s: float | None = Field(None, gt=0)
    """Metrics older than this count as saturated (no evidence of room). None:
    max(2 s, 3 scrape intervals)."""


# --- scorers -----------------------------------------------------------------------


class NoParams(Frozen):
    """A plugin without parameters."""


class PrefixScorerParams(Frozen):
    use_precision: bool = False
    """Scale the match by the endpoint's measured index precision (GIE: no)."""


class InflightLoadParams(Frozen):
    threshold_requests: float = Field(64.0, gt=0)
    """In-flight requests (ledger + foreign) at which the score reaches 0."""


class TtftModelParams(Frozen):
    """The predicted-TTFT cost model shared by `predicted-ttft-scorer` and `strata-picker`.

    T = (queued prefill tokens + uncached tokens) / learned prefill rate + overhead
        + load_cost_s * in-flight + waiting_cost_s * scraped waiting
        + KV pressure + uncertainty penalty.
    """

    overhead_s: float = Field(0.02, ge=0)
    """Fixed part of a TTFT (scheduling, first decode step, network)."""
    load_cost_s: float = Field(0.01, ge=0)
    """Added per request in flight on the endpoint (decode steps slow its prefill)."""
    waiting_cost_s: float = Field(0.05, ge=0)
    """Added per request the endpoint reports waiting (vLLM only queues when full)."""
    kv_pressure_s: float = Field(0.2, ge=0)
    """KV pressure: adds kv_pressure_s · f/(1-f), f = the KV fraction in use once the
    request's new tokens are added (0.2 s at f=0.5, 1.8 s at 0.9, 19.8 s at 0.99): a full
    cache makes vLLM queue or preempt, so it should repel long before it is full."""
    uncertain_penalty_s: float = Field(0.5, ge=0)
    """Added when the endpoint's metrics are missing or stale: never treat it as idle."""
    stale_after_s: float | None = Field(None, gt=0)
    """Metrics age at which an endpoint is uncertain (None: max(0.5 s, 3 scrape
    intervals); a scrape that takes a while must not make a pod look uncertain)."""
    default_output_tokens: int = Field(256, ge=1)
    """Output length assumed when the request sets no max_tokens."""
    max_output_estimate: int = Field(2048, ge=1)
    """Cap on the output length assumed for KV planning."""
    use_precision: bool = True
    """Discount predicted prefix hits by the endpoint's measured index precision."""


class PredictedTtftParams(TtftModelParams):
    scale_s: float = Field(1.0, gt=0)
    """score = scale_s / (scale_s + T): 1 at T=0, 0.5 at T=scale_s."""


# --- pickers -----------------------------------------------------------------------


class MaxScoreParams(Frozen):
    tie_epsilon: float = Field(0.0, ge=0, le=1)
    """Scores within this of the best are ties, chosen among at random (GIE: exact ties)."""


class StrataPickerParams(TtftModelParams):
    work_weight: float = Field(0.0, ge=0)
    """Weight of the request's own prefill time in its cost: cost = T + work_weight · U/R.
    Prefill time is taken from every request on that endpoint, so a cache miss costs the
    pool more than this request's TTFT shows. 0 by default: T already counts U/R once,
    and doubling it held b2b groups on loaded warm pods (bench tier2 (a): TTFT p90 at
    2 req/s 1.64 s at 1.0, 0.85 s at 0)."""
    cold_interference_s: float = Field(0.0075, ge=0)
    """Cold picks only (ring, least-cost): added per request decoding on an endpoint that
    has no prefill queued in the ledger. A prefill sent there turns its pure decode steps
    into slower mixed steps for every running request; sent where a prefill is already
    queued, it shares those steps. It trades TTFT for ITL on short cold prompts (bench
    tier2 (d) at its knee, against gie-default: 0 gives TTFT p50 -17% and ITL p50 +125%,
    0.01 TTFT p50 +6% and ITL +0%, 0.0075 TTFT p50 -1% and ITL +4%)."""
    theta: float = Field(0.5, ge=0, le=1)
    """Cached fraction at which an endpoint is warm for the request."""
    t_max_s: float = Field(1.0, ge=0)
    """Saturation valve: leave the warm set (or the ring's choice) when its predicted
    TTFT exceeds the best endpoint's by more than this many seconds."""
    t_max_rel: float = Field(1.0, ge=0, le=10)
    """The ring's valve, for a prefix key placed recently (one that comes back), opens
    only beyond max(t_max_s, t_max_rel x the best cost): when every endpoint queues for
    seconds (past the knee) a fixed t_max_s scattered each group's cold requests, every
    copy cost its whole prefill again and the cache hit rate fell (bench tier2 (b) at 5
    req/s: hit rate 0.15 -> 0.36, output 3,742 -> 4,209 tok/s, TTFT p90 180 -> 132 s;
    at 4 req/s and in (c), (d), (e) within 1%). New keys (unique prompts, as in (d)) keep
    t_max_s: staying home buys them nothing."""
    valve_kv: bool = False
    """Whether the warm set's valve compares costs with their KV-pressure part. Off: a
    warm endpoint near full KV queues the request at worst, while a copy of the prefix
    elsewhere costs its whole prefill and as much KV again; comparing KV pressure made
    warm b2b groups split past the knee until preemptions collapsed throughput (bench
    tier2 (a) at 9 req/s, half-scale: TTFT p90 84 s with it, 0.43 s without and with
    valve_headroom)."""
    valve_headroom: float | None = Field(0.9, gt=0, lt=1)
    """The warm set's valve opens only toward endpoints with room: no engine queue and
    at most this KV fraction once the request is added. When every endpoint is
    saturated the request stays warm. None: toward any endpoint."""
    epsilon: float = Field(0.25, ge=0, le=4)
    """Bounded load for cold prefixes: no endpoint above ceil((1+epsilon) * mean)."""
    ring_choices: int = Field(2, ge=1, le=8)
    """A cold prefix has this many home endpoints (the first within the bound along its
    ring walk); the cheaper one takes the request (two choices balance far better than
    one and still keep each prefix group on a fixed, small set of endpoints)."""
    warm_epsilon: float | None = Field(0.5, ge=0, le=16)
    """Bounded load for affinity: a warm endpoint whose in-flight load would exceed
    ceil((1+warm_epsilon) * mean) stops counting as warm, so a burst of one prefix fans
    out instead of herding. Looser than `epsilon` so that stickiness survives ordinary
    imbalance. None: no bound (the time valve alone)."""
    key_blocks: int = Field(4, ge=1, le=64)
    """Cold prefixes are placed by the chained hash of their first `key_blocks` blocks."""
    virtual_nodes: int = Field(64, ge=1, le=1024)
    """Points per endpoint on the consistent-hash ring."""
    near_tie_rel: float = Field(0.02, ge=0, le=1)
    near_tie_abs_s: float = Field(0.02, ge=0)
    """Costs within max(rel * best, abs) of the best are near-ties, sampled uniformly."""


# --- producers ---------------------------------------------------------------------


class PrefixIndexParams(Frozen):
    block_chars: int | None = Field(None, ge=8, le=65536)
    """Characters (UTF-8 bytes) per hashed block. None: 4 x the pods' KV block size (about
    one KV block; 64 for vLLM's default of 16 tokens)."""
    max_blocks: int = Field(256, ge=1, le=65536)
    """Blocks hashed per request at most (bounds hashing cost; GIE: 256)."""
    prompt_format: Literal["messages", "json"] = "messages"
    """How a chat is turned into text: role and content of each message (`messages`),
    or the JSON of the message list as GIE does (`json`)."""
    record_response: bool = False
    """Also record the generated answer's blocks when a request completes."""
    capacity: Literal["full", "effective"] = "full"
    """Per-pod LRU capacity: the whole `num_gpu_blocks` (GIE), or that minus the blocks
    the answers in flight are filling (the index records an answer only at its end)."""
    min_capacity_fraction: float = Field(0.2, ge=0, le=1)
    """Floor of the effective capacity, as a fraction of num_gpu_blocks."""
    default_capacity_blocks: int = Field(31250, ge=1)
    """LRU capacity of a pod that does not report num_gpu_blocks (GIE's default)."""
    max_total_blocks: int = Field(1_048_576, ge=1)
    """Hard bound on index entries over all pods (about 100 bytes each)."""
    correct_with_cached_tokens: bool = False
    """Learn from the pod's reported cached_tokens: each pod's precision (predicted hits
    that were real), which discounts its predicted hits in the strata cost model."""
    shrink_on_miss: bool = False
    """With correct_with_cached_tokens, also shrink a pod's capacity by 10% when the
    index over-predicted. Off by default: in bench tier2 (b) (6,000-token unique
    questions churning the caches) the shrinking index lost track of prompts the pods
    still held (TTFT p90 +18% over gie-default at the knee, +2% without)."""


class LedgerParams(Frozen):
    default_prefill_rate: float = Field(8000.0, gt=0)
    """Prefill throughput (tokens/s) assumed until learned from observed TTFTs."""
    rate_alpha: float = Field(0.2, gt=0, le=1)
    """EWMA weight of one TTFT observation in the learned prefill rate."""
    foreign_alpha: float = Field(0.3, gt=0, le=1)
    """EWMA weight of one scrape in the foreign-load estimate."""
    min_learn_tokens: int = Field(256, ge=1)
    """Requests with less prefill work than this do not teach the rate (overhead-bound)."""
    default_output_tokens: int = Field(256, ge=1)
    max_output_estimate: int = Field(2048, ge=1)


# --- the table ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PluginType:
    kind: PluginKind
    params: type[Frozen]


PLUGIN_TYPES: Final[Mapping[str, PluginType]] = {
    "serves-model-filter": PluginType(PluginKind.FILTER, ServesModelParams),
    "healthy-filter": PluginType(PluginKind.FILTER, HealthyParams),
    "saturation-filter": PluginType(PluginKind.FILTER, SaturationParams),
    "queue-scorer": PluginType(PluginKind.SCORER, NoParams),
    "kv-cache-scorer": PluginType(PluginKind.SCORER, NoParams),
    "prefix-cache-scorer": PluginType(PluginKind.SCORER, PrefixScorerParams),
    "lora-affinity-scorer": PluginType(PluginKind.SCORER, NoParams),
    "inflight-load-scorer": PluginType(PluginKind.SCORER, InflightLoadParams),
    "predicted-ttft-scorer": PluginType(PluginKind.SCORER, PredictedTtftParams),
    "max-score-picker": PluginType(PluginKind.PICKER, MaxScoreParams),
    "weighted-random-picker": PluginType(PluginKind.PICKER, NoParams),
    "strata-picker": PluginType(PluginKind.PICKER, StrataPickerParams),
    "prefix-index": PluginType(PluginKind.PRODUCER, PrefixIndexParams),
    "ledger": PluginType(PluginKind.PRODUCER, LedgerParams),
}


@dataclass(frozen=True, slots=True)
class PluginSpec:
    """One plugin of a named profile (plain data; a PluginConfig without pydantic)."""

    type: str
    weight: float = 1.0
    parameters: Mapping[str, Any] = field(default_factory=dict)


NAMED_PROFILES: Final[Mapping[str, tuple[PluginSpec, ...]]] = {
    "gie-default": (
        PluginSpec("serves-model-filter"),
        PluginSpec("healthy-filter", parameters={"fresh_only": False}),
        PluginSpec("queue-scorer", 2.0),
        PluginSpec("kv-cache-scorer", 2.0),
        PluginSpec("prefix-cache-scorer", 3.0),
        PluginSpec("max-score-picker"),
        PluginSpec(
            "prefix-index",
            parameters={
                "max_blocks": 256,
                "prompt_format": "json",
                "record_response": False,
                "capacity": "full",
            },
        ),
        PluginSpec("ledger"),
    ),
    "strata": (
        PluginSpec("serves-model-filter"),
        PluginSpec("healthy-filter"),
        PluginSpec("strata-picker"),
        PluginSpec(
            "prefix-index",
            parameters={
                "max_blocks": 2048,
                "prompt_format": "messages",
                "record_response": True,
                "capacity": "full",
                "correct_with_cached_tokens": True,
            },
        ),
        PluginSpec("ledger"),
    ),
}
DEFAULT_PROFILE: Final = "strata"


def parse_params(type_name: str, parameters: Mapping[str, Any]) -> Frozen:
    """The plugin's parameter model; KeyError for an unknown type, ValidationError for
    bad parameters."""
    return PLUGIN_TYPES[type_name].params.model_validate(dict(parameters))


def profile_errors(plugins: Sequence[PluginSpec]) -> list[str]:
    """Every problem with a plugin list, each naming the plugin; [] when it is valid."""
    errors: list[str] = []
    counts: dict[PluginKind, int] = dict.fromkeys(PluginKind, 0)
    producers: dict[str, int] = {}
    for i, p in enumerate(plugins):
        where = f"plugins[{i}] ({p.type})"
        known = PLUGIN_TYPES.get(p.type)
        if known is None:
            errors.append(f"{where}: unknown plugin type; known: {', '.join(sorted(PLUGIN_TYPES))}")
            continue
        counts[known.kind] += 1
        if known.kind is PluginKind.PRODUCER:
            producers[p.type] = producers.get(p.type, 0) + 1
        try:
            parse_params(p.type, p.parameters)
        except ValidationError as e:
            for err in e.errors(include_url=False):
                loc = ".".join(str(x) for x in err["loc"])
                errors.append(f"{where}: parameters{'.' + loc if loc else ''}: {err['msg']}")
    if not errors:
        if counts[PluginKind.PICKER] != 1:
            errors.append(f"a profile needs exactly one picker, found {counts[PluginKind.PICKER]}")
        errors.extend(
            f"{t} appears {n} times; a profile takes it at most once"
            for t, n in producers.items()
            if n > 1
        )
    return errors


def resolve_plugins(name: str, plugins: Sequence[PluginSpec]) -> tuple[PluginSpec, ...]:
    """The plugin list a profile runs: its own if given, else the named profile's."""
    if plugins:
        return tuple(plugins)
    try:
        return NAMED_PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown scheduler profile {name!r}; known: {', '.join(sorted(NAMED_PROFILES))} "
            "(or list `plugins`)"
        ) from None
