"""Virtual time: N engines in one process on a discrete-event clock (no HTTP, no sleeping).

The engines are the very :class:`~bench.vllmsim.engine.Engine` objects the HTTP server
runs; only the driver differs. Two kinds of events exist: a request arrives, and a
pod's step ends. When a step ends its output is applied, the pod publishes a
:class:`SchedulerStats` snapshot (what its ``/metrics`` would show from then on) and,
if work remains, the next step starts at once.

Routing hook: every arriving request is handed to a :class:`Router`, which returns a
pod index. It sees the cluster through a :class:`ClusterView`, whose
:meth:`~ClusterView.scrape` returns what a Prometheus scrape of that pod would have
returned at the *last scrape time*: scrapes happen every ``scrape_interval_s`` with a
per-pod phase, and each returns the snapshot of the last step completed before it. So
a picker in simulation works on data exactly as stale as in production.
:meth:`ClusterView.fresh` gives the current snapshot and :meth:`ClusterView.engine` the
engine itself (true cache contents and queues) for oracle baselines.

Observation hooks: ``on_first_token`` (a streaming proxy's first byte), ``on_step`` (every
applied step, for per-token statistics) and ``on_finish``.

Example::

    sim = Simulation(SimConfig(profile="gie-8b"), num_pods=8, router=my_router)
    sim.submit(SimRequest("r1", prompt_ids, max_tokens=128, arrival=0.0))
    records = sim.run(until=600.0)
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bench.vllmsim.clock import ManualClock
from bench.vllmsim.config import SimConfig, pod_rng
from bench.vllmsim.engine import (
    Engine,
    EngineConfig,
    Request,
    RequestSpec,
    SchedulerStats,
    StepPlan,
    StepResult,
)

__all__ = [
    "ClusterView",
    "LeastLoadedRouter",
    "MetricsView",
    "RequestRecord",
    "RoundRobinRouter",
    "Router",
    "SimRequest",
    "Simulation",
]


@dataclass(frozen=True, slots=True)
class SimRequest:
    request_id: str
    prompt_token_ids: Sequence[int]
    max_tokens: int
    arrival: float
    ignore_eos: bool = False
    lora: str | None = None
    session: str | None = None
    """Conversation or user key, for affinity routers."""
    payload: Any = None
    """Opaque data for the workload (e.g. the conversation to continue)."""


@dataclass(frozen=True, slots=True)
class MetricsView:
    """One pod's metrics as a scrape at ``scraped_at`` returned them."""

    pod: int
    scraped_at: float
    stats: SchedulerStats
    block_size: int
    num_gpu_blocks: int
    max_lora: int


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    pod: int
    arrival: float
    first_scheduled: float
    first_token: float
    finish: float
    prompt_tokens: int
    output_tokens: int
    cached_tokens: int
    finish_reason: str
    preemptions: int
    session: str | None
    payload: Any = None
    output_token_ids: list[int] | None = None

    @property
    def ttft(self) -> float:
        return self.first_token - self.arrival

    @property
    def e2e(self) -> float:
        return self.finish - self.arrival

    @property
    def mean_itl(self) -> float:
        n = self.output_tokens - 1
        return (self.finish - self.first_token) / n if n > 0 else 0.0


class Router(Protocol):
    def route(self, request: SimRequest, cluster: ClusterView) -> int:
        """Index of the pod that serves ``request``."""
        ...


class RoundRobinRouter:
    def __init__(self) -> None:
        self._next = 0

    def route(self, request: SimRequest, cluster: ClusterView) -> int:
        i = self._next % cluster.num_pods
        self._next += 1
        return i


class LeastLoadedRouter:
    """GIE-style load balance on scraped metrics: fewest waiting, then lowest KV usage."""

    def route(self, request: SimRequest, cluster: ClusterView) -> int:
        best, best_key = 0, (float("inf"), float("inf"), 0)
        for i in range(cluster.num_pods):
            s = cluster.scrape(i).stats
            key = (s.num_waiting, s.kv_cache_usage, s.num_running)
            if key < best_key:
                best, best_key = i, key
        return best


class _SimPod:
    __slots__ = ("config", "engine", "history", "inflight", "phase")

    def __init__(self, config: EngineConfig, engine: Engine, phase: float) -> None:
        self.config = config
        self.engine = engine
        self.phase = phase
        self.inflight: StepPlan | None = None
        self.history: deque[SchedulerStats] = deque([engine.last_stats])


_ARRIVAL = 0
_STEP_END = 1


class ClusterView:
    """What a router may look at when it picks a pod."""

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim

    @property
    def now(self) -> float:
        return self._sim.clock.t

    @property
    def num_pods(self) -> int:
        return len(self._sim.pods)

    def scrape(self, pod: int) -> MetricsView:
        return self._sim.scrape(pod)

    def fresh(self, pod: int) -> SchedulerStats:
        return self._sim.pods[pod].engine.last_stats

    def engine(self, pod: int) -> Engine:
        """The pod's engine itself, for oracle baselines that read true cache contents and
        queues. Routers must treat it as read-only."""
        return self._sim.pods[pod].engine


class Simulation:
    """N simulated pods on one virtual clock, fed by :meth:`submit`, driven by :meth:`run`."""

    def __init__(
        self,
        config: SimConfig,
        num_pods: int,
        *,
        router: Router | None = None,
        scrape_interval_s: float = 0.1,
        on_finish: Callable[[RequestRecord, Simulation], None] | None = None,
        on_first_token: Callable[[int, Request, float], None] | None = None,
        on_step: Callable[[int, StepResult], None] | None = None,
        keep_output_ids: bool = False,
        record_steps: bool = False,
    ) -> None:
        self.clock = ManualClock(0.0)
        self.router: Router = router or RoundRobinRouter()
        self.scrape_interval_s = scrape_interval_s
        self.on_finish = on_finish
        self.on_first_token = on_first_token
        """Called as ``(pod, request, time)`` when a request's first token is out (the
        moment a streaming proxy sees its first byte), before any ``on_finish``."""
        self.on_step = on_step
        """Called as ``(pod, result)`` after every step is applied (per-token statistics)."""
        self.keep_output_ids = keep_output_ids
        phases = random.Random(f"scrape:{config.seed}")
        self.pods: list[_SimPod] = []
        for i in range(num_pods):
            ecfg = config.engine_config()
            engine = Engine(ecfg, self.clock, pod_rng(config.seed, i))
            for name in config.loras:
                engine.add_lora(name)
            self.pods.append(_SimPod(ecfg, engine, phases.random() * scrape_interval_s))
        self.view = ClusterView(self)
        self.records: list[RequestRecord] = []
        self.step_log: list[list[tuple[float, float]]] | None = (
            [[] for _ in range(num_pods)] if record_steps else None
        )
        self._heap: list[tuple[float, int, int, Any]] = []
        self._seq = itertools.count()
        self._pending: dict[str, SimRequest] = {}
        self.num_events = 0

    # --- input ---------------------------------------------------------------------

    def submit(self, request: SimRequest) -> None:
        """Schedule an arrival (``request.arrival`` must not be in the past)."""
        if request.arrival < self.clock.t:
            raise ValueError("arrival is in the past")
        heapq.heappush(self._heap, (request.arrival, next(self._seq), _ARRIVAL, request))

    # --- metrics view --------------------------------------------------------------

    def scrape(self, pod: int, at: float | None = None) -> MetricsView:
        """What a scrape of ``pod`` returned at the last scrape time not after ``at`` (now)."""
        p = self.pods[pod]
        t = self.clock.t if at is None else at
        interval = self.scrape_interval_s
        if interval > 0:
            k = (t - p.phase) // interval
            scraped_at = p.phase + k * interval if k >= 0 else 0.0
        else:
            scraped_at = t
        stats = p.history[0]
        for s in reversed(p.history):
            if s.time <= scraped_at:
                stats = s
                break
        cfg = p.config
        return MetricsView(
            pod, scraped_at, stats, cfg.block_size, cfg.num_gpu_blocks, cfg.max_loras
        )

    # --- the event loop ------------------------------------------------------------

    def run(self, until: float | None = None) -> list[RequestRecord]:
        """Process events up to virtual time ``until`` (all of them if None)."""
        heap = self._heap
        clock = self.clock
        pop = heapq.heappop
        while heap:
            if until is not None and heap[0][0] > until:
                break
            t, _, kind, data = pop(heap)
            clock.t = t
            self.num_events += 1
            if kind == _STEP_END:
                self._step_end(data)
            else:
                self._arrive(data)
        if until is not None and until > clock.t:
            clock.t = until
        return self.records

    def _arrive(self, req: SimRequest) -> None:
        idx = self.router.route(req, self.view)
        if not 0 <= idx < len(self.pods):
            raise IndexError(f"router returned pod {idx}, have {len(self.pods)}")
        pod = self.pods[idx]
        spec = RequestSpec(
            req.request_id, req.prompt_token_ids, req.max_tokens, req.ignore_eos, req.lora
        )
        pod.engine.add_request(spec, now=self.clock.t)
        self._pending[req.request_id] = req
        if pod.inflight is None:
            self._start_step(idx)

    def _start_step(self, idx: int) -> None:
        pod = self.pods[idx]
        plan = pod.engine.begin_step(self.clock.t)
        pod.inflight = plan
        if plan is not None:
            heapq.heappush(self._heap, (plan.end, next(self._seq), _STEP_END, idx))

    def _step_end(self, idx: int) -> None:
        pod = self.pods[idx]
        plan = pod.inflight
        assert plan is not None
        pod.inflight = None
        result = pod.engine.finish_step(plan)
        if self.step_log is not None:
            self.step_log[idx].append((plan.start, plan.duration))
        hist = pod.history
        hist.append(result.stats)
        horizon = self.clock.t - self.scrape_interval_s
        while len(hist) >= 2 and hist[1].time <= horizon:
            hist.popleft()
        if self.on_step is not None:
            self.on_step(idx, result)
        on_first = self.on_first_token
        if on_first is not None:
            for req in result.emitted:
                if req.num_output == 1:
                    on_first(idx, req, plan.end)
        for req in result.finished:
            self._finished(idx, req)
        if pod.engine.has_work():
            self._start_step(idx)

    def _finished(self, idx: int, req: Request) -> None:
        sim_req = self._pending.pop(req.request_id)
        rec = RequestRecord(
            request_id=req.request_id,
            pod=idx,
            arrival=req.arrival_time,
            first_scheduled=req.first_scheduled_time,
            first_token=req.first_token_time,
            finish=req.finish_time,
            prompt_tokens=req.num_prompt_tokens,
            output_tokens=req.num_output,
            cached_tokens=req.num_cached_tokens,
            finish_reason=req.finish_reason,
            preemptions=req.num_preemptions,
            session=sim_req.session,
            payload=sim_req.payload,
            output_token_ids=req.output_token_ids if self.keep_output_ids else None,
        )
        self.records.append(rec)
        if self.on_finish is not None:
            self.on_finish(rec, self)
