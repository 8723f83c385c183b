"""One benchmark point: a workload, a policy and a scrape interval in the DES.

Method. Requests arriving in ``[0, warmup)`` warm the caches and the queues and are not
measured; requests arriving in ``[warmup, warmup + measure)`` are; arrivals go on for a
``tail`` after that so the measured requests never see a draining cluster, and the run
stops at ``warmup + measure + tail`` (virtual seconds). Per measured request: TTFT (a
request with no first token by the end counts with the time it waited, a lower bound,
and is reported as ``unserved``) and its prefix-cache hit. Per token: inter-token
latency, exact in this engine model, since a decoding sequence gets one token per step
and steps run back to back: every decode in a step waited that step's duration. Token
throughput and preemptions are counted over steps that end inside the measured window.
Pick latency is wall time around the policy's decision only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.tier2_bench.routers import BenchRouter
from bench.tier2_bench.stats import percentile, weighted_percentile
from bench.tier2_bench.workloads import Workload
from bench.vllmsim.config import SimConfig
from bench.vllmsim.des import RequestRecord, SimRequest, Simulation
from bench.vllmsim.engine import StepResult
from bench.vllmsim.request import Request

__all__ = ["Window", "run_point"]


@dataclass(frozen=True, slots=True)
class Window:
    warmup: float
    measure: float
    tail: float

    @property
    def start(self) -> float:
        return self.warmup

    @property
    def stop(self) -> float:
        return self.warmup + self.measure

    @property
    def end(self) -> float:
        return self.warmup + self.measure + self.tail


class _Collector:
    """Measurements of one run, fed by the simulation's hooks."""

    def __init__(self, window: Window) -> None:
        self.window = window
        self.arrival: dict[str, float] = {}
        self.offered_tokens = 0
        self.ttft: dict[str, float] = {}
        self.prompt_tokens = 0
        self.cached_tokens = 0
        self.step_seconds: list[float] = []
        self.step_decodes: list[int] = []
        self.output_tokens = 0
        self.prefill_tokens = 0
        self.completed = 0

    def submitted(self, req: SimRequest) -> None:
        if self.window.start <= req.arrival < self.window.stop:
            self.arrival[req.request_id] = req.arrival
            self.offered_tokens += req.max_tokens

    def first_token(self, req: Request, t: float) -> None:
        arrival = self.arrival.get(req.request_id)
        if arrival is not None:
            self.ttft[req.request_id] = t - arrival
            self.prompt_tokens += req.num_prompt_tokens
            self.cached_tokens += max(0, req.num_cached_tokens)

    def step(self, result: StepResult) -> None:
        plan = result.plan
        if self.window.start <= plan.end < self.window.stop:
            self.output_tokens += len(result.emitted)
            self.prefill_tokens += plan.prefill_tokens
            self.completed += len(result.finished)
            if plan.num_decodes:
                self.step_seconds.append(plan.duration)
                self.step_decodes.append(plan.num_decodes)

    def ttfts(self) -> tuple[list[float], int]:
        """TTFT of every measured request (censored at the end if none), and the unserved."""
        out = list(self.ttft.values())
        unserved = [a for rid, a in self.arrival.items() if rid not in self.ttft]
        out.extend(self.window.end - a for a in unserved)
        return out, len(unserved)


def run_point(
    workload: Workload,
    router: BenchRouter,
    *,
    config: SimConfig,
    num_pods: int,
    window: Window,
    scrape_interval_s: float,
    on_sim: Callable[[Simulation], None] | None = None,
) -> dict[str, Any]:
    """Run one point and return its metrics (times in seconds unless the key says)."""
    col = _Collector(window)

    def first_token(pod: int, req: Request, t: float) -> None:
        col.first_token(req, t)
        router.first_token(req.request_id, pod, t)

    def on_finish(rec: RequestRecord, s: Simulation) -> None:
        router.finished(rec)
        nxt = workload.follow_up(rec)
        if nxt is not None and nxt.arrival < window.end:
            col.submitted(nxt)
            s.submit(nxt)

    sim = Simulation(
        config,
        num_pods,
        router=router,
        scrape_interval_s=scrape_interval_s,
        on_finish=on_finish,
        on_first_token=first_token,
        on_step=lambda _pod, result: col.step(result),
        keep_output_ids=True,
    )
    if on_sim is not None:
        on_sim(sim)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for req in workload.initial(window.end):
        col.submitted(req)
        sim.submit(req)
    sim.run(until=window.start)
    pre0 = sum(p.engine.num_preemptions for p in sim.pods)
    sim.run(until=window.stop)
    pre1 = sum(p.engine.num_preemptions for p in sim.pods)
    sim.run(until=window.end)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0

    ttfts, unserved = col.ttfts()
    m = window.measure
    picks = router.pick_seconds
    return {
        "requests": len(col.arrival),
        "offered_rps": len(col.arrival) / m,
        "offered_output_tps": col.offered_tokens / m,
        "ttft_p50_s": percentile(ttfts, 0.5),
        "ttft_p90_s": percentile(ttfts, 0.9),
        "ttft_p99_s": percentile(ttfts, 0.99),
        "ttft_mean_s": sum(ttfts) / len(ttfts) if ttfts else float("nan"),
        "itl_p50_ms": 1000 * weighted_percentile(col.step_seconds, col.step_decodes, 0.5),
        "itl_p99_ms": 1000 * weighted_percentile(col.step_seconds, col.step_decodes, 0.99),
        "output_tps": col.output_tokens / m,
        "prefill_tps": col.prefill_tokens / m,
        "completed_rps": col.completed / m,
        "prefix_hit_rate": col.cached_tokens / col.prompt_tokens if col.prompt_tokens else 0.0,
        "preemptions": pre1 - pre0,
        "rejections": router.rejections,
        "unserved": unserved,
        "pick_p50_us": 1e6 * percentile(picks, 0.5),
        "pick_p99_us": 1e6 * percentile(picks, 0.99),
        "pick_cpu_p99_us": 1e6 * percentile(router.pick_cpu_seconds, 0.99),
        "picks": len(picks),
        "wall_s": wall,
        "cpu_s": cpu,
        "sim_events": sim.num_events,
    }
