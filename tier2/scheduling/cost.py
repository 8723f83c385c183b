"""Predicted time to first token of a request on an endpoint, in seconds (pure).

inference-picking.md §8.3, in physical units so that costs compare across endpoints
and loads (no min-max normalisation):

    cached  = min(P, matched_blocks · block_chars / 4)  [· index precision on e]
    U       = P - cached                                uncached prompt tokens
    T       = overhead
            + (ledger prefill tokens queued on e + U) / R_e      R_e: learned tokens/s
            + load_cost · (ledger waiting + running + foreign)   decode steps slow prefill
            + waiting_cost · scraped waiting                     the engine is already full
            + kv_pressure · f / (1 - f)                          the cache fills up
            + uncertainty penalty                                metrics missing or stale

KV pressure: f is the fraction of the endpoint's KV capacity (num_gpu_blocks x
block_size) in use once this request is added: scraped usage, plus the new KV tokens we
sent since that scrape, plus this request's uncached prompt and expected output; capped
at 0.99. f/(1-f) is small while the cache has room and steep near full, where vLLM
starts to queue and to preempt (recompute), which scraped queue lengths show too late.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.config.scheduling import TtftModelParams
from tier2.prefix.hashing import CHARS_PER_TOKEN
from tier2.scheduling.types import Candidate, PickRequest

_MAX_KV_FRACTION = 0.99
_FALLBACK_RATE = 8000.0
"""Tokens/s when no ledger supplies a rate (plugins used without a PoolPicker)."""


@dataclass(frozen=True, slots=True)
class TtftModel:
    overhead_s: float
    load_cost_s: float
    waiting_cost_s: float
    kv_pressure_s: float
    uncertain_penalty_s: float
    stale_after_s: float
    default_output_tokens: int
    max_output_estimate: int
    use_precision: bool

    @classmethod
    def from_params(cls, p: TtftModelParams, scrape_interval_s: float) -> TtftModel:
        return cls(
            overhead_s=p.overhead_s,
            load_cost_s=p.load_cost_s,
            waiting_cost_s=p.waiting_cost_s,
            kv_pressure_s=p.kv_pressure_s,
            uncertain_penalty_s=p.uncertain_penalty_s,
            stale_after_s=(
                p.stale_after_s
                if p.stale_after_s is not None
                else max(0.5, 3.0 * scrape_interval_s)
            ),
            default_output_tokens=p.default_output_tokens,
            max_output_estimate=p.max_output_estimate,
            use_precision=p.use_precision,
        )

    def output_tokens(self, req: PickRequest) -> int:
        out = req.max_output_tokens if req.max_output_tokens > 0 else self.default_output_tokens
        return min(out, self.max_output_estimate)

    def cached_tokens(self, req: PickRequest, cand: Candidate) -> float:
        if cand.prefix_blocks <= 0:
            return 0.0
        cached = min(
            float(req.prompt_tokens), cand.prefix_blocks * req.block_chars / CHARS_PER_TOKEN
        )
        return cached * cand.prefix_precision if self.use_precision else cached

    @staticmethod
    def load(cand: Candidate) -> float:
        """Requests in flight on the endpoint: ours (ledger) plus the foreign estimate."""
        led = cand.ledger
        return led.waiting + led.running + led.foreign

    @staticmethod
    def rate(cand: Candidate) -> float:
        """The endpoint's prefill rate in tokens/s."""
        rate = cand.ledger.prefill_rate
        return rate if rate > 0 else _FALLBACK_RATE

    def predict(self, req: PickRequest, cand: Candidate, now: float) -> tuple[float, float, float]:
        """(predicted TTFT in seconds, uncached prompt tokens, the KV-pressure part of
        the seconds) of `req` on `cand`."""
        led = cand.ledger
        uncached = max(0.0, req.prompt_tokens - self.cached_tokens(req, cand))
        rate = self.rate(cand)
        t = (
            self.overhead_s
            + (led.prefill_tokens + uncached) / rate
            + self.load_cost_s * (led.waiting + led.running + led.foreign)
        )
        m = cand.state.metrics
        if m is None or now - m.scraped_at > self.stale_after_s:
            return t + self.uncertain_penalty_s, uncached, 0.0
        if m.waiting:
            t += self.waiting_cost_s * m.waiting
        if m.kv_usage is not None and m.num_gpu_blocks and m.block_size:
            capacity = float(m.num_gpu_blocks * m.block_size)
            need = (
                m.kv_usage * capacity + led.kv_new_since_scrape + uncached + self.output_tokens(req)
            )
            f = min(need / capacity, _MAX_KV_FRACTION)
            kv = self.kv_pressure_s * f / (1.0 - f)
            return t + kv, uncached, kv
        return t, uncached, 0.0
