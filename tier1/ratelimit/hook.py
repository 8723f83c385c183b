"""GlobalQuota: tier1's QuotaHook over local leases from the quota service.

Admission (no network call while the local lease covers the request):
1. Collect the policies of the route and the consumer that apply to the model and
   whose descriptor parts the request has.
2. For every limit: one ask for requests (1) and one for tokens (estimated prompt
   tokens + max_tokens, or the policy's default output, weighted by token_cost).
3. Every enforced ask must fit its lease; asks whose lease is short wait once for a
   Sync (bounded); if one still does not fit, 429 — before any upstream call.
4. Every ask (enforced or shadow) is reserved; `settle` later replaces the reservation
   by actual usage: requests always count 1, tokens count actual usage, or nothing if
   the request failed upstream, or the estimate if the upstream did not report usage.

Speed: what steps 1–2 derive from (route, consumer, model, descriptor headers) is
memoised per config revision as `_Slot`s, each holding its current window, key and
lease state, so a request in a warm window costs a few attribute reads per limit.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from common.clock import Clock, SystemClock
from common.config import Consumer
from common.errors import RateLimited
from common.quota.lease import Ask, KeyState, LeaseBook
from common.quota.windows import format_reset, window_at
from tier1.providers.base import ParsedRequest, Usage
from tier1.quota import Admission
from tier1.ratelimit.client import QuotaClient
from tier1.ratelimit.metrics import QuotaMetrics
from tier1.ratelimit.policies import (
    CompiledLimit,
    CompiledPolicy,
    cost,
    estimate_input_tokens,
)
from tier1.runtime import Tier1Runtime

log = logging.getLogger(__name__)

NO_ADMISSION = Admission()
MAX_MEMO = 50_000
"""Memoised (route, consumer, model, headers) combinations before the memo restarts."""


@dataclass(slots=True, eq=False)
class _Slot:
    """One counter of one limit for one descriptor value, across windows."""

    policy: CompiledPolicy
    limit: CompiledLimit
    tokens: bool
    prefix: str
    limit_value: float
    start: float = math.inf
    end: float = -math.inf
    key: str = ""
    state: KeyState | None = None
    reset_cache: tuple[int, str] = (-1, "")


# one request's hold on one slot: (slot, state, reserved amount)
_Hold = tuple[_Slot, KeyState, float]
# the slots of one (route, consumer, model, headers) and the names of their policies
_Slots = tuple[tuple[_Slot, ...], tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class _Held:
    holds: tuple[_Hold, ...]


class GlobalQuota:
    def __init__(
        self,
        runtime: Callable[[], Tier1Runtime | None],
        client: QuotaClient,
        metrics: QuotaMetrics,
        *,
        static_replicas: tuple[str, ...] = (),
        clock: Clock | None = None,
        sync_wait_s: float = 0.25,
    ) -> None:
        self.runtime = runtime
        self.client = client
        self.book: LeaseBook = client.book
        self.metrics = metrics
        self.static_replicas = static_replicas
        self.clock = clock or SystemClock()
        self.sync_wait_s = sync_wait_s
        self._revision = -1
        self._memo: dict[tuple[object, ...], _Slots] = {}
        self._headers_used: tuple[str, ...] = ()

    def _refresh(self, rt: Tier1Runtime) -> None:
        """A new snapshot: follow its replica set, forget what was derived from the old."""
        self._revision = rt.revision
        self._memo.clear()
        self._headers_used = tuple(
            sorted(
                {
                    part.partition(":")[2].lower()
                    for p in rt.policies.values()
                    for part in p.parts
                    if part.startswith("header:")
                }
            )
        )
        replicas = self.static_replicas or rt.ratelimit
        if rt.policies and not replicas:
            log.warning(
                "no quota replicas known: rate limits are enforced per process "
                "(limit / %d) until control publishes some or --ratelimit names them",
                self.book.holders,
            )
        self.client.set_replicas(replicas)

    # -- admission ----------------------------------------------------------------------

    async def admit(self, req: ParsedRequest, consumer: Consumer, route: str) -> Admission:
        rt = self.runtime()
        if rt is None or not rt.policies:
            return NO_ADMISSION
        if rt.revision != self._revision:
            self._refresh(rt)
        slots, policies = self._slots(rt, req, consumer, route)
        if not slots:
            return NO_ADMISSION
        wall = self.clock.wall()
        now = self.clock.monotonic()
        est: float | None = None
        holds: list[_Hold] = []
        verdicts: list[str] = []
        check = self.book.check
        for slot in slots:
            st = self._state(slot, wall)
            if slot.tokens:
                if est is None:
                    est = float(estimate_input_tokens(len(req.raw)))
                out = (
                    req.max_tokens
                    if req.max_tokens is not None
                    else slot.policy.default_max_output_tokens
                )
                amount = cost(slot.limit.coef, est, out)
            else:
                amount = 1.0
            holds.append((slot, st, amount))
            verdicts.append(check(st, amount, now))
        if any(v != "ok" for v in verdicts):
            if "sync" in verdicts:
                keys = [h[1].key for h, v in zip(holds, verdicts, strict=True) if v == "sync"]
                self.metrics.waited()
                await self.client.sync_now(keys, self.sync_wait_s)
                now = self.clock.monotonic()
                verdicts = [check(st, amount, now) for _, st, amount in holds]
            self._decide(holds, verdicts, wall)
        else:
            decision = self.metrics.decision
            for name in policies:
                decision(name, "allowed")
        reserve = self.book.reserve
        for _, st, amount in holds:
            reserve(st, amount, now)
        return Admission(_Held(tuple(holds)), self._headers(holds, wall))

    def _slots(
        self, rt: Tier1Runtime, req: ParsedRequest, consumer: Consumer, route: str
    ) -> _Slots:
        memo_key: tuple[object, ...] = (route, consumer.name, req.model)
        if self._headers_used:
            memo_key += tuple(req.headers.get(h) for h in self._headers_used)
        slots = self._memo.get(memo_key)
        if slots is None:
            if len(self._memo) >= MAX_MEMO:
                self._memo.clear()
            slots = self._memo[memo_key] = self._build_slots(rt, req, consumer, route)
        return slots

    def _build_slots(
        self, rt: Tier1Runtime, req: ParsedRequest, consumer: Consumer, route: str
    ) -> _Slots:
        names = rt.route_policies.get(route, ())
        if consumer.spec.rate_limit_policies:
            names = tuple(dict.fromkeys((*names, *consumer.spec.rate_limit_policies)))
        slots = []
        for name in names:
            pol = rt.policies.get(name)
            if pol is None or not pol.applies_to(req.model):
                continue
            desc = pol.descriptor(consumer, req.model, route, req.headers)
            if desc is None:
                continue
            for lim in pol.limits:
                prefix = f"{pol.name}/{lim.index}/{desc}/"
                if lim.requests is not None:
                    slots.append(_Slot(pol, lim, False, prefix, float(lim.requests)))
                if lim.tokens is not None:
                    slots.append(_Slot(pol, lim, True, prefix, float(lim.tokens)))
        return tuple(slots), tuple(dict.fromkeys(s.policy.name for s in slots))

    def _state(self, slot: _Slot, wall: float) -> KeyState:
        """The lease state of the slot's current window."""
        if not slot.start <= wall < slot.end:
            w = window_at(slot.limit.window, wall, slot.policy.timezone)
            slot.start, slot.end = w.start, w.end
            slot.key = f"{slot.prefix}{int(w.start)}/{'t' if slot.tokens else 'r'}"
            slot.state = None
        st = slot.state
        if st is None or self.book.keys.get(slot.key) is not st:
            st = self.book.keys.get(slot.key)
            if st is None:
                ask = Ask(
                    slot.key,
                    0.0,
                    slot.limit_value,
                    slot.end,
                    slot.limit.persist,
                    slot.policy.fail_closed,
                )
                st = self.book.state(ask, self.client.owner(slot.key))
            slot.state = st
        return st

    def _decide(self, holds: list[_Hold], verdicts: list[str], wall: float) -> None:
        """Raise RateLimited if an enforced ask does not fit; count every decision."""
        failing: list[tuple[_Hold, str]] = []
        local: list[_Hold] = []
        for hold, v in zip(holds, verdicts, strict=True):
            if v == "ok":
                continue
            slot, st, amount = hold
            if v == "reject":
                failing.append((hold, "rejected"))
            elif slot.policy.fail_closed:
                failing.append((hold, "fail_closed"))
            elif self.book.fallback_ok(st, amount):
                local.append(hold)
            else:
                failing.append((hold, "rejected"))
        enforced = [(h, why) for h, why in failing if not h[0].policy.shadow]
        results: dict[str, str] = {}
        for (slot, _, _), why in failing:
            results[slot.policy.name] = why if not slot.policy.shadow else "shadow_rejected"
        for slot, _, _ in local:
            results.setdefault(slot.policy.name, "fail_open")
        for slot, _, _ in holds:
            results.setdefault(slot.policy.name, "allowed")
        if enforced:
            for name, result in results.items():
                # nothing is admitted, so policies that would have allowed count nothing
                if result not in ("allowed", "fail_open"):
                    self.metrics.decision(name, result)
            hold, why = enforced[0]
            raise self._rejection(hold, why, holds, wall)
        for name, result in results.items():
            self.metrics.decision(name, result)

    def _rejection(self, hold: _Hold, why: str, holds: list[_Hold], wall: float) -> RateLimited:
        slot, st, amount = hold
        headers = dict(self._headers(holds, wall))
        if why == "fail_closed":
            return RateLimited(
                f"rate limit service unavailable and policy {slot.policy.name!r} fails "
                "closed; retry shortly",
                retry_after_s=1.0,
                headers=headers,
            )
        what = "tokens" if slot.tokens else "requests"
        window = "month" if slot.limit.window == "month" else f"{slot.limit.window}s"
        # budget held by other processes may come back before the window ends
        retry = 1.0 if st.others > amount else max(1.0, slot.end - wall)
        return RateLimited(
            f"rate limit exceeded: policy {slot.policy.name!r} allows "
            f"{int(slot.limit_value)} {what} per {window}; this request needs "
            f"{math.ceil(amount)}, retry in {math.ceil(retry)}s",
            retry_after_s=retry,
            headers=headers,
        )

    def _headers(self, holds: list[_Hold], wall: float) -> tuple[tuple[str, str], ...]:
        """x-ratelimit-* of the tightest requests limit and the tightest tokens limit."""
        best_r: tuple[float, _Slot] | None = None
        best_t: tuple[float, _Slot] | None = None
        for slot, st, _ in holds:
            if slot.policy.shadow:
                continue
            rem = st.remaining()
            if slot.tokens:
                if best_t is None or rem < best_t[0]:
                    best_t = (rem, slot)
            elif best_r is None or rem < best_r[0]:
                best_r = (rem, slot)
        out: tuple[tuple[str, str], ...] = ()
        if best_r is not None:
            rem, slot = best_r
            out += (
                ("x-ratelimit-limit-requests", str(int(slot.limit_value))),
                ("x-ratelimit-remaining-requests", str(int(rem))),
                ("x-ratelimit-reset-requests", _reset(slot, wall)),
            )
        if best_t is not None:
            rem, slot = best_t
            out += (
                ("x-ratelimit-limit-tokens", str(int(slot.limit_value))),
                ("x-ratelimit-remaining-tokens", str(int(rem))),
                ("x-ratelimit-reset-tokens", _reset(slot, wall)),
            )
        return out

    # -- settlement ---------------------------------------------------------------------

    def settle(self, admission: Admission, usage: Usage | None, *, failed: bool) -> None:
        held = admission.token
        if not isinstance(held, _Held):
            return
        now = self.clock.monotonic()
        for slot, st, reserved in held.holds:
            if not slot.tokens:
                actual = 1.0
            elif failed:
                actual = 0.0
            elif usage is None:
                actual = reserved
            else:
                actual = cost(
                    slot.limit.coef, usage.input, usage.output, usage.cached_input, usage.reasoning
                )
            self.book.settle(st, reserved, actual, now)


def _reset(slot: _Slot, wall: float) -> str:
    """Time to the window's end as OpenAI writes it; whole seconds above one second
    (memoised: the text changes once a second)."""
    left = slot.end - wall
    if left < 1:
        return format_reset(left)
    whole = math.ceil(left)
    cached = slot.reset_cache
    if cached[0] != whole:
        cached = slot.reset_cache = (whole, format_reset(whole))
    return cached[1]
