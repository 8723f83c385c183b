"""bench.vllmsim: a vLLM stand-in for benchmarking tier2.

It models what routing looks at: vLLM V1's iteration-level scheduler (continuous
batching, chunked prefill, ``max_num_seqs``, KV-block admission, recompute preemption),
a paged KV cache with prefix caching over token ids, LoRA slots, and vLLM's own
Prometheus metrics. The same pure engine runs in real time behind an OpenAI-shaped HTTP
server, or in virtual time for many pods in one process.

Public API
----------

Real time (HTTP), for tests of other packages and for ``strata up``::

    from bench.vllmsim import SimConfig, FaultSpec, start_pods

    pods = await start_pods(SimConfig(profile="gie-8b", speed=1.0, max_loras=4), n=3,
                            host="127.0.0.1", base_port=8200)   # base_port=0: ephemeral
    pods.urls            # ["http://127.0.0.1:8200", ...]
    pods.set_faults(1, FaultSpec(error_rate=0.2))
    await pods.restart(2)                                       # empty KV cache
    await pods.close()                                          # or: async with pods

Command line: ``strata sim`` = :func:`bench.vllmsim.cli.main` (``python -m bench.vllmsim``).

Virtual time (no HTTP, no sleeping)::

    from bench.vllmsim import Simulation, SimRequest, Router, ClusterView

    class MyRouter:                      # the routing hook
        def route(self, request: SimRequest, cluster: ClusterView) -> int:
            views = [cluster.scrape(i) for i in range(cluster.num_pods)]  # stale, as scraped
            return min(range(cluster.num_pods), key=lambda i: views[i].stats.num_waiting)

    sim = Simulation(SimConfig(), num_pods=100, router=MyRouter(), scrape_interval_s=0.1)
    sim.submit(SimRequest("r1", prompt_token_ids, max_tokens=128, arrival=0.0))
    records = sim.run(until=600.0)       # list[RequestRecord]: ttft, e2e, cached_tokens, pod

Benchmark: ``python -m bench.vllmsim.benchmark`` (``strata bench sim`` calls
:func:`bench.vllmsim.benchmark.main`).
"""

from bench.vllmsim.des import (
    ClusterView,
    LeastLoadedRouter,
    MetricsView,
    RequestRecord,
    RoundRobinRouter,
    Router,
    SimRequest,
    Simulation,
)
from bench.vllmsim.engine import Engine, EngineConfig, SchedulerStats
from bench.vllmsim.faults import FaultSpec
from bench.vllmsim.pods import SimPods, start_pods
from bench.vllmsim.profiles import get_profile, profile_names
from bench.vllmsim.request import RequestSpec
from bench.vllmsim.server import SimConfig

__all__ = [
    "ClusterView",
    "Engine",
    "EngineConfig",
    "FaultSpec",
    "LeastLoadedRouter",
    "MetricsView",
    "RequestRecord",
    "RequestSpec",
    "RoundRobinRouter",
    "Router",
    "SchedulerStats",
    "SimConfig",
    "SimPods",
    "SimRequest",
    "Simulation",
    "get_profile",
    "profile_names",
    "start_pods",
]
