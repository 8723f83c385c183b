"""Clocks for the engine: real time scaled by a speed factor, or a hand-moved one.

The engine never reads the wall clock itself; drivers inject one of these. Model time is
what the step-time profile speaks in; with ``speed`` 10, one real second is ten model
seconds, so a real-time run finishes ten times sooner with identical model-time results.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "MonotonicClock"]


class Clock(Protocol):
    def now(self) -> float:
        """Current time in model seconds."""
        ...


class ManualClock:
    """A clock that moves only when told to (tests and the discrete-event simulator)."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


class MonotonicClock:
    """Real time scaled by ``speed``: one real second is ``speed`` model seconds."""

    def __init__(self, speed: float = 1.0, t0: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self.t0 = time.monotonic() if t0 is None else t0

    def now(self) -> float:
        return (time.monotonic() - self.t0) * self.speed

    def to_real(self, t: float) -> float:
        """The ``time.monotonic()`` reading at which model time ``t`` is reached."""
        return self.t0 + t / self.speed
