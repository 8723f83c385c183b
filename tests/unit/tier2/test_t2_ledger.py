"""Ledger: reservation lifecycle, since-scrape counts, foreign load, learned prefill rate."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.config.scheduling import LedgerParams
from tier2.datalayer.types import EndpointMetrics
from tier2.ledger import Ledger, Phase, Reservation
from tier2.scheduling.types import LedgerView, PickRequest


def req(rid: str = "r", prompt: int = 1000, out: int = 100, stream: bool = True) -> PickRequest:
    return PickRequest(rid, "m", None, prompt, out, (), stream=stream)


def scrape(t: float, waiting: int | None = 0, running: int | None = 0) -> EndpointMetrics:
    return EndpointMetrics(t, waiting, running, 0.1, 16, 1000)


def test_lifecycle_moves_and_releases() -> None:
    led = Ledger()
    res = led.reserve("a", req(prompt=1000, out=100), 600, now=1.0)
    v = led.view("a")
    assert (v.waiting, v.running, v.prefill_tokens) == (1, 0, 600)
    assert (v.kv_tokens, v.kv_new_tokens, v.output_tokens) == (1100, 700, 100)
    assert v.dispatched_since_scrape == 1 and v.kv_new_since_scrape == 700
    led.first_byte(res, 1.5)
    v = led.view("a")
    assert (v.waiting, v.running, v.prefill_tokens, v.kv_tokens) == (0, 1, 0, 1100)
    assert res.phase is Phase.RUNNING and res.first_byte_at == 1.5
    led.finish(res, 2.0)
    led.finish(res, 2.1)  # idempotent
    led.first_byte(res, 2.2)  # too late: no effect
    assert led.view("a") == LedgerView(prefill_rate=led.view("a").prefill_rate)
    assert led.in_flight() == 0


def test_finish_before_first_byte_releases_prefill() -> None:
    led = Ledger()
    res = led.reserve("a", req(), 500, 0.0)
    led.finish(res, 0.1)
    v = led.view("a")
    assert (v.waiting, v.prefill_tokens, v.kv_tokens) == (0, 0, 0)


def test_expected_output_defaults_and_cap() -> None:
    led = Ledger(LedgerParams(default_output_tokens=50, max_output_estimate=300))
    assert led.reserve("a", req(out=0), 0, 0.0).output_tokens == 50
    assert led.reserve("a", req(out=10_000), 0, 0.0).output_tokens == 300


def test_retarget_moves_a_waiting_request() -> None:
    led = Ledger()
    res = led.reserve("a", req(), 800, 0.0)
    led.retarget(res, "b", 300, 0.5)
    assert led.view("a").waiting == 0 and led.view("a").prefill_tokens == 0
    vb = led.view("b")
    assert (vb.waiting, vb.prefill_tokens) == (1, 300)
    assert res.endpoint_id == "b" and res.reserved_at == 0.5
    led.first_byte(res, 1.0)
    with pytest.raises(ValueError, match="running"):
        led.retarget(res, "a", 0, 1.1)


def test_forget_leaves_reservations_harmless() -> None:
    led = Ledger()
    res = led.reserve("a", req(), 100, 0.0)
    led.forget("a")
    led.first_byte(res, 0.5)
    led.finish(res, 1.0)
    assert led.endpoints() == []
    assert res.phase is Phase.DONE


def test_since_scrape_counts_restart_at_each_scrape() -> None:
    led = Ledger()
    early = led.reserve("a", req("1"), 100, 1.0)
    led.observe_scrape("a", scrape(2.0, 1, 0))
    late = led.reserve("a", req("2"), 200, 3.0)
    v = led.view("a")
    assert v.dispatched_since_scrape == 1 and v.kv_new_since_scrape == 300
    led.finish(late, 3.5)
    assert led.view("a").dispatched_since_scrape == 0
    led.finish(early, 3.6)
    assert led.view("a").kv_new_since_scrape == 0
    # an older scrape arriving late changes nothing
    led.observe_scrape("a", scrape(1.5, 50, 50))
    assert led.view("a").foreign == 0.0


@pytest.mark.parametrize(
    ("scraped", "ours", "expected"),
    [
        ((3, 4), 2, 5.0),  # 7 on the pod, 2 of them ours
        ((0, 1), 3, 0.0),  # the scrape lags our sends: never negative
        ((None, 4), 0, 0.0),  # unknown waiting: no sample
    ],
)
def test_foreign_load_first_sample(
    scraped: tuple[int | None, int], ours: int, expected: float
) -> None:
    led = Ledger()
    for i in range(ours):
        led.reserve("a", req(str(i)), 10, 0.0)
    led.observe_scrape("a", scrape(1.0, *scraped))
    assert led.view("a").foreign == pytest.approx(expected)


def test_foreign_load_is_an_ewma() -> None:
    led = Ledger(LedgerParams(foreign_alpha=0.5))
    led.observe_scrape("a", scrape(1.0, 0, 4))
    led.observe_scrape("a", scrape(2.0, 0, 0))
    assert led.view("a").foreign == pytest.approx(2.0)


def test_requests_sent_after_the_scrape_are_not_foreign() -> None:
    led = Ledger()
    led.reserve("a", req(), 10, 5.0)
    led.observe_scrape("a", scrape(4.0, 1, 0))
    assert led.view("a").foreign == 1.0  # ours was sent after: the pod's 1 is someone else's


def test_prefill_rate_learns_from_streamed_ttft() -> None:
    led = Ledger(LedgerParams(default_prefill_rate=1000.0, rate_alpha=0.5))
    res = led.reserve("a", req(prompt=4000), 4000, 0.0)
    led.first_byte(res, 1.02)  # 4000 tokens in 1.0 s after the 20 ms overhead
    assert led.view("a").prefill_rate == pytest.approx(1000.0 + 0.5 * (4000.0 - 1000.0))


@pytest.mark.parametrize(
    ("stream", "uncached", "ttft", "learns"),
    [(False, 4000, 1.0, False), (True, 10, 1.0, False), (True, 4000, 0.0, False)],
)
def test_prefill_rate_ignores_uninformative_requests(
    stream: bool, uncached: int, ttft: float, learns: bool
) -> None:
    led = Ledger(LedgerParams(default_prefill_rate=1000.0))
    res = led.reserve("a", req(prompt=4000, stream=stream), uncached, 0.0)
    led.first_byte(res, ttft)
    assert (led.view("a").prefill_rate != 1000.0) is learns


def test_rate_sample_is_clamped_and_new_pods_start_from_the_pool_mean() -> None:
    led = Ledger(LedgerParams(default_prefill_rate=1000.0, rate_alpha=1.0))
    res = led.reserve("a", req(prompt=100_000), 100_000, 0.0)
    led.first_byte(res, 1.02)  # 100k tok/s observed, but one sample moves at most 4x
    assert led.view("a").prefill_rate == pytest.approx(4000.0)
    assert led.view("new").prefill_rate == pytest.approx(4000.0)


def test_queued_work_ahead_counts_in_the_rate() -> None:
    led = Ledger(LedgerParams(default_prefill_rate=1000.0, rate_alpha=1.0))
    led.reserve("a", req("1", prompt=1000), 1000, 0.0)
    second = led.reserve("a", req("2", prompt=1000), 1000, 0.0)
    assert second.prefill_ahead == 1000
    led.first_byte(second, 1.02)  # 2000 tokens of work in 1 s
    assert led.view("a").prefill_rate == pytest.approx(2000.0)


OPS = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "first", "finish", "retarget", "scrape", "forget"]),
        st.integers(0, 2),
        st.integers(0, 5000),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_counters_always_match_the_live_reservations(ops: list[tuple[str, int, int]]) -> None:
    led = Ledger()
    live: list[Reservation] = []
    now = 0.0
    for op, ep, n in ops:
        now += 0.1
        name = f"e{ep}"
        if op == "reserve":
            live.append(led.reserve(name, req(str(now), prompt=n + 1, out=n % 300), n, now))
        elif op == "scrape":
            led.observe_scrape(name, scrape(now - 0.05, n % 7, n % 5))
        elif op == "forget":
            led.forget(name)
            live = [r for r in live if r.endpoint_id != name]
        elif live:
            res = live[n % len(live)]
            if op == "first":
                led.first_byte(res, now)
            elif op == "finish":
                led.finish(res, now)
                live.remove(res)
            elif res.phase is Phase.WAITING:
                led.retarget(res, name, n // 2, now)
    for name in led.endpoints():
        mine = [r for r in live if r.endpoint_id == name]
        v = led.view(name)
        waiting = [r for r in mine if r.phase is Phase.WAITING]
        assert v.waiting == len(waiting)
        assert v.running == len(mine) - len(waiting)
        assert v.prefill_tokens == sum(r.uncached_tokens for r in waiting)
        assert v.kv_tokens == sum(r.kv_tokens for r in mine)
        assert v.kv_new_tokens == sum(r.kv_new_tokens for r in mine)
        assert 0 <= v.dispatched_since_scrape <= len(mine)
        assert v.foreign >= 0 and v.prefill_rate > 0
