"""Fault injection for reliability tests: what a sick vLLM pod does to its clients.

A :class:`FaultSpec` is plain frozen data, settable per pod at start (``--faults``) and
replaceable at run time (``POST /sim/faults`` or ``SimPods.set_faults``). The
:class:`FaultInjector` turns it into one :class:`FaultDecision` per request with a
seeded RNG, so a failing run can be replayed.

Spec syntax (CLI and ``FaultSpec.parse``): ``key=value`` pairs separated by commas, e.g.
``error_rate=0.1,spike_rate=0.05,spike_ms=800,crash_after=500``.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FaultDecision", "FaultInjector", "FaultSpec"]


@dataclass(frozen=True, slots=True)
class FaultSpec:
    error_rate: float = 0.0
    """Fraction of requests answered at once with HTTP 500."""
    spike_rate: float = 0.0
    """Fraction of requests held for ``spike_ms`` before they reach the engine."""
    spike_ms: float = 0.0
    hang_rate: float = 0.0
    """Fraction of requests accepted and never answered (the connection stays open)."""
    stall_rate: float = 0.0
    """Fraction of requests whose output stalls for ``stall_ms`` halfway through."""
    stall_ms: float = 0.0
    crash_after: int = 0
    """The pod dies (listener closed, connections cut) when request N+1 arrives; 0 = never."""

    def __post_init__(self) -> None:
        for name in ("error_rate", "spike_rate", "hang_rate", "stall_rate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {v}")
        if self.spike_ms < 0 or self.stall_ms < 0 or self.crash_after < 0:
            raise ValueError("spike_ms, stall_ms and crash_after must not be negative")

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """Parse ``key=value,key=value``; unknown keys and bad numbers raise ValueError."""
        updates: dict[str, str] = {}
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"fault option {item!r} is not key=value")
            updates[key.strip()] = value.strip()
        return cls().merged(updates)

    def merged(self, updates: Mapping[str, Any]) -> FaultSpec:
        """A copy with some fields replaced (values may be strings, as from a CLI)."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        kwargs: dict[str, Any] = {}
        for key, value in updates.items():
            if key not in fields:
                raise ValueError(f"unknown fault option {key!r}; known: {', '.join(fields)}")
            try:
                kwargs[key] = int(value) if key == "crash_after" else float(value)
            except (TypeError, ValueError):
                raise ValueError(f"fault option {key!r} needs a number, got {value!r}") from None
        return dataclasses.replace(self, **kwargs)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class FaultDecision:
    error: bool = False
    hang: bool = False
    crash: bool = False
    spike_s: float = 0.0
    stall_s: float = 0.0


_NONE = FaultDecision()


class FaultInjector:
    """Per-pod fault state: the current spec, a seeded RNG and the request count."""

    def __init__(self, spec: FaultSpec, rng: random.Random) -> None:
        self.spec = spec
        self.rng = rng
        self.requests_seen = 0

    def decide(self) -> FaultDecision:
        """The fate of the next request."""
        self.requests_seen += 1
        s = self.spec
        if s.crash_after and self.requests_seen > s.crash_after:
            return FaultDecision(crash=True)
        if s == _DEFAULT_SPEC:
            return _NONE
        r = self.rng.random
        if s.error_rate and r() < s.error_rate:
            return FaultDecision(error=True)
        if s.hang_rate and r() < s.hang_rate:
            return FaultDecision(hang=True)
        spike = s.spike_ms / 1000.0 if s.spike_rate and r() < s.spike_rate else 0.0
        stall = s.stall_ms / 1000.0 if s.stall_rate and r() < s.stall_rate else 0.0
        if not spike and not stall:
            return _NONE
        return FaultDecision(spike_s=spike, stall_s=stall)


_DEFAULT_SPEC = FaultSpec()
