"""tier2's shell on real loopback sockets: stream-through, retry before the first byte,
client disconnects, admission answers, config pushes. The picker is a scripted fake
(its ranking is the test's), so what is checked here is the I/O around it; the pods
are the vLLM simulator or a small misbehaving server."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import pytest
from aiohttp import web
from aiohttp.pytest_plugin import AiohttpServer
from multidict import CIMultiDict

from bench.vllmsim.pods import SimPods, start_pods
from bench.vllmsim.server import SimConfig
from common import jsonutil
from common.config import ConfigSet, Pool, parse_resource, snapshot_to_wire
from common.configsync.agent import ConfigAgent
from common.configsync.http import add_config_routes
from control.compile import compile_tier2
from control.embedded import free_port
from tests.support.waiting import wait_until
from tier2.app import build_app, default_picker
from tier2.datalayer.types import EndpointState
from tier2.keys import PROXY
from tier2.picker import PickerStats
from tier2.runtime import build_runtime
from tier2.scheduling.framework import NoEndpoint
from tier2.scheduling.types import PickRequest, Priority
from tier2.settings import Tier2Settings

MODEL = "sim-llama-8b"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 8}


@dataclass
class FakePick:
    ranked: list[str]
    at: int = 0

    @property
    def endpoint(self) -> str:
        return self.ranked[min(self.at, len(self.ranked) - 1)]


@dataclass
class FakePicker:
    """Ranks endpoints in `order` (default: sorted), healthy ones only; records calls."""

    order: list[str] | None = None
    saturated: bool = False
    states: dict[str, EndpointState] = field(default_factory=dict)
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def configure(self, pool: Pool) -> None:
        self.calls.append(("configure", pool.spec.endpoints))

    def stats(self) -> PickerStats:
        return PickerStats({}, {}, 0, 0, {}, {})

    def set_endpoints(self, states: Mapping[str, EndpointState]) -> None:
        self.states = dict(states)

    def is_saturated(self, now: float) -> bool:
        return self.saturated

    def build_request(
        self,
        body: Mapping[str, Any],
        *,
        request_id: str,
        kind: Literal["chat", "completions"] | None = None,
        priority: Priority = Priority.STANDARD,
        session: str | None = None,
    ) -> PickRequest:
        return PickRequest(request_id, body["model"], None, 4, 8, (), priority, session)

    def pick(self, req: PickRequest, now: float) -> FakePick:
        ranked = [e for e in (self.order or sorted(self.states)) if self.states[e].healthy]
        if not ranked:
            raise NoEndpoint("no healthy endpoint")
        self.calls.append(("pick", ranked[0]))
        return FakePick(ranked)

    def retry(self, pick: FakePick, now: float) -> str | None:
        pick.at += 1
        nxt = pick.ranked[pick.at] if pick.at < len(pick.ranked) else None
        self.calls.append(("retry", nxt))
        return nxt

    def first_byte(self, pick: FakePick, now: float) -> None:
        self.calls.append(("first_byte", pick.endpoint))

    def finish(
        self,
        pick: FakePick,
        now: float,
        *,
        ok: bool,
        cached_tokens: int | None = None,
        generated_text: str = "",
    ) -> None:
        self.calls.append(("finish", pick.endpoint, ok, cached_tokens, generated_text))

    def finished(self) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == "finish"]


@dataclass
class Tier2:
    url: str
    agent: ConfigAgent[Any]
    runner: web.AppRunner
    app: web.Application
    picker: FakePicker
    revision: int = 0

    def push(
        self, addresses: list[str], endpoints: dict[str, Any] | None = None, **spec: Any
    ) -> None:
        self.revision += 1
        doc = {
            "kind": "Pool",
            "name": "p",
            "revision": self.revision,
            "spec": {
                "model": MODEL,
                "endpoints": endpoints or {"type": "static", "addresses": addresses},
                "tier2": ["127.0.0.1:1"],
                "scrape_interval_s": 0.05,
                **spec,
            },
        }
        snap = compile_tier2(ConfigSet.of([parse_resource(doc)]))["p"]
        assert self.agent.apply(snapshot_to_wire(snap)).ok

    async def serving(self, revision: int | None = None) -> None:
        want = revision or self.revision
        proxy = self.app[PROXY]
        await wait_until(
            lambda: proxy.runtime is not None and proxy.runtime.revision == want,
            5,
            "config applied",
        )


@pytest.fixture
async def make_tier2() -> AsyncIterator[Any]:
    started: list[Tier2] = []

    async def start(
        addresses: list[str],
        picker: FakePicker | None | Literal["real"] = None,
        resolver: Any = None,
        endpoints: dict[str, Any] | None = None,
        **spec: Any,
    ) -> Tier2:
        fake = FakePicker() if picker is None or picker == "real" else picker

        def factory(pool: Pool, rng: random.Random) -> Any:
            return default_picker(pool, rng) if picker == "real" else fake

        agent: ConfigAgent[Any] = ConfigAgent("tier2", build_runtime, pool="p")
        settings = Tier2Settings(connect_timeout_s=1.0, disconnect_check_s=0.05, tick_s=0.02)
        extra = {"resolver": resolver} if resolver else {}
        app = build_app(agent, settings, picker_factory=factory, **extra)
        add_config_routes(app, agent)
        runner = web.AppRunner(app, access_log=None)  # as serve_node: no handler_cancellation
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        t2 = Tier2(f"http://127.0.0.1:{runner.addresses[0][1]}", agent, runner, app, fake)
        started.append(t2)
        t2.push(addresses, endpoints=endpoints, **spec)
        await t2.serving()
        return t2

    yield start
    for t2 in started:
        await t2.runner.cleanup()


@pytest.fixture
async def sims() -> AsyncIterator[SimPods]:
    async with await start_pods(SimConfig(profile="gie-8b", speed=50), n=2) as pods:
        yield pods


@dataclass
class Misbehaving:
    """A pod whose behaviour the request's `x-test-mode` header chooses."""

    endpoint: str
    seen: list[str] = field(default_factory=list)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def odd(aiohttp_server: AiohttpServer) -> Misbehaving:
    pod = Misbehaving("")

    async def chat(request: web.Request) -> web.StreamResponse:
        mode = request.headers.get("x-test-mode", "")
        pod.seen.append(mode)
        try:
            if mode == "cut":
                assert request.transport is not None
                request.transport.abort()
                return web.Response()
            if mode == "bad":
                body = {"error": {"message": "max_tokens too large", "type": "BadRequestError"}}
                return web.json_response(body, status=400)
            if mode == "hang":
                await asyncio.Event().wait()
            stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await stream.prepare(request)
            chunk = {"choices": [{"index": 0, "delta": {"content": "tok "}}]}
            for n in range(1000):
                await stream.write(b"data: " + jsonutil.dumps(chunk) + b"\n\n")
                if mode == "break" and n == 1:
                    assert request.transport is not None
                    request.transport.abort()
                    return stream
                await asyncio.sleep(0.02)
            return stream
        except asyncio.CancelledError:
            pod.cancelled.set()
            raise

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/metrics", _metrics)
    server = await aiohttp_server(app)
    pod.endpoint = f"127.0.0.1:{server.port}"
    return pod


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(text='vllm:num_requests_waiting{engine="0"} 0\n')


_SHORT = aiohttp.ClientTimeout(total=0.3)


def _hostport(url: str) -> str:
    return url.removeprefix("http://")


async def _post(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], **headers: str
) -> tuple[int, CIMultiDict[str], bytes]:
    async with session.post(url + "/v1/chat/completions", json=body, headers=headers) as r:
        return r.status, r.headers.copy(), await r.read()


async def test_unary_and_streamed_answers_pass_through_and_feed_the_ledger(
    make_tier2: Any, sims: SimPods
) -> None:
    pods = [_hostport(u) for u in sims.urls]
    t2 = await make_tier2(pods, FakePicker(order=[pods[1], pods[0]]))
    async with aiohttp.ClientSession() as s:
        status, headers, body = await _post(s, t2.url, CHAT)
        assert status == 200 and headers["x-gateway-destination-endpoint"] == pods[1]
        answer = jsonutil.loads(body)
        text = answer["choices"][0]["message"]["content"]
        assert ("first_byte", pods[1]) in t2.picker.calls
        assert t2.picker.finished() == [("finish", pods[1], True, 0, text)]

        streamed = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
        status, headers, body = await _post(s, t2.url, streamed)
    assert status == 200 and headers["x-gateway-destination-endpoint"] == pods[1]
    assert headers["Content-Type"].startswith("text/event-stream")
    assert body.rstrip().endswith(b"data: [DONE]")
    finish = t2.picker.finished()[-1]
    assert finish[:3] == ("finish", pods[1], True) and finish[3] is not None and finish[4]
    calls = [c[0] for c in t2.picker.calls]
    assert calls[-3:] == ["pick", "first_byte", "finish"]


async def test_refused_connection_moves_to_the_next_best_pod(
    make_tier2: Any, sims: SimPods
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    alive = _hostport(sims.urls[0])
    t2 = await make_tier2([dead, alive], FakePicker(order=[dead, alive]))
    async with aiohttp.ClientSession() as s:
        status, headers, _ = await _post(s, t2.url, CHAT)
    assert status == 200 and headers["x-gateway-destination-endpoint"] == alive
    assert ("retry", alive) in t2.picker.calls
    state = t2.app[PROXY].store.get(dead)
    assert state is not None and not state.healthy and "connect" in (state.last_error or "")
    registry = t2.agent.registry
    assert registry.get_sample_value("strata_tier2_connect_failures_total", {"endpoint": dead}) == 1
    # a later pick leaves the dead pod out without trying it
    async with aiohttp.ClientSession() as s:
        assert (await _post(s, t2.url, CHAT))[0] == 200
    assert t2.picker.calls.count(("retry", alive)) == 1


async def test_pod_that_drops_the_request_before_answering_is_retried(
    make_tier2: Any, sims: SimPods, odd: Misbehaving
) -> None:
    alive = _hostport(sims.urls[0])
    t2 = await make_tier2([odd.endpoint, alive], FakePicker(order=[odd.endpoint, alive]))
    async with aiohttp.ClientSession() as s:
        status, headers, _ = await _post(s, t2.url, CHAT, **{"x-test-mode": "cut"})
    assert status == 200 and headers["x-gateway-destination-endpoint"] == alive
    assert odd.seen == ["cut"]


async def test_no_reachable_pod_is_a_503_overflow(make_tier2: Any) -> None:
    dead = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    t2 = await make_tier2(dead)
    async with aiohttp.ClientSession() as s:
        status, headers, body = await _post(s, t2.url, CHAT)
    assert status == 503 and headers["x-strata-overflow"] == "1"
    error = jsonutil.loads(body)["error"]
    assert error["code"] == "pool_saturated" and error["type"] == "api_error"
    assert t2.picker.finished()[-1][2] is False


async def test_pod_error_status_passes_through(make_tier2: Any, odd: Misbehaving) -> None:
    t2 = await make_tier2([odd.endpoint])
    async with aiohttp.ClientSession() as s:
        status, headers, body = await _post(s, t2.url, CHAT, **{"x-test-mode": "bad"})
    assert status == 400 and b"max_tokens too large" in body
    assert headers["x-gateway-destination-endpoint"] == odd.endpoint
    assert t2.picker.finished() == [("finish", odd.endpoint, False, None, "")]


async def test_stream_broken_by_the_pod_ends_with_an_error_event(
    make_tier2: Any, odd: Misbehaving
) -> None:
    t2 = await make_tier2([odd.endpoint])
    async with aiohttp.ClientSession() as s:
        status, _, body = await _post(
            s, t2.url, {**CHAT, "stream": True}, **{"x-test-mode": "break"}
        )
    assert status == 200
    assert body.count(b"tok ") == 2 and b"upstream_disconnected" in body
    assert t2.picker.finished() == [("finish", odd.endpoint, False, None, "tok tok ")]


@pytest.mark.parametrize(("mode", "stream"), [("slow", True), ("hang", False)])
async def test_client_leaving_cancels_the_pod_request_and_releases_the_ledger(
    make_tier2: Any, odd: Misbehaving, mode: str, stream: bool
) -> None:
    t2 = await make_tier2([odd.endpoint])
    url, body = t2.url + "/v1/chat/completions", {**CHAT, "stream": stream}
    async with aiohttp.ClientSession() as s:
        if stream:
            resp = await s.post(url, json=body, headers={"x-test-mode": mode})
            await resp.content.readany()
            resp.close()  # the client goes away mid-stream
        else:
            with pytest.raises(TimeoutError):  # the client gives up waiting
                await s.post(url, json=body, headers={"x-test-mode": mode}, timeout=_SHORT)
    await asyncio.wait_for(odd.cancelled.wait(), 5)
    await wait_until(lambda: bool(t2.picker.finished()), 5, "ledger release")
    assert t2.picker.finished() == [("finish", odd.endpoint, False, None, "")]


async def test_priorities_when_the_pool_is_saturated(make_tier2: Any, sims: SimPods) -> None:
    t2 = await make_tier2(
        [_hostport(sims.urls[0])],
        FakePicker(saturated=True),
        saturation={"max_queue": 1, "queue_timeout_s": 0.2},
    )
    async with aiohttp.ClientSession() as s:
        status, headers, body = await _post(s, t2.url, CHAT, **{"x-strata-priority": "sheddable"})
        assert status == 429  # no Retry-After: tier1 would hold the pool for every priority
        assert "retry-after" not in headers and "x-strata-overflow" not in headers
        assert jsonutil.loads(body)["error"]["type"] == "rate_limit_error"

        assert (await _post(s, t2.url, CHAT, **{"x-strata-priority": "critical"}))[0] == 200

        waited, full = await asyncio.gather(
            _post(s, t2.url, CHAT), _post(s, t2.url, CHAT, **{"x-strata-priority": "standard"})
        )
    assert {waited[0], full[0]} == {503}
    for _, headers, body in (waited, full):
        assert headers["x-strata-overflow"] == "1"
        assert jsonutil.loads(body)["error"]["code"] == "pool_saturated"
    messages = sorted(jsonutil.loads(r[2])["error"]["message"] for r in (waited, full))
    assert "queue is full" in messages[0] and "stayed saturated" in messages[1]


async def test_standard_request_waits_for_room_then_is_served(
    make_tier2: Any, sims: SimPods
) -> None:
    picker = FakePicker(saturated=True)
    t2 = await make_tier2([_hostport(sims.urls[0])], picker, saturation={"queue_timeout_s": 10})
    async with aiohttp.ClientSession() as s:
        waiting = asyncio.create_task(_post(s, t2.url, CHAT))
        await wait_until(lambda: t2.app[PROXY].admission.queued() == 1, 5, "queued")
        assert ("pick", _hostport(sims.urls[0])) not in picker.calls
        picker.saturated = False  # capacity frees; the tick releases the waiter
        status, _, _ = await waiting
    assert status == 200


@pytest.mark.parametrize(
    ("body", "headers", "status", "param"),
    [
        ({**CHAT, "model": "other"}, {}, 404, "model"),
        ({"model": MODEL}, {}, 400, "messages"),
        (CHAT, {"x-strata-priority": "urgent"}, 400, "x-strata-priority"),
        ({**CHAT, "stream": "yes"}, {}, 400, "stream"),
    ],
)
async def test_bad_requests_are_openai_errors(
    make_tier2: Any, body: dict[str, Any], headers: dict[str, str], status: int, param: str
) -> None:
    t2 = await make_tier2([f"127.0.0.1:{free_port()}"])
    async with aiohttp.ClientSession() as s:
        got, answer_headers, raw = await _post(s, t2.url, body, **headers)
    assert got == status and jsonutil.loads(raw)["error"]["param"] == param
    assert answer_headers["x-request-id"]


async def test_pushed_endpoints_join_and_leave_without_restart(
    make_tier2: Any, sims: SimPods
) -> None:
    a, b = (_hostport(u) for u in sims.urls)
    t2 = await make_tier2([a])
    t2.push([a, b])
    await t2.serving()
    store = t2.app[PROXY].store

    def scraped(endpoint: str) -> bool:
        state = store.get(endpoint)
        return state is not None and state.metrics is not None

    await wait_until(lambda: scraped(b), 5, "the new pod scraped")
    async with aiohttp.ClientSession() as s:
        assert (await _post(s, t2.url, CHAT))[0] == 200
        assert set(t2.picker.states) == {a, b}
        t2.push([b])
        await t2.serving()
        assert (await _post(s, t2.url, CHAT))[1]["x-gateway-destination-endpoint"] == b
        status, _, body = await _get(s, t2.url + "/v1/models")
    assert set(t2.picker.states) == {b} and store.ids() == (b,)
    assert status == 200 and jsonutil.loads(body)["data"][0]["id"] == MODEL


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, CIMultiDict[str], bytes]:
    async with session.get(url) as r:
        return r.status, r.headers.copy(), await r.read()


async def test_client_leaving_while_queued_frees_its_place(make_tier2: Any, sims: SimPods) -> None:
    picker = FakePicker(saturated=True)
    t2 = await make_tier2([_hostport(sims.urls[0])], picker, saturation={"queue_timeout_s": 30})
    admission = t2.app[PROXY].admission
    async with aiohttp.ClientSession() as s:
        with pytest.raises(TimeoutError):
            await _post_with(s, t2.url, CHAT, _SHORT)
    await wait_until(lambda: admission.queued() == 0, 5, "the waiter gone")  # not after 30 s
    assert not [c for c in picker.calls if c[0] == "pick"]


async def _post_with(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], timeout: aiohttp.ClientTimeout
) -> int:
    async with session.post(url + "/v1/chat/completions", json=body, timeout=timeout) as r:
        return r.status


async def test_dns_discovered_pods_come_and_go(make_tier2: Any, sims: SimPods) -> None:
    host, port = _hostport(sims.urls[0]).rsplit(":", 1)
    records: list[str] = [host]

    async def resolver(name: str, port: int) -> list[str]:
        assert name == "vllm.models.svc.cluster.local"
        return list(records)

    dns = {
        "type": "dns",
        "name": "vllm.models.svc.cluster.local",
        "port": int(port),
        "refresh_s": 0.5,
    }
    t2 = await make_tier2([], resolver=resolver, endpoints=dns)
    store = t2.app[PROXY].store
    assert store.ids() == (f"{host}:{port}",)
    async with aiohttp.ClientSession() as s:
        status, headers, _ = await _post(s, t2.url, CHAT)
        assert status == 200 and headers["x-gateway-destination-endpoint"] == f"{host}:{port}"
        records.clear()  # the pod left the headless Service
        await wait_until(lambda: store.ids() == (), 5, "the pod dropped")
        status, headers, _ = await _post(s, t2.url, CHAT, **{"x-strata-priority": "critical"})
    assert status == 503 and headers["x-strata-overflow"] == "1"


async def test_the_real_picker_learns_from_answers(make_tier2: Any, sims: SimPods) -> None:
    t2 = await make_tier2([_hostport(u) for u in sims.urls], "real")
    shared = {"role": "system", "content": "You answer briefly and politely. " * 40}
    async with aiohttp.ClientSession() as s:
        served = set()
        for n in range(4):
            body = {**CHAT, "messages": [shared, {"role": "user", "content": f"question {n}"}]}
            status, headers, _ = await _post(s, t2.url, body)
            assert status == 200
            served.add(headers["x-gateway-destination-endpoint"])
    registry = t2.agent.registry
    (pod,) = served  # one warm pod holds the shared prefix: every turn went there
    assert registry.get_sample_value("strata_pick_duration_seconds_count") == 4
    actual = registry.get_sample_value("strata_tier2_prefix_actual_tokens_total", {"endpoint": pod})
    predicted = registry.get_sample_value(
        "strata_tier2_prefix_predicted_tokens_total", {"endpoint": pod}
    )
    assert actual and predicted  # the pod reported cached tokens and the index expected them
