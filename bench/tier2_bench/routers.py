"""Routing policies for the benchmark, behind one interface the harness drives.

Every policy is a DES :class:`~bench.vllmsim.des.Router` plus two lifecycle hooks that a
streaming proxy would see: :meth:`BenchRouter.first_token` (the first byte arrives)
and :meth:`BenchRouter.finished` (the stream ends, with the usage block's
``cached_tokens``). The baselines here read only what a scrape returns
(:meth:`~bench.vllmsim.des.ClusterView.scrape`); the oracle reads the engines
themselves. The production pickers are adapted in :mod:`bench.tier2_bench.picker_router`.
"""

from __future__ import annotations

import math
import random
import time

from bench.vllmsim.des import ClusterView, RequestRecord, SimRequest
from bench.vllmsim.engine import Engine
from bench.vllmsim.kvcache import KVSeq, scope_id

__all__ = ["BenchRouter", "LeastQueueRouter", "OracleRouter", "RoundRobinRouter"]


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


class OracleRouter(BenchRouter):
    """The §8 decision rule on the simulator's true state: what perfect information buys.

    Per pod it reads the request's real prefix-cache hit (a read-only lookup in the pod's
    block cache), the true running and waiting requests, the free blocks, and the
    uncached prompt tokens it dispatched there that have not produced a first token
    yet. The predicted TTFT uses the profile's own step-time constants: those queued
    tokens plus this request's run in chunks of the free token budget, each step also
    paying the decode part of the running batch. A pod with requests waiting (vLLM
    queues only when full) is charged 1 s plus 0.1 s per waiting request; a pod whose
    held KV plus what is queued plus this request's uncached prompt and output would
    pass 90% of its capacity is charged 2 s times (1 + overflow / capacity), as the
    `strata` cost model does with estimates.

    Rule: if some pod holds at least half of the prompt, take the cheapest such pod
    unless it costs more than ``t_max_s`` over the cheapest pod (then the cheapest);
    otherwise the cheapest. Near-ties (2% or 20 ms) are drawn at random. Knowing the
    cache exactly, it needs neither an index nor consistent hashing: a cold prefix group
    becomes warm where its first request went.
    """

    name = "oracle"

    def __init__(self, rng: random.Random, t_max_s: float = 1.0) -> None:
        super().__init__()
        self._rng = rng
        self.t_max_s = t_max_s
        self._pending: dict[str, tuple[int, int]] = {}
        """request id -> (pod, uncached prompt tokens) until its first token."""
        self._prefill: list[int] = []
        self.reasons: dict[str, int] = {}
        """Picks per decision: ``warm``, ``valve`` (warm pods too slow), ``cold``."""

    def choose(self, request: SimRequest, cluster: ClusterView) -> int:
        n = cluster.num_pods
        if len(self._prefill) != n:
            self._prefill = [0] * n
        engines = [cluster.engine(i) for i in range(n)]
        e0 = engines[0]
        seq = KVSeq(list(request.prompt_token_ids), scope_id(e0.config.model_name))
        e0.kv.extend_hashes(seq)
        prompt = len(seq.token_ids)
        costs: list[float] = []
        hits: list[int] = []
        for i, eng in enumerate(engines):
            hit = len(eng.kv.find_cached_prefix(seq)) * eng.config.block_size
            hits.append(hit)
            costs.append(_predicted_ttft(eng, self._prefill[i], prompt - hit, request.max_tokens))
        best = min(costs)
        warm = [i for i in range(n) if 2 * hits[i] >= prompt]
        if warm and min(costs[i] for i in warm) - best <= self.t_max_s:
            pool, reason = warm, "warm"
        else:
            pool, reason = list(range(n)), "valve" if warm else "cold"
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        low = min(costs[i] for i in pool)
        near = [i for i in pool if costs[i] <= low + max(0.02 * low, 0.02)]
        pod = near[0] if len(near) == 1 else self._rng.choice(near)
        uncached = prompt - hits[pod]
        self._pending[request.request_id] = (pod, uncached)
        self._prefill[pod] += uncached
        return pod

    def first_token(self, request_id: str, pod: int, now: float) -> None:
        entry = self._pending.pop(request_id, None)
        if entry is not None:
            self._prefill[entry[0]] -= entry[1]


def _predicted_ttft(eng: Engine, queued: int, uncached: int, output: int) -> float:
    """Seconds until a request with ``uncached`` prompt tokens, behind ``queued`` ones,
    gets its first token on ``eng`` (the profile's step-time model), plus penalties
    for a pod that cannot admit it now or whose KV it would push past 90%."""
    cfg = eng.config
    prof = eng.profile
    running = len(eng.running)
    held_tokens = eng.kv.num_used() * cfg.block_size
    d = prof.decode
    decode_ms = d.base_ms + d.per_seq_ms * running + d.per_kv_token_ms * held_tokens
    budget = max(1, cfg.max_num_batched_tokens - running)
    tokens = queued + uncached
    steps = max(1, -(-tokens // budget))
    p = prof.prefill
    seconds = (steps * (decode_ms + p.base_ms) + p.per_token_ms * tokens) / 1000.0
    if eng.waiting or running >= cfg.max_num_seqs:
        seconds += 1.0 + 0.1 * len(eng.waiting)  # it is full: admission waits
    capacity = eng.kv.usable_blocks * cfg.block_size
    over = eng.kv.num_used() * cfg.block_size + queued + uncached + output - 0.9 * capacity
    if over > 0:
        seconds += 2.0 * (1.0 + over / capacity)  # it would queue or preempt
    return seconds
