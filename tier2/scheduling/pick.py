"""A pick in progress, and the counters a PoolPicker keeps for the shell's metrics (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tier2.ledger import Reservation
from tier2.scheduling.types import PickRequest, PickResult


@dataclass(eq=False, slots=True)
class Pick:
    """One request's pick; the proxy hands it back to retry, first_byte and finish."""

    request: PickRequest
    result: PickResult
    endpoint: str
    reservation: Reservation
    matches: dict[str, int]
    """Leading prompt blocks predicted cached, per endpoint, at pick time."""
    failed: list[str] = field(default_factory=list)
    finished: bool = False
    overlapped: bool = False
    """Sent while another request with the same first block was still in prefill there:
    its predicted hit leaned on blocks not computed yet, so it teaches the index nothing."""

    @property
    def ranked(self) -> tuple[str, ...]:
        return self.result.ranked

    @property
    def saturated(self) -> bool:
        return self.result.saturated

    @property
    def predicted_cached_blocks(self) -> int:
        return self.matches.get(self.endpoint, 0)


@dataclass(slots=True)
class PickerStats:
    """Counters for the shell's metrics (cumulative; copies)."""

    picks: dict[str, int]
    """Dispatches per endpoint (retries included)."""
    reasons: dict[str, int]
    """Picks per decision reason (PickResult.reason)."""
    retries: int
    saturated_picks: int
    predicted_cached_tokens: dict[str, float]
    """Per endpoint, over requests whose answer reported cached_tokens."""
    actual_cached_tokens: dict[str, float]


class PickCounters:
    """Cumulative counts behind `PickerStats`."""

    def __init__(self) -> None:
        self._picks: dict[str, int] = {}
        self._reasons: dict[str, int] = {}
        self._retries = 0
        self._saturated = 0
        self._predicted: dict[str, float] = {}
        self._actual: dict[str, float] = {}

    def picked(self, pick: Pick) -> None:
        self._picks[pick.endpoint] = self._picks.get(pick.endpoint, 0) + 1
        reason = pick.result.reason
        self._reasons[reason] = self._reasons.get(reason, 0) + 1
        if pick.result.saturated:
            self._saturated += 1

    def retried(self, endpoint: str) -> None:
        self._retries += 1
        self._picks[endpoint] = self._picks.get(endpoint, 0) + 1

    def hit(self, endpoint: str, predicted_tokens: float, actual_tokens: float) -> None:
        """A finished request's predicted and reported cached prompt tokens."""
        self._predicted[endpoint] = self._predicted.get(endpoint, 0.0) + predicted_tokens
        self._actual[endpoint] = self._actual.get(endpoint, 0.0) + actual_tokens

    def snapshot(self) -> PickerStats:
        return PickerStats(
            dict(self._picks),
            dict(self._reasons),
            self._retries,
            self._saturated,
            dict(self._predicted),
            dict(self._actual),
        )
