"""tier1 → tier2 → simulated vLLM pods as real processes, driven with the `openai` SDK.

One stack per module (startup is the expensive part): control over the session's etcd,
`strata sim` with four pods (the pool starts with three), tier2 for pool `gpu`, tier1,
and a header-scripted fake OpenAI provider `ext` as the route's lower-priority backend.
Each test applies the Pool it needs through control's REST API and waits for tier2 to
serve that revision. The pod-kill test runs last: the killed pod stays dead.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import Request, urlopen

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from common import jsonutil
from control.embedded import free_port
from tests.support.gateway import consumer, openai_backend, route

pytestmark = [pytest.mark.e2e, pytest.mark.etcd]

STRATA = [sys.executable, "-m", "control.cli"]
TOKEN = "st-t2-e2e-token"
MODEL = "sim-llama-8b"
KEYS = {p: f"sk-strata-t2-{p}-0123456789" for p in ("standard", "critical", "sheddable")}
PODS = 4
SPEED = 5  # model seconds per real second: 256 tokens take about 0.75 s


def _http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    data = jsonutil.dumps(body) if body is not None else None
    req = Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urlopen(req, timeout=5) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except URLError as e:
        code = getattr(e, "code", 0)
        if code:
            hdrs = {k.lower(): v for k, v in e.headers.items()}  # type: ignore[attr-defined]
            return code, hdrs, e.read()  # type: ignore[attr-defined]
        return 0, {}, b""
    except OSError:
        return 0, {}, b""


def _wait(predicate: Callable[[], bool], timeout_s: float = 20, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _free_run(n: int) -> int:
    """A port p with p .. p+n-1 all free (the simulator takes consecutive ports)."""
    for _ in range(50):
        base = free_port()
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no run of {n} free ports")


class Stack:
    def __init__(self, tmp: Path, etcd: str) -> None:
        self.tmp, self.etcd = tmp, etcd
        self.rest, self.grpc = free_port(), free_port()
        self.t1, self.t2, self.ext = free_port(), free_port(), free_port()
        base = _free_run(PODS)
        self.pods = [f"127.0.0.1:{base + i}" for i in range(PODS)]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = {**os.environ, "STRATA_ADMIN_TOKEN": TOKEN, "STRATA_LOG_LEVEL": "WARNING"}
        self.revision = 0

    def start(self, name: str, *args: str) -> None:
        with open(self.tmp / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                [*args], cwd=self.tmp, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def start_all(self) -> None:
        control = f"127.0.0.1:{self.grpc}"
        self.start(
            "control",
            *STRATA,
            "control",
            "--etcd-endpoints",
            self.etcd,
            "--rest-port",
            str(self.rest),
            "--grpc-port",
            str(self.grpc),
            "--key-root",
            f"/t2-{uuid.uuid4().hex[:10]}/",
        )
        self.start(
            "sim",
            *STRATA,
            "sim",
            "--pods",
            str(PODS),
            "--port",
            self.pods[0].rsplit(":", 1)[1],
            "--speed",
            str(SPEED),
            "--model",
            MODEL,
        )
        self.start(
            "ext", sys.executable, "-m", "bench.fakes", "--name", "ext", "--port", str(self.ext)
        )
        self.start(
            "tier2", *STRATA, "tier2", "--pool", "gpu", "--port", str(self.t2), "--control", control
        )
        self.start("tier1", *STRATA, "tier1", "--port", str(self.t1), "--control", control)
        for url in (
            f"http://127.0.0.1:{self.rest}/readyz",
            *(f"http://{p}/health" for p in self.pods),
            f"http://127.0.0.1:{self.ext}/_fake/requests",
            f"http://127.0.0.1:{self.t2}/healthz",
            f"http://127.0.0.1:{self.t1}/healthz",
        ):
            _wait(lambda url=url: _http("GET", url)[0] == 200, 30, url)  # type: ignore[misc]
        docs = [
            self.pool_doc(self.pods[:3]),
            {"kind": "Backend", "name": "gpu-pool", "spec": {"schema": "pool", "pool": "gpu"}},
            openai_backend("ext", f"http://127.0.0.1:{self.ext}/v1"),
            route(
                "gpu",
                [MODEL],
                [{"name": "gpu-pool", "priority": 0}, {"name": "ext", "priority": 1}],
                retry={"on": ["connect_error"]},
            ),
            *(consumer(p, key, metadata={"priority": p}) for p, key in KEYS.items()),
        ]
        self.apply(docs)
        _wait(lambda: _http("GET", f"http://127.0.0.1:{self.t1}/readyz")[0] == 200, 20, "tier1")
        _wait(lambda: all(self.age(p) < 1 for p in self.pods[:3]), 20, "tier2 scraping the pods")

    def apply(self, docs: list[dict[str, Any]]) -> None:
        status, _, body = _http(
            "POST",
            f"http://127.0.0.1:{self.rest}/v1/apply",
            {"documents": docs},
            {"Authorization": f"Bearer {TOKEN}"},
        )
        assert status == 200, body
        pools = [r for r in jsonutil.loads(body)["results"] if r["kind"] == "Pool"]
        if pools:
            self.revision = pools[0]["revision"]
            _wait(self.tier2_serves_revision, 20, f"tier2 at revision {self.revision}")
            time.sleep(0.15)  # the replica applies it within one 50 ms tick

    def tier2_serves_revision(self) -> bool:
        status, _, body = _http("GET", f"http://127.0.0.1:{self.t2}/readyz")
        return status == 200 and jsonutil.loads(body)["revision"] >= self.revision

    def pool_doc(self, endpoints: list[str], **spec: Any) -> dict[str, Any]:
        return {
            "kind": "Pool",
            "name": "gpu",
            "spec": {
                "model": MODEL,
                "endpoints": {"type": "static", "addresses": endpoints},
                "tier2": [f"127.0.0.1:{self.t2}"],
                "scrape_interval_s": 0.05,
                **spec,
            },
        }

    def metric(self, name: str, **labels: str) -> float:
        _, _, body = _http("GET", f"http://127.0.0.1:{self.t2}/metrics")
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return 0.0

    def picks(self, pod: str) -> float:
        return self.metric("strata_tier2_picks_total", endpoint=pod)

    def age(self, pod: str) -> float:
        value = self.metric("strata_tier2_endpoint_metrics_age_seconds", endpoint=pod)
        return value if value else float("inf")

    def client(self, priority: str = "standard", *, tier2: bool = False) -> openai.AsyncOpenAI:
        port = self.t2 if tier2 else self.t1
        return openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/v1",
            api_key=KEYS[priority],
            max_retries=0,
            timeout=30,
        )

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, etcd_endpoint: str) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("t2stack"), etcd_endpoint)
    try:
        s.start_all()
        yield s
    finally:
        s.close()


def _chat(n: int, max_tokens: int = 16) -> dict[str, Any]:
    """Distinct system prompts, so cold requests spread instead of sharing one pod."""
    return {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": f"You are assistant number {n}. " * 20},
            {"role": "user", "content": f"Question {n}: say something."},
        ],
        "max_tokens": max_tokens,
        "extra_body": {"ignore_eos": True},
    }


async def test_openai_sdk_through_tier1_and_tier2_streaming_and_not(stack: Stack) -> None:
    before = sum(stack.picks(p) for p in stack.pods)
    async with stack.client() as client:
        answer = await client.chat.completions.create(**_chat(1))
        assert answer.choices[0].message.content and answer.usage is not None
        assert answer.usage.completion_tokens == 16

        pieces: list[str] = []
        usage = None
        stream = await client.chat.completions.create(
            **_chat(2), stream=True, stream_options={"include_usage": True}
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            usage = chunk.usage or usage
        assert "".join(pieces) and usage is not None and usage.completion_tokens == 16
    assert sum(stack.picks(p) for p in stack.pods) == before + 2  # both went through tier2

    async with stack.client(tier2=True) as direct:
        raw = await direct.chat.completions.with_raw_response.create(**_chat(3))
    assert raw.headers["x-gateway-destination-endpoint"] in stack.pods[:3]
    assert raw.parse().choices[0].message.content


async def test_saturated_pool_sheds_sheddable_passes_critical_and_overflows_standard(
    stack: Stack,
) -> None:
    # queue_depth 0: every pod counts as saturated (waiting >= 0) whatever its load
    saturated = {"queue_depth": 0, "kv_cache_usage": 0.0, "max_queue": 2, "queue_timeout_s": 0.3}
    stack.apply([stack.pool_doc(stack.pods[:3], saturation=saturated)])
    _http("POST", f"http://127.0.0.1:{stack.ext}/_fake/reset")
    try:
        async with stack.client("sheddable") as shed:
            with pytest.raises(openai.RateLimitError) as e:
                await shed.chat.completions.create(**_chat(10))
        assert e.value.status_code == 429

        async with stack.client("critical") as critical:
            answer = await critical.chat.completions.create(**_chat(11))
        assert answer.choices[0].message.content

        ext_before = len(
            jsonutil.loads(_http("GET", f"http://127.0.0.1:{stack.ext}/_fake/requests")[2])
        )
        async with stack.client("standard") as standard:  # waits 0.3 s, overflows, tier1 spills
            spilled = await standard.chat.completions.create(**_chat(12))
        assert spilled.choices[0].message.content
        seen = jsonutil.loads(_http("GET", f"http://127.0.0.1:{stack.ext}/_fake/requests")[2])
        assert len(seen) == ext_before + 1 and seen[-1]["json"]["model"] == MODEL

        async with stack.client(tier2=True) as direct:
            with pytest.raises(openai.InternalServerError) as overflow:
                await direct.chat.completions.create(**_chat(13))
        assert overflow.value.status_code == 503
        assert overflow.value.response.headers["x-strata-overflow"] == "1"
        assert (
            stack.metric("strata_tier2_rejected_total", priority="standard", reason="queue_timeout")
            >= 2
        )
    finally:
        stack.apply([stack.pool_doc(stack.pods[:3])])


async def test_pod_added_through_control_starts_receiving_traffic(stack: Stack) -> None:
    new = stack.pods[3]
    stack.apply([stack.pool_doc(stack.pods)])
    _wait(lambda: stack.age(new) < 1, 10, "tier2 scraping the new pod")
    async with stack.client() as client:
        for round_ in range(5):
            await asyncio.gather(
                *(client.chat.completions.create(**_chat(100 + 10 * round_ + i)) for i in range(10))
            )
            if stack.picks(new) > 0:
                break
    assert stack.picks(new) > 0


async def test_pod_killed_mid_load_is_avoided_and_its_requests_succeed_elsewhere(
    stack: Stack,
) -> None:
    pods = stack.pods[:3]
    stack.apply([stack.pool_doc(pods)])
    victim = pods[1]
    failures_before = stack.metric("strata_tier2_connect_failures_total", endpoint=victim)

    def seen() -> int:
        return int(jsonutil.loads(_http("GET", f"http://{victim}/sim/stats")[2])["requests_seen"])

    seen_before = seen()

    async with stack.client(tier2=True) as client:

        async def one(n: int) -> str:
            raw = await client.chat.completions.with_raw_response.create(**_chat(1000 + n, 256))
            assert raw.parse().usage is not None
            return str(raw.headers["x-gateway-destination-endpoint"])

        first_wave = [asyncio.create_task(one(n)) for n in range(24)]
        await asyncio.sleep(0.3)  # a 256-token answer takes ~0.75 s: all still in flight
        total = seen()
        in_flight = total - seen_before
        assert in_flight > 0, "the victim got none of the wave"
        # the victim dies on its next request (sent directly), cutting those it generates
        _http("POST", f"http://{victim}/sim/faults", {"crash_after": total})
        _http("POST", f"http://{victim}/v1/chat/completions", _chat(0))
        served = await asyncio.gather(*first_wave)  # every one answered, none by the victim
        assert victim not in served
        cut = stack.metric("strata_tier2_connect_failures_total", endpoint=victim) - failures_before
        assert cut >= in_flight  # each request it was generating failed there, then succeeded

        _wait(
            lambda: stack.metric("strata_tier2_endpoint_healthy", endpoint=victim) == 0,
            5,
            "unhealthy",
        )
        picks = stack.picks(victim)
        after = await asyncio.gather(*(one(500 + n) for n in range(12)))
    assert victim not in after and stack.picks(victim) == picks
