"""The quota hook: where global rate limits and token budgets plug in.

tier1 calls `admit` before any upstream call (it may raise RateLimited) and `settle`
once the request ends, with the usage the upstream reported (None if it failed). The
default allows everything; the rate-limit issue provides the real one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from common.config import Consumer
from tier1.providers.base import ParsedRequest, Usage


@dataclass(frozen=True, slots=True)
class Admission:
    """What was reserved for one request; handed back to `settle`."""

    token: object = None
    headers: tuple[tuple[str, str], ...] = ()
    """Headers for the client (x-ratelimit-*)."""


class QuotaHook(Protocol):
    async def admit(self, req: ParsedRequest, consumer: Consumer, route: str) -> Admission: ...

    def settle(self, admission: Admission, usage: Usage | None, *, failed: bool) -> None: ...


class NoQuota:
    async def admit(self, req: ParsedRequest, consumer: Consumer, route: str) -> Admission:
        return Admission()

    def settle(self, admission: Admission, usage: Usage | None, *, failed: bool) -> None:
        return None
