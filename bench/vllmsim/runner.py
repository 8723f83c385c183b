"""Real-time driver: runs one engine's steps on the asyncio loop at their scheduled times.

Each step is planned at its start (model time); a timer callback fires at the step's
end on a :class:`MonotonicClock` (scaled by ``speed``), applies the output, updates the
pod's metrics and hands every emitted token to its request's :class:`TokenSink` in one
synchronous pass: a streaming handler's sink writes the SSE bytes straight to the
connection, so no request task wakes per token (see :mod:`bench.vllmsim.stream`).
Non-streaming handlers wait on one future that resolves when their request finishes.

Back-to-back steps start exactly where the previous one ended, so the model-time
schedule does not drift with event-loop wake-up delays. Those delays are measured per
token as *lateness*: real seconds from the step's scheduled end to the moment the
token's bytes were handed to the transport (:class:`EmissionStats`), the token-emission
jitter the benchmark reports. The timer never releases a step early: an early wake-up
(event-loop timers have millisecond resolution) re-arms for the remainder.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from bench.vllmsim.clock import MonotonicClock
from bench.vllmsim.engine import (
    Engine,
    Request,
    RequestSpec,
    RequestStatus,
    StepPlan,
    StepResult,
)
from bench.vllmsim.metrics import PodMetrics

__all__ = ["EmissionStats", "PodRunner", "TokenSink"]

_MAX_LAG_REAL_S = 0.05
_SPIN_S = 0.0005
"""Below this remainder an early timer re-polls the loop instead of re-arming a timer
(a timer cannot wait less than a millisecond)."""


class TokenSink(Protocol):
    """Receives a request's tokens in the step loop; must never block or raise."""

    def emit(self, req: Request, target: float) -> None:
        """``req`` got a token in the step due at ``target`` (``time.monotonic()``)."""
        ...

    def close(self) -> None:
        """The runner is going away: release whoever waits on this sink."""
        ...


class EmissionStats:
    """Per-token emission lateness as a fine histogram, plus how tokens were delivered.

    Buckets are ``RESOLUTION_S`` wide up to ``RANGE_S``; later values land in one
    overflow bucket (``max`` keeps the worst). Quantiles return a bucket's upper edge,
    so they never understate.
    """

    RESOLUTION_S = 0.00005
    RANGE_S = 0.25

    __slots__ = ("buckets", "count", "early", "fast_tokens", "handovers", "max", "slow_tokens")

    def __init__(self) -> None:
        self.buckets = [0] * (int(self.RANGE_S / self.RESOLUTION_S) + 1)
        self.count = 0
        self.max = 0.0
        self.early = 0
        self.fast_tokens = 0
        """Tokens written by the step loop itself."""
        self.slow_tokens = 0
        """Tokens written by their handler task (backpressure, stall fault, catch-up)."""
        self.handovers = 0
        """Times a stream left the fast path for its handler."""

    def add(self, lateness: float, n: int = 1) -> None:
        if lateness < 0.0:
            self.early += n
            lateness = 0.0
        i = int(lateness * 20000.0)  # 1 / RESOLUTION_S
        buckets = self.buckets
        if i >= len(buckets):
            i = len(buckets) - 1
        buckets[i] += n
        self.count += n
        if lateness > self.max:
            self.max = lateness

    def quantile(self, q: float) -> float:
        if not self.count:
            return 0.0
        rank = min(self.count - 1, int(q * self.count))
        seen = 0
        last = len(self.buckets) - 1
        for i, c in enumerate(self.buckets):
            seen += c
            if seen > rank:
                return self.max if i == last else min(self.max, (i + 1) * self.RESOLUTION_S)
        return self.max  # pragma: no cover - the counts always reach rank

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    def as_dict(self) -> dict[str, float]:
        return {
            "p50": self.quantile(0.5),
            "p90": self.quantile(0.9),
            "p99": self.quantile(0.99),
            "p999": self.quantile(0.999),
            "max": self.max,
            "tokens": self.count,
            "early_tokens": self.early,
            "fast_tokens": self.fast_tokens,
            "slow_tokens": self.slow_tokens,
            "handovers": self.handovers,
        }


class PodRunner:
    """Owns the step loop of one engine; handlers submit requests and attach sinks."""

    def __init__(
        self,
        engine: Engine,
        clock: MonotonicClock,
        metrics: PodMetrics,
        *,
        record_steps: bool = False,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.metrics = metrics
        self.emission = EmissionStats()
        self.step_log: list[tuple[float, float]] | None = [] if record_steps else None
        self._sinks: dict[str, TokenSink] = {}
        self._done: dict[str, asyncio.Future[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.Handle | None = None
        self._plan: StepPlan | None = None
        self._target = 0.0
        self._prev_end: float | None = None
        self._idle = True
        self._closed = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._kick()

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for fut in self._done.values():
            if not fut.done():
                fut.cancel()
        self._done.clear()
        sinks = list(self._sinks.values())
        self._sinks.clear()
        for sink in sinks:
            sink.close()

    # --- used by handlers ----------------------------------------------------------

    def submit(self, spec: RequestSpec) -> Request:
        req = self.engine.add_request(spec)
        self._kick()
        return req

    def abort(self, request_id: str) -> None:
        req = self.engine.abort(request_id)
        if req is not None:
            self.metrics.record_abort(req)
        self._sinks.pop(request_id, None)
        fut = self._done.pop(request_id, None)
        if fut is not None and not fut.done():
            fut.cancel()

    def attach(self, request_id: str, sink: TokenSink) -> None:
        """From now on ``sink.emit`` gets this request's tokens, inside the step loop."""
        self._sinks[request_id] = sink

    def detach(self, request_id: str) -> None:
        self._sinks.pop(request_id, None)

    async def wait_finished(self, req: Request) -> None:
        """Return once ``req`` has finished (one wake-up per request, not per token)."""
        if req.status is RequestStatus.FINISHED:
            return
        fut = self._done.get(req.request_id)
        if fut is None:
            assert self._loop is not None, "runner not started"
            fut = self._done[req.request_id] = self._loop.create_future()
        await fut

    # --- the loop: callbacks, no task ------------------------------------------------

    def _kick(self) -> None:
        if self._idle and not self._closed and self._loop is not None:
            self._idle = False
            self._timer = self._loop.call_soon(self._begin)

    def _begin(self) -> None:
        """Plan the next step and arm the timer for its end, or go idle."""
        self._timer = None
        if self._closed:
            return
        engine = self.engine
        if not engine.has_work():
            self._idle = True
            self._prev_end = None
            return
        clock = self.clock
        now = clock.now()
        prev_end = self._prev_end
        if prev_end is not None and now - prev_end < _MAX_LAG_REAL_S * clock.speed:
            now = prev_end  # back-to-back steps: no drift from wake-up delays
        plan = engine.begin_step(now)
        if plan is None:
            self._idle = True  # nothing schedulable: the next submit kicks
            return
        self._plan = plan
        self._target = target = clock.to_real(plan.end)
        self._arm(target - time.monotonic())

    def _arm(self, remaining: float) -> None:
        loop = self._loop
        assert loop is not None
        if remaining > _SPIN_S:
            self._timer = loop.call_later(remaining, self._on_timer)
        else:
            self._timer = loop.call_soon(self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._closed:
            return
        remaining = self._target - time.monotonic()
        if remaining > 0.0:
            self._arm(remaining)  # woke early: never release a step before its time
            return
        plan = self._plan
        assert plan is not None
        self._plan = None
        result = self.engine.finish_step(plan)
        if self.step_log is not None:
            self.step_log.append((plan.start, plan.duration))
        self._prev_end = plan.end
        try:
            self._publish(result, self._target)
        finally:
            self._begin()

    def _publish(self, result: StepResult, target: float) -> None:
        sinks = self._sinks
        if sinks:
            get = sinks.get
            for req in result.emitted:
                sink = get(req.request_id)
                if sink is not None:
                    sink.emit(req, target)
        done = self._done
        if done:
            for req in result.finished:
                fut = done.pop(req.request_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(None)
        self.metrics.record_step(result, time.time())  # after the tokens: off their path
