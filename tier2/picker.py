"""PoolPicker: the one object the proxy and the benchmark pick endpoints with (pure, sync).

It owns, for one pool, the scheduling profile (from the Pool's config), the ledger and
the prefix index, and ties them together so that nothing can interleave:

    req  = picker.build_request(body, request_id=..., priority=..., session=...)
    pick = picker.pick(req, now)          # candidates → profile → reserve → record
    ...connect fails before any byte:  picker.retry(pick, now) -> next endpoint | None
    ...first streamed byte:            picker.first_byte(pick, now)
    ...end, error or disconnect:       picker.finish(pick, now, ok=..., cached_tokens=...,
                                                     generated_text=...)

`pick` has no `await`: it reserves the winner in the ledger and records the prompt in
the prefix index before returning, so the next pick of a burst sees both. Endpoint
states arrive via `set_endpoints` (whole set) or `update_endpoint` (one scrape); each new
scrape corrects the ledger's foreign load and resizes the endpoint's prefix LRU. A pick
is O(endpoints) (a binary-search prefix match and a cached ledger view per endpoint);
hashing happens once per request, in `build_request`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

from common.config import Pool
from common.config.scheduling import PrefixIndexParams, default_max_age_s
from tier2.datalayer.types import EndpointMetrics, EndpointState
from tier2.ledger import Ledger, Phase
from tier2.prefix import hashing
from tier2.prefix.index import PrefixIndex, PrefixStats
from tier2.scheduling.framework import PluginContext
from tier2.scheduling.pick import Pick, PickCounters, PickerStats
from tier2.scheduling.plugins.filters.saturation import endpoint_saturated
from tier2.scheduling.registry import build_profile
from tier2.scheduling.request import RequestBuilder
from tier2.scheduling.types import Candidate, PickRequest, Priority

__all__ = ["Pick", "PickerStats", "PoolPicker"]

_DEFAULT_BLOCK_SIZE = 16


class PoolPicker:
    def __init__(self, pool: Pool, rng: random.Random) -> None:
        self.rng = rng
        self._states: dict[str, EndpointState] = {}
        self._unhealthy: dict[str, float] = {}
        """Endpoints whose connect failed, with when: out until a newer good scrape."""
        self._cand_cache: dict[str, Candidate] = {}
        self._prefilling: dict[tuple[str, int], int] = {}
        """(endpoint, first block hash) → our requests sent there and not at first byte."""
        self._counters = PickCounters()
        self.index: PrefixIndex | None = None
        self._prefix: PrefixIndexParams | None = None
        self._block_chars = 4 * _DEFAULT_BLOCK_SIZE
        self.ledger = Ledger()
        self.configure(pool)

    # --- configuration -------------------------------------------------------------

    def configure(self, pool: Pool) -> None:
        """Apply a (new) Pool config; in-flight reservations and index state survive
        unless the prefix settings change."""
        spec = pool.spec
        self.pool = pool
        ctx = PluginContext(
            self.rng,
            spec.scrape_interval_s,
            spec.saturation.queue_depth,
            spec.saturation.kv_cache_usage,
        )
        assembly = build_profile(spec.scheduler.name, spec.scheduler.specs(), ctx)
        self.profile = assembly.profile
        self.ledger.configure(assembly.ledger)
        if assembly.prefix != self._prefix:
            self._prefix = p = assembly.prefix
            self.index = (
                None
                if p is None
                else PrefixIndex(
                    max_total_blocks=p.max_total_blocks,
                    default_capacity=p.default_capacity_blocks,
                    shrink_on_miss=p.shrink_on_miss,
                )
            )
            self._block_chars = self._pick_block_chars()
            for endpoint_id, state in self._states.items():
                self._track(endpoint_id, None, state)
        self._builder = RequestBuilder(pool, self._prefix, self._block_chars)

    @property
    def block_chars(self) -> int:
        return self._block_chars

    def _pick_block_chars(self) -> int:
        p = self._prefix
        if p is not None and p.block_chars is not None:
            return p.block_chars
        for st in self._states.values():
            if st.metrics is not None and st.metrics.block_size:
                return hashing.CHARS_PER_TOKEN * st.metrics.block_size
        return hashing.CHARS_PER_TOKEN * _DEFAULT_BLOCK_SIZE

    # --- endpoints -----------------------------------------------------------------

    def set_endpoints(self, states: Mapping[str, EndpointState]) -> None:
        """The whole endpoint set (discovery changed, or scrapes); unchanged states are
        recognised by identity and cost nothing."""
        for gone in self._states.keys() - states.keys():
            self._drop(gone)
        for endpoint_id, state in states.items():
            old = self._states.get(endpoint_id)
            if state is not old:
                self._states[endpoint_id] = state
                self._track(endpoint_id, old, state)
        self._refresh_block_chars()

    def update_endpoint(self, state: EndpointState) -> None:
        """One endpoint's new state (typically after a scrape)."""
        old = self._states.get(state.id)
        self._states[state.id] = state
        self._track(state.id, old, state)
        self._refresh_block_chars()

    def remove_endpoint(self, endpoint_id: str) -> None:
        if endpoint_id in self._states:
            self._drop(endpoint_id)

    def _drop(self, endpoint_id: str) -> None:
        self._prefilling = {k: n for k, n in self._prefilling.items() if k[0] != endpoint_id}
        self._states.pop(endpoint_id, None)
        self._cand_cache.pop(endpoint_id, None)
        self._unhealthy.pop(endpoint_id, None)
        self.ledger.forget(endpoint_id)
        if self.index is not None:
            self.index.remove(endpoint_id)

    def _track(self, endpoint_id: str, old: EndpointState | None, new: EndpointState) -> None:
        m = new.metrics
        fresh_scrape = m is not None and (old is None or old.metrics is not m)
        if m is not None and fresh_scrape:
            self.ledger.observe_scrape(endpoint_id, m)
            failed_at = self._unhealthy.get(endpoint_id)
            if failed_at is not None and m.scraped_at > failed_at:
                del self._unhealthy[endpoint_id]
        if self.index is not None:
            if m is not None and fresh_scrape:
                self.index.resize(endpoint_id, self._capacity(endpoint_id, m))
            else:
                self.index.add(endpoint_id)

    def _refresh_block_chars(self) -> None:
        chars = self._pick_block_chars()
        if chars != self._block_chars:
            self._block_chars = self._builder.block_chars = chars
            if self.index is not None:
                self.index.clear()  # hashes of another block size never match again

    def _capacity(self, endpoint_id: str, m: EndpointMetrics) -> int:
        """LRU capacity in our blocks: all of num_gpu_blocks (`full`, GIE), or minus what
        answers in flight fill (`effective`: the index records an answer at its end)."""
        p = self._prefix
        assert p is not None
        if not m.num_gpu_blocks:
            return p.default_capacity_blocks
        block_size = m.block_size or _DEFAULT_BLOCK_SIZE
        tokens = float(m.num_gpu_blocks * block_size)
        if p.capacity == "effective":
            floor = p.min_capacity_fraction * tokens
            tokens = max(floor, tokens - self.ledger.view(endpoint_id).output_tokens)
        return int(tokens * hashing.CHARS_PER_TOKEN / self._block_chars)

    def endpoints(self) -> dict[str, EndpointState]:
        return dict(self._states)

    # --- requests ------------------------------------------------------------------

    def build_request(
        self,
        body: Mapping[str, Any],
        *,
        request_id: str,
        kind: Literal["chat", "completions"] | None = None,
        priority: Priority = Priority.STANDARD,
        session: str | None = None,
    ) -> PickRequest:
        """A PickRequest from a parsed OpenAI chat or completions body, hashed once
        (tier2.scheduling.request: BadRequest for a bad body, NotFound for a model the
        pool does not serve)."""
        return self._builder.build(
            body, request_id=request_id, kind=kind, priority=priority, session=session
        )

    def _candidates(self, req: PickRequest) -> tuple[list[Candidate], dict[str, int]]:
        index = self.index
        matches = index.match(req.block_hashes) if index is not None and req.block_hashes else {}
        use_precision = self._prefix is not None and self._prefix.correct_with_cached_tokens
        view = self.ledger.view
        unhealthy = self._unhealthy
        cache = self._cand_cache
        cands = []
        for endpoint_id, state in self._states.items():
            if endpoint_id in unhealthy and state.healthy:
                state = replace(state, healthy=False)
            blocks = matches.get(endpoint_id, 0)
            precision = (
                index.precision(endpoint_id)
                if use_precision and blocks and index is not None
                else 1.0
            )
            led = view(endpoint_id)
            # most endpoints are unchanged since the last pick: reuse their Candidate
            c = cache.get(endpoint_id)
            if (
                c is None
                or c.state is not state
                or c.ledger is not led
                or c.prefix_blocks != blocks
                or c.prefix_precision != precision
            ):
                c = cache[endpoint_id] = Candidate(state, led, blocks, precision)
            cands.append(c)
        return cands, matches

    def _uncached(self, req: PickRequest, endpoint_id: str, matches: Mapping[str, int]) -> int:
        blocks = matches.get(endpoint_id, 0)
        cached = min(req.prompt_tokens, blocks * req.block_chars // hashing.CHARS_PER_TOKEN)
        return req.prompt_tokens - cached

    def pick(self, req: PickRequest, now: float) -> Pick:
        """Choose an endpoint, reserve it and record the prompt there; NoEndpoint if none."""
        cands, matches = self._candidates(req)
        result = self.profile.run(req, cands, now)
        winner = result.ranked[0]
        res = self.ledger.reserve(winner, req, self._uncached(req, winner, matches), now)
        if self.index is not None and req.block_hashes:
            self.index.record(winner, req.block_hashes)
        pick = Pick(req, result, winner, res, matches)
        self._counters.picked(pick)
        self._prefill_started(pick)
        return pick

    def _prefill_started(self, pick: Pick) -> None:
        if pick.request.block_hashes:
            key = (pick.endpoint, pick.request.block_hashes[0])
            n = self._prefilling.get(key, 0)
            pick.overlapped = pick.overlapped or n > 0
            self._prefilling[key] = n + 1

    def _prefill_ended(self, pick: Pick) -> None:
        if pick.request.block_hashes and pick.reservation.phase is Phase.WAITING:
            key = (pick.endpoint, pick.request.block_hashes[0])
            n = self._prefilling.get(key, 0) - 1
            if n > 0:
                self._prefilling[key] = n
            else:
                self._prefilling.pop(key, None)

    def retry(self, pick: Pick, now: float) -> str | None:
        """After a connect failure before any byte: mark the endpoint unhealthy until its
        next good scrape and move the request to the next-best one (None: none left,
        and the reservation is released)."""
        if pick.reservation.phase is not Phase.WAITING:
            raise ValueError("retry is only possible before the first byte")
        failed = pick.endpoint
        self._prefill_ended(pick)
        pick.failed.append(failed)
        self._unhealthy[failed] = now
        self._forget_speculation(pick, failed)
        for endpoint_id in pick.ranked:
            if (
                endpoint_id not in pick.failed
                and endpoint_id not in self._unhealthy
                and endpoint_id in self._states
            ):
                uncached = self._uncached(pick.request, endpoint_id, pick.matches)
                self.ledger.retarget(pick.reservation, endpoint_id, uncached, now)
                if self.index is not None and pick.request.block_hashes:
                    self.index.record(endpoint_id, pick.request.block_hashes)
                pick.endpoint = endpoint_id
                self._prefill_started(pick)
                self._counters.retried(endpoint_id)
                return endpoint_id
        self.ledger.finish(pick.reservation, now)
        return None

    def _forget_speculation(self, pick: Pick, endpoint_id: str) -> None:
        """The endpoint never computed the prompt: drop what pick() recorded beyond the
        predicted hit."""
        hashes = pick.request.block_hashes
        if self.index is not None and hashes:
            self.index.discard(endpoint_id, hashes[pick.matches.get(endpoint_id, 0) :])

    def first_byte(self, pick: Pick, now: float) -> None:
        self._prefill_ended(pick)
        self.ledger.first_byte(pick.reservation, now)

    def finish(
        self,
        pick: Pick,
        now: float,
        *,
        ok: bool,
        cached_tokens: int | None = None,
        generated_text: str = "",
    ) -> None:
        """The request ended (idempotent). `cached_tokens`: the pod's
        usage.prompt_tokens_details.cached_tokens; `generated_text`: the answer."""
        if pick.finished:
            return
        pick.finished = True
        self._prefill_ended(pick)
        started = pick.reservation.phase is Phase.RUNNING
        self.ledger.finish(pick.reservation, now)
        req, endpoint_id = pick.request, pick.endpoint
        if not ok:
            if not started:
                self._forget_speculation(pick, endpoint_id)
            return
        if cached_tokens is not None:
            self._feedback(pick, cached_tokens)
        p, chain = self._prefix, req.chain
        if self.index is not None and p is not None and p.record_response and chain is not None:
            longer = hashing.extend(chain, generated_text)
            if len(longer.hashes) > len(chain.hashes):
                self.index.record(endpoint_id, longer.hashes)

    def _feedback(self, pick: Pick, cached_tokens: int) -> None:
        req, endpoint_id = pick.request, pick.endpoint
        tokens_per_block = req.block_chars / hashing.CHARS_PER_TOKEN
        predicted = pick.predicted_cached_blocks
        predicted_tokens = min(float(req.prompt_tokens), predicted * tokens_per_block)
        self._counters.hit(endpoint_id, predicted_tokens, cached_tokens)
        p = self._prefix
        if (
            self.index is not None
            and p is not None
            and p.correct_with_cached_tokens
            and not pick.overlapped
        ):
            self.index.correct(endpoint_id, predicted, cached_tokens / tokens_per_block)

    # --- pool level ----------------------------------------------------------------

    def is_saturated(self, now: float) -> bool:
        """Every healthy endpoint saturated per the pool's `saturation` (metrics older
        than max(2 s, 3 scrape intervals) count as saturated; KV sent since the last
        scrape counts as used). A pool with
        no healthy endpoint is saturated too: there is no room anywhere."""
        sat = self.pool.spec.saturation
        view = self.ledger.view
        for endpoint_id, state in self._states.items():
            if not state.healthy or endpoint_id in self._unhealthy:
                continue
            if not endpoint_saturated(
                state,
                now,
                queue_depth=sat.queue_depth,
                kv_usage=sat.kv_cache_usage,
                max_age_s=default_max_age_s(self.pool.spec.scrape_interval_s),
                kv_tokens_since_scrape=view(endpoint_id).kv_new_since_scrape,
            ):
                return False
        return True

    def stats(self) -> PickerStats:
        return self._counters.snapshot()

    def prefix_stats(self) -> dict[str, PrefixStats]:
        return self.index.stats() if self.index is not None else {}
