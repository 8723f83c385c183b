"""tier2 benchmark policies, statistics and verdicts: the oracle (strata on true
state), the baselines, the PoolPicker adapter, percentiles, knees."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.tier2_bench.harness import Window, run_point
from bench.tier2_bench.informed_router import (
    Information,
    InformedRouter,
    index_blocks,
    true_cached_tokens,
)
from bench.tier2_bench.picker_router import PickerRouter, endpoint_id, endpoint_state
from bench.tier2_bench.prompts import TextPool, message
from bench.tier2_bench.report import _ladder_md, knee_rate, ladder_result, verdicts
from bench.tier2_bench.routers import BenchRouter, LeastQueueRouter, RoundRobinRouter
from bench.tier2_bench.run import make_router
from bench.tier2_bench.scenarios import SCENARIOS, scenario_list
from bench.tier2_bench.stats import percentile, weighted_percentile
from bench.tier2_bench.workloads import Payload
from bench.vllmsim.config import SimConfig
from bench.vllmsim.des import ClusterView, SimRequest, Simulation
from bench.vllmsim.kvcache import KVCacheManager, KVSeq, scope_id
from common.config.scheduling import StrataPickerParams
from tier2.prefix.hashing import CHARS_PER_TOKEN
from tier2.scheduling.cost import TtftModel
from tier2.scheduling.types import Candidate

POOL = TextPool(num_words=5000)
CONFIG = SimConfig(profile="32b-h100-tp2")


def _doc_request(rid: str, doc: Any, at: float, question: str) -> SimRequest:
    user = message("user", *POOL.passage(random.Random(rid), 20, question))
    ids = list(doc.ids) + list(user.ids)
    payload = Payload((doc.message, user.message), 8)
    return SimRequest(rid, ids, 8, at, ignore_eos=True, payload=payload)


class _Fixed:
    """Routes to a fixed pod (to warm a cache), then defers to ``then``."""

    def __init__(self, pod: int) -> None:
        self.pod = pod
        self.then: Any = None

    def route(self, request: SimRequest, cluster: ClusterView) -> int:
        return self.pod if self.then is None else int(self.then.route(request, cluster))


def _warmed(doc: Any, pods: int, warm_pod: int) -> tuple[Simulation, _Fixed]:
    """A simulation whose ``warm_pod`` alone holds ``doc`` (no router's index knows it)."""
    router = _Fixed(warm_pod)
    sim = Simulation(CONFIG, pods, router=router, scrape_interval_s=0.05)
    sim.submit(_doc_request("warm", doc, 0.0, "w"))
    sim.run(until=5.0)
    return sim, router


FULL = Information()


def _kv_seq(req: SimRequest) -> KVSeq:
    """The request's prompt hashed as the engines hash it."""
    seq = KVSeq(list(req.prompt_token_ids), scope_id(CONFIG.model))
    KVCacheManager(4, 16).extend_hashes(seq)
    return seq


def _informed(pods: int, info: Information = FULL) -> InformedRouter:
    return InformedRouter(
        num_pods=pods, model=CONFIG.model, scrape_interval_s=0.05, seed=0, info=info
    )


def test_oracle_candidates_see_the_true_cache_and_prompt_length() -> None:
    doc = message("system", *POOL.passage(random.Random(0), 2000, "docA"))
    sim, fixed = _warmed(doc, 4, 2)
    oracle = _informed(4)
    fixed.then = oracle
    req = _doc_request("hit", doc, 5.0, "h")
    truth = true_cached_tokens(req, sim.view)
    assert truth[2] > 1000 and truth[0] == truth[1] == truth[3] == 0
    assert oracle.route(req, sim.view) == 2
    pick = oracle._picks["hit"]
    assert pick.request.prompt_tokens == len(req.prompt_token_ids)
    assert pick.matches == {endpoint_id(2): truth[2] // 16}
    # what the strata cost model reads back is the true uncached token count
    model = TtftModel.from_params(StrataPickerParams(), 0.05)
    cand = Candidate(oracle.picker.endpoints()[endpoint_id(2)], prefix_blocks=truth[2] // 16)
    assert model.cached_tokens(pick.request, cand) == truth[2]
    # strata itself, whose index never saw the warm-up, predicts no hit anywhere
    blind = _informed(4, Information(metrics=False, cache=False))
    blind.route(_doc_request("blind", doc, 5.0, "b"), sim.view)
    assert blind._picks["blind"].matches == {}


def test_oracle_counts_what_queued_requests_will_have_cached() -> None:
    doc = message("system", *POOL.passage(random.Random(0), 3000, "docQ"))
    fixed = _Fixed(1)
    sim = Simulation(CONFIG, 2, router=fixed, scrape_interval_s=0.05)
    first = _doc_request("first", doc, 0.0, "a")
    sim.submit(first)
    sim.run(until=0.0)  # its first chunk is being computed, the rest is not cached yet
    second = _doc_request("second", doc, 0.0, "b")
    ids_a, ids_b = first.prompt_token_ids, second.prompt_token_ids
    common = next(i for i, (x, y) in enumerate(zip(ids_a, ids_b, strict=False)) if x != y)
    now = 16 * len(sim.view.engine(1).kv.find_cached_prefix(_kv_seq(second)))
    truth = true_cached_tokens(second, sim.view)
    assert truth == [0, 16 * (common // 16)]
    assert 0 < now < truth[1]  # a lookup now sees only the first chunk


@given(st.integers(0, 10_000), st.sampled_from([16, 32, 64, 128]), st.integers(0, 1000))
def test_index_blocks_round_trip_through_the_cost_model(
    blocks_of_16: int, block_chars: int, hashed: int
) -> None:
    cached = 16 * blocks_of_16  # the engine caches whole 16-token blocks
    n = index_blocks(cached, block_chars, hashed)
    assert 0 <= n <= hashed
    read_back = n * block_chars / CHARS_PER_TOKEN
    assert read_back <= cached
    if n < hashed:
        assert cached - read_back < block_chars / CHARS_PER_TOKEN
    if block_chars == 64 and n < hashed:
        assert read_back == cached


def test_oracle_reads_each_pods_last_step_not_the_scrape() -> None:
    doc = message("system", *POOL.passage(random.Random(0), 500, "docC"))
    oracle = _informed(2)
    sim = Simulation(CONFIG, 2, router=oracle, scrape_interval_s=30.0)
    for i in range(3):  # a burst at one instant onto idle pods
        sim.submit(_doc_request(f"r{i}", doc, 1.0, f"q{i}"))
    sim.run(until=1.0)
    # the stats predate the burst, so the ledger counts all of it as not shown yet
    views = [oracle.picker.ledger.view(endpoint_id(p)) for p in range(2)]
    assert sum(v.dispatched_since_scrape for v in views) == 3
    sim.run(until=1.5)
    oracle._sync(sim.view)  # what the next pick would see
    for pod in range(2):
        m = oracle.picker.endpoints()[endpoint_id(pod)].metrics
        stats = sim.view.fresh(pod)
        assert m is not None and m.running == stats.num_running
        assert m.kv_usage == stats.kv_cache_usage
        busy = sim.view.engine(pod).has_work()
        assert m.scraped_at == stats.time if busy else 1.5 - 1e-9 < m.scraped_at < 1.5
    assert sim.view.scrape(0).scraped_at < 1.0  # what strata would have seen


def test_oracle_without_information_picks_exactly_as_strata() -> None:
    docs = [message("system", *POOL.passage(random.Random(d), 600, f"doc{d}")) for d in range(3)]
    reqs = [_doc_request(f"r{i}", docs[i % 3], 0.15 * i, f"q{i}") for i in range(40)]
    pods = {}
    for router in (
        PickerRouter("strata", num_pods=3, model=CONFIG.model, scrape_interval_s=0.05, seed=0),
        _informed(3, Information(metrics=False, cache=False, prefill_rate=False)),
    ):
        sim = Simulation(CONFIG, 3, router=router, scrape_interval_s=0.05)
        sim.on_first_token = lambda pod, req, t, r=router: r.first_token(req.request_id, pod, t)
        sim.on_finish = lambda rec, s, r=router: r.finished(rec)
        for req in reqs:
            sim.submit(req)
        pods[router.name] = [(r.request_id, r.pod) for r in sim.run()]
    assert pods["strata"] == pods["oracle"]


def _small_run(router: BenchRouter, doc: Any) -> dict[str, Any]:
    """30 requests sharing one document, 0.2 s apart, on 3 pods; 20 of them measured."""

    class _Load:
        def initial(self, until: float) -> list[SimRequest]:
            return [_doc_request(f"r{i}", doc, 0.2 * i, f"q{i}") for i in range(30)]

        def follow_up(self, rec: Any) -> None:
            return None

    return run_point(
        _Load(),
        router,
        config=CONFIG,
        num_pods=3,
        window=Window(1.0, 4.0, 20.0),
        scrape_interval_s=0.05,
    )


def test_oracle_serves_a_small_run_and_releases_its_picks() -> None:
    doc = message("system", *POOL.passage(random.Random(0), 400, "docF"))
    router = make_router("oracle", num_pods=3, model=CONFIG.model, scrape_interval_s=0.05, seed=0)
    assert isinstance(router, InformedRouter) and router.name == "oracle"
    res = _small_run(router, doc)
    assert res["requests"] == 20 and res["unserved"] == 0
    assert res["prefix_hit_rate"] > 0.5
    assert res["picks"] == 30 and not router._picks


def test_oracle_can_pin_the_profiles_prefill_rate() -> None:
    doc = message("system", *POOL.passage(random.Random(0), 300, "docR"))
    oracle = _informed(2, Information(prefill_rate=True))
    sim = Simulation(CONFIG, 2, router=oracle, scrape_interval_s=0.05)
    sim.on_first_token = lambda pod, req, t: oracle.first_token(req.request_id, pod, t)
    for i in range(6):
        sim.submit(_doc_request(f"r{i}", doc, 0.3 * i, f"q{i}"))
    sim.run()
    rate = 1000.0 / CONFIG.engine_config().profile.prefill.per_token_ms
    assert all(oracle.picker.ledger.view(endpoint_id(p)).prefill_rate == rate for p in range(2))


def test_round_robin_and_least_queue_spread_a_burst() -> None:
    for router in (RoundRobinRouter(), LeastQueueRouter(random.Random(0))):
        sim = Simulation(CONFIG, 4, router=router, scrape_interval_s=0.05)
        doc = message("system", *POOL.passage(random.Random(0), 100, "docD"))
        for i in range(40):
            sim.submit(_doc_request(f"r{i}", doc, 0.0, f"q{i}"))
        records = sim.run()
        counts = [sum(1 for r in records if r.pod == p) for p in range(4)]
        assert min(counts) >= 5, (router.name, counts)
        assert len(router.pick_seconds) == 40


def test_endpoint_state_carries_the_scrape_time_and_gauges() -> None:
    sim = Simulation(CONFIG, 1, scrape_interval_s=0.5)
    doc = message("system", *POOL.passage(random.Random(0), 300, "docE"))
    sim.submit(_doc_request("r0", doc, 0.0, "q"))
    sim.run(until=2.0)
    view = sim.scrape(0)
    state = endpoint_state(0, view)
    assert state.metrics is not None
    assert state.metrics.scraped_at == view.scraped_at <= 2.0
    assert state.metrics.num_gpu_blocks == view.num_gpu_blocks
    assert state.metrics.waiting == view.stats.num_waiting
    assert state.metrics.kv_usage == view.stats.kv_cache_usage


@pytest.mark.parametrize("profile", ["gie-default", "strata"])
def test_picker_router_serves_a_small_run_and_releases_its_picks(profile: str) -> None:
    doc = message("system", *POOL.passage(random.Random(0), 400, "docF"))
    router = PickerRouter(profile, num_pods=3, model=CONFIG.model, scrape_interval_s=0.05, seed=0)
    res = _small_run(router, doc)
    assert res["requests"] == 20 and res["unserved"] == 0
    assert res["prefix_hit_rate"] > 0.5
    assert res["picks"] == 30 and not router._picks  # every pick finished
    assert sum(router.picker.stats().picks.values()) == 30


@pytest.mark.parametrize(("q", "expected"), [(0.0, 1.0), (0.5, 2.5), (1.0, 4.0), (0.9, 3.7)])
def test_percentile_table(q: float, expected: float) -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], q) == pytest.approx(expected)


def test_percentiles_of_nothing_are_nan() -> None:
    assert math.isnan(percentile([], 0.5))
    assert math.isnan(weighted_percentile([], [], 0.5))


@given(st.lists(st.floats(0, 100), min_size=1, max_size=30), st.floats(0, 1))
def test_weighted_percentile_with_unit_weights_is_a_value_in_range(
    xs: list[float], q: float
) -> None:
    v = weighted_percentile(xs, [1.0] * len(xs), q)
    assert v in xs
    assert min(xs) <= v <= max(xs)


def test_weighted_percentile_follows_the_weights() -> None:
    assert weighted_percentile([0.01, 1.0], [99, 1], 0.5) == 0.01
    assert weighted_percentile([0.01, 1.0], [99, 1], 0.995) == 1.0


def _run(policy: str, rate: float, p90: float, out: float = 100.0, **kw: Any) -> dict[str, Any]:
    base = {
        "policy": policy,
        "rate": rate,
        "ttft_p50_s": p90 / 2,
        "ttft_p90_s": p90,
        "ttft_p99_s": 2 * p90,
        "itl_p50_ms": 50.0,
        "itl_p99_ms": 100.0,
        "output_tps": out,
        "offered_output_tps": 100.0,
        "unserved": 0,
    }
    return {**base, **kw}


def test_knee_is_the_highest_rate_the_reference_sustains() -> None:
    runs = [
        _run("gie-default", 1.0, 0.5),
        _run("gie-default", 2.0, 0.6),
        _run("gie-default", 3.0, 9.0, out=80.0),
        _run("strata", 3.0, 0.4),
    ]
    assert knee_rate(runs) == 2.0
    assert knee_rate([_run("gie-default", 1.0, 5.0, unserved=3)]) == 1.0
    assert knee_rate([_run("strata", 1.0, 0.1)]) == 1.0  # falls back to the first policy
    assert knee_rate([]) is None


def test_verdicts_at_the_knee() -> None:
    a = SCENARIOS["a"]
    runs = [_run("gie-default", 1.0, 1.0), _run("strata", 1.0, 0.7), _run("oracle", 1.0, 0.5)]
    checks = verdicts(a, runs, 1.0)
    assert [c["pass"] for c in checks] == [True, True]  # 30% better; 60% of the gap
    runs[1] = _run("strata", 1.0, 0.9)
    assert [c["pass"] for c in verdicts(a, runs, 1.0)] == [False, False]
    # no meaningful gap (oracle within 5%): strata must then stay within 5% of gie-default
    runs = [_run("gie-default", 1.0, 1.0), _run("strata", 1.0, 1.04), _run("oracle", 1.0, 0.97)]
    gap = verdicts(a, runs, 1.0)[1]
    assert gap["pass"] and "no gap" in gap["value"]
    runs[1] = _run("strata", 1.0, 1.2)
    assert not verdicts(a, runs, 1.0)[1]["pass"]
    b = SCENARIOS["b"]
    par = [_run("gie-default", 1.0, 1.0), _run("strata", 1.0, 1.0, out=94.0)]
    (check,) = verdicts(b, par, 1.0)
    assert not check["pass"] and "output_tps" in check["value"]
    assert verdicts(b, par[:1], 1.0) == []


def test_verdicts_use_the_mean_over_seeds_at_the_knee() -> None:
    # seed 0 alone says strata wins by 30%; over two seeds the gain is 10%
    a = SCENARIOS["a"]
    runs = [
        _run("gie-default", 1.0, 1.0),
        _run("gie-default", 2.0, 9.0, out=50.0),  # past the knee
        _run("strata", 1.0, 0.7),
        {**_run("gie-default", 1.0, 1.0), "seed": 1},
        {**_run("strata", 1.0, 1.1), "seed": 1},
        {**_run("gie-default", 2.0, 1.0), "seed": 1},  # another seed never moves the knee
    ]
    res = ladder_result(a, runs)
    assert res["knee_rate"] == 1.0 and res["knee_seeds"] == [0, 1]
    (better,) = res["verdicts"]
    assert not better["pass"] and "+10.0%" in better["value"] and "2 seeds" in better["value"]
    strata = next(r for r in res["knee_pooled"] if r["policy"] == "strata")
    assert strata["ttft_p90_by_seed"] == [0.7, 1.1]
    assert len(res["runs"]) == 3 and len(res["knee_other_seeds"]) == 3
    assert "per seed" in "\n".join(_ladder_md("a", res, ["gie-default", "strata"]))


def test_scenario_selection_and_sizing() -> None:
    assert [s.key for s in scenario_list("c,a")] == ["a", "c"]
    assert [s.key for s in scenario_list("all")] == list("abcdefg")
    with pytest.raises(KeyError):
        scenario_list("az")
    quick = SCENARIOS["a"].sized(scale=1.0, quick=True)
    assert quick.rates == SCENARIOS["a"].quick_rates
    assert quick.window.measure == SCENARIOS["a"].window.measure / 4
    assert SCENARIOS["f"].sized(scale=1.0, quick=True).scrape_intervals == (0.05, 5.0)


def test_des_hooks_report_first_tokens_once_and_every_step() -> None:
    firsts: dict[str, float] = {}
    decodes = [0]

    def first(pod: int, req: Any, t: float) -> None:
        assert req.request_id not in firsts
        firsts[req.request_id] = t

    def step(pod: int, result: Any) -> None:
        decodes[0] += result.plan.num_decodes

    sim = Simulation(CONFIG, 2, on_first_token=first, on_step=step)
    doc = message("system", *POOL.passage(random.Random(0), 200, "docG"))
    for i in range(8):
        sim.submit(_doc_request(f"r{i}", doc, 0.01 * i, f"q{i}"))
    records = sim.run()
    assert {r.request_id: r.first_token for r in records} == firsts
    assert decodes[0] == sum(r.output_tokens - 1 for r in records)
