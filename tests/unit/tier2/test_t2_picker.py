"""PoolPicker: requests in, picks out, ledger and prefix index kept in step."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.config import Pool
from common.config.resources import parse_resource
from common.errors import BadRequest, NotFound
from tier2.datalayer.types import EndpointMetrics, EndpointState
from tier2.ledger import Phase
from tier2.picker import PoolPicker
from tier2.scheduling.framework import NoEndpoint
from tier2.scheduling.types import Priority

SYSTEM = "You answer questions about the shipping policy. " * 40


def make_pool(
    profile: str = "strata",
    *,
    adapters: tuple[str, ...] = (),
    plugins: list[dict[str, Any]] | None = None,
) -> Pool:
    sched: dict[str, Any] = {"name": profile}
    if plugins is not None:
        sched["plugins"] = plugins
    pool = parse_resource(
        {
            "kind": "Pool",
            "name": "p",
            "spec": {
                "model": "m",
                "adapters": list(adapters),
                "endpoints": {"type": "static", "addresses": ["10.0.0.1:1"]},
                "tier2": ["10.0.0.9:1"],
                "scheduler": sched,
            },
        }
    )
    assert isinstance(pool, Pool)
    return pool


def state(
    name: str,
    t: float = 0.0,
    *,
    waiting: int = 0,
    kv: float = 0.0,
    block_size: int = 16,
    healthy: bool = True,
) -> EndpointState:
    return EndpointState(
        name, EndpointMetrics(t, waiting, 0, kv, block_size, 2810), healthy=healthy
    )


def picker(profile: str = "strata", n: int = 4, seed: int = 0, **kw: Any) -> PoolPicker:
    pp = PoolPicker(make_pool(profile, **kw), random.Random(seed))
    pp.set_endpoints({f"e{i}": state(f"e{i}") for i in range(n)})
    return pp


def chat(user: str = "What is the refund window?", **extra: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
        **extra,
    }


# --- build_request -------------------------------------------------------------------


def test_build_chat_request() -> None:
    pp = picker()
    req = pp.build_request(
        chat(stream=True, max_tokens=77), request_id="r1", priority=Priority.CRITICAL, session="s"
    )
    assert req.model == "m" and req.adapter is None
    assert req.stream and req.max_output_tokens == 77
    assert req.priority is Priority.CRITICAL and req.session == "s"
    assert req.block_chars == 64
    assert req.prompt_tokens == pytest.approx(len(SYSTEM) / 4, rel=0.05)
    assert req.chain is not None and req.block_hashes == req.chain.hashes
    assert len(req.block_hashes) == req.prompt_tokens * 4 // 64


@pytest.mark.parametrize(
    ("body", "tokens"),
    [
        ({"model": "m", "prompt": "x" * 400}, 100),
        ({"model": "m", "prompt": list(range(300))}, 300),
        ({"model": "m", "prompt": [[1, 2, 3], [4]]}, 3),
    ],
)
def test_build_completions_request(body: dict[str, Any], tokens: int) -> None:
    req = picker().build_request(body, request_id="r")
    assert req.prompt_tokens == tokens and not req.stream and req.max_output_tokens == 0


def test_max_completion_tokens_wins() -> None:
    req = picker().build_request(chat(max_completion_tokens=5, max_tokens=9), request_id="r")
    assert req.max_output_tokens == 5


def test_adapters_and_unknown_models() -> None:
    pp = picker(adapters=("sql-lora",))
    base = pp.build_request(chat(), request_id="r")
    lora = pp.build_request({**chat(), "model": "sql-lora"}, request_id="r")
    assert lora.adapter == "sql-lora" and not set(lora.block_hashes) & set(base.block_hashes)
    with pytest.raises(NotFound, match="not served by pool 'p'"):
        pp.build_request({**chat(), "model": "other"}, request_id="r")


@pytest.mark.parametrize(
    "body",
    [{"messages": []}, {"model": 3, "messages": []}, {"model": "m", "messages": "hi"}],
)
def test_bad_bodies(body: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        picker().build_request(body, request_id="r")


def test_cache_salt_separates_tenants() -> None:
    pp = picker()
    a = pp.build_request(chat(cache_salt="t1"), request_id="r")
    b = pp.build_request(chat(cache_salt="t2"), request_id="r")
    assert not set(a.block_hashes) & set(b.block_hashes)


def test_block_size_of_the_pods_sets_the_block_length() -> None:
    pp = PoolPicker(make_pool(), random.Random(0))
    pp.set_endpoints({"e0": state("e0", block_size=32)})
    assert pp.block_chars == 128
    assert pp.build_request(chat(), request_id="r").block_chars == 128


def test_profile_without_prefix_index_hashes_nothing() -> None:
    plugins = [{"type": "inflight-load-scorer"}, {"type": "max-score-picker"}]
    pp = picker(plugins=plugins)
    req = pp.build_request(chat(), request_id="r")
    assert req.block_hashes == () and req.chain is None
    assert pp.pick(req, 0.1).endpoint.startswith("e")


# --- pick: reserve and record in the same call --------------------------------------


def test_pick_reserves_and_records() -> None:
    pp = picker()
    req = pp.build_request(chat(stream=True), request_id="r1")
    pick = pp.pick(req, 0.05)
    assert set(pick.ranked) == {"e0", "e1", "e2", "e3"} and pick.ranked[0] == pick.endpoint
    assert not pick.saturated and pick.predicted_cached_blocks == 0
    view = pp.ledger.view(pick.endpoint)
    assert (view.waiting, view.prefill_tokens) == (1, req.prompt_tokens)
    again = pp.pick(pp.build_request(chat(stream=True), request_id="r2"), 0.06)
    assert again.matches[pick.endpoint] == len(req.block_hashes)
    st_ = pp.stats()
    assert sum(st_.picks.values()) == 2 and sum(st_.reasons.values()) == 2


def test_no_endpoints_raises() -> None:
    pp = PoolPicker(make_pool(), random.Random(0))
    with pytest.raises(NoEndpoint):
        pp.pick(pp.build_request(chat(), request_id="r"), 0.0)


@settings(max_examples=40, deadline=None)
@given(
    pods=st.integers(2, 8),
    burst=st.integers(8, 64),
    words=st.integers(1, 400),
    seed=st.integers(0, 2**16),
)
def test_a_burst_never_all_lands_on_one_pod_while_others_idle(
    pods: int, burst: int, words: int, seed: int
) -> None:
    pp = picker("strata", n=pods, seed=seed)
    body = chat(user="why " * words, stream=True, max_tokens=200)
    landed = Counter(
        pp.pick(pp.build_request(body, request_id=str(i)), 0.01 + i * 1e-4).endpoint
        for i in range(burst)
    )
    assert len(landed) > 1, landed


def test_gie_default_herds_on_a_burst_as_gie_does() -> None:
    # the failure mode the emulation must reproduce (GIE #1700): same scrape, same scores
    pp = picker("gie-default", n=4)
    landed = {
        pp.pick(pp.build_request(chat(), request_id=str(i)), 0.01).endpoint for i in range(16)
    }
    assert len(landed) == 1


# --- retry, first byte, finish ------------------------------------------------------


def test_retry_moves_the_reservation_and_benches_the_pod() -> None:
    pp = picker(n=3)
    pick = pp.pick(pp.build_request(chat(), request_id="r"), 1.0)
    failed = pick.endpoint
    nxt = pp.retry(pick, 1.1)
    assert nxt is not None and nxt != failed and pick.endpoint == nxt
    assert pp.ledger.view(failed).waiting == 0 and pp.ledger.view(nxt).waiting == 1
    assert pp.index is not None and pp.index.match(pick.request.block_hashes).get(failed) is None

    # the failed pod is out of later picks until a newer good scrape
    def spread(now: float) -> set[str]:
        bodies = ({"model": "m", "prompt": f"{i}: " + "unique words " * 20} for i in range(40))
        return {pp.pick(pp.build_request(b, request_id="x"), now).endpoint for b in bodies}

    assert failed not in spread(1.2)
    pp.update_endpoint(state(failed, 1.3))
    assert failed in spread(1.4)
    assert pp.stats().retries == 1


def test_retry_runs_out() -> None:
    pp = picker(n=2)
    pick = pp.pick(pp.build_request(chat(), request_id="r"), 1.0)
    assert pp.retry(pick, 1.1) is not None
    assert pp.retry(pick, 1.2) is None
    assert pick.reservation.phase is Phase.DONE and pp.ledger.in_flight() == 0


def test_retry_after_first_byte_is_refused() -> None:
    pp = picker()
    pick = pp.pick(pp.build_request(chat(), request_id="r"), 1.0)
    pp.first_byte(pick, 1.5)
    with pytest.raises(ValueError, match="first byte"):
        pp.retry(pick, 1.6)


def test_finish_records_the_answer_so_the_next_turn_matches_it() -> None:
    pp = picker()
    first = chat(stream=True)
    pick = pp.pick(pp.build_request(first, request_id="t1"), 1.0)
    answer = "Thirty days from delivery, provided the item is unused and in its box. " * 3
    pp.first_byte(pick, 1.2)
    pp.finish(pick, 2.0, ok=True, cached_tokens=0, generated_text=answer)
    pp.finish(pick, 2.1, ok=False)  # idempotent
    turn2 = {
        **first,
        "messages": [
            *first["messages"],
            {"role": "assistant", "content": answer},
            {"role": "user", "content": "And for sale items?"},
        ],
    }
    req2 = pp.build_request(turn2, request_id="t2")
    assert pp.index is not None
    matched = pp.index.match(req2.block_hashes)[pick.endpoint]
    assert matched > len(pick.request.block_hashes)  # through the answer
    assert pp.pick(req2, 3.0).endpoint == pick.endpoint
    assert pp.ledger.view(pick.endpoint).running == 0


def test_gie_default_records_prompts_only() -> None:
    pp = picker("gie-default")
    pick = pp.pick(pp.build_request(chat(), request_id="t1"), 1.0)
    before = pp.index.total_entries() if pp.index else 0
    pp.finish(pick, 2.0, ok=True, generated_text="an answer long enough to fill blocks " * 10)
    assert pp.index is not None and pp.index.total_entries() == before


def test_failed_before_first_byte_forgets_the_speculation() -> None:
    pp = picker()
    req = pp.build_request(chat(), request_id="r")
    pick = pp.pick(req, 1.0)
    assert pp.index is not None and pp.index.match(req.block_hashes) == {
        pick.endpoint: len(req.block_hashes)
    }
    pp.finish(pick, 1.1, ok=False)
    assert pp.index.match(req.block_hashes) == {}


def test_cached_tokens_feed_predicted_vs_actual() -> None:
    pp = picker()
    req = pp.build_request(chat(), request_id="r1")
    pp.finish(pp.pick(req, 1.0), 1.5, ok=True, cached_tokens=0)
    second = pp.pick(pp.build_request(chat(), request_id="r2"), 2.0)
    predicted = second.predicted_cached_blocks * 16
    pp.finish(second, 2.5, ok=True, cached_tokens=predicted - 16)
    s = pp.stats()
    assert s.predicted_cached_tokens[second.endpoint] == pytest.approx(
        min(req.prompt_tokens, predicted)
    )
    assert s.actual_cached_tokens[second.endpoint] == predicted - 16
    assert pp.prefix_stats()[second.endpoint].samples >= 1


# --- endpoints and saturation ----------------------------------------------------------


def test_removed_endpoints_are_forgotten() -> None:
    pp = picker(n=3)
    pp.pick(pp.build_request(chat(), request_id="r"), 0.5)
    pp.set_endpoints({"e0": pp.endpoints()["e0"]})
    assert set(pp.ledger.endpoints()) <= {"e0"}
    assert pp.index is not None and pp.index.endpoints() == ["e0"]
    assert pp.pick(pp.build_request(chat(), request_id="r2"), 0.6).ranked == ("e0",)


@pytest.mark.parametrize(
    ("states", "saturated"),
    [
        ([state("a", waiting=9), state("b", kv=0.95)], True),
        ([state("a", waiting=9), state("b")], False),
        ([state("a", waiting=9), state("b", healthy=False)], True),  # the only healthy one is full
        ([state("a", -5.0)], True),  # stale
        ([], True),
    ],
)
def test_pool_saturation(states: list[EndpointState], saturated: bool) -> None:
    pp = PoolPicker(make_pool(), random.Random(0))
    pp.set_endpoints({s.id: s for s in states})
    assert pp.is_saturated(0.0) is saturated


def test_ledger_counts_toward_saturation() -> None:
    pp = PoolPicker(make_pool(), random.Random(0))
    pp.set_endpoints({"a": state("a", kv=0.5)})
    assert not pp.is_saturated(0.1)
    big = {"model": "m", "prompt": "x" * 4 * 14_000, "max_tokens": 2000}
    pp.pick(pp.build_request(big, request_id="r"), 0.1)  # 16k of 45k tokens: 0.5 -> 0.85
    assert pp.is_saturated(0.2)


def test_reconfigure_keeps_what_is_in_flight() -> None:
    pp = picker()
    pick = pp.pick(pp.build_request(chat(), request_id="r"), 0.5)
    pp.configure(make_pool("gie-default"))
    assert pp.ledger.view(pick.endpoint).waiting == 1
    assert pp.stats().picks[pick.endpoint] == 1


def test_overlapping_requests_do_not_teach_the_index() -> None:
    # the second of two back-to-back identical prompts predicted a full hit on blocks the
    # pod had not computed yet: its cached_tokens=0 is no evidence of eviction
    pp = picker(n=1)
    assert pp.index is not None
    first = pp.pick(pp.build_request(chat(), request_id="1"), 1.0)
    second = pp.pick(pp.build_request(chat(), request_id="2"), 1.0)
    assert second.overlapped and not first.overlapped
    pp.finish(second, 2.0, ok=True, cached_tokens=0)
    assert pp.index.precision("e0") == 1.0
    pp.finish(first, 2.0, ok=True, cached_tokens=0)
    third = pp.pick(pp.build_request(chat(), request_id="3"), 3.0)
    assert not third.overlapped
    pp.first_byte(third, 3.1)
    pp.finish(third, 3.2, ok=True, cached_tokens=0)  # a real miss: the pod lost it
    assert pp.index.precision("e0") < 1.0
    assert pp.prefix_stats()["e0"].misses == 1


def test_slow_scrapes_do_not_saturate_the_pool() -> None:
    pool = make_pool()
    pool = pool.model_copy(update={"spec": pool.spec.model_copy(update={"scrape_interval_s": 5.0})})
    pp = PoolPicker(pool, random.Random(0))
    pp.set_endpoints({"a": state("a", 0.0)})
    assert not pp.is_saturated(4.0)  # 4 s old, but scrapes come every 5 s
    assert pp.is_saturated(16.0)
