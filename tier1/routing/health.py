"""Passive health per backend: consecutive failures → cooldown, and Retry-After.

Pure state with the time passed in; the proxy records outcomes, the planner asks
`available`. It outlives config swaps (keyed by backend name), so a reload does not
forget that a backend is down.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.config.backend import OutlierDetection


@dataclass(slots=True)
class _State:
    consecutive_failures: int = 0
    cooldown_until: float = 0.0
    retry_after_until: float = 0.0


class BackendHealth:
    def __init__(self) -> None:
        self._states: dict[str, _State] = {}

    def available(self, name: str, now: float) -> bool:
        s = self._states.get(name)
        return s is None or (now >= s.cooldown_until and now >= s.retry_after_until)

    def cooling(self, name: str, now: float) -> bool:
        s = self._states.get(name)
        return s is not None and now < s.cooldown_until

    def success(self, name: str) -> None:
        s = self._states.get(name)
        if s is not None:
            s.consecutive_failures = 0

    def failure(self, name: str, outlier: OutlierDetection, now: float) -> bool:
        """Record a failed attempt; True when it starts a cooldown."""
        s = self._states.setdefault(name, _State())
        s.consecutive_failures += 1
        if s.consecutive_failures >= outlier.consecutive_failures and now >= s.cooldown_until:
            s.cooldown_until = now + outlier.cooldown_s
            s.consecutive_failures = 0
            return True
        return False

    def retry_after(self, name: str, until: float) -> None:
        s = self._states.setdefault(name, _State())
        s.retry_after_until = max(s.retry_after_until, until)

    def names(self) -> list[str]:
        return list(self._states)
