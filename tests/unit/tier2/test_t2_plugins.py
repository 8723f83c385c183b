"""Filters, scorers and pickers: GIE-style tables of candidates and expected results,
plus the property that every scorer stays in [0, 1]."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.config.scheduling import (
    HealthyParams,
    InflightLoadParams,
    MaxScoreParams,
    NoParams,
    PredictedTtftParams,
    PrefixScorerParams,
    SaturationParams,
    ServesModelParams,
)
from tier2.datalayer.types import EndpointMetrics, EndpointState
from tier2.scheduling.framework import PluginContext, ScorerPlugin, WhenNonePass
from tier2.scheduling.plugins.filters.healthy import HealthyFilter
from tier2.scheduling.plugins.filters.saturation import SaturationFilter
from tier2.scheduling.plugins.filters.serves_model import ServesModelFilter
from tier2.scheduling.plugins.pickers.max_score import MaxScorePicker
from tier2.scheduling.plugins.pickers.weighted_random import WeightedRandomPicker
from tier2.scheduling.plugins.scorers.inflight_load import InflightLoadScorer
from tier2.scheduling.plugins.scorers.kv_cache import KvCacheScorer
from tier2.scheduling.plugins.scorers.lora_affinity import LoraAffinityScorer
from tier2.scheduling.plugins.scorers.predicted_ttft import PredictedTtftScorer
from tier2.scheduling.plugins.scorers.prefix_cache import PrefixCacheScorer
from tier2.scheduling.plugins.scorers.queue import QueueScorer
from tier2.scheduling.types import Candidate, LedgerView, PickRequest

NOW = 100.0


def ctx(seed: int = 0) -> PluginContext:
    return PluginContext(random.Random(seed), 0.1, 5, 0.8)


def metrics(
    waiting: int | None = 0,
    running: int | None = 0,
    kv: float | None = 0.0,
    *,
    age: float = 0.05,
    blocks: int | None = 1000,
    running_loras: tuple[str, ...] | None = None,
    waiting_loras: tuple[str, ...] | None = None,
    max_lora: int | None = None,
) -> EndpointMetrics:
    return EndpointMetrics(
        NOW - age,
        waiting,
        running,
        kv,
        16,
        blocks,
        running_loras,
        waiting_loras,
        max_lora,
    )


def cand(
    name: str,
    m: EndpointMetrics | None = None,
    *,
    healthy: bool = True,
    ledger: LedgerView | None = None,
    blocks: int = 0,
    precision: float = 1.0,
) -> Candidate:
    state = EndpointState(name, m if m is not None else metrics(), healthy=healthy)
    return Candidate(state, ledger or LedgerView(prefill_rate=8000.0), blocks, precision)


def request(
    *,
    prompt: int = 1000,
    hashes: int = 10,
    adapter: str | None = None,
    out: int = 100,
    session: str | None = None,
) -> PickRequest:
    return PickRequest(
        "r", "m", adapter, prompt, out, tuple(range(hashes)), session=session, block_chars=64
    )


def approx(d: dict[str, float]) -> dict[str, object]:
    return {k: pytest.approx(v) for k, v in d.items()}


# --- filters -------------------------------------------------------------------------


def ids(cands: list[Candidate]) -> list[str]:
    return [c.id for c in cands]


@pytest.mark.parametrize(
    ("adapter", "max_loras", "kept"),
    [
        (None, [0, 0], ["a", "b"]),
        ("sql", [0, 4], ["b"]),
        ("sql", [None, 0], ["a"]),  # unknown LoRA support is kept
        ("sql", [0, 0], []),
    ],
)
def test_serves_model_filter(
    adapter: str | None, max_loras: list[int | None], kept: list[str]
) -> None:
    f = ServesModelFilter(ServesModelParams(), ctx())
    cands = [cand(n, metrics(max_lora=x)) for n, x in zip("ab", max_loras, strict=True)]
    assert ids(f.filter(request(adapter=adapter), cands, NOW)) == kept
    assert f.when_none_pass is WhenNonePass.REJECT


@pytest.mark.parametrize(
    ("params", "states", "kept"),
    [
        (HealthyParams(), [(True, 0.1), (True, 5.0), (False, 0.1)], ["a"]),
        (HealthyParams(), [(True, 9.0), (True, 5.0), (False, 0.1)], ["a", "b"]),  # fail open
        (HealthyParams(max_age_s=6.0), [(True, 0.1), (True, 5.0)], ["a", "b"]),
        (HealthyParams(fresh_only=False), [(True, 9.0), (True, 0.1), (False, 0.1)], ["a", "b"]),
        (HealthyParams(), [(False, 0.1)], []),
    ],
)
def test_healthy_filter(
    params: HealthyParams, states: list[tuple[bool, float]], kept: list[str]
) -> None:
    f = HealthyFilter(params, ctx())
    cands = [
        cand(n, metrics(age=age), healthy=h) for n, (h, age) in zip("abc", states, strict=False)
    ]
    assert ids(f.filter(request(), cands, NOW)) == kept


def test_freshness_follows_the_scrape_interval() -> None:
    slow = PluginContext(random.Random(0), scrape_interval_s=5.0)
    assert HealthyFilter(HealthyParams(), slow).max_age_s == 15.0
    assert HealthyFilter(HealthyParams(), ctx()).max_age_s == 2.0
    assert SaturationFilter(SaturationParams(), slow).max_age_s == 15.0


def test_healthy_filter_drops_never_scraped_endpoints_when_others_are_fresh() -> None:
    f = HealthyFilter(HealthyParams(), ctx())
    never = Candidate(EndpointState("n"), LedgerView())
    assert ids(f.filter(request(), [never, cand("a")], NOW)) == ["a"]


@pytest.mark.parametrize(
    ("m", "ledger_kv", "saturated"),
    [
        (metrics(4, 0, 0.5), 0, False),
        (metrics(5, 0, 0.5), 0, True),  # queue at the threshold
        (metrics(0, 0, 0.8), 0, True),  # KV at the threshold
        (metrics(0, 0, 0.7), 1700, True),  # what we sent since the scrape fills it: 0.7 + 0.106
        (metrics(0, 0, None), 0, False),  # unknown usage: no evidence of saturation
        (metrics(0, 0, 0.1, age=3.0), 0, True),  # stale: no evidence of room
    ],
)
def test_saturation_filter(m: EndpointMetrics, ledger_kv: int, saturated: bool) -> None:
    f = SaturationFilter(SaturationParams(), ctx())
    c = cand("a", m, ledger=LedgerView(kv_new_since_scrape=ledger_kv))
    assert (f.filter(request(), [c], NOW) == []) is saturated
    assert f.when_none_pass is WhenNonePass.KEEP_ALL_SATURATED


def test_saturation_filter_parameters_override_the_pool() -> None:
    f = SaturationFilter(SaturationParams(queue_depth=1, kv_cache_usage=0.3), ctx())
    assert f.filter(request(), [cand("a", metrics(1, 0, 0.0))], NOW) == []
    assert f.filter(request(), [cand("a", metrics(0, 0, 0.3))], NOW) == []


# --- scorers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("queues", "expected"),
    [
        ([0, 0, 0], [1.0, 1.0, 1.0]),
        ([0, 5, 10], [1.0, 0.5, 0.0]),
        ([40, 41], [1.0, 0.0]),  # min-max: scale-free
        ([2, None, 4], [1.0, 0.0, 0.0]),  # unknown scores as the worst
        ([None, None], [1.0, 1.0]),
        ([3, None], [1.0, 0.0]),
    ],
)
def test_queue_scorer(queues: list[int | None], expected: list[float]) -> None:
    cands = [cand(f"e{i}", metrics(waiting=q)) for i, q in enumerate(queues)]
    got = QueueScorer(NoParams(), ctx()).score(request(), cands, NOW)
    assert got == approx({f"e{i}": v for i, v in enumerate(expected)})


@pytest.mark.parametrize(("kv", "expected"), [(0.0, 1.0), (0.25, 0.75), (1.0, 0.0), (None, 0.0)])
def test_kv_cache_scorer(kv: float | None, expected: float) -> None:
    got = KvCacheScorer(NoParams(), ctx()).score(request(), [cand("a", metrics(kv=kv))], NOW)
    assert got == approx({"a": expected})


def test_kv_cache_scorer_without_metrics() -> None:
    c = Candidate(EndpointState("a"), LedgerView())
    assert KvCacheScorer(NoParams(), ctx()).score(request(), [c], NOW) == {"a": 0.0}


@pytest.mark.parametrize(
    ("blocks", "hashes", "precision", "use", "expected"),
    [
        (0, 10, 1.0, False, 0.0),
        (4, 10, 1.0, False, 0.4),
        (10, 10, 1.0, False, 1.0),
        (5, 10, 0.5, False, 0.5),
        (5, 10, 0.5, True, 0.25),
        (0, 0, 1.0, False, 0.0),  # shorter than a block: nothing to match
    ],
)
def test_prefix_cache_scorer(
    blocks: int, hashes: int, precision: float, use: bool, expected: float
) -> None:
    s = PrefixCacheScorer(PrefixScorerParams(use_precision=use), ctx())
    got = s.score(request(hashes=hashes), [cand("a", blocks=blocks, precision=precision)], NOW)
    assert got == approx({"a": expected})


@pytest.mark.parametrize(
    ("adapter", "running", "waiting", "max_lora", "expected"),
    [
        (None, None, None, None, 1.0),
        ("x", ("x",), (), 1, 1.0),
        ("x", ("y",), (), 4, 0.8),  # a slot is free to load it
        ("x", ("y",), ("x",), 2, 0.6),  # queued for loading, no free slot
        ("x", ("y", "z"), (), 2, 0.0),
        ("x", None, None, None, 0.5),  # no LoRA metrics: unknown
    ],
)
def test_lora_affinity_scorer(
    adapter: str | None,
    running: tuple[str, ...] | None,
    waiting: tuple[str, ...] | None,
    max_lora: int | None,
    expected: float,
) -> None:
    m = metrics(running_loras=running, waiting_loras=waiting, max_lora=max_lora)
    got = LoraAffinityScorer(NoParams(), ctx()).score(request(adapter=adapter), [cand("a", m)], NOW)
    assert got == approx({"a": expected})


@pytest.mark.parametrize(
    ("waiting", "running", "foreign", "expected"),
    [(0, 0, 0.0, 1.0), (2, 4, 2.0, 0.5), (10, 10, 0.0, 0.0), (0, 0, 100.0, 0.0)],
)
def test_inflight_load_scorer(waiting: int, running: int, foreign: float, expected: float) -> None:
    s = InflightLoadScorer(InflightLoadParams(threshold_requests=16), ctx())
    led = LedgerView(waiting=waiting, running=running, foreign=foreign)
    assert s.score(request(), [cand("a", ledger=led)], NOW) == approx({"a": expected})


def test_predicted_ttft_scorer_prefers_the_warm_idle_endpoint() -> None:
    s = PredictedTtftScorer(PredictedTtftParams(scale_s=1.0, kv_pressure_s=0.0), ctx())
    req = request(prompt=8000, hashes=125)  # 125 blocks of 16 tokens = 2000 tokens
    cold = cand("cold")
    warm = cand("warm", blocks=125)
    busy = cand("busy", blocks=125, ledger=LedgerView(prefill_tokens=16000, prefill_rate=8000.0))
    got = s.score(req, [cold, warm, busy], NOW)
    # T = 0.02 overhead + (queued + uncached) / 8000 tok/s
    assert got == approx({"cold": 1 / 2.02, "warm": 1 / 1.77, "busy": 1 / 3.77})


# --- pickers -------------------------------------------------------------------------


def test_max_score_picker_ranks_everything_best_first() -> None:
    p = MaxScorePicker(MaxScoreParams(), ctx())
    cands = [cand(n) for n in "abc"]
    r = p.pick(request(), cands, {"a": 1.0, "b": 3.0, "c": 2.0}, NOW)
    assert r.ranked == ("b", "c", "a") and r.reason == "max-score"


def test_max_score_picker_breaks_exact_ties_at_random() -> None:
    p = MaxScorePicker(MaxScoreParams(), ctx(1))
    cands = [cand(n) for n in "abcd"]
    wins = Counter(
        p.pick(request(), cands, {"a": 2, "b": 2, "c": 2, "d": 1}, NOW).ranked[0]
        for _ in range(600)
    )
    assert set(wins) == {"a", "b", "c"} and min(wins.values()) > 150


def test_max_score_picker_near_ties() -> None:
    exact = MaxScorePicker(MaxScoreParams(), ctx(2))
    near = MaxScorePicker(MaxScoreParams(tie_epsilon=0.05), ctx(2))
    cands = [cand(n) for n in "abc"]
    scores = {"a": 1.0, "b": 0.97, "c": 0.5}
    assert {exact.pick(request(), cands, scores, NOW).ranked[0] for _ in range(50)} == {"a"}
    firsts = Counter(near.pick(request(), cands, scores, NOW).ranked[0] for _ in range(400))
    assert set(firsts) == {"a", "b"} and min(firsts.values()) > 120


def test_weighted_random_picker_follows_the_weights() -> None:
    p = WeightedRandomPicker(NoParams(), ctx(3))
    cands = [cand(n) for n in "abc"]
    firsts = Counter(
        p.pick(request(), cands, {"a": 3.0, "b": 1.0, "c": 0.0}, NOW).ranked[0] for _ in range(4000)
    )
    assert firsts["c"] == 0
    assert firsts["a"] / firsts["b"] == pytest.approx(3.0, rel=0.15)
    ranked = p.pick(request(), cands, {"a": 3.0, "b": 1.0, "c": 0.0}, NOW).ranked
    assert sorted(ranked) == ["a", "b", "c"] and ranked[-1] == "c"


def test_weighted_random_picker_all_zero_is_uniform() -> None:
    p = WeightedRandomPicker(NoParams(), ctx(4))
    cands = [cand(n) for n in "ab"]
    firsts = Counter(p.pick(request(), cands, {}, NOW).ranked[0] for _ in range(400))
    assert min(firsts.values()) > 150


# --- property: every scorer stays in [0, 1] -------------------------------------------

SCORERS: list[ScorerPlugin] = [
    QueueScorer(NoParams(), ctx()),
    KvCacheScorer(NoParams(), ctx()),
    PrefixCacheScorer(PrefixScorerParams(use_precision=True), ctx()),
    LoraAffinityScorer(NoParams(), ctx()),
    InflightLoadScorer(InflightLoadParams(), ctx()),
    PredictedTtftScorer(PredictedTtftParams(), ctx()),
]

maybe_int = st.none() | st.integers(0, 500)
adapters = st.none() | st.lists(st.sampled_from(["x", "y", "z"]), max_size=3).map(tuple)
metrics_st = st.none() | st.builds(
    metrics,
    maybe_int,
    maybe_int,
    st.none() | st.floats(0, 1),
    age=st.floats(0, 100),
    blocks=st.none() | st.integers(1, 100_000),
    running_loras=adapters,
    waiting_loras=adapters,
    max_lora=st.none() | st.integers(0, 8),
)
ledger_st = st.builds(
    LedgerView,
    prefill_tokens=st.integers(0, 10**6),
    waiting=st.integers(0, 300),
    running=st.integers(0, 300),
    kv_tokens=st.integers(0, 10**6),
    foreign=st.floats(0, 300),
    prefill_rate=st.floats(0, 1e6),
    kv_new_since_scrape=st.integers(0, 10**6),
    output_tokens=st.integers(0, 10**6),
)


@st.composite
def candidates(draw: st.DrawFn) -> tuple[PickRequest, list[Candidate]]:
    hashes = draw(st.integers(0, 50))
    req = PickRequest(
        "r",
        "m",
        draw(st.none() | st.sampled_from(["x", "y"])),
        draw(st.integers(0, 100_000)),
        draw(st.integers(0, 10_000)),
        tuple(range(hashes)),
    )
    n = draw(st.integers(1, 6))
    cands = [
        Candidate(
            EndpointState(f"e{i}", draw(metrics_st), healthy=draw(st.booleans())),
            draw(ledger_st),
            draw(st.integers(0, hashes)),
            draw(st.floats(0, 1)),
        )
        for i in range(n)
    ]
    return req, cands


@settings(max_examples=200, deadline=None)
@given(candidates())
def test_scores_are_in_unit_interval(case: tuple[PickRequest, list[Candidate]]) -> None:
    req, cands = case
    for scorer in SCORERS:
        scores = scorer.score(req, cands, NOW)
        assert set(scores) == {c.id for c in cands}
        assert all(0.0 <= s <= 1.0 for s in scores.values()), (type(scorer).__name__, scores)
