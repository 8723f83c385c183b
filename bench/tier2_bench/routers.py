"""Routing policies for the benchmark, behind one interface the harness drives.

Every policy is a DES :class:`~bench.vllmsim.des.Router` plus two lifecycle hooks that a
streaming proxy would see: :meth:`BenchRouter.first_token` (the first byte arrives)
and :meth:`BenchRouter.finished` (the stream ends, with the usage block's
``cached_tokens``). The baselines here read only what a scrape returns
(:meth:`~bench.vllmsim.des.ClusterView.scrape`). The production pickers are adapted in
:mod:`bench.tier2_bench.picker_router`, and the oracle (the ``strata`` picker fed the
simulator's true state) is :mod:`bench.tier2_bench.informed_router`.
"""

from __future__ import annotations

import math
import random
import time

from bench.vllmsim.des import ClusterView, RequestRecord, SimRequest

__all__ = ["BenchRouter", "LeastQueueRouter", "RoundRobinRouter"]


class BenchRouter:
    """Base policy: no lifecycle bookkeeping, no rejections, pick times recorded."""

    name = "base"

    def __init__(self) -> None:
        self.pick_seconds: list[float] = []
        """Wall seconds of each pick decision (``time.perf_counter``)."""
        self.pick_cpu_seconds: list[float] = []
        """CPU seconds of each (``time.thread_time``): on a shared machine the wall time's
        tail is mostly other processes holding the core, which this leaves out."""
        self.rejections = 0

    def route(self, request: SimRequest, cluster: ClusterView) -> int:
        c0, t0 = time.thread_time(), time.perf_counter()
        pod = self.choose(request, cluster)
        t1, c1 = time.perf_counter(), time.thread_time()
        self.pick_seconds.append(t1 - t0)
        self.pick_cpu_seconds.append(c1 - c0)
        return pod

    def choose(self, request: SimRequest, cluster: ClusterView) -> int:
        raise NotImplementedError

    def first_token(self, request_id: str, pod: int, now: float) -> None:
        """The first token of ``request_id`` left ``pod`` at ``now``."""

    def finished(self, rec: RequestRecord) -> None:
        """``rec`` completed (its usage block is known)."""


class RoundRobinRouter(BenchRouter):
    name = "round-robin"

    def __init__(self) -> None:
        super().__init__()
        self._next = 0

    def choose(self, request: SimRequest, cluster: ClusterView) -> int:
        i = self._next % cluster.num_pods
        self._next += 1
        return i


class LeastQueueRouter(BenchRouter):
    """Fewest waiting requests in the last scrape, then fewest running; random among ties
    (a positional argmax would herd every request of a scrape interval onto pod 0)."""

    name = "least-queue"

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self._rng = rng

    def choose(self, request: SimRequest, cluster: ClusterView) -> int:
        best: list[int] = []
        best_key = (math.inf, math.inf)
        for i in range(cluster.num_pods):
            s = cluster.scrape(i).stats
            key = (float(s.num_waiting), float(s.num_running))
            if key < best_key:
                best, best_key = [i], key
            elif key == best_key:
                best.append(i)
        return best[0] if len(best) == 1 else self._rng.choice(best)
