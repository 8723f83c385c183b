"""Global rate limits through tier1 and a real quota service, seen by the openai SDK:
429s before any upstream call, x-ratelimit-* headers, refunds, shadow mode, windows
rolling over, calendar months, and both failure policies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from bench.fakes import Script, fake_upstreams
from common.clock import FakeClock
from common.quota.windows import month_at
from control.embedded import free_port
from control.ratelimit.service import RateLimitServer
from tests.support.gateway import KEY, Gateway, consumer, openai_backend, route, start_gateway
from tests.support.waiting import wait_until
from tier1.settings import Tier1Settings

MSG: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


def policy(name: str, limits: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"kind": "RateLimitPolicy", "name": name, "spec": {"limits": limits, **spec}}


@pytest.fixture
async def fake() -> AsyncIterator[Any]:
    async with fake_upstreams(
        ["a"], api_key="sk-upstream-secret", defaults=Script(usage=_usage())
    ) as f:
        yield f["a"]


def _usage() -> dict[str, int]:
    return {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def quota(clock: FakeClock) -> AsyncIterator[RateLimitServer]:
    server = RateLimitServer(None, port=0, metrics_port=None, clock=clock)
    await server.start()
    yield server
    await server.stop()


class Setup:
    def __init__(self, gw: Gateway, fake: Any) -> None:
        self.gw, self.fake = gw, fake
        self.client = AsyncOpenAI(base_url=gw.base_url, api_key=KEY, max_retries=0)

    async def ask(self, **kw: Any) -> Any:
        return await self.client.chat.completions.with_raw_response.create(
            model="m", messages=MSG, **kw
        )

    async def close(self) -> None:
        await self.client.close()
        await self.gw.close()

    def upstream_calls(self) -> int:
        return len(self.fake.requests)


async def _setup(
    fake: Any,
    policies: list[dict[str, Any]],
    *,
    replicas: tuple[str, ...],
    clock: FakeClock,
    holders: int = 1,
) -> Setup:
    docs = [
        openai_backend("a", fake.url + "/v1"),
        route("r", ["m"], ["a"], rate_limit_policies=[p["name"] for p in policies]),
        *policies,
        consumer(),
    ]
    settings = Tier1Settings(ratelimit=replicas, quota_holders=holders)
    return Setup(await start_gateway(docs, settings, clock=clock), fake)


async def test_requests_limit_429_with_openai_headers(
    fake: Any, quota: Any, clock: FakeClock
) -> None:
    s = await _setup(
        fake,
        [policy("p", [{"window": "1m", "requests": 3}])],
        replicas=(quota.address,),
        clock=clock,
    )
    try:
        remaining = []
        for _ in range(3):
            raw = await s.ask()
            assert raw.headers["x-ratelimit-limit-requests"] == "3"
            remaining.append(int(raw.headers["x-ratelimit-remaining-requests"]))
            assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
        assert remaining == [2, 1, 0]
        with pytest.raises(openai.RateLimitError) as err:
            await s.ask()
        assert err.value.status_code == 429
        h = err.value.response.headers
        assert int(h["retry-after"]) >= 1
        assert h["x-ratelimit-remaining-requests"] == "0"
        assert err.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]
        assert "policy 'p' allows 3 requests per 60s" in err.value.message
        assert s.upstream_calls() == 3  # the rejected request never left the gateway
    finally:
        await s.close()


async def test_tokens_reserve_estimate_then_charge_actual(
    fake: Any, quota: Any, clock: FakeClock
) -> None:
    limits = [{"window": "1h", "tokens": 1000, "token_cost": "input + 4*output"}]
    s = await _setup(fake, [policy("t", limits)], replicas=(quota.address,), clock=clock)
    try:
        # 400 output tokens * 4 alone exceeds the budget: rejected before any call
        with pytest.raises(openai.RateLimitError):
            await s.ask(max_tokens=400)
        assert s.upstream_calls() == 0
        raw = await s.ask(max_tokens=100)
        assert raw.headers["x-ratelimit-limit-tokens"] == "1000"
        # the actual charge is 10 + 4*5 = 30: after settling, the next request sees it
        raw = await s.ask(max_tokens=1)
        remaining = int(raw.headers["x-ratelimit-remaining-tokens"])
        estimate = len(raw.http_request.content) // 4 + 1 + 4
        assert remaining == 1000 - 30 - estimate
    finally:
        await s.close()


async def test_failed_upstream_charges_the_request_not_tokens(
    fake: Any, quota: Any, clock: FakeClock
) -> None:
    limits = [{"window": "1m", "requests": 10, "tokens": 10_000}]
    s = await _setup(fake, [policy("p", limits)], replicas=(quota.address,), clock=clock)
    try:
        with pytest.raises(openai.InternalServerError):
            await s.client.chat.completions.create(
                model="m", messages=MSG, extra_headers={"x-fake-status": "500"}
            )
        raw = await s.ask(max_tokens=1)
        assert raw.headers["x-ratelimit-remaining-requests"] == "8"
        estimate = len(raw.http_request.content) // 4 + 1 + 1
        assert int(raw.headers["x-ratelimit-remaining-tokens"]) == 10_000 - estimate
    finally:
        await s.close()


async def test_shadow_mode_counts_but_never_rejects(
    fake: Any, quota: Any, clock: FakeClock
) -> None:
    pol = policy("sh", [{"window": "1m", "requests": 2}], mode="shadow")
    s = await _setup(fake, [pol], replicas=(quota.address,), clock=clock)
    try:
        for _ in range(5):
            await s.ask()
        assert s.upstream_calls() == 5
        metrics = s.gw.agent.registry.get_sample_value
        labels = {"policy": "sh", "result": "shadow_rejected"}
        assert metrics("strata_ratelimit_decisions_total", labels) == 3
    finally:
        await s.close()


async def test_window_rolls_over(fake: Any, quota: Any, clock: FakeClock) -> None:
    s = await _setup(
        fake,
        [policy("p", [{"window": "1m", "requests": 2}])],
        replicas=(quota.address,),
        clock=clock,
    )
    try:
        clock._wall = (clock.wall() // 60) * 60 + 1  # early in a minute
        await s.ask()
        await s.ask()
        with pytest.raises(openai.RateLimitError) as err:
            await s.ask()
        assert 58 <= int(err.value.response.headers["retry-after"]) <= 60
        clock.advance(60)
        raw = await s.ask()
        assert raw.headers["x-ratelimit-remaining-requests"] == "1"
    finally:
        await s.close()


async def test_monthly_budget_resets_at_the_month_boundary(
    fake: Any, quota: Any, clock: FakeClock
) -> None:
    pol = policy("monthly", [{"window": "month", "requests": 1}], timezone="Europe/Berlin")
    s = await _setup(fake, [pol], replicas=(quota.address,), clock=clock)
    try:
        end = month_at(clock.wall(), "Europe/Berlin").end
        clock._wall = end - 5
        await s.ask()
        with pytest.raises(openai.RateLimitError) as err:
            await s.ask()
        assert int(err.value.response.headers["retry-after"]) == 5
        clock.advance(6)  # midnight in Berlin: a new month
        await s.ask()
    finally:
        await s.close()


async def test_fail_open_falls_back_to_a_local_share_and_recovers(
    fake: Any, clock: FakeClock
) -> None:
    port = free_port()
    s = await _setup(
        fake,
        [policy("p", [{"window": "1m", "requests": 4}])],
        replicas=(f"127.0.0.1:{port}",),
        clock=clock,
        holders=2,
    )
    try:
        await s.ask()
        await s.ask()  # 4 / 2 holders: this process's share
        with pytest.raises(openai.RateLimitError):
            await s.ask()
        value = s.gw.agent.registry.get_sample_value
        assert (
            value("strata_ratelimit_decisions_total", {"policy": "p", "result": "fail_open"}) == 2
        )
        assert value("strata_ratelimit_replica_up", {"replica": f"127.0.0.1:{port}"}) == 0
        server = RateLimitServer(None, port=port, metrics_port=None, clock=clock)
        await server.start()
        try:
            # the usage counted locally reaches the service once it answers
            await wait_until(lambda: bool(server.table.counters), timeout_s=5)
            counter = next(iter(server.table.counters.values()))
            await wait_until(lambda: counter.consumed == 2, timeout_s=5)
            raw = await s.ask()
            assert raw.headers["x-ratelimit-remaining-requests"] == "1"
        finally:
            await server.stop()
    finally:
        await s.close()


async def test_fail_closed_rejects_while_the_service_is_down(fake: Any, clock: FakeClock) -> None:
    pol = policy("strict", [{"window": "1m", "requests": 100}], on_unavailable="fail_closed")
    s = await _setup(fake, [pol], replicas=(f"127.0.0.1:{free_port()}",), clock=clock)
    try:
        with pytest.raises(openai.RateLimitError) as err:
            await s.ask()
        assert "rate limit service unavailable" in err.value.message
        assert err.value.response.headers["retry-after"] == "1"
        assert s.upstream_calls() == 0
    finally:
        await s.close()
