"""Real-time driver: runs one engine's steps on the asyncio loop at their scheduled times.

Each step is planned at its start (model time), and the streamed tokens it will emit
are formatted right away by their requests' :class:`TokenSink`. A timer callback fires
at the step's end on a :class:`MonotonicClock` (scaled by ``speed``) and, in one
synchronous pass, sends those bytes straight to the connections, then applies the
output to the engine, lets the sinks catch up with anything not prepared, and updates
the pod's metrics: no request task wakes per token (see :mod:`bench.vllmsim.stream`).
Non-streaming handlers wait on one future that resolves when their request finishes.

Back-to-back steps start exactly where the previous one ended, so the model-time
schedule does not drift with event-loop wake-up delays. Those delays are measured per
token as *lateness*: real seconds from the step's scheduled end to the moment the
token's bytes were handed to the transport (:mod:`bench.vllmsim.emission`), the
token-emission jitter the benchmark reports. The timer never releases a step early: an early wake-up
(event-loop timers have millisecond resolution) re-arms for the remainder.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from bench.vllmsim.clock import MonotonicClock
from bench.vllmsim.emission import EmissionStats
from bench.vllmsim.engine import (
    Engine,
    Request,
    RequestSpec,
    RequestStatus,
    StepPlan,
    StepResult,
)
from bench.vllmsim.metrics import PodMetrics

__all__ = ["PodRunner", "TokenSink"]

_MAX_LAG_REAL_S = 0.05
_SPIN_S = 0.0005
"""Below this remainder an early timer re-polls the loop instead of re-arming a timer
(a timer cannot wait less than a millisecond)."""


class TokenSink(Protocol):
    """Receives a request's tokens in the step loop; must never block or raise.

    Per step: ``prepare`` when the step is planned (for requests it will give a
    token), ``write_prepared`` at the step's end before the engine applies the step,
    then ``emit`` for every request that got a token (a no-op if already written).
    """

    def prepare(self, req: Request, finish_reason: str) -> bytes | None:
        """The bytes for the token ``req`` gets in the planned step (``finish_reason``:
        how that token ends it, ``""`` if not), or None to be told by ``emit`` only."""
        ...

    def write_prepared(self, req: Request, data: bytes, target: float) -> None:
        """The step is due (at ``target``, ``time.monotonic()``): send what ``prepare``
        made, if still valid; otherwise leave it to ``emit``."""
        ...

    def emit(self, req: Request, target: float) -> None:
        """``req`` got a token in the step due at ``target`` (``time.monotonic()``)."""
        ...

    def close(self) -> None:
        """The runner is going away: release whoever waits on this sink."""
        ...


class PodRunner:
    """Owns the step loop of one engine; handlers submit requests and attach sinks."""

    def __init__(
        self,
        engine: Engine,
        clock: MonotonicClock,
        metrics: PodMetrics,
        *,
        record_steps: bool = False,
        spin_lead_s: float = 0.0,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.metrics = metrics
        self.emission = EmissionStats()
        self.step_log: list[tuple[float, float]] | None = [] if record_steps else None
        self.spin_lead_s = spin_lead_s
        """Wake this long before a step's end and poll the loop until it (see ``_arm``)."""
        self._sinks: dict[str, TokenSink] = {}
        self._done: dict[str, asyncio.Future[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.Handle | None = None
        self._plan: StepPlan | None = None
        self._prepared: list[tuple[TokenSink, Request, bytes]] = []
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
        self._prepared = []
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
        if self._sinks:
            self._prepare(plan)
        self._arm(target - time.monotonic())

    def _prepare(self, plan: StepPlan) -> None:
        """Format the step's streamed tokens now, so its end only sends bytes."""
        get = self._sinks.get
        prepared = self._prepared
        for req, reason in self.engine.plan_emits(plan):
            sink = get(req.request_id)
            if sink is not None:
                data = sink.prepare(req, reason)
                if data is not None:
                    prepared.append((sink, req, data))

    def _arm(self, remaining: float) -> None:
        """Call ``_on_timer`` when ``remaining`` seconds are left, or a bit sooner.

        A timer sleeps until ``spin_lead_s`` before the end; from there on the step
        polls the event loop (``call_soon``: other callbacks and I/O keep running) until
        the end. On a virtual machine a sleeping core can take milliseconds to wake up,
        so a short lead buys punctual steps for a little CPU.
        """
        loop = self._loop
        assert loop is not None
        wait = remaining - self.spin_lead_s
        if wait > _SPIN_S:
            self._timer = loop.call_later(wait, self._on_timer)
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
        target = self._target
        try:
            if self._prepared:  # the tokens first: the engine's bookkeeping can wait
                t0 = time.monotonic()
                c0 = time.thread_time()
                for sink, req, data in self._prepared:
                    sink.write_prepared(req, data, target)
                self._prepared = []
                wall = time.monotonic() - t0
                self.emission.record_pass(t0 - target, wall, time.thread_time() - c0)
            result = self.engine.finish_step(plan)
            if self.step_log is not None:
                self.step_log.append((plan.start, plan.duration))
            self._prev_end = plan.end
            self._publish(result, target)
        finally:
            self._prepared = []
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
