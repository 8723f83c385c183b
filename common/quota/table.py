"""The quota service's counters (pure; the gRPC adapter is control/ratelimit/service.py).

Per key the service keeps the consumed amount and one allotment per holder (a tier1
process). Invariant, checked by the property tests:

    consumed + sum(live allotments) <= limit      (until actual usage exceeds estimates)

A Sync first adds the holder's settled usage `d` to `consumed` (that usage was spent out
of the holder's previous allotment, so it moves from "allotted" to "consumed"), then
replaces the holder's allotment with

    min(wanted, what is left after the others' allotments,
        max(needed now, (limit - consumed) / holders of the key))

The fair-share cap only bites near the end of a budget: it keeps the last units from
sitting in one holder's buffer while another holder rejects for want of them. Usage can exceed what was allotted only when a request's actual usage
is larger than the estimate it reserved; that excess is the overshoot bound the README
states. Allotments expire `lease_s` after they were granted, so a holder that vanished
gives its share back without saying so.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

from common.quota.protocol import Grant, SyncEntry


@dataclass(slots=True)
class Counter:
    limit: float
    window_end: float
    persist: bool
    consumed: float = 0.0
    held: dict[str, tuple[float, float]] = field(default_factory=dict)
    """holder -> (allotment, expires at monotonic time)."""
    dirty: bool = False
    """Consumed changed since the last checkpoint."""

    def allotted(self, now: float, *, skip: str = "") -> float:
        total = 0.0
        expired = []
        for holder, (amount, until) in self.held.items():
            if until <= now:
                expired.append(holder)
            elif holder != skip:
                total += amount
        for holder in expired:
            del self.held[holder]
        return total

    def remaining(self, now: float) -> float:
        return max(0.0, self.limit - self.consumed - self.allotted(now))


@dataclass
class SyncStats:
    granted: float = 0.0
    returned: float = 0.0


@dataclass
class QuotaTable:
    lease_s: float = 1.0
    counters: dict[str, Counter] = field(default_factory=dict)
    holders_seen: dict[str, float] = field(default_factory=dict)
    """holder -> monotonic time of its last Sync (for the active-holder count)."""
    holder_ttl_s: float = 10.0

    def sync(
        self, holder: str, entries: Iterable[SyncEntry], now: float, wall: float
    ) -> tuple[list[Grant], SyncStats]:
        self.holders_seen[holder] = now
        stats = SyncStats()
        grants: list[Grant] = []
        for e in entries:
            key = e["k"]
            c = self.counters.get(key)
            if c is None:
                if e["e"] <= wall:
                    grants.append({"k": key, "a": 0.0, "r": 0.0, "t": self.lease_s})
                    continue
                c = self.counters[key] = Counter(e["l"], e["e"], bool(e["p"]))
            c.limit = e["l"]
            if e["d"]:
                c.consumed += e["d"]
                c.dirty = True
            before = c.held.get(holder, (0.0, 0.0))[0]
            others = c.allotted(now, skip=holder)
            free = max(0.0, c.limit - c.consumed - others)
            sharing = len(c.held) + (holder not in c.held)
            share = max(e.get("n", 0.0), (c.limit - c.consumed) / sharing)
            grant = min(max(0.0, e["w"]), free, share)
            if grant > 0:
                c.held[holder] = (grant, now + self.lease_s)
            else:
                c.held.pop(holder, None)
            if grant > before:
                stats.granted += grant - before
            else:
                stats.returned += before - grant
            grants.append({"k": key, "a": grant, "r": free - grant, "t": self.lease_s})
        return grants, stats

    def active_holders(self, now: float) -> int:
        for h in [h for h, t in self.holders_seen.items() if now - t > self.holder_ttl_s]:
            del self.holders_seen[h]
        return len(self.holders_seen)

    def expire(self, wall: float) -> list[str]:
        """Drop counters whose window ended; returns the persisted ones (to delete)."""
        gone = [k for k, c in self.counters.items() if c.window_end <= wall]
        persisted = [k for k in gone if self.counters[k].persist]
        for k in gone:
            del self.counters[k]
        return persisted

    def dirty(self) -> list[tuple[str, Counter]]:
        """Persisted counters changed since the last call; marks them clean."""
        out = [(k, c) for k, c in self.counters.items() if c.persist and c.dirty]
        for _, c in out:
            c.dirty = False
        return out

    def restore(self, key: str, consumed: float, limit: float, window_end: float) -> None:
        c = self.counters.get(key)
        if c is None:
            self.counters[key] = Counter(limit, window_end, True, consumed)
        else:
            c.consumed = max(c.consumed, consumed)

    def top(self, n: int, now: float) -> list[tuple[str, float, float]]:
        """(key, limit, remaining) of the n keys closest to their limit."""
        ranked = heapq.nsmallest(
            n,
            self.counters.items(),
            key=lambda kc: kc[1].remaining(now) / kc[1].limit if kc[1].limit else 0.0,
        )
        return [(k, c.limit, c.remaining(now)) for k, c in ranked]
