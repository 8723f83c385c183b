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
from common.quota.windows import format_reset
from tier1.providers.base import ParsedRequest, Usage
from tier1.quota import Admission
from tier1.ratelimit.client import QuotaClient
from tier1.ratelimit.metrics import QuotaMetrics
from tier1.ratelimit.policies import (
    CompiledLimit,
    CompiledPolicy,
    estimate_input_tokens,
    token_cost,
    window_of,
)
from tier1.runtime import Tier1Runtime

log = logging.getLogger(__name__)

NO_ADMISSION = Admission()


@dataclass(slots=True)
class _Item:
    policy: CompiledPolicy
    limit: CompiledLimit
    tokens: bool
    ask: Ask
    reset_at: float
    state: KeyState | None = None


@dataclass(frozen=True, slots=True)
class _Held:
    items: tuple[_Item, ...]


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
        self._seen_revision = -1

    def _refresh(self, rt: Tier1Runtime) -> None:
        """Follow the replica set of a newly applied snapshot."""
        self._seen_revision = rt.revision
        self.client.set_replicas(self.static_replicas or rt.ratelimit)

    # -- admission ----------------------------------------------------------------------

    async def admit(self, req: ParsedRequest, consumer: Consumer, route: str) -> Admission:
        rt = self.runtime()
        if rt is None or not rt.policies:
            return NO_ADMISSION
        if rt.revision != self._seen_revision:
            self._refresh(rt)
        items = self._items(rt, req, consumer, route)
        if not items:
            return NO_ADMISSION
        now = self.clock.monotonic()
        verdicts = self._check(items, now)
        if "sync" in verdicts:
            keys = [it.ask.key for it, v in zip(items, verdicts, strict=True) if v == "sync"]
            await self.client.sync_now(keys, self.sync_wait_s)
            now = self.clock.monotonic()
            verdicts = self._check(items, now)
        self._decide(items, verdicts)
        for it in items:
            assert it.state is not None
            self.book.reserve(it.state, it.ask.amount, now)
        return Admission(_Held(tuple(items)), self._headers(items))

    def _items(
        self, rt: Tier1Runtime, req: ParsedRequest, consumer: Consumer, route: str
    ) -> list[_Item]:
        names = rt.route_policies.get(route, ())
        if consumer.spec.rate_limit_policies:
            names = tuple(dict.fromkeys((*names, *consumer.spec.rate_limit_policies)))
        wall = self.clock.wall()
        items: list[_Item] = []
        est_in: int | None = None
        for name in names:
            pol = rt.policies.get(name)
            if pol is None or not pol.applies_to(req.model):
                continue
            desc = pol.descriptor(consumer, req.model, route, req.headers)
            if desc is None:
                continue
            for lim in pol.limits:
                w = window_of(lim, pol.timezone, wall)
                base = f"{pol.name}/{lim.index}/{desc}/{int(w.start)}"
                if lim.requests is not None:
                    ask = Ask(base + "/r", 1.0, lim.requests, w.end, lim.persist, pol.fail_closed)
                    items.append(_Item(pol, lim, False, ask, w.end))
                if lim.tokens is not None:
                    if est_in is None:
                        est_in = estimate_input_tokens(len(req.raw))
                    out = (
                        req.max_tokens
                        if req.max_tokens is not None
                        else pol.default_max_output_tokens
                    )
                    amount = token_cost(lim.weights, input=est_in, output=out)
                    ask = Ask(base + "/t", amount, lim.tokens, w.end, lim.persist, pol.fail_closed)
                    items.append(_Item(pol, lim, True, ask, w.end))
        return items

    def _check(self, items: list[_Item], now: float) -> list[str]:
        out: list[str] = []
        for it in items:
            if it.state is None:
                it.state = self.book.state(it.ask, self.client.owner(it.ask.key))
            out.append(self.book.check(it.state, it.ask.amount, now))
        return out

    def _decide(self, items: list[_Item], verdicts: list[str]) -> None:
        """Raise RateLimited if an enforced ask does not fit; count every decision."""
        failing: list[tuple[_Item, str]] = []
        local: list[_Item] = []
        for it, v in zip(items, verdicts, strict=True):
            if v == "ok":
                continue
            assert it.state is not None
            if v == "reject":
                failing.append((it, "rejected"))
            elif it.ask.fail_closed:
                failing.append((it, "fail_closed"))
            elif self.book.fallback_ok(it.state, it.ask.amount):
                local.append(it)
            else:
                failing.append((it, "rejected"))
        enforced = [(it, why) for it, why in failing if not it.policy.shadow]
        results: dict[str, str] = {}
        for it, why in failing:
            results[it.policy.name] = why if not it.policy.shadow else "shadow_rejected"
        for it in local:
            results.setdefault(it.policy.name, "fail_open")
        for it in items:
            results.setdefault(it.policy.name, "allowed")
        if enforced:
            for name, result in results.items():
                # nothing is admitted, so policies that would have allowed count nothing
                if result not in ("allowed", "fail_open"):
                    self.metrics.decision(name, result)
            it, why = enforced[0]
            raise self._rejection(it, why, items)
        for name, result in results.items():
            self.metrics.decision(name, result)

    def _rejection(self, it: _Item, why: str, items: list[_Item]) -> RateLimited:
        wall = self.clock.wall()
        if why == "fail_closed":
            return RateLimited(
                f"rate limit service unavailable and policy {it.policy.name!r} fails closed; "
                "retry shortly",
                retry_after_s=1.0,
                headers=dict(self._headers(items)),
            )
        st = it.state
        assert st is not None
        what = "tokens" if it.tokens else "requests"
        window = "month" if it.limit.window == "month" else f"{it.limit.window}s"
        # budget held by other processes may come back before the window ends
        retry = 1.0 if st.others > it.ask.amount else max(1.0, it.reset_at - wall)
        return RateLimited(
            f"rate limit exceeded: policy {it.policy.name!r} allows {int(it.ask.limit)} "
            f"{what} per {window}; this request needs {math.ceil(it.ask.amount)}, "
            f"retry in {math.ceil(retry)}s",
            retry_after_s=retry,
            headers=dict(self._headers(items)),
        )

    def _headers(self, items: list[_Item]) -> tuple[tuple[str, str], ...]:
        """x-ratelimit-* of the tightest requests limit and the tightest tokens limit."""
        wall = self.clock.wall()
        best: dict[bool, tuple[float, _Item]] = {}
        for it in items:
            if it.policy.shadow or it.state is None:
                continue
            rem = it.state.remaining()
            cur = best.get(it.tokens)
            if cur is None or rem < cur[0]:
                best[it.tokens] = (rem, it)
        out = []
        for tokens, (rem, it) in best.items():
            suffix = "tokens" if tokens else "requests"
            out += [
                (f"x-ratelimit-limit-{suffix}", str(int(it.ask.limit))),
                (f"x-ratelimit-remaining-{suffix}", str(int(rem))),
                (f"x-ratelimit-reset-{suffix}", format_reset(it.reset_at - wall)),
            ]
        return tuple(out)

    # -- settlement ---------------------------------------------------------------------

    def settle(self, admission: Admission, usage: Usage | None, *, failed: bool) -> None:
        held = admission.token
        if not isinstance(held, _Held):
            return
        now = self.clock.monotonic()
        for it in held.items:
            assert it.state is not None
            if not it.tokens:
                actual = 1.0
            elif failed:
                actual = 0.0
            elif usage is None:
                actual = it.ask.amount
            else:
                actual = token_cost(
                    it.limit.weights,
                    input=usage.input,
                    output=usage.output,
                    cached_input=usage.cached_input,
                    reasoning=usage.reasoning,
                )
            self.book.settle(it.state, it.ask.amount, actual, now)
