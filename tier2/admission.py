"""Admission by priority when the pool is saturated (`x-strata-priority`).

    priority     pool has room     pool saturated
    critical     dispatch          dispatch
    standard     dispatch          wait in a bounded FIFO, then dispatch ("late binding")
    sheddable    dispatch          429

A waiting request is picked only when capacity frees, so its pick sees the state of
that moment, not the one it arrived in. Waiters are released one at a time: the next
is released after the previous one has picked (and reserved in the ledger), or the
whole queue would see the same free slot and herd. A full queue or a wait past its
deadline answers 503 with `x-strata-overflow: 1`, which tier1 treats as "spill to the
next backend of the route" (e.g. an external provider).

Time comes from the injected clock and nothing here sleeps: `poke()` re-checks capacity
and deadlines and is called when capacity may have freed (first byte, end of a request)
and on a short timer by the app, or by a test after moving a FakeClock.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from common.clock import Clock
from common.errors import BadRequest, RateLimited, Unavailable
from tier2.metrics import Tier2Metrics
from tier2.scheduling.types import Priority

PRIORITY_HEADER: Final = "x-strata-priority"
OVERFLOW_HEADER: Final = "x-strata-overflow"
_PRIORITIES = {p.name.lower(): p for p in Priority}


class WhenSaturated(enum.Enum):
    DISPATCH = "dispatch"
    QUEUE = "queue"
    REJECT = "reject"


POLICY: Final = {
    Priority.CRITICAL: WhenSaturated.DISPATCH,
    Priority.STANDARD: WhenSaturated.QUEUE,
    Priority.SHEDDABLE: WhenSaturated.REJECT,
}


def parse_priority(value: str | None) -> Priority:
    if value is None or not value.strip():
        return Priority.STANDARD
    priority = _PRIORITIES.get(value.strip().lower())
    if priority is None:
        raise BadRequest(
            f"{PRIORITY_HEADER} must be critical, standard or sheddable, not {value!r}",
            param=PRIORITY_HEADER,
        )
    return priority


class Shed(RateLimited):
    """Sheddable work refused while the pool is saturated."""

    code = "pool_saturated"


class Overflow(Unavailable):
    """The pool cannot take the request in time; tier1 may spill it elsewhere."""

    code = "pool_saturated"


@dataclass(eq=False, slots=True)
class _Waiter:
    priority: Priority
    enqueued_at: float
    deadline: float
    future: asyncio.Future[None] = field(repr=False)


class Admission:
    def __init__(
        self,
        clock: Clock,
        saturated: Callable[[float], bool],
        *,
        max_queue: int,
        timeout_s: float,
        metrics: Tier2Metrics | None = None,
    ) -> None:
        self.clock = clock
        self.saturated = saturated
        """Whether the pool has no room now (the picker's view, ledger included)."""
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.metrics = metrics
        self._queues: dict[Priority, deque[_Waiter]] = {
            p: deque() for p, rule in POLICY.items() if rule is WhenSaturated.QUEUE
        }
        self._releasing = 0
        """Waiters released whose pick has not happened yet (at most one)."""

    def configure(self, *, max_queue: int, timeout_s: float) -> None:
        self.max_queue, self.timeout_s = max_queue, timeout_s

    def queued(self, priority: Priority | None = None) -> int:
        if priority is not None:
            return len(self._queues.get(priority, ()))
        return sum(len(q) for q in self._queues.values())

    async def admit(self, priority: Priority) -> bool:
        """Return when the request may be picked; raises Shed or Overflow.

        True means the request waited: the caller must call `dispatched()` once it has
        picked (in a `finally`), so the next waiter can go."""
        rule = POLICY[priority]
        if rule is WhenSaturated.DISPATCH:
            return False
        now = self.clock.monotonic()
        queue = self._queues.get(priority)
        if queue is not None and not queue and not self.saturated(now):
            return False
        if queue is None:
            if not self.saturated(now):
                return False
            self._reject(priority, "shed")
            raise Shed("the model pool is saturated; sheddable requests are refused")
        if len(queue) >= self.max_queue:
            self._reject(priority, "queue_full")
            raise Overflow("the model pool is saturated and its queue is full")
        waiter = _Waiter(
            priority, now, now + self.timeout_s, asyncio.get_running_loop().create_future()
        )
        queue.append(waiter)
        self._gauge(priority)
        self._pump(now)
        try:
            await waiter.future
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise
        return True

    def dispatched(self) -> None:
        """A released waiter has picked: release the next one if there is room."""
        self._releasing = max(0, self._releasing - 1)
        self._pump(self.clock.monotonic())

    def poke(self) -> None:
        """Re-check capacity and deadlines (capacity may have freed, time has passed)."""
        self._pump(self.clock.monotonic())

    def _pump(self, now: float) -> None:
        for queue in self._queues.values():
            self._expire(queue, now)
        for priority in sorted(self._queues, reverse=True):
            queue = self._queues[priority]
            while queue and self._releasing == 0 and not self.saturated(now):
                waiter = queue.popleft()
                self._releasing += 1
                waiter.future.set_result(None)
                self._waited(waiter, now, "dispatched")
            self._gauge(priority)

    def _expire(self, queue: deque[_Waiter], now: float) -> None:
        expired = [w for w in queue if w.deadline <= now]
        for waiter in expired:
            queue.remove(waiter)
            waiter.future.set_exception(
                Overflow(
                    f"the model pool stayed saturated for {self.timeout_s:g}s "
                    "while the request waited"
                )
            )
            self._waited(waiter, now, "timeout")
            self._reject(waiter.priority, "queue_timeout")

    def _abandon(self, waiter: _Waiter) -> None:
        """The client left while waiting (or right after release)."""
        queue = self._queues[waiter.priority]
        if waiter in queue:
            queue.remove(waiter)
            self._waited(waiter, self.clock.monotonic(), "abandoned")
            self._gauge(waiter.priority)
        elif waiter.future.done() and not waiter.future.cancelled():
            if waiter.future.exception() is None:  # released: hand the slot on
                self.dispatched()

    def _gauge(self, priority: Priority) -> None:
        if self.metrics is not None:
            self.metrics.queue_length.labels(priority.name.lower()).set(self.queued(priority))

    def _waited(self, waiter: _Waiter, now: float, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.queue_wait.labels(waiter.priority.name.lower(), outcome).observe(
                now - waiter.enqueued_at
            )

    def _reject(self, priority: Priority, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.rejected.labels(priority.name.lower(), reason).inc()
