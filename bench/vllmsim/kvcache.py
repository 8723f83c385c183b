"""Paged KV cache with automatic prefix caching, modelled on vLLM V1's block pool.

Theory of operation (vLLM V1 ``BlockPool`` / ``KVCacheManager``):

* The cache has ``num_blocks`` blocks of ``block_size`` tokens. Block 0 is vLLM's
  reserved "null block", so ``num_blocks - 1`` are usable.
* A block is *in use* while at least one running request references it (``ref_cnt > 0``).
  Free blocks sit in one LRU queue. A free block may still hold a cached prefix
  (its hash is in ``cached``); it is *evictable*: taking it for a new allocation drops
  its hash. Freed blocks are appended at the tail in reverse order of the sequence,
  so a sequence's last blocks are evicted before its first ones.
* Prefix caching works on full blocks only. Block ``i`` of a sequence has the hash
  ``hash((hash of block i-1, its tokens))``; the chain starts from a scope id derived
  from the model or LoRA adapter, so different adapters never share blocks.
  A block is registered in the cache as soon as the tokens it covers are scheduled
  for computation, so concurrent requests can share it, and it stays cached after
  its request finishes until evicted.
* A lookup never covers the whole sequence: at most ``num_tokens - 1`` tokens can hit,
  because the engine must recompute the last token to get logits.
* ``usage`` counts only blocks held by live requests; evictable cached blocks count as
  free. This is the quantity behind ``vllm:kv_cache_usage_perc``.

The module is pure: no clock, no I/O.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict

__all__ = ["KVCacheManager", "KVSeq", "scope_id"]


def scope_id(name: str) -> int:
    """Stable root of a hash chain for a model or adapter name (independent of PYTHONHASHSEED)."""
    return zlib.crc32(name.encode("utf-8")) | (1 << 40)


class KVSeq:
    """The KV-cache view of one sequence: its tokens, block hashes and blocks."""

    __slots__ = ("block_hashes", "block_ids", "num_registered", "scope", "token_ids")

    def __init__(self, token_ids: list[int], scope: int) -> None:
        self.token_ids = token_ids
        self.scope = scope
        self.block_hashes: list[int] = []
        self.block_ids: list[int] = []
        self.num_registered = 0  # leading blocks of block_ids already offered to the cache


class KVCacheManager:
    """Block allocation, prefix lookup, LRU eviction and usage accounting."""

    def __init__(self, num_blocks: int, block_size: int, enable_caching: bool = True) -> None:
        if num_blocks < 2:
            raise ValueError("num_blocks must be at least 2 (block 0 is reserved)")
        if block_size < 1:
            raise ValueError("block_size must be positive")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.enable_caching = enable_caching
        self.ref_cnt: list[int] = []
        self.block_hash: list[int | None] = []
        self.cached: dict[int, int] = {}
        self.free: OrderedDict[int, None] = OrderedDict()
        self.reset()

    # --- accounting ----------------------------------------------------------------

    @property
    def usable_blocks(self) -> int:
        return self.num_blocks - 1

    def num_free(self) -> int:
        """Free blocks, evictable cached ones included."""
        return len(self.free)

    def num_used(self) -> int:
        return self.num_blocks - 1 - len(self.free)

    def usage(self) -> float:
        """Fraction of usable blocks held by live requests (vLLM ``get_usage``)."""
        return 1.0 - len(self.free) / (self.num_blocks - 1)

    def num_cached(self) -> int:
        return len(self.cached)

    def reset(self) -> None:
        """Drop every block and cached prefix (a freshly started engine)."""
        self.ref_cnt = [0] * self.num_blocks
        self.block_hash = [None] * self.num_blocks
        self.cached = {}
        self.free = OrderedDict.fromkeys(range(1, self.num_blocks))

    # --- hashing -------------------------------------------------------------------

    def extend_hashes(self, seq: KVSeq) -> None:
        """Hash every full block of ``seq.token_ids`` not hashed yet."""
        bs = self.block_size
        hashes = seq.block_hashes
        toks = seq.token_ids
        n_full = len(toks) // bs
        i = len(hashes)
        parent = hashes[-1] if hashes else seq.scope
        while i < n_full:
            parent = hash((parent, tuple(toks[i * bs : (i + 1) * bs])))
            hashes.append(parent)
            i += 1

    # --- lookup and allocation -----------------------------------------------------

    def find_cached_prefix(self, seq: KVSeq) -> list[int]:
        """Blocks holding the longest cached prefix of ``seq``, capped at ``num_tokens - 1``."""
        if not self.enable_caching:
            return []
        max_blocks = (len(seq.token_ids) - 1) // self.block_size
        cached = self.cached
        out: list[int] = []
        for h in seq.block_hashes[:max_blocks]:
            b = cached.get(h)
            if b is None:
                break
            out.append(b)
        return out

    def allocate_slots(
        self, seq: KVSeq, num_computed: int, num_new: int, hit_blocks: list[int] | None = None
    ) -> bool:
        """Make room for ``num_new`` more tokens after ``num_computed``; False if it does not fit.

        ``hit_blocks`` are prefix-cache hits being attached to a newly admitted sequence.
        On failure nothing changes. On success the sequence holds enough blocks and every
        block that the scheduled tokens complete is registered in the prefix cache.
        """
        bs = self.block_size
        end = num_computed + num_new
        blocks = seq.block_ids
        n_hits = len(hit_blocks) if hit_blocks else 0
        need = -(-end // bs) - len(blocks) - n_hits
        if need > 0 or n_hits:
            ref = self.ref_cnt
            evictable_hits = 0
            if hit_blocks:
                for b in hit_blocks:
                    if ref[b] == 0:
                        evictable_hits += 1
            if need > len(self.free) - evictable_hits:
                return False
            free = self.free
            if hit_blocks:
                for b in hit_blocks:
                    if ref[b] == 0:
                        del free[b]
                    ref[b] += 1
                blocks.extend(hit_blocks)
                seq.num_registered = len(blocks)
            if need > 0:
                block_hash = self.block_hash
                cached = self.cached
                for _ in range(need):
                    b, _none = free.popitem(last=False)
                    h = block_hash[b]
                    if h is not None:
                        if cached.get(h) == b:
                            del cached[h]
                        block_hash[b] = None
                    ref[b] = 1
                    blocks.append(b)
        if self.enable_caching:
            full = min(end // bs, len(seq.block_hashes))
            if full > seq.num_registered:
                self._register(seq, full)
        return True

    def _register(self, seq: KVSeq, upto: int) -> None:
        cached = self.cached
        block_hash = self.block_hash
        hashes = seq.block_hashes
        blocks = seq.block_ids
        for i in range(seq.num_registered, upto):
            b = blocks[i]
            if block_hash[b] is None:
                h = hashes[i]
                if h not in cached:
                    cached[h] = b
                    block_hash[b] = h
        seq.num_registered = upto

    def free_seq(self, seq: KVSeq) -> None:
        """Release the sequence's blocks; cached ones stay reusable until evicted."""
        ref = self.ref_cnt
        free = self.free
        for b in reversed(seq.block_ids):
            ref[b] -= 1
            if ref[b] == 0:
                free[b] = None
        seq.block_ids = []
        seq.num_registered = 0
