"""A tier1 process's side of the quota protocol: local leases (pure; the gRPC client is
tier1/ratelimit/client.py).

For every key in use the process holds an *allotment* granted by the key's owner
replica. Admission spends from it with no network call:

    free = allotment - reserved - unsent - sending

`reserved` is what admitted, unfinished requests set aside (their estimates), `unsent`
is the actual usage of finished requests not yet reported, `sending` the usage in a
Sync that has not been answered. A Sync reports `unsent` and asks for a new allotment
sized from recent demand; the answer replaces the allotment. An allotment is trusted
only until `lease_s` after the Sync that granted it was *sent*, so the holder gives up
its share no later than the service takes it back.

When the owner cannot be reached and the allotment has run out, the key falls back to
a local limit of `limit / holders` over what this process itself admitted in the
window (fail_open), or rejects (fail_closed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from common.quota.protocol import Grant, SyncEntry

Verdict = Literal["ok", "sync", "reject", "unavailable"]

PERIODS_AHEAD = 3
"""Allotments cover demand for this many Sync periods: the one in flight, the next,
and slack for a late answer."""


@dataclass(slots=True)
class KeyState:
    key: str
    limit: float
    window_end: float
    persist: bool
    owner: str | None = None
    allotment: float = 0.0
    valid_until: float = 0.0
    reserved: float = 0.0
    unsent: float = 0.0
    unsent_since: float = 0.0
    """When the oldest unsent usage was settled (for the reconciliation-lag metric)."""
    sending: float = 0.0
    sending_since: float = 0.0
    others: float = 0.0
    """What the service said was left for everyone else at the last grant."""
    window_used: float = 0.0
    """What this process admitted in the window (estimates, corrected on settle)."""
    demand: float = 0.0
    """Units per second reserved recently (EWMA)."""
    since_sync: float = 0.0
    active_since: float = 0.0
    """First admission attempt since the last Sync (0: none)."""
    shortfall: float = 0.0
    """What admissions that found the lease short needed since the last Sync (summed:
    a burst waiting on one round asks for all of itself at once)."""
    last_amount: float = 0.0
    starved: bool = False
    """The last grant did not cover the shortfall: the next Sync gives the free part
    back, so holders that each keep a fragment too small to use cannot stall a key."""
    asked: float = 0.0
    asked_short: float = 0.0
    last_active: float = 0.0
    last_sync: float = 0.0
    period: float = 0.0
    """Seconds between this key's Syncs, recent (rises at once, falls gently)."""
    synced_once: bool = False

    @property
    def free(self) -> float:
        return self.allotment - self.reserved - self.unsent - self.sending

    def remaining(self) -> float:
        """Best local estimate of what is left globally."""
        return max(0.0, self.others + max(0.0, self.free))


@dataclass(frozen=True, slots=True)
class Ask:
    """One limit a request must fit: `amount` units of `key`."""

    key: str
    amount: float
    limit: float
    window_end: float
    persist: bool
    fail_closed: bool = False


@dataclass(slots=True)
class LeaseBook:
    lease_s: float = 1.0
    sync_interval_s: float = 0.1
    horizon_s: float = 0.3
    """Allotments cover this long of recent demand beyond what is in flight."""
    idle_return_s: float = 1.0
    """A key unused this long gives its allotment back at the next Sync."""
    forget_s: float = 10.0
    keys: dict[str, KeyState] = field(default_factory=dict)
    holders: int = 1
    """Active tier1 processes the service reported (for fail-open local limits)."""
    down: set[str] = field(default_factory=set)
    """Owners whose last Sync failed."""

    def state(self, ask: Ask, owner: str | None) -> KeyState:
        st = self.keys.get(ask.key)
        if st is None:
            st = self.keys[ask.key] = KeyState(ask.key, ask.limit, ask.window_end, ask.persist)
        st.owner = owner
        st.limit = ask.limit
        return st

    def check(self, st: KeyState, amount: float, now: float) -> Verdict:
        """Can `amount` be spent from `st` now, without talking to the service? On
        "sync" the amount is remembered, so the next Sync asks for it."""
        st.last_active = now
        if not st.active_since:
            st.active_since = now
        live = now < st.valid_until
        if live and st.free >= amount:
            return "ok"
        if st.owner is None or st.owner in self.down:
            if live and st.free >= amount:
                return "ok"
            return "unavailable"
        if live and st.others + st.free < amount and st.synced_once:
            return "reject"
        st.shortfall += amount
        return "sync"

    def fallback_ok(self, st: KeyState, amount: float) -> bool:
        """fail_open: this process's fair share of the window."""
        return st.window_used + amount <= st.limit / max(1, self.holders)

    def reserve(self, st: KeyState, amount: float, now: float) -> None:
        st.reserved += amount
        st.window_used += amount
        st.since_sync += amount
        st.last_amount = amount
        st.last_active = now

    def settle(self, st: KeyState, reserved: float, actual: float, now: float) -> None:
        self.keys.setdefault(st.key, st)
        st.reserved = max(0.0, st.reserved - reserved)
        if actual and not st.unsent:
            st.unsent_since = now
        st.unsent += actual
        st.window_used += actual - reserved

    def want_more(self, st: KeyState, amount: float) -> None:
        st.shortfall += amount

    # -- Sync ---------------------------------------------------------------------------

    def due(self, now: float, owner: str, *, urgent: Sequence[str] = ()) -> list[KeyState]:
        """Keys of `owner` that need a Sync now."""
        out = []
        for st in self.keys.values():
            if st.owner != owner or st.sending:
                continue
            if (
                st.key in urgent
                or st.unsent
                or st.shortfall
                or (st.allotment and st.valid_until - now < self.lease_s / 2)
                or (st.since_sync and now - st.last_sync >= self.sync_interval_s)
                or (not st.synced_once and st.reserved)
            ):
                out.append(st)
        return out

    def begin(self, st: KeyState, now: float) -> SyncEntry:
        # demand over the time the key was in use since the last Sync: a burst after an
        # idle spell counts at its own rate, not diluted by the idle seconds
        busy = now - st.active_since if st.active_since else 0.0
        rate = st.since_sync / max(min(now - st.last_sync, busy), self.sync_interval_s)
        # rise at once, fall gently: an allotment a step too large costs nothing but a
        # return, one too small makes requests wait for a Sync
        st.demand = rate if rate > st.demand else 0.5 * st.demand + 0.5 * rate
        # an allotment must last until the grant after next; in a busy process Syncs come
        # later than sync_interval_s, so size it from the period actually observed
        elapsed = min(now - st.last_sync, self.lease_s) if st.synced_once else 0.0
        st.period = max(elapsed, 0.5 * st.period + 0.5 * elapsed)
        horizon = max(self.horizon_s, PERIODS_AHEAD * st.period)
        st.active_since = 0.0
        st.since_sync = 0.0
        st.last_sync = now
        st.sending, st.unsent = st.unsent, 0.0
        st.sending_since = st.unsent_since
        idle = now - st.last_active >= self.idle_return_s
        buffer = 0.0 if idle else max(st.demand * horizon, st.last_amount, st.shortfall)
        want = min(st.limit, st.reserved + buffer)
        if st.starved:
            want, st.starved = st.reserved, False
        need = min(want, st.reserved + max(st.shortfall, st.last_amount))
        st.asked, st.asked_short = want, st.shortfall
        st.shortfall = 0.0
        return {
            "k": st.key,
            "l": st.limit,
            "e": st.window_end,
            "d": st.sending,
            "w": want,
            "p": int(st.persist),
            "n": need,
        }

    def granted(self, st: KeyState, grant: Grant, sent_at: float) -> None:
        st.starved = (
            st.asked_short > 0
            and grant["a"] < st.asked
            and grant["a"] - st.reserved - st.unsent < st.asked_short
        )
        st.sending = 0.0
        st.allotment = grant["a"]
        st.others = grant["r"]
        st.valid_until = sent_at + grant["t"]
        st.synced_once = True

    def failed(self, st: KeyState) -> None:
        """The Sync carrying `st` failed: its usage goes out with the next one."""
        if st.sending:
            st.unsent += st.sending
            st.unsent_since = st.sending_since
        st.sending = 0.0

    def forget_idle(self, now: float, wall: float) -> None:
        for key in [
            k
            for k, st in self.keys.items()
            if not (st.reserved or st.unsent or st.sending)
            and (st.window_end <= wall or now - st.last_active > self.forget_s)
            and (st.allotment == 0 or now >= st.valid_until)
        ]:
            del self.keys[key]
