"""Hot-path cost end to end: one tier1 process, two models on the same fake upstream,
`m-free` (no policy) and `m-limited` (a requests and a tokens limit nothing reaches,
enforced through a live quota replica).

Three targets take turns: A = m-free, B = m-limited, A' = m-free again. A' is the
noise: any gap between A and A' is the machine, not the rate limiter. Every phase
starts with its own warm-up (connections open, the key's lease granted and sized).
- Closed loop (max rate): `rounds` rounds of one phase per target, the order rotating;
  tier1's CPU µs per request per phase from its /proc CPU time over the phase.
- Open loop (fixed rate below saturation), the same rounds and phases; latency runs
  from each request's scheduled send (no coordinated omission).
- Bursty: the targets alternate in 1 s open-loop slices with no warm-up of their own,
  so m-limited's key idles 2 s between its slices, longer than the 1 s after which
  tier1 gives an idle key's allotment back: each slice starts without a lease.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.ratelimit_bench.config import (
    CLIENT_KEY,
    FREE_MODEL,
    HOT_POLICY,
    LIMITED_MODEL,
    hotpath_docs,
    tier1_wire,
)
from bench.ratelimit_bench.stack import Replica, Stack, Tier1, metrics_text
from bench.ratelimit_bench.summary import per_round, sample, samples
from bench.tier1_bench.load import Target, closed_loop, open_loop, request_body
from bench.tier1_bench.procs import StartFailed
from bench.tier1_bench.stats import spread

SUT_CPU = 0
AUX_CPU = 1
NAMES = ("free", "limited", "free_again")
LEASE_WAITS = "strata_ratelimit_lease_waits_total"
PROBE_FILE = "tier1-hot-probe.json"
Say = Callable[[str], None]


def start(stack: Stack) -> tuple[Tier1, Replica]:
    """Fake upstream and one quota replica on CPU 1 (the replica ahead in priority),
    tier1 alone on CPU 0, started through the probe (the hook timed inside)."""
    base, [replica] = stack.ensure(AUX_CPU, {"quota-b": AUX_CPU})
    wire = tier1_wire(hotpath_docs(base + "/v1"), 1)
    tier1 = stack.start_tier1(
        "tier1-hot", wire, [replica], cpu=SUT_CPU, probe_out=stack.tmp / PROBE_FILE
    )
    return tier1, replica


def targets(stack: Stack, tier1: Tier1) -> dict[str, Target]:
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    cpu = tier1.child.cpu_seconds
    models = {"free": FREE_MODEL, "limited": LIMITED_MODEL, "free_again": FREE_MODEL}
    return {
        n: Target(n, tier1.url, headers, models[n], cpu=cpu, ours_cpu=stack.ours_cpu) for n in NAMES
    }


async def check(tier1: Tier1) -> None:
    """m-limited answers with x-ratelimit-* headers (the policy is on), m-free without."""
    headers = {"Authorization": f"Bearer {CLIENT_KEY}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        for model, limited in ((FREE_MODEL, False), (LIMITED_MODEL, True)):
            body = request_body(model, stream=False)
            async with session.post(tier1.url, data=body, headers=headers) as r:
                await r.read()
                has = "x-ratelimit-limit-requests" in r.headers
                if r.status != 200 or has != limited:
                    raise tier1.child.failure(
                        f"answered {model} with HTTP {r.status}, x-ratelimit headers "
                        f"{'present' if has else 'absent'} (expected "
                        f"{'present' if limited else 'absent'})"
                    )


async def run_e2e(
    stack: Stack,
    *,
    rounds: int,
    phase_s: float,
    warmup_s: float,
    rate: float,
    concurrency: int,
    say: Say,
    bursty_s: float = 0.0,
) -> dict[str, Any]:
    """`bursty_s` > 0 adds the bursty-key run (that many seconds per target)."""
    tier1, replica = start(stack)
    await check(tier1)
    tgs = targets(stack, tier1)
    q0 = samples(metrics_text(replica.metrics_url))
    t0 = samples(metrics_text(tier1.base + "/metrics"))
    closed: list[dict[str, Any]] = []
    opened: list[dict[str, Any]] = []
    for r in range(rounds):
        order = list(NAMES[r % 3 :] + NAMES[: r % 3])
        got: dict[str, Any] = {}
        for name in order:
            res = await closed_loop(
                tgs[name],
                stream=False,
                concurrency=concurrency,
                warmup_s=warmup_s,
                seconds=phase_s,
                client="raw",
            )
            got[name] = res
            if res["completed"] == 0:
                raise StartFailed(
                    f"closed loop on {name}: nothing completed ({res['first_error']})"
                )
            say(
                f"  closed {r + 1}/{rounds} {name:10s} {res['per_s']:7,.0f} req/s, tier1 "
                f"{res['sut_cpu_us_per']:5,.0f} µs CPU/req, core {res['sut_busy']:.0%}; others "
                f"took {res['cpu0_others']:.0%} of CPU 0, {res['cpu1_others']:.0%} of CPU 1"
                + (f", {res['errors']} errors ({res['first_error']})" if res["errors"] else "")
            )
        closed.append(got)
    for r in range(rounds):
        order = list(NAMES[r % 3 :] + NAMES[: r % 3])
        got = {}
        for name in order:
            res = (await open_loop([tgs[name]], rate=rate, warmup_s=warmup_s, seconds=phase_s))[
                name
            ]
            got[name] = res
            say(f"  open@{rate:g} {r + 1}/{rounds} {name:10s} {_open_line(res)}")
        opened.append(got)
    bursty: dict[str, dict[str, Any]] = {}
    if bursty_s > 0:
        say(f"  bursty: {rate:g} req/s in 1 s slices taking turns, {bursty_s:g} s each")
        bursty = await open_loop(
            list(tgs.values()), rate=rate, warmup_s=warmup_s, seconds=bursty_s, slice_s=1.0
        )
        for name, res in bursty.items():
            say(f"  bursty {name:10s} {_open_line(res)}")
    q1 = samples(metrics_text(replica.metrics_url))
    t1 = samples(metrics_text(tier1.base + "/metrics"))
    if not tier1.child.alive():
        raise tier1.child.failure("died during the measurements")
    stack.stop("tier1-hot")  # the probe writes its summary on the way out
    out = summarize(closed, opened, bursty)
    out["in_situ"] = in_situ(stack.tmp / PROBE_FILE)
    out["quota_syncs"] = _delta(q0, q1, "strata_quota_syncs_total", result="ok")
    out["limited_requests_allowed"] = _delta(
        t0, t1, "strata_ratelimit_decisions_total", policy=HOT_POLICY, result="allowed"
    )
    # admissions that waited for a Sync, if this tier1 counts them (NaN when it does not)
    out["lease_waits"] = sample(t1, LEASE_WAITS) - sample(t0, LEASE_WAITS)
    return out


def in_situ(path: Path) -> dict[str, Any]:
    """The probe's summary, and what the limits add per request: admit (m-limited −
    m-free, the part of admit every request pays is not added) plus settle."""
    try:
        got: dict[str, Any] = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    admit, settle = got.get("admit", {}), got.get("settle", {})
    free, limited = admit.get("free"), admit.get("limited")
    if not free or not limited or not settle.get("n"):
        return got
    for key in ("wall_p50_us", "wall_p99_us", "cpu_mean_us"):
        got[f"added_{key}"] = limited[key] - free[key] + settle[key]
    return got


def _open_line(res: dict[str, Any]) -> str:
    return (
        f"p50 {res['p50_ms']:.3f} ms, p99 {res['p99_ms']:.3f} ms, tier1 "
        f"{res['sut_cpu_us_per']:,.0f} µs CPU/req, {res['completed']}/{res['sent']} ok"
    )


def _delta(a: Any, b: Any, name: str, **labels: str) -> float:
    before = sample(a, name, **labels)
    return sample(b, name, **labels) - (0.0 if math.isnan(before) else before)


def summarize(
    closed: list[dict[str, Any]], opened: list[dict[str, Any]], bursty: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Medians across rounds per target, and per-round B − A (effect) and A' − A (noise)."""

    def med(rounds: list[dict[str, Any]], key: str, name: str) -> float:
        return statistics.median(float(r[name][key]) for r in rounds)

    def diffs(rounds: list[dict[str, Any]], key: str, *, ratio: bool = False) -> dict[str, Any]:
        added = per_round(rounds, key, "free", "limited", ratio=ratio)
        noise = per_round(rounds, key, "free", "free_again", ratio=ratio)
        return {"added": spread(added), "noise": spread(noise), "rounds": [added, noise]}

    b = bursty
    return {
        "closed": {
            "rps": {n: med(closed, "per_s", n) for n in NAMES},
            "cpu_us_per_req": {n: med(closed, "sut_cpu_us_per", n) for n in NAMES},
            "core_busy": {n: med(closed, "sut_busy", n) for n in NAMES},
            "rps_ratio": diffs(closed, "per_s", ratio=True),
            "cpu_us": diffs(closed, "sut_cpu_us_per"),
            "errors": sum(int(r[n]["errors"]) for r in closed for n in NAMES),
            "others_max": _others(closed),
        },
        "open": {
            "rate": opened[0]["free"]["rate"],
            "p50_ms": {n: med(opened, "p50_ms", n) for n in NAMES},
            "p99_ms": {n: med(opened, "p99_ms", n) for n in NAMES},
            "cpu_us_per_req": {n: med(opened, "sut_cpu_us_per", n) for n in NAMES},
            "p50_ms_diff": diffs(opened, "p50_ms"),
            "p99_ms_diff": diffs(opened, "p99_ms"),
            "cpu_us": diffs(opened, "sut_cpu_us_per"),
            "send_lag_p99_ms": max(float(r[n]["send_lag_p99_ms"]) for r in opened for n in NAMES),
            "errors": sum(int(r[n]["errors"]) for r in opened for n in NAMES),
            "overloaded": sorted({n for r in opened for n in NAMES if r[n]["overloaded"]}),
            "others_max": _others(opened),
        },
        "bursty": {
            "p50_ms": {n: b[n]["p50_ms"] for n in NAMES},
            "p99_ms": {n: b[n]["p99_ms"] for n in NAMES},
            "added_p50_ms": b["limited"]["p50_ms"] - b["free"]["p50_ms"],
            "added_p99_ms": b["limited"]["p99_ms"] - b["free"]["p99_ms"],
            "noise_p50_ms": b["free_again"]["p50_ms"] - b["free"]["p50_ms"],
            "noise_p99_ms": b["free_again"]["p99_ms"] - b["free"]["p99_ms"],
        }
        if b
        else {},
        "rounds_closed": closed,
        "rounds_open": opened,
        "bursty_raw": bursty,
    }


def _others(rounds: list[dict[str, Any]]) -> dict[str, float]:
    """The largest share of each core other processes took in any phase."""
    out = {}
    for c in (0, 1):
        shares = [float(r[n].get(f"cpu{c}_others", math.nan)) for r in rounds for n in NAMES]
        out[f"cpu{c}"] = max((x for x in shares if not math.isnan(x)), default=math.nan)
    return out
