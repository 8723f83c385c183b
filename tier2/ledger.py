"""What this replica dispatched that the metrics cannot show yet (pure, synchronous).

Scrapes are 50-250 ms old; a burst of picks inside that window all see the same idle
pod and herd onto it (GIE #1700, llm-d #2515). The ledger is this replica's own,
authoritative count, updated in the same event-loop turn as the pick (`reserve` has no
`await` before or after it) and released as the request progresses:

    reserve ──▶ WAITING ──first_byte──▶ RUNNING ──finish──▶ DONE
                   │                                          ▲
                   └──────────── finish (error, disconnect) ──┘
                   └── retarget (connect failure: next-best endpoint, still WAITING)

Per endpoint it keeps uncached prompt tokens still to prefill, waiting and running
requests, KV tokens held (prompt + expected output) and KV tokens added beyond cached
blocks. Two things are learned:

- Foreign load (other tier2 replicas, direct traffic): at each scrape, the scraped
  waiting+running is compared with our requests sent before that scrape;
  `foreign = EWMA(max(0, scraped - ours))`.
- Prefill rate (tokens/s): at the first byte of a streamed request, the prefill work it
  waited for (our queued prefill tokens ahead of it plus its own uncached tokens) over
  its TTFT, minus a fixed overhead, is an EWMA sample, clamped to 4x either way per
  sample against outliers. A new pod starts from the pool's mean learned rate, or the
  configured default. Only streamed requests teach it: a non-streamed answer's first
  byte is its last.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from common.config.scheduling import LedgerParams
from tier2.datalayer.types import EndpointMetrics
from tier2.scheduling.types import LedgerView, PickRequest

_TTFT_OVERHEAD_S = 0.02
_MAX_RATE_STEP = 4.0


class Phase(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"


@dataclass(eq=False, slots=True)
class Reservation:
    """One request's claim on an endpoint; the proxy holds it until `finish`."""

    request_id: str
    endpoint_id: str
    prompt_tokens: int
    output_tokens: int
    """Expected output length (for KV planning)."""
    uncached_tokens: int
    prefill_ahead: int
    """Our prefill tokens queued on the endpoint when this was reserved."""
    reserved_at: float
    learn: bool
    """Whether its first byte is a TTFT (a streamed request)."""
    phase: Phase = Phase.WAITING
    first_byte_at: float | None = None

    @property
    def kv_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    @property
    def kv_new_tokens(self) -> int:
        return self.uncached_tokens + self.output_tokens


class _Endpoint:
    __slots__ = (
        "active",
        "dispatched_since_scrape",
        "foreign",
        "kv_new_since_scrape",
        "kv_new_tokens",
        "kv_tokens",
        "last_scrape_at",
        "output_tokens",
        "prefill_rate",
        "prefill_tokens",
        "rate_learned",
        "running",
        "view",
        "waiting",
    )

    def __init__(self, rate: float) -> None:
        self.active: set[Reservation] = set()
        self.prefill_tokens = 0
        self.waiting = 0
        self.running = 0
        self.kv_tokens = 0
        self.kv_new_tokens = 0
        self.output_tokens = 0
        self.foreign: float | None = None
        self.prefill_rate = rate
        self.rate_learned = False
        self.last_scrape_at = float("-inf")
        self.dispatched_since_scrape = 0
        self.kv_new_since_scrape = 0
        self.view: LedgerView | None = None


class Ledger:
    def __init__(self, params: LedgerParams | None = None) -> None:
        self._eps: dict[str, _Endpoint] = {}
        self.configure(params or LedgerParams())

    def configure(self, p: LedgerParams) -> None:
        """New settings; what is in flight and what was learned stays."""
        # plain attributes: no pydantic access on the hot path
        self.default_prefill_rate = p.default_prefill_rate
        self.rate_alpha = p.rate_alpha
        self.foreign_alpha = p.foreign_alpha
        self.min_learn_tokens = p.min_learn_tokens
        self.default_output_tokens = p.default_output_tokens
        self.max_output_estimate = p.max_output_estimate

    # --- endpoints -----------------------------------------------------------------

    def _endpoint(self, endpoint_id: str) -> _Endpoint:
        e = self._eps.get(endpoint_id)
        if e is None:
            e = self._eps[endpoint_id] = _Endpoint(self._seed_rate())
        return e

    def _seed_rate(self) -> float:
        learned = [e.prefill_rate for e in self._eps.values() if e.rate_learned]
        return sum(learned) / len(learned) if learned else self.default_prefill_rate

    def forget(self, endpoint_id: str) -> None:
        """Drop an endpoint that left the pool; its reservations release as no-ops."""
        self._eps.pop(endpoint_id, None)

    def endpoints(self) -> list[str]:
        return list(self._eps)

    def in_flight(self) -> int:
        return sum(e.waiting + e.running for e in self._eps.values())

    def view(self, endpoint_id: str) -> LedgerView:
        e = self._eps.get(endpoint_id)
        if e is None:
            return LedgerView(prefill_rate=self._seed_rate())
        if e.view is None:
            e.view = LedgerView(
                prefill_tokens=e.prefill_tokens,
                waiting=e.waiting,
                running=e.running,
                kv_tokens=e.kv_tokens,
                foreign=e.foreign or 0.0,
                prefill_rate=e.prefill_rate,
                kv_new_tokens=e.kv_new_tokens,
                dispatched_since_scrape=e.dispatched_since_scrape,
                kv_new_since_scrape=e.kv_new_since_scrape,
                output_tokens=e.output_tokens,
            )
        return e.view

    # --- the request lifecycle -----------------------------------------------------

    def expected_output(self, req: PickRequest) -> int:
        out = req.max_output_tokens if req.max_output_tokens > 0 else self.default_output_tokens
        return min(out, self.max_output_estimate)

    def reserve(
        self, endpoint_id: str, req: PickRequest, uncached_tokens: int, now: float
    ) -> Reservation:
        e = self._endpoint(endpoint_id)
        res = Reservation(
            request_id=req.request_id,
            endpoint_id=endpoint_id,
            prompt_tokens=req.prompt_tokens,
            output_tokens=self.expected_output(req),
            uncached_tokens=max(0, uncached_tokens),
            prefill_ahead=e.prefill_tokens,
            reserved_at=now,
            learn=req.stream,
        )
        self._attach(e, res)
        return res

    def _attach(self, e: _Endpoint, res: Reservation) -> None:
        e.active.add(res)
        e.prefill_tokens += res.uncached_tokens
        e.waiting += 1
        e.kv_tokens += res.kv_tokens
        e.kv_new_tokens += res.kv_new_tokens
        e.output_tokens += res.output_tokens
        if res.reserved_at > e.last_scrape_at:
            e.dispatched_since_scrape += 1
            e.kv_new_since_scrape += res.kv_new_tokens
        e.view = None

    def _detach(self, res: Reservation) -> None:
        e = self._eps.get(res.endpoint_id)
        if e is None or res not in e.active:
            return
        e.active.discard(res)
        if res.phase is Phase.WAITING:
            e.prefill_tokens -= res.uncached_tokens
            e.waiting -= 1
        else:
            e.running -= 1
        e.kv_tokens -= res.kv_tokens
        e.kv_new_tokens -= res.kv_new_tokens
        e.output_tokens -= res.output_tokens
        if res.reserved_at > e.last_scrape_at:
            e.dispatched_since_scrape -= 1
            e.kv_new_since_scrape -= res.kv_new_tokens
        e.view = None

    def first_byte(self, res: Reservation, now: float) -> None:
        """The first token reached us: its prefill is done."""
        if res.phase is not Phase.WAITING:
            return
        res.first_byte_at = now
        e = self._eps.get(res.endpoint_id)
        if e is not None and res in e.active:
            e.prefill_tokens -= res.uncached_tokens
            e.waiting -= 1
            e.running += 1
            e.view = None
            if res.learn:
                self._learn_rate(e, res, now - res.reserved_at)
        res.phase = Phase.RUNNING

    def _learn_rate(self, e: _Endpoint, res: Reservation, ttft: float) -> None:
        work = res.prefill_ahead + res.uncached_tokens
        if work < self.min_learn_tokens or ttft <= 0:
            return
        sample = work / max(ttft - _TTFT_OVERHEAD_S, ttft * 0.5)
        rate = e.prefill_rate
        sample = min(rate * _MAX_RATE_STEP, max(rate / _MAX_RATE_STEP, sample))
        e.prefill_rate = rate + self.rate_alpha * (sample - rate)
        e.rate_learned = True

    def finish(self, res: Reservation, now: float) -> None:
        """The request ended (success, error or disconnect); idempotent."""
        if res.phase is Phase.DONE:
            return
        self._detach(res)
        res.phase = Phase.DONE

    def retarget(
        self, res: Reservation, endpoint_id: str, uncached_tokens: int, now: float
    ) -> None:
        """Move a request that has not started (connect failure) to another endpoint."""
        if res.phase is not Phase.WAITING:
            raise ValueError(f"cannot retarget a {res.phase.value} request")
        self._detach(res)
        e = self._endpoint(endpoint_id)
        res.endpoint_id = endpoint_id
        res.uncached_tokens = max(0, uncached_tokens)
        res.prefill_ahead = e.prefill_tokens
        res.reserved_at = now
        self._attach(e, res)

    # --- scrapes -------------------------------------------------------------------

    def observe_scrape(self, endpoint_id: str, metrics: EndpointMetrics) -> None:
        """Correct for load we did not send, and restart the since-scrape counts."""
        e = self._endpoint(endpoint_id)
        t = metrics.scraped_at
        if t <= e.last_scrape_at:
            return
        e.last_scrape_at = t
        ours = since = kv_since = 0
        for r in e.active:
            if r.reserved_at <= t:
                ours += 1
            else:
                since += 1
                kv_since += r.kv_new_tokens
        e.dispatched_since_scrape, e.kv_new_since_scrape = since, kv_since
        if metrics.waiting is not None and metrics.running is not None:
            sample = float(max(0, metrics.waiting + metrics.running - ours))
            f = e.foreign
            e.foreign = sample if f is None else f + self.foreign_alpha * (sample - f)
        e.view = None
