"""Benchmark the simulator itself: virtual-time speed and real-time token pacing.

    python -m bench.vllmsim.benchmark [--mode virtual|real|both] [--json-out FILE]
    (``strata bench sim`` dispatches to :func:`main`)

virtual: 8 pods in the discrete-event simulator, shared-prefix multi-turn chat for
    ``--sim-seconds`` of simulated time at ``--rate`` requests/s (near the pods' knee),
    routed by a least-loaded router on 100 ms-stale scrapes. Reports wall seconds, the
    speed-up over real time and simulated requests per wall second. Runs pinned to
    ``--sim-cpu``.
real: one ``python -m bench.vllmsim`` process serving 3 pods (pinned to ``--sim-cpu``
    with taskset), loaded from this process (pinned to ``--load-cpu``, a lean client in
    :mod:`bench.vllmsim.loadgen`) with Poisson streaming chat requests at
    ``--real-rate``/s for ``--real-seconds``. Reports the lateness of every token (from
    its step's scheduled end to the moment its bytes reached the transport; the pods
    measure it; the worst pod's quantile is shown) and its split (when each step's
    emission pass started, how long it took, the share of it on the CPU), the
    simulator's CPU per request and per token, the client's own CPU and event-loop lag
    (it must not be the bottleneck), engine vs client TTFT, and the machine's share:
    an idle-timer floor measured on the simulator's core just before the run, and CPU
    used meanwhile by other processes and stolen by the hypervisor. On a shared or
    virtual machine those bound the jitter from below.

Prints one JSON document and then a one-line summary.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import sys
import time
from typing import Any

import aiohttp
import orjson

from bench.vllmsim.des import LeastLoadedRouter, Simulation
from bench.vllmsim.loadgen import host_cpu, run_load
from bench.vllmsim.server import SimConfig
from bench.vllmsim.workload import ChatWorkload

__all__ = ["main", "run_real", "run_virtual"]


def _pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def run_virtual(
    *, pods: int = 8, rate: float = 40.0, sim_seconds: float = 600.0, seed: int = 0
) -> dict[str, Any]:
    sim = Simulation(SimConfig(seed=seed), pods, router=LeastLoadedRouter(), keep_output_ids=True)
    turns = 3
    ChatWorkload(session_rate=rate / turns, duration_s=sim_seconds, turns=turns, seed=seed).install(
        sim
    )
    cpu0, t0 = time.process_time(), time.perf_counter()
    records = sim.run(until=sim_seconds)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    ttft = sorted(r.ttft for r in records)
    prompt = sum(r.prompt_tokens for r in records) or 1
    return {
        "pods": pods,
        "profile": "gie-8b",
        "offered_rate_rps": rate,
        "simulated_s": sim_seconds,
        "completed_requests": len(records),
        "generated_tokens": sum(r.output_tokens for r in records),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "speedup_vs_real_time": round(sim_seconds / wall, 1),
        "sim_requests_per_wall_s": round(len(records) / wall, 1),
        "events": sim.num_events,
        "ttft_p50_s": round(ttft[len(ttft) // 2], 4) if ttft else None,
        "ttft_p99_s": round(ttft[int(len(ttft) * 0.99)], 4) if ttft else None,
        "prefix_hit_fraction": round(sum(r.cached_tokens for r in records) / prompt, 3),
        "preemptions": sum(r.preemptions for r in records),
    }


def _free_ports(n: int) -> int:
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        ok = True
        for i in range(1, n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", base + i))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port range")


async def _stats(urls: list[str], reset: bool = False) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as s:
        res = []
        for u in urls:
            async with s.get(u + "/sim/stats" + ("?reset=1" if reset else "")) as r:
                res.append(await r.json())
        return res


def _q(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def _ms(v: float | None, nd: int = 3) -> float | None:
    return None if v is None else round(1000 * v, nd)


async def run_real(
    *,
    pods: int = 3,
    rate: float = 100.0,
    seconds: float = 20.0,
    max_tokens: int = 128,
    sim_cpu: int | None = 0,
    seed: int = 0,
    spin_ms: float = 0.0,
    floor_seconds: float = 5.0,
) -> dict[str, Any]:
    base = _free_ports(pods)
    cmd = [sys.executable, "-m", "bench.vllmsim", "--pods", str(pods), "--port", str(base)]
    probe = [sys.executable, "-m", "bench.vllmsim.loadgen", "--timer-floor", str(floor_seconds)]
    if spin_ms:
        cmd += ["--spin-ms", str(spin_ms)]
        probe += ["--spin-ms", str(spin_ms)]
    pinned = sim_cpu is not None and shutil.which("taskset") is not None
    if pinned:
        cmd = ["taskset", "-c", str(sim_cpu), *cmd]
        probe = ["taskset", "-c", str(sim_cpu), *probe]
    # the machine's floor first: how late an idle event loop on that core wakes up
    floor_proc = await asyncio.create_subprocess_exec(*probe, stdout=asyncio.subprocess.PIPE)
    floor = orjson.loads((await floor_proc.communicate())[0])
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
    urls = [f"http://127.0.0.1:{base + i}" for i in range(pods)]
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            for _ in range(pods):
                await proc.stdout.readline()
        before = await _stats(urls, reset=True)
        host0 = host_cpu()
        load = await run_load(urls, rate, seconds, max_tokens, seed)
        host1 = host_cpu()
        after = await _stats(urls)
    finally:
        proc.terminate()
        await proc.wait()
    sent = load.sent
    cpu = after[0]["process_cpu_s"] - before[0]["process_cpu_s"]

    def delta(key: str) -> float:
        return float(sum(a[key] - b[key] for a, b in zip(after, before, strict=True)))

    tokens = int(delta("generation_tokens"))
    ttft_n = delta("engine_ttft_count")
    late = [a["lateness_s"] for a in after]
    ok = len(load.e2e)
    other = steal = core_ms = None
    if host0 is not None and host1 is not None:
        host = host1 - host0
        other = round(max(0.0, host.busy_s - cpu - load.cpu_s) / load.wall_s, 3)
        steal = round(host.steal_s / load.wall_s, 3)
        if pinned and sim_cpu is not None and sim_cpu < len(host.cpu_busy_s):
            # the simulator's core, kernel softirq work for its sockets included
            core_ms = round(1000 * host.cpu_busy_s[sim_cpu] / max(1, sent), 3)
    return {
        "pods": pods,
        "simulator_pinned_cpu": sim_cpu if pinned else None,
        "load_generator_cpu": sorted(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "offered_rate_rps": rate,
        "seconds": seconds,
        "max_tokens": max_tokens,
        "sim_spin_ms": spin_ms,
        "requests_sent": sent,
        "requests_ok": ok,
        "errors": load.errors,
        "generated_tokens": tokens,
        # per token, when its bytes reached the transport, vs its step's scheduled end
        "token_release_lateness_p50_ms": _ms(max(x["p50"] for x in late)),
        "token_release_lateness_p90_ms": _ms(max(x["p90"] for x in late)),
        "token_release_lateness_p99_ms": _ms(max(x["p99"] for x in late)),
        "token_release_lateness_p999_ms": _ms(max(x["p999"] for x in late)),
        "token_release_lateness_max_ms": _ms(max(x["max"] for x in late)),
        "token_release_lateness_p99_per_pod_ms": [_ms(x["p99"]) for x in late],
        # split: when each step's emission pass began, how long it took, and the share
        # of that time the simulator's thread was on the CPU (the rest: preempted)
        "step_start_lateness_p50_ms": _ms(max(x["step_start"]["p50"] for x in late)),
        "step_start_lateness_p99_ms": _ms(max(x["step_start"]["p99"] for x in late)),
        "emission_pass_p50_ms": _ms(max(x["emission_pass"]["p50"] for x in late)),
        "emission_pass_p99_ms": _ms(max(x["emission_pass"]["p99"] for x in late)),
        "emission_pass_cpu_share": min(
            (round(x["emission_pass_cpu_share"], 3) for x in late if x["emission_pass_cpu_share"]),
            default=None,
        ),
        "tokens_per_step": round(delta("generation_tokens") / max(1.0, delta("steps")), 1),
        "idle_timer_floor_p50_ms": _ms(floor.get("p50")),
        "idle_timer_floor_p99_ms": _ms(floor.get("p99")),
        "tokens_measured": sum(int(x["tokens"]) for x in late),
        "tokens_fast_path": sum(int(x["fast_tokens"]) for x in late),
        "tokens_slow_path": sum(int(x["slow_tokens"]) for x in late),
        "stream_handovers": sum(int(x["handovers"]) for x in late),
        # the client received one SSE event per token: role + tokens + usage + [DONE]
        "client_token_events": load.events - 3 * ok,
        "client_usage_tokens": load.usage_tokens,
        "sim_cpu_s": round(cpu, 3),
        "sim_cpu_ms_per_request": round(1000 * cpu / max(1, sent), 3),
        "sim_cpu_us_per_token": round(1e6 * cpu / max(1, tokens), 2),
        "sim_cpu_utilisation": round(cpu / load.wall_s, 3),
        "sim_core_busy_ms_per_request": core_ms,
        "load_cpu_utilisation": round(load.cpu_s / load.wall_s, 3),
        "load_loop_lag_p99_ms": _ms(_q(load.loop_lag, 0.99)),
        "other_processes_cpu": other,
        "hypervisor_steal_cpu": steal,
        "engine_ttft_mean_ms": round(1000 * delta("engine_ttft_sum_s") / ttft_n, 1)
        if ttft_n
        else None,
        "client_ttft_mean_ms": _ms(statistics.mean(load.ttft), 1) if load.ttft else None,
        "client_ttft_p50_ms": _ms(_q(load.ttft, 0.5), 1),
        "client_ttft_p99_ms": _ms(_q(load.ttft, 0.99), 1),
        "client_e2e_mean_s": round(statistics.mean(load.e2e), 3) if load.e2e else None,
        "wall_s": round(load.wall_s, 2),
    }


def _runner() -> asyncio.Runner:
    """An asyncio runner on uvloop when available (the load generator's event loop)."""
    try:
        import uvloop

        return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.Runner()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="strata bench sim", description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=["virtual", "real", "both"], default="both")
    p.add_argument("--pods", type=int, default=8, help="virtual-time pods (default 8)")
    p.add_argument("--rate", type=float, default=40.0, help="virtual-time requests/s")
    p.add_argument("--sim-seconds", type=float, default=600.0)
    p.add_argument("--real-pods", type=int, default=3)
    p.add_argument("--real-rate", type=float, default=100.0)
    p.add_argument("--real-seconds", type=float, default=20.0)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument(
        "--spin-ms", type=float, default=0.0, help="the simulator's --spin-ms (real mode)"
    )
    p.add_argument("--sim-cpu", type=int, default=0, help="core for the simulator (-1: none)")
    p.add_argument("--load-cpu", type=int, default=1, help="core for the load generator (-1: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json-out", help="also write the JSON here")
    args = p.parse_args(argv)
    sim_cpu = None if args.sim_cpu < 0 else args.sim_cpu
    load_cpu = None if args.load_cpu < 0 else args.load_cpu
    ncpu = os.cpu_count() or 1
    if sim_cpu is not None and sim_cpu >= ncpu:
        sim_cpu = None
    if load_cpu is not None and load_cpu >= ncpu:
        load_cpu = None
    result: dict[str, Any] = {}
    summary: list[str] = []
    if args.mode in ("virtual", "both"):
        _pin(sim_cpu)
        v = run_virtual(
            pods=args.pods, rate=args.rate, sim_seconds=args.sim_seconds, seed=args.seed
        )
        result["virtual"] = v
        summary.append(
            f"virtual: {v['pods']} pods x {v['simulated_s']:.0f} sim-s in {v['wall_s']:.1f} wall-s "
            f"({v['speedup_vs_real_time']}x real time, {v['sim_requests_per_wall_s']} sim req/wall-s)"
        )
    if args.mode in ("real", "both"):
        if ncpu > 1:
            _pin(load_cpu)
        with _runner() as runner:
            r = runner.run(
                run_real(
                    pods=args.real_pods,
                    rate=args.real_rate,
                    seconds=args.real_seconds,
                    max_tokens=args.max_tokens,
                    sim_cpu=sim_cpu,
                    seed=args.seed,
                    spin_ms=args.spin_ms,
                )
            )
        result["real"] = r
        summary.append(
            f"real: {r['pods']} pods @ {r['offered_rate_rps']:.0f} rps, token lateness p99 "
            f"{r['token_release_lateness_p99_ms']} ms, {r['sim_cpu_ms_per_request']} ms CPU/request"
            f" (p50 {r['token_release_lateness_p50_ms']} ms; idle-timer floor p99 "
            f"{r['idle_timer_floor_p99_ms']} ms; steal {r['hypervisor_steal_cpu']}, other "
            f"{r['other_processes_cpu']}, load-generator {r['load_cpu_utilisation']} CPU)"
        )
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    print(text)
    print(" | ".join(summary))
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
