"""Token-emission timing of the real-time pods (pure bookkeeping, no I/O).

*Lateness* is real seconds from a step's scheduled end to the moment a token's bytes
were handed to the transport. :class:`EmissionStats` keeps it per token, and splits it
for diagnosis: when each step's emission pass started (waking up, or waiting for other
work on the event loop) and how long the pass took, in wall time and in this thread's
CPU time. A pass that takes more wall time than CPU time was preempted (on a virtual
machine, often by the hypervisor: steal).
"""

from __future__ import annotations

__all__ = ["EmissionStats", "LatencyHistogram"]


class LatencyHistogram:
    """Seconds in fixed ``RESOLUTION_S`` buckets up to ``RANGE_S``, then one overflow
    bucket (``max`` keeps the worst). Quantiles return a bucket's upper edge (or the
    max), so they never understate. Negative values count as 0 and as ``early``."""

    RESOLUTION_S = 0.00005
    RANGE_S = 0.25

    __slots__ = ("buckets", "count", "early", "max")

    def __init__(self) -> None:
        self.buckets = [0] * (int(self.RANGE_S / self.RESOLUTION_S) + 1)
        self.count = 0
        self.max = 0.0
        self.early = 0

    def add(self, value: float, n: int = 1) -> None:
        if value < 0.0:
            self.early += n
            value = 0.0
        i = int(value * 20000.0)  # 1 / RESOLUTION_S
        buckets = self.buckets
        if i >= len(buckets):
            i = len(buckets) - 1
        buckets[i] += n
        self.count += n
        if value > self.max:
            self.max = value

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

    def summary(self) -> dict[str, float]:
        return {
            "p50": self.quantile(0.5),
            "p90": self.quantile(0.9),
            "p99": self.quantile(0.99),
            "p999": self.quantile(0.999),
            "max": self.max,
            "count": self.count,
        }


class EmissionStats:
    """Per-token lateness, its per-step split, and how tokens were delivered."""

    __slots__ = (
        "fast_tokens",
        "handovers",
        "pass_cpu_s",
        "pass_wall_s",
        "passes",
        "slow_tokens",
        "step_starts",
        "tokens",
    )

    def __init__(self) -> None:
        self.tokens = LatencyHistogram()
        """Lateness of every streamed token."""
        self.step_starts = LatencyHistogram()
        """Lateness of the start of each step-end emission pass (its first token)."""
        self.passes = LatencyHistogram()
        """Wall duration of each step-end emission pass."""
        self.pass_wall_s = 0.0
        self.pass_cpu_s = 0.0
        self.fast_tokens = 0
        """Tokens written by the step loop itself."""
        self.slow_tokens = 0
        """Tokens written by their handler task (backpressure, stall fault, catch-up)."""
        self.handovers = 0
        """Times a stream left the fast path for its handler."""

    def add(self, lateness: float, n: int = 1) -> None:
        """``n`` tokens reached the transport ``lateness`` seconds after their step's end."""
        self.tokens.add(lateness, n)

    def record_pass(self, start_lateness: float, wall_s: float, cpu_s: float) -> None:
        self.step_starts.add(start_lateness)
        self.passes.add(wall_s)
        self.pass_wall_s += wall_s
        self.pass_cpu_s += cpu_s

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    def as_dict(self) -> dict[str, object]:
        t = self.tokens
        return {
            **t.summary(),
            "tokens": t.count,
            "early_tokens": t.early,
            "fast_tokens": self.fast_tokens,
            "slow_tokens": self.slow_tokens,
            "handovers": self.handovers,
            "step_start": self.step_starts.summary(),
            "emission_pass": self.passes.summary(),
            "emission_pass_cpu_share": self.pass_cpu_s / self.pass_wall_s
            if self.pass_wall_s
            else None,
        }
