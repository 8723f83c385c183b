"""`strata bench tier2-realtime`: scenario (c) in real time through tier2 and 8 simulated pods.

    strata bench tier2-realtime [--speed 2] [--rate 3] [--duration-s 100] [--out PATH]

The virtual-time benchmark (:mod:`bench.tier2_bench.run`) ranks the policies with the
scheduler classes alone; this run checks the ranking with the real processes: one
``strata sim`` process serving 8 pods, one ``strata tier2`` process and a lean asyncio
client sending streaming chat completions, for each policy in turn (``random``: uniform
weighted-random picks; ``gie-default``; ``strata``). Both processes are restarted between
policies, so every policy starts with cold caches and an empty prefix index.

Time dilation. The pods run ``--speed`` model seconds per wall second; the workload's
arrivals and think times are model seconds and are sent at ``t0 + model / speed``, and
every latency measured on the wall clock is multiplied back by ``speed``. tier2 itself
runs in wall time, so the profiles' parameters given in seconds are divided by the speed
(and the ledger's default prefill rate multiplied), and the pool is scraped every
``--scrape-ms`` model milliseconds. Requests carry ``x-strata-priority: critical``: tier2
dispatches them all, as the DES does, whose router has no admission queue.

Workload. The conversations of :class:`~bench.tier2_bench.workloads.ChatWorkload` (same
seed, texts, lengths and think times as the DES; each next turn carries the answer the
pod really streamed). Requests arriving in the first ``--warmup-frac`` of
``--duration-s`` warm the caches; those arriving in the rest are measured, and the run
goes on (arrivals included) until they have finished, for at most ``--tail-s``.

Why the defaults differ from the DES's (c) (knee 6 conversations/s, 400 s warm-up, 50 ms
scrapes). Every output token crosses three Python processes (about 55 us of CPU in
tier2 since its stream relay runs in the pod connection's protocol, 90 before; 65 in
the simulator and 35 in the client), so 2 cores carry about 6,000-8,000 tokens/s:
the pods run in real time (speed 1) and a run must fit in a few minutes per policy, so
the model time is short (200 s): conversations (about 4 model minutes long) are all
still open when measuring starts, so 6 conversations/s then offers about the load of 4/s
in steady state. At speed 2, tier2 shared its core with the client and saturated it:
requests waited in its socket buffers, and the policy that served the most tokens
looked the slowest. Scrapes every 200 model ms: the simulator renders /metrics through
prometheus-client at about 1 ms each, so 50 ms scrapes would take most of its core (the
DES's scenario (f) finds 50 vs 200 ms nearly alike for these profiles).

Measurements, per measured request: TTFT (to the first content chunk, from the scheduled
send time, so a late client does not hide queueing), the gaps between content chunks
(ITL), cached and prompt tokens from ``usage``; the pods' own TTFT histograms give the
engine-side mean, so the client's mean minus theirs is the time spent outside the
engines (tier2, sockets, the client). Output throughput counts tokens received in the
measured window. The load generator is :mod:`bench.tier2_bench.realtime_client`.

Placement on 2 cores: tier2, the system under test, alone on CPU 1; the simulator and
this load generator on CPU 0 (``--client-cpu 1`` moves the client next to tier2).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import socket
import sys
import tempfile
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from bench.tier1_bench.procs import Child, Children, can_pin, free_port, http_get, wait_until
from bench.tier2_bench.realtime_client import MODEL, Driver, Sample, Window
from bench.tier2_bench.scenarios import NUM_PODS, PROFILE, Corpora
from bench.tier2_bench.stats import percentile
from common import jsonutil
from common.config import ConfigSet, parse_resource, snapshot_to_wire
from common.config.scheduling import NAMED_PROFILES, parse_params
from common.configsync import persist
from common.configsync.node import NodeSettings
from control.compile import compile_tier2

__all__ = ["POLICIES", "Sample", "main", "pool_resource", "ranking", "start_tier2", "summarize"]

POLICIES = ("random", "gie-default", "strata")
"""Expected order, worst to best (the DES ranking of (c) on TTFT p90)."""
POOL = "bench"
SIM_CPU, TIER2_CPU = 0, 1
_RANDOM_PLUGINS: list[dict[str, Any]] = [
    {"type": "serves-model-filter"},
    {"type": "healthy-filter"},
    {"type": "weighted-random-picker"},
]
_SECONDS_PARAMS = (
    "overhead_s",
    "load_cost_s",
    "waiting_cost_s",
    "kv_pressure_s",
    "uncertain_penalty_s",
    "t_max_s",
    "near_tie_abs_s",
    "stale_after_s",
    "max_age_s",
)
_TTFT_TYPES = ("strata-picker", "predicted-ttft-scorer")


# --- pure: configuration ---------------------------------------------------------------


def _plugins(policy: str, speed: float, scrape_s: float) -> list[dict[str, Any]]:
    """The policy's plugin list with its seconds in wall time (model seconds / speed).

    Defaults that depend on the scrape interval are made explicit first, from the model
    interval, so dividing by the speed keeps them equal to the DES's."""
    specs: list[tuple[str, float, dict[str, Any]]]
    if policy == "random":
        specs = [(p["type"], 1.0, {}) for p in _RANDOM_PLUGINS]
    else:
        specs = [(s.type, s.weight, dict(s.parameters)) for s in NAMED_PROFILES[policy]]
    out = []
    for type_, weight, params in specs:
        if type_ == "healthy-filter" and params.get("fresh_only", True):
            params.setdefault("max_age_s", max(2.0, 3.0 * scrape_s))
        if type_ in _TTFT_TYPES:
            params.setdefault("stale_after_s", max(0.5, 3.0 * scrape_s))
            params.update({k: v for k, v in _default_seconds(type_).items() if k not in params})
        if type_ == "ledger":
            params["default_prefill_rate"] = params.get("default_prefill_rate", 8000.0) * speed
        for key in _SECONDS_PARAMS:
            if isinstance(params.get(key), int | float):
                params[key] = params[key] / speed
        out.append({"type": type_, "weight": weight, "parameters": params})
    return out


def _default_seconds(type_: str) -> dict[str, float]:
    model = parse_params(type_, {})
    return {k: v for k in _SECONDS_PARAMS if isinstance(v := getattr(model, k, None), float)}


def pool_resource(
    policy: str, addresses: Sequence[str], tier2: str, *, speed: float, scrape_s: float
) -> dict[str, Any]:
    """The Pool resource of one run; ``scrape_s`` is the model-time scrape interval."""
    return {
        "kind": "Pool",
        "name": POOL,
        "revision": 1,
        "spec": {
            "model": MODEL,
            "endpoints": {"type": "static", "addresses": list(addresses)},
            "tier2": [tier2],
            "scrape_interval_s": max(0.01, scrape_s / speed),
            "scheduler": {"name": policy, "plugins": _plugins(policy, speed, scrape_s)},
        },
    }


# --- pure: measurements ----------------------------------------------------------------


def summarize(samples: Sequence[Sample], window: Window) -> dict[str, Any]:
    """The DES's headline metrics over the requests that arrived in the window."""
    measured = [s for s in samples if window.start <= s.arrival < window.stop]
    served = [s for s in measured if not math.isnan(s.first_token)]
    ttft = [s.first_token - s.arrival for s in served]
    unserved = [s for s in measured if math.isnan(s.first_token) and not s.error]
    ttft += [window.end - s.arrival for s in unserved]  # censored, a lower bound
    gaps = [b - a for s in served for a, b in zip(s.token_times, s.token_times[1:], strict=False)]
    tokens = sum(1 for s in samples for t in s.token_times if window.start <= t < window.stop)
    done = sum(1 for s in samples if window.start <= s.finish < window.stop)
    prompt = sum(s.prompt_tokens for s in served)
    span = window.stop - window.start
    lags = [s.send_lag for s in measured if not math.isnan(s.send_lag)]
    return {
        "requests": len(measured),
        "sent": len(samples),
        "ttft_p50_s": percentile(ttft, 0.5),
        "ttft_p90_s": percentile(ttft, 0.9),
        "ttft_p99_s": percentile(ttft, 0.99),
        "itl_p50_ms": 1000 * percentile(gaps, 0.5),
        "itl_p99_ms": 1000 * percentile(gaps, 0.99),
        "output_tps": tokens / span,
        "completed_rps": done / span,
        "prefix_hit_rate": sum(s.cached_tokens for s in served) / prompt if prompt else 0.0,
        "errors": sum(1 for s in measured if s.error),
        "unserved": len(unserved),
        "send_lag_p99_s": percentile(lags, 0.99),
    }


def ranking(rows: dict[str, dict[str, Any]], metric: str = "ttft_p90_s") -> dict[str, Any]:
    """Whether ``metric`` orders the policies as :data:`POLICIES` expects (best last)."""
    have = [p for p in POLICIES if p in rows]
    order = sorted(have, key=lambda p: rows[p][metric], reverse=True)
    return {"metric": metric, "expected": have, "observed": order, "matches": order == have}


def markdown(doc: dict[str, Any]) -> str:
    m = doc["meta"]
    lines = [
        "# tier2 real-time confirmation, scenario (c)",
        "",
        f"`{m['command']}`: {m['rate']:g} conversations/s on {m['pods']} simulated pods "
        f"(profile {m['profile']}), speed {m['speed']:g} (model s per wall s), "
        f"{m['window']['stop'] - m['window']['start']:g} model s measured after "
        f"{m['window']['start']:g} s of warm-up, scrape every {m['scrape_ms']:g} model ms. "
        f"Wall time {m['wall_s']:.0f} s. Placement: {m['placement']}.",
        "Latencies are model time (wall x speed).",
        "",
        "| policy | TTFT p50 s | p90 | p99 | ITL p50 ms | p99 | out tok/s | done req/s "
        "| hit | requests | errors | unserved | send lag p99 s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p, r in doc["results"].items():
        lines.append(
            f"| {p} | {r['ttft_p50_s']:.3f} | {r['ttft_p90_s']:.3f} | {r['ttft_p99_s']:.3f} "
            f"| {r['itl_p50_ms']:.0f} | {r['itl_p99_ms']:.0f} | {r['output_tps']:.0f} "
            f"| {r['completed_rps']:.2f} | {r['prefix_hit_rate']:.2f} | {r['requests']} "
            f"| {r['errors']} | {r['unserved']} | {r['send_lag_p99_s']:.3f} |"
        )
    lines += [
        "",
        "Where the time goes (model s; CPU s over the run): `pod TTFT` is the pods' own "
        "histogram mean over the whole run, from arrival at the engine; the difference to "
        "the client's mean is time spent outside the engines (tier2, sockets, client).",
        "",
        "| policy | client TTFT mean | pod TTFT mean | outside | CPU sim | tier2 "
        "| client | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p, r in doc["results"].items():
        c = r["cpu"]
        outside = c["client_ttft_mean_s"] - c["pod_ttft_mean_s"]
        lines.append(
            f"| {p} | {c['client_ttft_mean_s']:.3f} | {c['pod_ttft_mean_s']:.3f} "
            f"| {outside:.3f} "
            f"| {c['sim_cpu_s']:.0f} | {c['tier2_cpu_s']:.0f} | {c['load_cpu_s']:.0f} "
            f"| {c['wall_s']:.0f} |"
        )
    rk = doc["ranking"]
    verdict = "matches" if rk["matches"] else "does NOT match"
    lines += [
        "",
        f"Ranking on TTFT p90, worst to best: {' > '.join(rk['observed'])}; "
        f"{verdict} the DES ranking of (c) ({' > '.join(rk['expected'])}).",
        "",
    ]
    return "\n".join(lines)


# --- processes -------------------------------------------------------------------------


def _free_block(n: int) -> int:
    """A port p with p..p+n-1 free (the simulator binds consecutive ports)."""
    for _ in range(50):
        base = free_port()
        socks: list[socket.socket] = []
        try:
            for i in range(n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports")


def _scraped_all(url: str, n: int) -> bool:
    status, body = http_get(url)
    ages = [
        line.rsplit(" ", 1)[1]
        for line in body.decode().splitlines()
        if line.startswith("strata_tier2_endpoint_metrics_age_seconds{")
    ]
    return status == 200 and len(ages) == n and "+Inf" not in ages


def _pod_ttft(addresses: Sequence[str]) -> tuple[float, int]:
    """Sum and count of the pods' own TTFT histograms (model seconds, whole run)."""
    total, count = 0.0, 0
    for a in addresses:
        for line in http_get(f"http://{a}/metrics", 5.0)[1].decode().splitlines():
            if line.startswith("vllm:time_to_first_token_seconds_sum"):
                total += float(line.rsplit(" ", 1)[1])
            elif line.startswith("vllm:time_to_first_token_seconds_count"):
                count += int(float(line.rsplit(" ", 1)[1]))
    return total, count


def start_tier2(
    children: Children,
    policy: str,
    addresses: Sequence[str],
    tmp: Path,
    *,
    speed: float,
    scrape_s: float,
    cpu: int,
    env: dict[str, str],
) -> tuple[str, Child]:
    """A `strata tier2` process serving the pool of ``addresses`` with ``policy``, its
    config from a state file (no control plane): its base URL once it is ready."""
    port = free_port()
    doc = pool_resource(policy, addresses, f"127.0.0.1:{port}", speed=speed, scrape_s=scrape_s)
    snap = compile_tier2(ConfigSet.of([parse_resource(doc)]))[POOL]
    node_id = f"bench-{policy}"
    state = tmp / f"state-{policy}"
    settings = NodeSettings("tier2", "127.0.0.1", port, [], node_id, state, POOL)
    persist.save(settings.state_file, snapshot_to_wire(snap))
    cmd = [sys.executable, "-m", "control.cli", "tier2", "--pool", POOL, "--port", str(port)]
    cmd += ["--node-id", node_id, "--control", "127.0.0.1:9", "--state-dir", str(state)]
    tier2 = children.start(f"tier2-{policy}", cmd, cpu=cpu, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_until(tier2, "ready", lambda: http_get(f"{url}/readyz")[0] == 200, 60)
    return url, tier2


def run_policy(
    policy: str, args: argparse.Namespace, corpora: Corpora, tmp: Path
) -> tuple[list[Sample], dict[str, float]]:
    """Start the pods and tier2, drive the workload; the samples and CPU seconds used."""
    log = _log
    children = Children(tmp)
    py = [sys.executable, "-m", "control.cli"]
    env = {**os.environ, "STRATA_LOG_LEVEL": "WARNING"}
    try:
        base = _free_block(args.pods)
        sim_cmd = [*py, "sim", "--pods", str(args.pods), "--port", str(base), "--model", MODEL]
        sim_cmd += ["--profile", args.profile, "--speed", str(args.speed)]
        sim_cmd += ["--seed", str(args.seed), "--max-loras", "0"]
        sim = children.start(f"sim-{policy}", sim_cmd, cpu=SIM_CPU, env=env)
        last = f"http://127.0.0.1:{base + args.pods - 1}/metrics"
        wait_until(sim, "serving", lambda: http_get(last)[0] == 200, 60)
        addresses = [f"127.0.0.1:{base + i}" for i in range(args.pods)]
        base_url, tier2 = start_tier2(
            children,
            policy,
            addresses,
            tmp,
            speed=args.speed,
            scrape_s=args.scrape_ms / 1e3,
            cpu=TIER2_CPU,
            env=env,
        )
        wait_until(tier2, "scraping", lambda: _scraped_all(f"{base_url}/metrics", args.pods), 30)
        workload = corpora.workload("c", args.rate)
        window = _window(args)
        log(
            f"[{policy}] sim pid {sim.pid} on CPU {SIM_CPU}, tier2 pid {tier2.pid} on CPU {TIER2_CPU}"
        )
        driver = Driver(f"{base_url}/v1/chat/completions", workload, window, args.speed, log)
        sim.refresh_tree()
        cpu0 = (sim.cpu_seconds(), tier2.cpu_seconds(), time.process_time(), time.monotonic())
        samples = _run_loop(driver.run())
        cpu1 = (sim.cpu_seconds(), tier2.cpu_seconds(), time.process_time(), time.monotonic())
        used = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
        pod_sum, pod_n = _pod_ttft(addresses)
        client = [s.first_token - s.arrival for s in samples if not math.isnan(s.first_token)]
        extra = {
            "wall_s": used[3],
            "sim_cpu_s": used[0],
            "tier2_cpu_s": used[1],
            "load_cpu_s": used[2],
            "pod_ttft_mean_s": pod_sum / pod_n if pod_n else math.nan,
            "client_ttft_mean_s": sum(client) / len(client) if client else math.nan,
        }
        return samples, extra
    finally:
        children.stop_all()


def _run_loop(coro: Coroutine[Any, Any, list[Sample]]) -> list[Sample]:
    """Run on uvloop when installed: the client shares its core with tier2."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a dependency on Linux
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def _window(args: argparse.Namespace) -> Window:
    model_s = args.duration_s * args.speed
    start = model_s * args.warmup_frac
    return Window(start, model_s, model_s + args.tail_s * args.speed)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="strata bench tier2-realtime", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--speed", type=float, default=1.0, help="model seconds per wall second")
    p.add_argument("--rate", type=float, default=6.0, help="new conversations per model second")
    p.add_argument("--duration-s", type=float, default=200.0, help="wall seconds per policy")
    p.add_argument("--warmup-frac", type=float, default=0.6, help="of the duration, unmeasured")
    p.add_argument("--tail-s", type=float, default=10.0, help="wall s to finish measured requests")
    p.add_argument("--scrape-ms", type=float, default=200.0, help="model ms between scrapes")
    p.add_argument("--policies", default=",".join(POLICIES), help="comma-separated, run in order")
    p.add_argument("--client-cpu", type=int, choices=(0, 1), default=0, help="load generator's")
    p.add_argument("--pods", type=int, default=NUM_PODS)
    p.add_argument("--profile", default=PROFILE)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=".strata/bench/tier2-realtime", help="path without suffix")
    args = p.parse_args(argv)
    policies = [x for x in args.policies.split(",") if x]
    if unknown := [x for x in policies if x not in POLICIES]:
        p.error(f"unknown policy {unknown[0]!r}; known: {', '.join(POLICIES)}")
    if args.speed <= 0 or args.rate <= 0 or args.duration_s <= 0 or not 0 <= args.warmup_frac < 1:
        p.error("--speed, --rate and --duration-s must be positive, --warmup-frac in [0, 1)")
    placement = (
        f"simulator pinned to CPU {SIM_CPU}, tier2 to CPU {TIER2_CPU}, the load generator "
        f"to CPU {args.client_cpu}"
        if can_pin()
        else "not pinned (fewer than 2 CPUs)"
    )
    _log(f"strata bench tier2-realtime: {placement}")
    wall0 = time.perf_counter()
    corpora = Corpora(args.seed)
    window = _window(args)
    results: dict[str, dict[str, Any]] = {}
    own_cpu = os.sched_getaffinity(0) if can_pin() else None
    with tempfile.TemporaryDirectory(prefix="strata-t2rt-") as tmp:
        for policy in policies:
            if own_cpu is not None:
                os.sched_setaffinity(0, {args.client_cpu})
            try:
                samples, cpu = run_policy(policy, args, corpora, Path(tmp))
            finally:
                if own_cpu is not None:
                    os.sched_setaffinity(0, own_cpu)
            results[policy] = r = {**summarize(samples, window), "cpu": cpu}
            _log(
                f"[{policy}] TTFT p50 {r['ttft_p50_s']:.3f} p90 {r['ttft_p90_s']:.3f} p99 "
                f"{r['ttft_p99_s']:.3f} s, ITL p50 {r['itl_p50_ms']:.0f} ms, hit "
                f"{r['prefix_hit_rate']:.2f}, {r['requests']} requests, {r['errors']} errors; "
                f"CPU s over {cpu['wall_s']:.0f} s: sim {cpu['sim_cpu_s']:.0f}, tier2 "
                f"{cpu['tier2_cpu_s']:.0f}, load generator {cpu['load_cpu_s']:.0f}"
            )
    meta = {
        "command": "strata bench tier2-realtime " + " ".join(argv or sys.argv[1:]),
        "rate": args.rate,
        "speed": args.speed,
        "pods": args.pods,
        "profile": args.profile,
        "seed": args.seed,
        "scrape_ms": args.scrape_ms,
        "window": {"start": window.start, "stop": window.stop, "end": window.end},
        "placement": placement,
        "wall_s": time.perf_counter() - wall0,
    }
    doc = {"meta": meta, "results": results, "ranking": ranking(results)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_bytes(jsonutil.dumps(doc, pretty=True))
    out.with_suffix(".md").write_text(markdown(doc))
    _log(markdown(doc))
    _log(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0
