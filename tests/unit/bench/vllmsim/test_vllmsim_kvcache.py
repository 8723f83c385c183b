"""KV cache: allocation, hit cap, LRU eviction order, usage accounting."""

from __future__ import annotations

from bench.vllmsim.kvcache import KVCacheManager, KVSeq, scope_id

BS = 4


def _seq(tokens: list[int], kv: KVCacheManager, scope: str = "m") -> KVSeq:
    s = KVSeq(list(tokens), scope_id(scope))
    kv.extend_hashes(s)
    return s


def _run(kv: KVCacheManager, tokens: list[int], scope: str = "m") -> KVSeq:
    s = _seq(tokens, kv, scope)
    hits = kv.find_cached_prefix(s)
    n_hit = len(hits) * BS
    assert kv.allocate_slots(s, n_hit, len(tokens) - n_hit, hits)
    return s


def test_hit_is_capped_below_the_whole_sequence() -> None:
    kv = KVCacheManager(16, BS)
    a = _run(kv, list(range(8)))  # two full blocks
    kv.free_seq(a)
    b = _seq(list(range(8)), kv)
    assert len(kv.find_cached_prefix(b)) == 1  # the last token must be recomputed
    c = _seq([*range(8), 99], kv)
    assert len(kv.find_cached_prefix(c)) == 2


def test_scopes_do_not_share_blocks() -> None:
    kv = KVCacheManager(16, BS)
    kv.free_seq(_run(kv, list(range(9)), "base"))
    assert kv.find_cached_prefix(_seq(list(range(9)), kv, "lora:a")) == []
    assert len(kv.find_cached_prefix(_seq(list(range(9)), kv, "base"))) == 2


def test_usage_counts_only_live_blocks() -> None:
    kv = KVCacheManager(11, BS)  # 10 usable
    a = _run(kv, list(range(12)))
    assert kv.num_used() == 3
    assert abs(kv.usage() - 0.3) < 1e-9
    kv.free_seq(a)
    assert kv.usage() == 0.0
    assert kv.num_cached() == 3  # still cached, but evictable


def test_allocation_fails_cleanly_when_full() -> None:
    kv = KVCacheManager(5, BS)  # 4 usable
    a = _run(kv, list(range(12)))
    s = _seq(list(range(100, 108)), kv)
    assert not kv.allocate_slots(s, 0, 8)
    assert s.block_ids == [] and kv.num_used() == 3
    kv.free_seq(a)
    assert kv.allocate_slots(s, 0, 8)


def test_lru_evicts_oldest_freed_and_tail_blocks_first() -> None:
    kv = KVCacheManager(7, BS)  # 6 usable
    a = _run(kv, list(range(9)))  # 3 blocks, 2 full (cached)
    b = _run(kv, list(range(50, 59)))  # 3 blocks
    kv.free_seq(a)
    kv.free_seq(b)
    # C needs 2 fresh blocks, taken from the LRU head: A's last (partial) block, then
    # A's second block; A's first block and all of B's stay cached
    c = _seq(list(range(200, 208)), kv)
    assert kv.allocate_slots(c, 0, 8)
    probe_a = _seq([*range(9), 1], kv)
    assert len(kv.find_cached_prefix(probe_a)) == 1  # block 2 of A evicted, block 1 kept
    probe_b = _seq([*range(50, 59), 1], kv)
    assert len(kv.find_cached_prefix(probe_b)) == 2


def test_touching_an_evictable_hit_removes_it_from_the_free_queue() -> None:
    kv = KVCacheManager(5, BS)  # 4 usable
    kv.free_seq(_run(kv, list(range(9))))
    s = _seq(list(range(9)), kv)
    hits = kv.find_cached_prefix(s)
    assert len(hits) == 2
    assert kv.allocate_slots(s, 8, 1, hits)
    assert kv.num_used() == 3
    assert all(kv.ref_cnt[b] == 1 for b in s.block_ids)
