"""EndpointStore: the endpoints of the pool as one immutable mapping, swapped whole.

Writers (discovery, the poller, the proxy after a failed connect) record changes; a
reader gets a read-only `Mapping[str, EndpointState]` that never changes under it. A
scrape round touches every endpoint, so writes are staged and folded into a new mapping
only when someone reads: N scrapes between two picks cost one copy, not N.
`version` moves on every change, so a consumer (the picker) can skip unchanged views.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from tier2.datalayer.types import EndpointState

_EMPTY: Mapping[str, EndpointState] = MappingProxyType({})


class EndpointStore:
    def __init__(self) -> None:
        self._view: Mapping[str, EndpointState] = _EMPTY
        self._staged: dict[str, EndpointState] = {}
        self.version = 0

    def snapshot(self) -> Mapping[str, EndpointState]:
        """Every endpoint as of now; the returned mapping is never modified."""
        if self._staged:
            merged = dict(self._view)
            merged.update(self._staged)
            self._staged = {}
            self._view = MappingProxyType(merged)
        return self._view

    def get(self, endpoint: str) -> EndpointState | None:
        staged = self._staged.get(endpoint)
        return staged if staged is not None else self._view.get(endpoint)

    def ids(self) -> tuple[str, ...]:
        return tuple(self.snapshot())

    def set_ids(self, ids: Iterable[str]) -> tuple[set[str], set[str]]:
        """Make the membership exactly `ids`; kept endpoints keep their state.
        Returns (added, removed)."""
        current = self.snapshot()
        wanted = list(dict.fromkeys(ids))
        added = {i for i in wanted if i not in current}
        removed = set(current) - set(wanted)
        if added or removed:
            self._view = MappingProxyType(
                {i: current[i] if i in current else EndpointState(i) for i in wanted}
            )
            self.version += 1
        return added, removed

    def put(self, state: EndpointState) -> bool:
        """Record a new state of a member; False (and ignored) if it left meanwhile."""
        if self.get(state.id) is None:
            return False
        self._staged[state.id] = state
        self.version += 1
        return True

    def mark_unreachable(self, endpoint: str, now: float, error: str) -> None:
        """The proxy could not connect: leave the endpoint out until a scrape succeeds."""
        state = self.get(endpoint)
        if state is not None and state.healthy:
            self.put(
                dataclasses.replace(state, healthy=False, last_error=error, last_attempt_at=now)
            )
