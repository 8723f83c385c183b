"""MetricsPoller: one asyncio task per endpoint scraping its Prometheus `/metrics`.

Each task scrapes at once when the endpoint appears, then every scrape interval with
jitter (so a pool is not scraped in lockstep) and a per-scrape timeout (a slow pod only
delays its own data: GIE's serial refresh lesson). Parsing is the pure
`tier2.datalayer.extract`, handed in as a function bound to the engine's mapping.

A failed scrape (unreachable, timeout, bad status, unparsable) is recorded in
`EndpointState.last_error`/`consecutive_failures`, apart from metrics the pod simply
does not expose (None fields). The last good metrics stay with their own timestamp, so
staleness is visible; after `unhealthy_after` failures in a row the endpoint is marked
unhealthy and the next good scrape brings it back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable, Iterable

import aiohttp

from common.clock import Clock
from common.tasks import cancel_and_wait, guarded_task
from tier2.datalayer.store import EndpointStore
from tier2.datalayer.types import EndpointMetrics, EndpointState
from tier2.metrics import Tier2Metrics

log = logging.getLogger(__name__)

Fetch = Callable[[str], Awaitable[str]]
"""Endpoint id (`host:port`) -> exposition text; raises ScrapeFailed."""
Parse = Callable[[str, float], EndpointMetrics]
"""(exposition text, scraped_at) -> metrics; raises ValueError on garbage."""
Sleep = Callable[[float], Awaitable[None]]


class ScrapeFailed(Exception):
    """The endpoint did not hand over its metrics; the text says why."""


def http_fetch(session: Callable[[], aiohttp.ClientSession], timeout_s: float) -> Fetch:
    """GET http://<endpoint>/metrics with a total timeout."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def fetch(endpoint: str) -> str:
        try:
            async with session().get(f"http://{endpoint}/metrics", timeout=timeout) as resp:
                if resp.status != 200:
                    raise ScrapeFailed(f"HTTP {resp.status}")
                body = await resp.read()
        except TimeoutError:
            raise ScrapeFailed(f"no answer within {timeout_s:g}s") from None
        except aiohttp.ClientError as e:
            raise ScrapeFailed(f"{type(e).__name__}: {e}") from None
        return body.decode("utf-8", errors="replace")

    return fetch


class MetricsPoller:
    def __init__(
        self,
        store: EndpointStore,
        fetch: Fetch,
        parse: Parse,
        *,
        interval_s: float,
        clock: Clock,
        rng: random.Random | None = None,
        jitter: float = 0.1,
        unhealthy_after: int = 2,
        metrics: Tier2Metrics | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.store = store
        self.fetch = fetch
        self.parse = parse
        self.interval_s = interval_s
        self.clock = clock
        self.rng = rng or random.Random()
        self.jitter = jitter
        self.unhealthy_after = unhealthy_after
        self.metrics = metrics
        self._sleep = sleep
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def targets(self) -> frozenset[str]:
        return frozenset(self._tasks)

    def configure(self, *, parse: Parse, interval_s: float) -> None:
        """A new engine mapping or interval; running loops pick it up on their next turn."""
        self.parse, self.interval_s = parse, interval_s

    def set_targets(self, endpoints: Iterable[str]) -> None:
        """Scrape exactly these endpoints: start loops for new ones, stop the others."""
        wanted = set(endpoints)
        for endpoint in set(self._tasks) - wanted:
            self._tasks.pop(endpoint).cancel()
        for endpoint in wanted - set(self._tasks):
            self._tasks[endpoint] = guarded_task(self._run(endpoint), f"scrape {endpoint}")

    async def close(self) -> None:
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            await cancel_and_wait(task)

    async def _run(self, endpoint: str) -> None:
        while True:
            started = self.clock.monotonic()
            await self.scrape(endpoint)
            spread = self.rng.uniform(1.0 - self.jitter, 1.0 + self.jitter)
            elapsed = self.clock.monotonic() - started
            await self._sleep(max(0.0, self.interval_s * spread - elapsed))

    async def scrape(self, endpoint: str) -> EndpointState | None:
        """One scrape, recorded in the store; None if the endpoint left meanwhile."""
        error: str | None = None
        fresh: EndpointMetrics | None = None
        try:
            text = await self.fetch(endpoint)
            fresh = self.parse(text, self.clock.monotonic())
        except ScrapeFailed as e:
            error = str(e) or "scrape failed"
        except ValueError as e:
            error = f"unparsable metrics: {e}"
        previous = self.store.get(endpoint)
        if previous is None:
            return None
        now = self.clock.monotonic()
        if fresh is not None:
            state = dataclasses.replace(
                previous,
                metrics=fresh,
                last_attempt_at=now,
                last_error=None,
                consecutive_failures=0,
                healthy=True,
            )
        else:
            failures = previous.consecutive_failures + 1
            if previous.last_error != error:  # log changes, not every 100 ms repeat
                log.warning("scrape of %s failed: %s", endpoint, error)
            if self.metrics is not None:
                self.metrics.scrape_errors.labels(endpoint).inc()
            state = dataclasses.replace(
                previous,
                last_attempt_at=now,
                last_error=error,
                consecutive_failures=failures,
                healthy=previous.healthy and failures < self.unhealthy_after,
            )
        self.store.put(state)
        return state
