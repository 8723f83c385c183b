"""The strata decision rule, its TTFT cost model and the bounded-load ring."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.config.scheduling import StrataPickerParams, TtftModelParams
from tests.unit.tier2.test_t2_plugins import NOW, cand, ctx, metrics, request
from tier2.datalayer.types import EndpointMetrics
from tier2.scheduling.cost import TtftModel
from tier2.scheduling.plugins.pickers.strata import StrataPicker
from tier2.scheduling.ring import BoundedLoadRing
from tier2.scheduling.types import LedgerView

RATE = 8000.0


def led(**kw: float) -> LedgerView:
    return LedgerView(prefill_rate=RATE, **kw)  # type: ignore[arg-type]


def picker(seed: int = 0, **params: object) -> StrataPicker:
    return StrataPicker(StrataPickerParams.model_validate(params), ctx(seed))


# --- cost model ----------------------------------------------------------------------


def model(**params: object) -> TtftModel:
    return TtftModel.from_params(TtftModelParams.model_validate(params), 0.1)


@pytest.mark.parametrize(
    ("ledger", "m", "blocks", "expected_t", "expected_u"),
    [
        # overhead + uncached / rate
        (led(), metrics(), 0, 0.02 + 1000 / RATE, 1000),
        # 40 blocks of 16 tokens are cached
        (led(), metrics(), 40, 0.02 + 360 / RATE, 360),
        # our queued prefill, and load (waiting + running + foreign) at 10 ms each
        (
            led(prefill_tokens=8000, waiting=1, running=2, foreign=1.0),
            metrics(),
            0,
            0.02 + 1.125 + 0.04,
            1000,
        ),
        # the engine already queues: 50 ms per waiting request
        (led(), metrics(waiting=4), 0, 0.02 + 0.125 + 0.2, 1000),
        # stale metrics: uncertain, never idle
        (led(), metrics(age=1.0), 0, 0.02 + 0.125 + 0.5, 1000),
    ],
)
def test_ttft_prediction(
    ledger: LedgerView, m: EndpointMetrics, blocks: int, expected_t: float, expected_u: float
) -> None:
    c = cand("a", m, ledger=ledger, blocks=blocks)
    t, u, kv = model(kv_pressure_s=0.0).predict(request(prompt=1000), c, NOW)
    assert t == pytest.approx(expected_t)
    assert u == pytest.approx(expected_u)
    assert kv == 0.0


def test_precision_discounts_the_predicted_hit() -> None:
    c = cand("a", blocks=40, precision=0.5)
    assert model().predict(request(prompt=1000), c, NOW)[1] == pytest.approx(680)
    assert model(use_precision=False).predict(request(prompt=1000), c, NOW)[1] == pytest.approx(360)


@pytest.mark.parametrize(
    ("kv", "since", "expected"),
    [
        (0.0, 0, 0.2 * 0.1 / 0.9),  # the request's own 1000 + 600 tokens of 16000
        (0.4, 0, 0.2 * 0.5 / 0.5),
        (0.4, 6400, 0.2 * 0.9 / 0.1),  # what we sent since the scrape counts
        (1.0, 0, 0.2 * 0.99 / 0.01),  # capped
    ],
)
def test_kv_pressure(kv: float, since: int, expected: float) -> None:
    m = model(overhead_s=0.0, default_output_tokens=600)
    c = cand("a", metrics(kv=kv), ledger=LedgerView(prefill_rate=1e12, kv_new_since_scrape=since))
    assert m.predict(request(prompt=1000, out=0), c, NOW)[0] == pytest.approx(expected, rel=1e-6)


def test_stale_after_defaults_to_three_scrape_intervals() -> None:
    assert TtftModel.from_params(TtftModelParams(), 0.25).stale_after_s == pytest.approx(0.75)
    assert TtftModel.from_params(TtftModelParams(), 0.05).stale_after_s == pytest.approx(0.5)
    assert TtftModel.from_params(TtftModelParams(stale_after_s=2.0), 0.25).stale_after_s == 2.0


# --- decision rule -------------------------------------------------------------------


def test_warm_endpoint_wins_over_idle_cold_ones() -> None:
    three = led(running=3)
    cands = [
        cand("cold1", ledger=three),
        cand("warm", blocks=50, ledger=three),
        cand("cold2", ledger=three),
    ]
    r = picker().pick(request(prompt=1000, hashes=60), cands, {}, NOW)
    assert r.ranked[0] == "warm" and r.reason == "warm"
    assert set(r.ranked) == {"cold1", "warm", "cold2"}
    assert (
        r.predicted_ttft_s is not None and r.predicted_ttft_s["warm"] < r.predicted_ttft_s["cold1"]
    )


def test_valve_opens_when_the_warm_endpoint_is_too_slow() -> None:
    busy = led(prefill_tokens=40_000)  # 5 s of queued prefill
    cands = [cand("warm", blocks=50, ledger=busy), cand("cold")]
    r = picker(t_max_s=1.0).pick(request(prompt=1000, hashes=60), cands, {}, NOW)
    assert (r.ranked, r.reason) == (("cold", "warm"), "warm-valve")
    r = picker(t_max_s=10.0).pick(request(prompt=1000, hashes=60), cands, {}, NOW)
    assert (r.ranked[0], r.reason) == ("warm", "warm")


def test_valve_opens_only_toward_endpoints_with_room() -> None:
    # leaving the warm set costs a second copy of the prefix and its prefill: worth it
    # only where there is KV room and no engine queue, never when all are saturated
    busy = led(prefill_tokens=40_000)
    full = metrics(kv=0.95)
    queued = metrics(waiting=2)
    cands = [cand("warm", blocks=50, ledger=busy), cand("full", full), cand("queued", queued)]
    r = picker(t_max_s=1.0).pick(request(prompt=1000, hashes=60), cands, {}, NOW)
    assert (r.ranked[0], r.reason) == ("warm", "warm")
    cands.append(cand("roomy", metrics(kv=0.5)))
    r = picker(t_max_s=1.0).pick(request(prompt=1000, hashes=60), cands, {}, NOW)
    assert (r.ranked[0], r.reason) == ("roomy", "warm-valve")
    r = picker(t_max_s=1.0, valve_headroom=None).pick(
        request(prompt=1000, hashes=60), cands[:3], {}, NOW
    )
    assert r.reason == "warm-valve"


def test_kv_pressure_alone_does_not_open_the_valve() -> None:
    # a warm pod near full KV queues the request at worst; a copy elsewhere costs more KV
    cands = [cand("warm", metrics(kv=0.97), blocks=50), cand("cold", metrics(kv=0.3))]
    r = picker(t_max_s=1.0).pick(request(prompt=1000, hashes=60), cands, {}, NOW)
    assert (r.ranked[0], r.reason) == ("warm", "warm")
    r = picker(t_max_s=1.0, valve_kv=True).pick(request(prompt=1000, hashes=60), cands, {}, NOW)
    assert (r.ranked[0], r.reason) == ("cold", "warm-valve")


def test_below_theta_is_not_warm() -> None:
    cands = [cand("a", blocks=20), cand("b")]  # 320 of 1000 tokens cached
    r = picker(theta=0.5).pick(request(prompt=1000, hashes=60), cands, {}, NOW)
    assert r.reason in ("ring", "ring-valve")
    r = picker(theta=0.3).pick(request(prompt=1000, hashes=60), cands, {}, NOW)
    assert (r.ranked[0], r.reason) == ("a", "warm")


def test_overloaded_warm_endpoint_stops_being_warm() -> None:
    hot = led(running=8, waiting=2)
    cands = [cand("warm", blocks=60, ledger=hot), cand("b"), cand("c")]
    r = picker(warm_epsilon=0.5).pick(request(prompt=1000, hashes=60), cands, {}, NOW)
    assert r.ranked[0] != "warm" and r.reason.startswith("ring")
    r = picker(warm_epsilon=None).pick(request(prompt=1000, hashes=60), cands, {}, NOW)
    assert r.ranked[0] == "warm"


def test_warm_endpoint_busy_only_decoding_stays_warm() -> None:
    # its load is decoding: this prefill starts at once or next, a cold pod would recompute
    decoding = led(running=9, waiting=1)
    cands = [cand("warm", blocks=60, ledger=decoding), cand("b"), cand("c")]
    r = picker(warm_epsilon=0.5).pick(request(prompt=1000, hashes=60), cands, {}, NOW)
    assert (r.ranked[0], r.reason) == ("warm", "warm")


def test_cold_prefix_placement_is_deterministic_across_replicas() -> None:
    cands = [cand(f"e{i}") for i in range(8)]
    for key_start in range(20):
        req = request(prompt=1000, hashes=0)
        req = type(req)(
            "r", "m", None, 1000, 100, tuple(range(key_start, key_start + 10)), block_chars=64
        )
        one = picker(seed=1, ring_choices=1).pick(req, cands, {}, NOW)
        two = picker(seed=2, ring_choices=1).pick(req, cands, {}, NOW)
        assert one.ranked[0] == two.ranked[0] and one.reason == "ring"


def test_cold_prefix_keys_on_its_first_blocks() -> None:
    cands = [cand(f"e{i}") for i in range(8)]
    p = picker(ring_choices=1, key_blocks=2)
    base = request(hashes=10)
    same_head = type(base)("r", "m", None, 1000, 100, (0, 1, 99, 98), block_chars=64)
    assert p.pick(base, cands, {}, NOW).ranked[0] == p.pick(same_head, cands, {}, NOW).ranked[0]


def test_ring_choices_pick_the_cheaper_home() -> None:
    cands = [cand(f"e{i}") for i in range(8)]
    req = request(hashes=10)
    homes = picker(ring_choices=2).ring.choose(9, {c.id: 0.0 for c in cands}, 0.25, 2)
    assert len(homes) == 2
    slow = {homes[0]: led(prefill_tokens=4000)}
    cands = [cand(c.id, ledger=slow.get(c.id)) for c in cands]
    assert picker(ring_choices=2).pick(req, cands, {}, NOW).ranked[0] == homes[1]


def test_ring_valve_holds_a_recurring_key_when_every_queue_is_long() -> None:
    # past the knee: the home queues 8 s, the best elsewhere 5 s; a key seen before stays
    # (scattering it recomputes the group's prefix everywhere), a new one goes elsewhere
    ids = [f"e{i}" for i in range(4)]
    home = picker(ring_choices=1).ring.choose(9, dict.fromkeys(ids, 0.0), 0.25, 1)[0]
    queued = {i: led(prefill_tokens=(64_000 if i == home else 40_000)) for i in ids}
    cands = [cand(i, ledger=queued[i]) for i in ids]
    req = request(hashes=10)
    p = picker(ring_choices=1, t_max_s=1.0, t_max_rel=1.0)
    first = p.pick(req, cands, {}, NOW)
    assert first.reason == "ring-valve" and first.ranked[0] != home
    again = p.pick(req, cands, {}, NOW)
    assert (again.ranked[0], again.reason) == (home, "ring")
    fixed = picker(ring_choices=1, t_max_s=1.0, t_max_rel=0.0)
    fixed.pick(req, cands, {}, NOW)
    assert fixed.pick(req, cands, {}, NOW).reason == "ring-valve"


def test_session_keys_prompts_shorter_than_a_block() -> None:
    cands = [cand(f"e{i}") for i in range(8)]
    p = picker(ring_choices=1)
    a = {p.pick(request(hashes=0, session="alice"), cands, {}, NOW).ranked[0] for _ in range(5)}
    assert len(a) == 1
    r = p.pick(request(hashes=0), cands, {}, NOW)
    assert r.reason == "least-cost"


def test_near_ties_are_sampled_not_positional() -> None:
    cands = [cand(f"e{i}") for i in range(4)]
    p = picker(seed=5)
    firsts = Counter(p.pick(request(hashes=0), cands, {}, NOW).ranked[0] for _ in range(400))
    assert len(firsts) == 4 and min(firsts.values()) > 60


def test_clear_winner_is_not_sampled() -> None:
    cands = [cand("idle"), cand("busy", ledger=led(prefill_tokens=8000))]
    p = picker(seed=6)
    assert {p.pick(request(hashes=0), cands, {}, NOW).ranked[0] for _ in range(50)} == {"idle"}


# --- ring ----------------------------------------------------------------------------


def test_ring_respects_the_bound_and_skips_non_candidates() -> None:
    ring = BoundedLoadRing(16)
    loads = {"a": 0.0, "b": 0.0, "c": 0.0}
    first = ring.choose(123, loads, 0.25)[0]
    loads[first] = 5.0  # cap = ceil(1.25 * 6 / 3) = 3: first is over it
    second = ring.choose(123, loads, 0.25)[0]
    assert second != first
    del loads[second]  # filtered out of this pick
    assert ring.choose(123, loads, 0.25)[0] not in (first, second)


def test_ring_falls_back_to_the_least_loaded() -> None:
    ring = BoundedLoadRing(4)
    assert ring.choose(1, {"a": 0.4, "b": 0.3}, 0.0) == ["b"]  # cap 1: 1.3 and 1.4 exceed it


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=200),
    st.integers(1, 12),
    st.sampled_from([0.1, 0.25, 1.0]),
)
def test_ring_load_never_exceeds_the_bound(keys: list[int], n: int, eps: float) -> None:
    ring = BoundedLoadRing(8)
    loads = {f"e{i}": 0.0 for i in range(n)}
    for k in keys:
        chosen = ring.choose(k, loads, eps)[0]
        loads[chosen] += 1
        # after adding: within ceil((1+eps) * mean), the CHWBL guarantee for integer loads
        assert loads[chosen] <= math.ceil((1 + eps) * sum(loads.values()) / n)


def test_ring_rebuilds_when_candidates_change() -> None:
    ring = BoundedLoadRing(8)
    ring.choose(1, {f"e{i}": 0.0 for i in range(20)}, 0.25)
    small = {"x": 0.0, "y": 0.0}
    assert ring.choose(1, small, 0.25)[0] in small


@pytest.mark.parametrize(("interference", "expected"), [(0.0, "decoding"), (0.05, "prefilling")])
def test_cold_prefill_joins_a_pod_already_prefilling(interference: float, expected: str) -> None:
    """A cold prefill sent to a pod that only decodes slows all its running requests;
    where a prefill is already queued it shares those mixed steps."""
    cands = [
        cand("decoding", ledger=led(running=4)),
        cand("prefilling", ledger=led(running=4, prefill_tokens=800)),
    ]
    p = picker(seed=7, cold_interference_s=interference)
    assert {p.pick(request(hashes=0), cands, {}, NOW).ranked[0] for _ in range(20)} == {expected}
