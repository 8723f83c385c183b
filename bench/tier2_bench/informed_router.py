"""The benchmark's oracle: the production `strata` picker fed perfect information.

It says what better estimates would buy strata, with the decision rule held fixed (it
is not an upper bound on every policy: a rule that foresaw how answers fill the KV cache
could beat it past a knee): the same PoolPicker, profile, plugins and random seed as the ``strata``
policy (:class:`~bench.tier2_bench.picker_router.PickerRouter`); only its inputs are the
simulator's truth instead of tier2's estimates:

* metrics: every pick sees each pod's stats after its last engine step
  (:meth:`~bench.vllmsim.des.ClusterView.fresh`) instead of the last periodic scrape.
  They are stamped with the latest time they are known to hold: the step's end, or
  just before now for a pod with nothing to do (its stats cannot have changed since),
  so the ledger counts exactly the requests sent after them as not shown yet.
* prefix: each candidate's predicted hit is the prefix of the prompt's token ids the
  pod will hold when it admits the request (its block cache now, plus what requests
  queued or prefilling there compute first), with precision 1, in place of the prefix
  index's match; the index itself keeps running underneath. Evictions before the
  admission are not foreseen.
* prompt length: the true token count replaces tier2's chars/4 estimate, so that
  ``prompt - cached`` in the cost model is the true uncached token count.
* prefill rate: still learned by the ledger from TTFTs, as in strata; pinning the
  profile's marginal rate instead is a switch (:class:`Information`), off because it
  is a worse estimate for the cost model, not a better one.

Output lengths stay unknown (the engine draws them when it admits the request), and the
future is not simulated: the rule still decides on the predicted TTFT of this pick.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from bench.tier2_bench.picker_router import (
    PickerRouter,
    endpoint_id,
    endpoint_state,
)
from bench.vllmsim.des import ClusterView, MetricsView, SimRequest
from bench.vllmsim.engine import Engine, SchedulerStats
from bench.vllmsim.kvcache import KVSeq, scope_id
from common.config.pool import PluginConfig
from common.config.scheduling import LedgerParams
from tier2.prefix.hashing import CHARS_PER_TOKEN
from tier2.prefix.index import PrefixIndex
from tier2.scheduling.types import PickRequest

__all__ = [
    "Information",
    "InformedRouter",
    "TrueCacheIndex",
    "index_blocks",
    "true_cached_tokens",
]

_NEVER_LEARN = 1 << 62
"""A ledger min_learn_tokens no request reaches: the pinned prefill rate stays."""


@dataclass(frozen=True, slots=True)
class Information:
    """Which of strata's inputs are the truth (the rest are tier2's own estimates):
    switching one off measures what that piece of information buys."""

    metrics: bool = True
    """Each pod's stats after its last step, instead of the last scrape."""
    cache: bool = True
    """True cached prefix per pod and true prompt length, instead of the index's match
    and the chars/4 estimate."""
    prefill_rate: bool = False
    """The profile's marginal prefill rate (1000 / ``prefill.per_token_ms``), pinned,
    instead of the one the ledger learns. Off by default: it is not the rate the cost
    model's ``tokens / rate`` needs, since every step also pays the prefill base and
    the decode part of the batch; the learned rate (about 3,300 tokens/s in bench
    tier2 (c), 4,700 in (a), against 7,400) includes them, and pinning made TTFT p90
    worse (c at 6 req/s: 0.255 s against strata's 0.219 s)."""


class TrueCacheIndex(PrefixIndex):
    """A prefix index whose `match` for the request being picked is the truth.

    Everything else (recording prompts and answers, capacities, corrections, stats) is
    the real index's, so the picker runs exactly as in production around it.
    """

    def __init__(self, *, max_total_blocks: int, default_capacity: int) -> None:
        super().__init__(max_total_blocks=max_total_blocks, default_capacity=default_capacity)
        self._truth: dict[str, int] = {}
        self._for: Sequence[int] | None = None

    def tell(self, hashes: Sequence[int], blocks: dict[str, int]) -> None:
        """The true cached blocks per endpoint of the prompt hashed as ``hashes``."""
        self._for, self._truth = hashes, blocks

    def match(self, hashes: Sequence[int]) -> dict[str, int]:
        if self._for is not None and hashes is self._for:
            return dict(self._truth)
        return super().match(hashes)

    def precision(self, endpoint: str) -> float:
        return 1.0 if self._for is not None else super().precision(endpoint)


def true_cached_tokens(request: SimRequest, cluster: ClusterView) -> list[int]:
    """Prompt tokens of ``request`` each pod will have cached when it admits it: blocks
    in its prefix cache now, or computed before it by requests already queued or
    prefilling there (what the prefix index's speculative record stands for).
    Read-only: the lookups leave the caches' LRU order alone."""
    engines = [cluster.engine(i) for i in range(cluster.num_pods)]
    e0 = engines[0]
    scope = scope_id(e0.config.model_name)
    if request.lora is not None:
        scope = e0.lora_adapters.get(request.lora, scope)
    seq = KVSeq(list(request.prompt_token_ids), scope)
    e0.kv.extend_hashes(seq)  # hashes depend on the block size only, as do all pods'
    hashes = seq.block_hashes
    usable = (len(seq.token_ids) - 1) // e0.config.block_size  # the last token is computed
    out = []
    for eng in engines:
        if not eng.kv.enable_caching:
            out.append(0)
            continue
        n = _queued_prefix(eng, hashes)
        cached = eng.kv.cached
        while n < usable and hashes[n] in cached:
            n += 1
        out.append(min(n, usable) * eng.config.block_size)
    return out


def _queued_prefix(eng: Engine, hashes: Sequence[int]) -> int:
    """Leading blocks of ``hashes`` that requests queued or prefilling on ``eng`` will
    compute before a request arriving now is admitted (FCFS)."""
    best = 0
    if not hashes:
        return 0
    first = hashes[0]
    for r in itertools.chain(eng.waiting, eng.running):
        theirs = r.block_hashes
        full = min(len(theirs), r.num_prompt_tokens // eng.config.block_size)
        if r.num_registered >= full or not theirs or theirs[0] != first:
            continue  # already in the cache, or another prefix
        # chained hashes: equal at i means equal before i, so the shared run is a prefix
        lo, hi = 1, min(full, len(hashes))
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if theirs[mid - 1] == hashes[mid - 1]:
                lo = mid
            else:
                hi = mid - 1
        best = max(best, lo)
    return best


def index_blocks(cached_tokens: int, block_chars: int, max_blocks: int) -> int:
    """Index blocks standing for ``cached_tokens``: the cost model reads ``b`` blocks as
    ``b * block_chars / CHARS_PER_TOKEN`` tokens, exact when that divides the engine's
    block size (64 chars = 16 tokens); a prompt has no more than ``max_blocks``."""
    return min(max_blocks, cached_tokens * CHARS_PER_TOKEN // block_chars)


class InformedRouter(PickerRouter):
    """The ``strata`` PoolPicker on true metrics, caches and prompt lengths (``info``)."""

    def __init__(
        self,
        profile: str = "strata",
        *,
        num_pods: int,
        model: str,
        scrape_interval_s: float,
        seed: int,
        plugins: Sequence[PluginConfig] = (),
        label: str = "oracle",
        info: Information = Information(),
    ) -> None:
        super().__init__(
            profile,
            num_pods=num_pods,
            model=model,
            scrape_interval_s=scrape_interval_s,
            seed=seed,
            plugins=plugins,
            label=label,
        )
        real = self.picker.index
        if real is None:
            raise ValueError(f"profile {profile!r} keeps no prefix index to inform")
        self.index = TrueCacheIndex(
            max_total_blocks=real.max_total_blocks, default_capacity=real.default_capacity
        )
        self.picker.index = self.index  # still empty: no endpoint is known yet
        self._current: list[tuple[SchedulerStats, float] | None] = [None] * num_pods
        """Per pod: stats seen with the pod idle, and the last time they were current."""
        self.info = info
        self._rate_pinned = not info.prefill_rate

    def _pin_prefill_rate(self, cluster: ClusterView) -> None:
        per_token_ms = cluster.engine(0).profile.prefill.per_token_ms
        led = self.picker.ledger
        led.configure(
            LedgerParams(
                default_prefill_rate=1000.0 / per_token_ms,
                rate_alpha=led.rate_alpha,
                foreign_alpha=led.foreign_alpha,
                min_learn_tokens=_NEVER_LEARN,
                default_output_tokens=led.default_output_tokens,
                max_output_estimate=led.max_output_estimate,
            )
        )
        self._rate_pinned = True

    def _stats_time(self, pod: int, stats: SchedulerStats, cluster: ClusterView) -> float:
        """The latest time ``stats`` are known to hold, strictly before any pick now."""
        now = cluster.now
        if not cluster.engine(pod).has_work():
            at = math.nextafter(now, -math.inf)
            self._current[pod] = (stats, at)
            return at
        seen = self._current[pod]
        if seen is not None and seen[0] is stats:
            return seen[1]  # idle until our request arrived: unchanged since then
        return stats.time

    def _sync(self, cluster: ClusterView) -> None:
        if not self._rate_pinned:
            self._pin_prefill_rate(cluster)
        if not self.info.metrics:
            super()._sync(cluster)
            return
        changed = False
        for i, eid in enumerate(self._ids):
            stats = cluster.fresh(i)
            at = self._stats_time(i, stats, cluster)
            if at != self._scraped_at[i]:
                self._scraped_at[i] = at
                cfg = cluster.engine(i).config
                view = MetricsView(i, at, stats, cfg.block_size, cfg.num_gpu_blocks, cfg.max_loras)
                self._states[eid] = endpoint_state(i, view)
                changed = True
        if changed:
            self.picker.set_endpoints(self._states)

    def _prepare(self, req: PickRequest, request: SimRequest, cluster: ClusterView) -> PickRequest:
        # the truth goes in between build_request and the timed pick
        return self._inform(req, request, cluster) if self.info.cache else req

    def _inform(self, req: PickRequest, request: SimRequest, cluster: ClusterView) -> PickRequest:
        """``req`` with its true prompt length, the index told the true cached blocks."""
        prompt = len(request.prompt_token_ids)
        blocks = {}
        for pod, cached in enumerate(true_cached_tokens(request, cluster)):
            n = index_blocks(cached, req.block_chars, len(req.block_hashes))
            if n > 0:
                blocks[endpoint_id(pod)] = n
        self.index.tell(req.block_hashes, blocks)
        return replace(req, prompt_tokens=prompt)
