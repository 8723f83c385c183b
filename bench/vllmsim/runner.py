"""Real-time driver: runs one engine's steps on the asyncio loop at their scheduled times.

Each step is planned at its start (model time), the driver sleeps until the step's end
on a :class:`MonotonicClock` (scaled by ``speed``), then applies the output, updates
the pod's metrics and wakes the HTTP handlers of the requests that got a token. Back to
back steps start exactly where the previous one ended, so the model-time schedule does
not drift with event-loop wake-up delays; those delays are recorded as *lateness*
(real seconds between a step's scheduled end and the moment its tokens were released),
which is the token-emission jitter the benchmark reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

from bench.vllmsim.clock import MonotonicClock
from bench.vllmsim.engine import Engine, Request, RequestSpec, StepResult
from bench.vllmsim.metrics import PodMetrics

__all__ = ["PodRunner"]

_MAX_LAG_REAL_S = 0.05


class PodRunner:
    """Owns the step loop of one engine; handlers submit requests and await tokens."""

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
        self.lateness: deque[float] = deque(maxlen=200_000)
        self.step_log: list[tuple[float, float]] | None = [] if record_steps else None
        self._wake = asyncio.Event()
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="vllmsim-step-loop")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for fut in self._waiters.values():
            if not fut.done():
                fut.cancel()
        self._waiters.clear()

    # --- used by handlers ----------------------------------------------------------

    def submit(self, spec: RequestSpec) -> Request:
        req = self.engine.add_request(spec)
        self._wake.set()
        return req

    def abort(self, request_id: str) -> None:
        req = self.engine.abort(request_id)
        if req is not None:
            self.metrics.record_abort(req)
        fut = self._waiters.pop(request_id, None)
        if fut is not None and not fut.done():
            fut.cancel()

    async def wait(self, req: Request) -> None:
        """Return after the next step that gives ``req`` a token (or finishes it)."""
        fut = self._waiters.get(req.request_id)
        if fut is None or fut.done():
            fut = asyncio.get_running_loop().create_future()
            self._waiters[req.request_id] = fut
        await fut

    # --- the loop ------------------------------------------------------------------

    async def _run(self) -> None:
        engine = self.engine
        clock = self.clock
        max_lag = _MAX_LAG_REAL_S * clock.speed
        prev_end: float | None = None
        while True:
            if not engine.has_work():
                self._wake.clear()
                await self._wake.wait()
                prev_end = None
            now = clock.now()
            if prev_end is not None and now - prev_end < max_lag:
                now = prev_end  # back-to-back steps: no drift from wake-up delays
            plan = engine.begin_step(now)
            if plan is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            target = clock.to_real(plan.end)
            delay = target - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.lateness.append(time.monotonic() - target)
            result = engine.finish_step(plan)
            if self.step_log is not None:
                self.step_log.append((plan.start, plan.duration))
            self._publish(result)
            prev_end = plan.end

    def _publish(self, result: StepResult) -> None:
        self.metrics.record_step(result, time.time())
        waiters = self._waiters
        if not waiters:
            return
        for req in result.emitted:
            fut = waiters.pop(req.request_id, None)
            if fut is not None and not fut.done():
                fut.set_result(None)
