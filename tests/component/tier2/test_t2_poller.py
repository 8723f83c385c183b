"""MetricsPoller against real loopback servers: a scripted /metrics and the simulator.

Time is a FakeClock, so staleness is exact; scrapes are driven by hand (`scrape`) or
by the loop with an injected sleep that records the delays it was asked for.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from aiohttp.pytest_plugin import AiohttpServer
from prometheus_client import CollectorRegistry

from bench.vllmsim.pods import start_pods
from bench.vllmsim.server import SimConfig
from common.clock import FakeClock
from control.embedded import free_port
from tier2.datalayer import extract, mappings
from tier2.datalayer.sources import MetricsPoller, ScrapeFailed, http_fetch
from tier2.datalayer.store import EndpointStore
from tier2.datalayer.types import EndpointMetrics
from tier2.metrics import Tier2Metrics

VLLM = mappings.mapping_for("vllm")
FULL = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_waiting{engine="0",model_name="m"} 1.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
vllm:cache_config_info{block_size="16",engine="0",num_gpu_blocks="1000"} 1.0
"""
NO_KV = 'vllm:num_requests_running{engine="0"} 2.0\nvllm:num_requests_waiting{engine="0"} 0.0\n'


@dataclass
class Script:
    text: str = FULL
    status: int = 200
    delay_s: float = 0.0
    cut: bool = False


Pod = tuple[str, Script]


def _parse(text: str, at: float) -> EndpointMetrics:
    return extract.parse(text, VLLM, at)


@pytest.fixture
async def pod(aiohttp_server: AiohttpServer) -> AsyncIterator[tuple[str, Script]]:
    script = Script()

    async def metrics(request: web.Request) -> web.StreamResponse:
        if script.cut:
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        await asyncio.sleep(script.delay_s)
        return web.Response(text=script.text, status=script.status)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    server = await aiohttp_server(app)
    yield f"127.0.0.1:{server.port}", script


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def _poller(
    store: EndpointStore,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    metrics: Tier2Metrics | None = None,
    unhealthy_after: int = 2,
) -> MetricsPoller:
    return MetricsPoller(
        store,
        http_fetch(lambda: session, 0.3),
        _parse,
        interval_s=0.1,
        clock=clock,
        rng=random.Random(7),
        metrics=metrics,
        unhealthy_after=unhealthy_after,
    )


async def test_good_scrape_is_parsed_and_stamped(pod: Pod, session: aiohttp.ClientSession) -> None:
    endpoint, _ = pod
    store, clock = EndpointStore(), FakeClock()
    store.set_ids([endpoint])
    state = await _poller(store, session, clock).scrape(endpoint)
    assert state is not None and state.healthy and state.last_error is None
    m = state.metrics
    assert m is not None and m.scraped_at == clock.monotonic()
    assert (m.running, m.waiting, m.kv_usage, m.block_size, m.num_gpu_blocks) == (
        3,
        1,
        0.25,
        16,
        1000,
    )
    assert store.snapshot()[endpoint] == state


async def test_missing_family_is_unknown_not_an_error(
    pod: Pod, session: aiohttp.ClientSession
) -> None:
    endpoint, script = pod
    script.text = NO_KV
    store, clock = EndpointStore(), FakeClock()
    store.set_ids([endpoint])
    state = await _poller(store, session, clock).scrape(endpoint)
    assert state is not None and state.last_error is None and state.consecutive_failures == 0
    assert state.metrics is not None
    assert state.metrics.kv_usage is None and state.metrics.num_gpu_blocks is None
    assert state.metrics.running == 2


@pytest.mark.parametrize(
    ("script", "error"),
    [
        (Script(status=503), "HTTP 503"),
        (Script(delay_s=1.0), "no answer within 0.3s"),
        (Script(cut=True), "ServerDisconnectedError"),
    ],
)
async def test_failed_scrape_keeps_last_good_metrics_and_their_age(
    pod: Pod, session: aiohttp.ClientSession, script: Script, error: str
) -> None:
    endpoint, live = pod
    store, clock = EndpointStore(), FakeClock()
    store.set_ids([endpoint])
    registry = CollectorRegistry()
    metrics = Tier2Metrics(registry)
    metrics.watch_endpoints(store.snapshot, clock.monotonic)
    poller = _poller(store, session, clock, metrics=metrics, unhealthy_after=2)
    good = await poller.scrape(endpoint)
    assert good is not None and good.metrics is not None
    live.status, live.delay_s, live.cut = script.status, script.delay_s, script.cut

    clock.advance(0.5)
    first = await poller.scrape(endpoint)
    assert first is not None
    assert error in (first.last_error or "")
    assert first.metrics == good.metrics  # the old values, with their old timestamp
    assert first.age(clock.monotonic()) == pytest.approx(0.5)
    assert first.consecutive_failures == 1 and first.healthy  # one miss is not a verdict

    clock.advance(0.5)
    second = await poller.scrape(endpoint)
    assert second is not None and second.consecutive_failures == 2 and not second.healthy
    age = registry.get_sample_value(
        "strata_tier2_endpoint_metrics_age_seconds", {"endpoint": endpoint}
    )
    assert age == pytest.approx(1.0)
    assert registry.get_sample_value("strata_tier2_endpoint_healthy", {"endpoint": endpoint}) == 0
    assert (
        registry.get_sample_value("strata_tier2_scrape_errors_total", {"endpoint": endpoint}) == 2
    )

    live.status, live.delay_s, live.cut = 200, 0.0, False
    back = await poller.scrape(endpoint)
    assert back is not None and back.healthy and back.last_error is None
    assert back.metrics is not None and back.metrics.scraped_at == clock.monotonic()


async def test_unreachable_pod_is_a_failed_scrape(session: aiohttp.ClientSession) -> None:
    endpoint = f"127.0.0.1:{free_port()}"  # nothing listens
    store, clock = EndpointStore(), FakeClock()
    store.set_ids([endpoint])
    state = await _poller(store, session, clock).scrape(endpoint)
    assert state is not None and state.metrics is None
    assert "ClientConnectorError" in (state.last_error or "")
    assert state.age(clock.monotonic()) == float("inf")


async def test_loop_scrapes_at_once_then_every_interval_with_jitter() -> None:
    store, clock = EndpointStore(), FakeClock()
    store.set_ids(["a:1", "b:2"])
    scraped: list[str] = []
    delays: list[float] = []
    enough = asyncio.Event()

    async def fetch(endpoint: str) -> str:
        scraped.append(endpoint)
        return FULL

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) >= 20:
            enough.set()
        await asyncio.sleep(0)

    poller = MetricsPoller(
        store,
        fetch,
        _parse,
        interval_s=0.1,
        clock=clock,
        rng=random.Random(1),
        jitter=0.2,
        sleep=sleep,
    )
    poller.set_targets(["a:1", "b:2"])
    await asyncio.wait_for(enough.wait(), 5)
    await poller.close()
    assert {"a:1", "b:2"} <= set(scraped[:2])  # both scraped before any wait
    assert all(0.08 <= d <= 0.12 for d in delays)
    assert len(set(delays)) > 1  # jittered, not lockstep
    assert not poller.targets


async def test_targets_follow_membership_and_removed_endpoints_are_not_written() -> None:
    store, clock = EndpointStore(), FakeClock()
    store.set_ids(["a:1"])
    release = asyncio.Event()

    async def fetch(endpoint: str) -> str:
        await release.wait()
        return FULL

    poller = MetricsPoller(store, fetch, _parse, interval_s=0.1, clock=clock)
    poller.set_targets(["a:1"])
    scrape = asyncio.create_task(poller.scrape("a:1"))
    await asyncio.sleep(0)
    store.set_ids(["b:2"])  # a:1 left while its scrape was in flight
    poller.set_targets(["b:2"])
    assert poller.targets == {"b:2"}
    release.set()
    assert await scrape is None
    assert "a:1" not in store.snapshot()
    await poller.close()


async def test_fetch_errors_name_the_cause() -> None:
    async def fetch(endpoint: str) -> str:
        raise ScrapeFailed("")

    store = EndpointStore()
    store.set_ids(["a:1"])
    state = await MetricsPoller(store, fetch, _parse, interval_s=0.1, clock=FakeClock()).scrape(
        "a:1"
    )
    assert state is not None and state.last_error == "scrape failed"


async def test_scrapes_the_simulators_real_vllm_names(session: aiohttp.ClientSession) -> None:
    async with await start_pods(SimConfig(profile="gie-8b"), n=1) as pods:
        endpoint = pods.urls[0].removeprefix("http://")
        store, clock = EndpointStore(), FakeClock()
        store.set_ids([endpoint])
        state = await _poller(store, session, clock).scrape(endpoint)
    assert state is not None and state.metrics is not None, state
    m = state.metrics
    assert m.waiting == 0 and m.running == 0 and m.kv_usage == 0.0
    assert m.block_size and m.num_gpu_blocks and m.prefix_queries is not None
