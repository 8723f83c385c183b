"""Which endpoint probably holds which prompt prefix in its KV cache (pure, bounded).

Model: each endpoint has an LRU of block hashes (tier2.prefix.hashing) standing for the
blocks its engine keeps cached. What we route to an endpoint is recorded there at pick
time (speculatively: a burst of identical prompts sees the first one as warm at once)
and, with `record_response`, the answer's blocks are added when the request completes.

Theory of operation:
- A chain is recorded in reverse, so its first block is the most recently used, and
  LRU eviction removes a chain's tail before its head, as vLLM's free-block queue does.
  Hence every endpoint's holdings are *prefix-closed* along any chain: if block k is
  held, so is every block before it. That makes `match` a binary search per endpoint
  (O(endpoints · log blocks)) and exact, not an estimate. Every mutation here keeps the
  invariant: eviction takes the oldest entries and `discard` drops a chain's suffix.
- Capacity per endpoint, in blocks: what `resize` asks (the pod's `num_gpu_blocks`, or its
  unpinned part, converted to our block size), times a learned scale in [0.1, 1], and
  never above `max_total_blocks / endpoints`: the global memory bound holds by
  construction, whatever the pods report.
- Feedback (`correct`): the pod reports how many prompt tokens it actually found cached.
  The request's own blocks are cached now either way (the pod just computed them), so
  they stay; a hit well below the prediction means this endpoint keeps less than we
  think: its precision drops and, with `shrink_on_miss`, its scale shrinks by 10%
  (dropping its oldest entries) and recovers by 2% per good prediction. A request that
  failed before its first byte never got its blocks computed: `discard` drops what was recorded beyond the predicted hit.
- Precision per endpoint (EWMA of min(actual, predicted) / predicted, from 1.0) and
  the predicted and actual totals are exposed for metrics and for discounting affinity.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

_MIN_SCALE: Final = 0.1
_SHRINK: Final = 0.9
_GROW: Final = 0.02
_PRECISION_ALPHA: Final = 0.1


@dataclass(frozen=True, slots=True)
class PrefixStats:
    """Predicted vs actual prefix hits of one endpoint, in blocks (cumulative)."""

    predicted_blocks: float
    actual_blocks: float
    samples: int
    misses: int
    """Requests whose actual hit fell well short of the prediction."""
    precision: float
    entries: int
    capacity: int


class _Endpoint:
    __slots__ = (
        "actual",
        "desired",
        "lru",
        "misses",
        "precision",
        "predicted",
        "samples",
        "scale",
    )

    def __init__(self, desired: int) -> None:
        self.lru: OrderedDict[int, None] = OrderedDict()
        self.desired = desired
        self.scale = 1.0
        self.precision = 1.0
        self.predicted = 0.0
        self.actual = 0.0
        self.samples = 0
        self.misses = 0


class PrefixIndex:
    def __init__(
        self, *, max_total_blocks: int, default_capacity: int, shrink_on_miss: bool = True
    ) -> None:
        self.max_total_blocks = max_total_blocks
        self.default_capacity = default_capacity
        self.shrink_on_miss = shrink_on_miss
        self._eps: dict[str, _Endpoint] = {}

    # --- membership and capacity ---------------------------------------------------

    def add(self, endpoint: str) -> None:
        if endpoint not in self._eps:
            self._eps[endpoint] = _Endpoint(self.default_capacity)
            self._trim_all()

    def remove(self, endpoint: str) -> None:
        self._eps.pop(endpoint, None)

    def clear(self) -> None:
        for ep in self._eps.values():
            ep.lru.clear()

    def resize(self, endpoint: str, capacity_blocks: int) -> None:
        """Set the endpoint's capacity before scale and bound (adds it if unknown)."""
        self.add(endpoint)
        ep = self._eps[endpoint]
        ep.desired = max(0, capacity_blocks)
        self._trim(ep)

    def capacity(self, endpoint: str) -> int:
        ep = self._eps.get(endpoint)
        return self._cap(ep) if ep else 0

    def _cap(self, ep: _Endpoint) -> int:
        share = self.max_total_blocks // max(1, len(self._eps))
        return min(share, int(ep.desired * ep.scale))

    def _trim(self, ep: _Endpoint) -> None:
        cap = self._cap(ep)
        lru = ep.lru
        while len(lru) > cap:
            lru.popitem(last=False)

    def _trim_all(self) -> None:
        for ep in self._eps.values():
            self._trim(ep)

    # --- queries and updates -------------------------------------------------------

    def match(self, hashes: Sequence[int]) -> dict[str, int]:
        """Leading blocks of `hashes` held, per endpoint holding at least the first."""
        out: dict[str, int] = {}
        if not hashes:
            return out
        first, n = hashes[0], len(hashes)
        for name, ep in self._eps.items():
            lru = ep.lru
            if first not in lru:
                continue
            if hashes[n - 1] in lru:
                out[name] = n
                continue
            lo, hi = 1, n - 1  # the held count lies in [lo, hi]
            while hi - lo > 0:
                mid = (lo + hi + 1) // 2
                if hashes[mid - 1] in lru:
                    lo = mid
                else:
                    hi = mid - 1
            out[name] = lo
        return out

    def record(self, endpoint: str, hashes: Sequence[int]) -> None:
        """The endpoint now holds this chain (head most recent); unknown endpoints
        (never added, or removed) are ignored."""
        ep = self._eps.get(endpoint)
        if ep is None or not hashes:
            return
        lru = ep.lru
        touch = lru.move_to_end
        for h in reversed(hashes):
            if h in lru:
                touch(h)
            else:
                lru[h] = None
        self._trim(ep)

    def discard(self, endpoint: str, hashes: Sequence[int]) -> None:
        """Forget a chain's suffix on an endpoint (pass hashes[k:] to keep k blocks)."""
        ep = self._eps.get(endpoint)
        if ep is not None:
            for h in hashes:
                ep.lru.pop(h, None)

    def correct(self, endpoint: str, predicted_blocks: float, actual_blocks: float) -> None:
        """Feed back the hit the pod reported for a request predicted to hit
        `predicted_blocks` here (see the module docstring)."""
        ep = self._eps.get(endpoint)
        if ep is None:
            return
        ep.samples += 1
        ep.predicted += predicted_blocks
        ep.actual += actual_blocks
        if predicted_blocks <= 0:
            return
        sample = min(actual_blocks, predicted_blocks) / predicted_blocks
        ep.precision += _PRECISION_ALPHA * (sample - ep.precision)
        # a block of slack: vLLM recomputes the last prompt token, and chars are not tokens
        if actual_blocks < predicted_blocks - max(2.0, 0.2 * predicted_blocks):
            ep.misses += 1
            if self.shrink_on_miss:
                ep.scale = max(_MIN_SCALE, ep.scale * _SHRINK)
                self._trim(ep)
        else:
            ep.scale = min(1.0, ep.scale + _GROW)

    def precision(self, endpoint: str) -> float:
        ep = self._eps.get(endpoint)
        return ep.precision if ep else 1.0

    # --- introspection -------------------------------------------------------------

    def total_entries(self) -> int:
        return sum(len(ep.lru) for ep in self._eps.values())

    def holds(self, endpoint: str, block_hash: int) -> bool:
        ep = self._eps.get(endpoint)
        return ep is not None and block_hash in ep.lru

    def size(self, endpoint: str) -> int:
        ep = self._eps.get(endpoint)
        return len(ep.lru) if ep else 0

    def endpoints(self) -> list[str]:
        return list(self._eps)

    def stats(self) -> dict[str, PrefixStats]:
        return {
            name: PrefixStats(
                ep.predicted,
                ep.actual,
                ep.samples,
                ep.misses,
                ep.precision,
                len(ep.lru),
                self._cap(ep),
            )
            for name, ep in self._eps.items()
        }
