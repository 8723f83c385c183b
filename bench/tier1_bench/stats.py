"""Pure helpers of the tier1 benchmark: percentiles, /proc parsing, ratios and verdicts."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Spread",
    "Verdict",
    "count_events",
    "cpu_busy_from_proc_stat",
    "cpu_ticks_from_stat",
    "percentile",
    "ppid_from_stat",
    "ratio",
    "rss_kib_from_status",
    "spread",
    "verdict",
]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear between closest ranks (numpy's default).

    NaN for no values.
    """
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0-100, got {q}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class Spread:
    """Median (min–max) of one number across rounds."""

    median: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {"median": self.median, "min": self.low, "max": self.high, "rounds": self.n}


def spread(values: Sequence[float]) -> Spread:
    """Median, min and max of the finite values (NaN spread when there are none)."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return Spread(math.nan, math.nan, math.nan, 0)
    return Spread(statistics.median(finite), min(finite), max(finite), len(finite))


def _stat_fields(line: str) -> list[str]:
    """Fields of a /proc/<pid>/stat line after ``comm``; comm may hold spaces and ')'."""
    end = line.rfind(")")
    if end < 0:
        raise ValueError(f"not a /proc/<pid>/stat line: {line[:80]!r}")
    rest = line[end + 1 :].split()
    if len(rest) < 13:
        raise ValueError(f"/proc/<pid>/stat line too short: {line[:80]!r}")
    return rest


def cpu_ticks_from_stat(line: str) -> int:
    """utime + stime (clock ticks) of a /proc/<pid>/stat line: fields 14 and 15."""
    rest = _stat_fields(line)  # rest[0] is field 3 (state)
    return int(rest[11]) + int(rest[12])


def ppid_from_stat(line: str) -> int:
    """The parent pid (field 4) of a /proc/<pid>/stat line."""
    return int(_stat_fields(line)[1])


def cpu_busy_from_proc_stat(text: str) -> dict[int, tuple[int, int]]:
    """Per CPU of /proc/stat: (busy ticks, all ticks). Busy is everything but idle and
    iowait; steal counts as busy (the hypervisor took the core from us)."""
    out: dict[int, tuple[int, int]] = {}
    for line in text.splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *fields = line.split()
        if not name[3:].isdigit():
            continue
        ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
        total = sum(ticks)
        out[int(name[3:])] = (total - idle, total)
    return out


def rss_kib_from_status(text: str) -> int:
    """VmRSS in KiB from /proc/<pid>/status (0 when absent, e.g. a zombie)."""
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            parts = line.split()
            return int(parts[1])
    return 0


def count_events(tail: bytes, chunk: bytes, marker: bytes = b"data: ") -> tuple[int, bytes]:
    """SSE events starting in ``chunk``, given the previous read's ``tail``.

    Returns the count and the new tail (the last ``len(marker) - 1`` bytes), so a marker
    split across two reads counts once and no marker counts twice.
    """
    keep = len(marker) - 1
    joined = tail + chunk
    return joined.count(marker), joined[-keep:] if keep else b""


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator; NaN when either is NaN or the denominator is not > 0."""
    if math.isnan(numerator) or math.isnan(denominator) or denominator <= 0:
        return math.nan
    return numerator / denominator


Outcome = Literal["PASS", "FAIL", "SKIP"]


@dataclass(frozen=True, slots=True)
class Verdict:
    name: str
    value: float
    op: Literal[">=", "<="]
    threshold: float
    outcome: Outcome
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "value": None if math.isnan(self.value) else self.value,
            "op": self.op,
            "threshold": self.threshold,
            "outcome": self.outcome,
            "note": self.note,
        }


def verdict(
    name: str, value: float, op: Literal[">=", "<="], threshold: float, note: str = ""
) -> Verdict:
    """PASS/FAIL of ``value op threshold``; SKIP when the value could not be measured."""
    if math.isnan(value):
        return Verdict(name, value, op, threshold, "SKIP", note or "not measured")
    ok = value >= threshold if op == ">=" else value <= threshold
    return Verdict(name, value, op, threshold, "PASS" if ok else "FAIL", note)
