"""Fixed windows: which window a moment falls in, and when it ends.

Windows given in seconds are aligned to the Unix epoch (a `1h` window runs from one
whole hour to the next, in UTC), so every tier1 process and every quota replica
agrees on the boundaries without talking. `month` windows follow the calendar of a
time zone: they start at local midnight on the 1st.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Window:
    start: float
    """Wall-clock seconds since the epoch."""
    end: float

    def reset_in(self, now: float) -> float:
        return max(0.0, self.end - now)


def window_at(length: int | Literal["month"], now: float, tz: str = "UTC") -> Window:
    """The window containing wall time `now` (seconds since the epoch)."""
    if length == "month":
        return month_at(now, tz)
    start = (now // length) * length
    return Window(start, start + length)


def month_at(now: float, tz: str) -> Window:
    zone = _zone(tz)
    local = datetime.fromtimestamp(now, zone)
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    # adding 32 days to the 1st always lands in the next month
    nxt = (first + timedelta(days=32)).replace(day=1)
    # re-anchor both in the zone so a DST change inside the month is respected
    start = first.replace(tzinfo=zone).timestamp()
    end = nxt.replace(tzinfo=zone).timestamp()
    return Window(start, end)


@lru_cache(maxsize=64)
def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


def format_reset(seconds: float) -> str:
    """Durations in the style OpenAI uses in x-ratelimit-reset-*: `20ms`, `1.5s`, `6m0s`,
    `2h3m4s`."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    if seconds < 60:
        text = f"{seconds:.3f}".rstrip("0").rstrip(".")
        return f"{text}s"
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m}m{s}s" if h else f"{m}m{s}s"
