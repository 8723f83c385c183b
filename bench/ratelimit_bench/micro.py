"""Hot-path micro-benchmark: `GlobalQuota.admit` + `settle` against `NoQuota`, in one
process, in interleaved rounds.

The quota hook is the real one: a `QuotaClient` with its background Sync loop talks to
an in-process `RateLimitServer` over loopback gRPC, so the leases are real. After a
warm-up every request is admitted from the local lease; the benchmark counts the
calls to `QuotaClient.sync_now` (the only way a request waits on the network) during
the measured requests and reports them, so "no network call on the hot path" is
checked, not assumed. The loop yields to the event loop every `yield_every` requests
(outside the timed section), as a server does between requests, so the Sync loop keeps
the lease topped up.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import io
import pstats
import time
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from bench.ratelimit_bench.config import HOT_POLICY, LIMITED_MODEL, USAGE, hotpath_docs
from bench.tier1_bench.load import request_body
from bench.tier1_bench.stats import percentile, spread
from common.config import ConfigSet, Consumer, parse_resource
from common.quota.lease import LeaseBook
from control.compile import compile_tier1
from control.ratelimit.service import RateLimitServer
from tier1.providers.base import ParsedRequest, Usage
from tier1.quota import Admission, NoQuota, QuotaHook
from tier1.ratelimit.client import QuotaClient
from tier1.ratelimit.hook import GlobalQuota
from tier1.ratelimit.metrics import QuotaMetrics
from tier1.runtime import Tier1Runtime, build_runtime

ROUTE = "limited"
Say = Callable[[str], None]


def _request() -> ParsedRequest:
    raw = request_body(LIMITED_MODEL, stream=False)
    return ParsedRequest(
        endpoint="chat",
        raw=raw,
        body={"model": LIMITED_MODEL, "max_tokens": 64},
        model=LIMITED_MODEL,
        stream=False,
        include_usage=False,
        max_tokens=64,
        headers={"content-type": "application/json", "user-agent": "bench"},
    )


def _runtime(replica: str) -> Tier1Runtime:
    docs = hotpath_docs("http://127.0.0.1:9/v1")
    cfg = ConfigSet.of(parse_resource(d) for d in docs)
    rt = build_runtime(compile_tier1(cfg, 1, [replica]))
    if not rt.policies or HOT_POLICY not in rt.policies:
        raise RuntimeError("the hot-path config compiled without its policy")
    return rt


async def _timed(
    hook: QuotaHook,
    req: ParsedRequest,
    consumer: Consumer,
    usage: Usage,
    n: int,
    yield_every: int,
) -> list[int]:
    """Nanoseconds of admit + settle, one sample per request; the last item is the
    thread's CPU time for the whole loop (yields included), in nanoseconds."""
    clock = time.perf_counter_ns
    out = [0] * (n + 1)
    cpu0 = time.thread_time_ns()
    for i in range(n):
        t0 = clock()
        admission: Admission = await hook.admit(req, consumer, ROUTE)
        hook.settle(admission, usage, failed=False)
        out[i] = clock() - t0
        if i % yield_every == yield_every - 1:
            await asyncio.sleep(0)
    out[n] = time.thread_time_ns() - cpu0
    return out


class _SyncCounter:
    """Wraps `QuotaClient.sync_now` on one instance to count the waits on the network."""

    def __init__(self, client: QuotaClient) -> None:
        self.calls = 0
        inner = client.sync_now

        async def counted(keys: Sequence[str], timeout_s: float) -> None:
            self.calls += 1
            await inner(keys, timeout_s)

        client.sync_now = counted  # type: ignore[method-assign]


async def run_micro(
    *, rounds: int, requests: int, yield_every: int = 1, profile: bool = False, say: Say
) -> dict[str, Any]:
    """`rounds` rounds of `requests` admissions per hook, the order alternating."""
    server = RateLimitServer(None, port=0, metrics_port=None)
    await server.start()
    client = QuotaClient(LeaseBook(), QuotaMetrics(CollectorRegistry()))
    rt = _runtime(server.address)
    quota = GlobalQuota(lambda: rt, client, client.metrics, static_replicas=(server.address,))
    counter = _SyncCounter(client)
    hooks: dict[str, QuotaHook] = {"no_quota": NoQuota(), "global_quota": quota}
    req, consumer = _request(), rt.consumers_by_name["bench"]
    usage = Usage(input=USAGE["prompt_tokens"], output=USAGE["completion_tokens"])
    await client.start()
    try:
        # warm-up: the first admission waits for a lease; then demand builds the allotment
        for _ in range(3):
            await _timed(quota, req, consumer, usage, 2000, yield_every)
            await asyncio.sleep(0.15)
        await _timed(hooks["no_quota"], req, consumer, usage, 2000, yield_every)
        warm_syncs = counter.calls
        counter.calls = 0
        samples: dict[str, list[int]] = {name: [] for name in hooks}
        per_round: dict[str, list[float]] = {name: [] for name in hooks}
        cpu: dict[str, list[float]] = {name: [] for name in hooks}
        for r in range(rounds):
            order = list(hooks) if r % 2 == 0 else list(reversed(hooks))
            for name in order:
                gc.collect()
                got = await _timed(hooks[name], req, consumer, usage, requests, yield_every)
                cpu[name].append(got.pop() / requests / 1000)
                samples[name] += got
                per_round[name].append(percentile(got, 50) / 1000)
            say(
                f"  micro round {r + 1}/{rounds}: p50 no_quota {per_round['no_quota'][-1]:.2f} µs, "
                f"global_quota {per_round['global_quota'][-1]:.2f} µs"
            )
        measured_syncs = counter.calls
        stats = client.book.keys
        profile_text = await _profile(quota, req, consumer, usage, yield_every) if profile else None
    finally:
        await client.stop()
        await server.stop()
    out: dict[str, Any] = {
        "rounds": rounds,
        "requests_per_round": requests,
        "yield_every": yield_every,
        "sync_now_calls_warmup": warm_syncs,
        "sync_now_calls_measured": measured_syncs,
        "measured_requests": rounds * requests,
        "quota_keys": len(stats),
        "server_syncs_answered": _syncs(server),
    }
    for name, ns in samples.items():
        us = [x / 1000 for x in ns]
        out[name] = {
            "p50_us": percentile(us, 50),
            "p90_us": percentile(us, 90),
            "p99_us": percentile(us, 99),
            "mean_us": sum(us) / len(us) if us else float("nan"),
            "round_p50_us": spread(per_round[name]).as_dict(),
            "cpu_us_per_req": spread(cpu[name]).as_dict(),
        }
    out["added_p50_us"] = out["global_quota"]["p50_us"] - out["no_quota"]["p50_us"]
    out["added_p99_us"] = out["global_quota"]["p99_us"] - out["no_quota"]["p99_us"]
    out["added_p50_us_per_round"] = spread(
        [g - n for g, n in zip(per_round["global_quota"], per_round["no_quota"], strict=True)]
    ).as_dict()
    out["added_cpu_us_per_round"] = spread(
        [g - n for g, n in zip(cpu["global_quota"], cpu["no_quota"], strict=True)]
    ).as_dict()
    if profile_text is not None:
        out["profile"] = profile_text
    return out


async def _profile(
    quota: GlobalQuota, req: ParsedRequest, consumer: Consumer, usage: Usage, yield_every: int
) -> str:
    """cProfile of 20,000 admissions: the 15 functions with the most own time."""
    prof = cProfile.Profile()
    prof.enable()
    await _timed(quota, req, consumer, usage, 20_000, yield_every)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
    return buf.getvalue()


def _syncs(server: RateLimitServer) -> float:
    value = server.metrics.registry.get_sample_value("strata_quota_syncs_total", {"result": "ok"})
    return float(value or 0.0)
