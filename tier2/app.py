"""build_app: one tier2 replica — datalayer, admission, picker and proxy on AppKeys.

A replica serves one pool on one event loop, so its ledger sees every pick it makes.
Config arrives through the ConfigAgent (pushed by control); `PoolFollower` applies
each new runtime to discovery, the poller, admission and the picker within one tick,
while requests keep being served from the previous one.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from aiohttp import web

from common.clock import Clock, SystemClock
from common.config import Pool
from common.config.pool import Saturation
from common.configsync.agent import ConfigAgent
from common.tasks import cancel_and_wait, guarded_task
from tier2.admission import Admission
from tier2.datalayer import extract, mappings
from tier2.datalayer.discovery import Discovery, Resolver, system_resolver
from tier2.datalayer.sources import Fetch, MetricsPoller, Parse, http_fetch
from tier2.datalayer.store import EndpointStore
from tier2.datalayer.types import EndpointMetrics
from tier2.http.handlers import add_routes
from tier2.http.middleware import errors
from tier2.keys import METRICS, PROXY, SETTINGS
from tier2.metrics import Tier2Metrics
from tier2.picker import PoolPicker
from tier2.proxy import Picker, Proxy
from tier2.runtime import Tier2Runtime
from tier2.settings import Tier2Settings

log = logging.getLogger(__name__)

PickerFactory = Callable[[Pool, random.Random], Picker]
ParserFactory = Callable[[Pool], Parse]


def default_picker(pool: Pool, rng: random.Random) -> Picker:
    return PoolPicker(pool, rng)


def default_parser(pool: Pool) -> Parse:
    mapping = mappings.mapping_for(pool.spec.engine)

    def parse(text: str, scraped_at: float) -> EndpointMetrics:
        return extract.parse(text, mapping, scraped_at)

    return parse


def _unconfigured(text: str, scraped_at: float) -> EndpointMetrics:
    raise ValueError("no pool configuration yet")


class PoolFollower:
    """Applies each runtime the agent accepts to the long-lived parts of the replica."""

    def __init__(
        self,
        agent: ConfigAgent[Any],
        proxy: Proxy,
        discovery: Discovery,
        poller: MetricsPoller,
        *,
        picker_factory: PickerFactory,
        parser_factory: ParserFactory,
        rng: random.Random,
    ) -> None:
        self.agent = agent
        self.proxy = proxy
        self.discovery = discovery
        self.poller = poller
        self.picker_factory = picker_factory
        self.parser_factory = parser_factory
        self.rng = rng
        self._applied: Tier2Runtime | None = None
        self._picker: Picker | None = None

    async def sync(self) -> None:
        runtime = self.agent.runtime
        if runtime is None or runtime is self._applied:
            return
        assert isinstance(runtime, Tier2Runtime)
        self._applied, pool = runtime, runtime.pool
        spec = pool.spec
        self.poller.configure(parse=self.parser_factory(pool), interval_s=spec.scrape_interval_s)
        self.proxy.admission.configure(
            max_queue=spec.saturation.max_queue, timeout_s=spec.saturation.queue_timeout_s
        )
        if self._picker is None:
            self._picker = self.picker_factory(pool, self.rng)
        else:
            self._picker.configure(pool)  # its ledger and prefix index live on
        await self.discovery.configure(spec.endpoints)  # endpoints known before serving
        self.proxy.use(runtime, self._picker)
        log.info("serving pool %s at revision %d", pool.name, runtime.revision)

    async def run(self, tick_s: float) -> None:
        while True:
            try:
                await self.sync()
                self.proxy.refresh()  # every scrape reaches the ledger, traffic or not
                self.proxy.admission.poke()
            except Exception:
                log.exception("applying pool config failed; will retry")
            await asyncio.sleep(tick_s)


def build_app(
    agent: ConfigAgent[Any],
    settings: Tier2Settings | None = None,
    *,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    picker_factory: PickerFactory = default_picker,
    parser_factory: ParserFactory = default_parser,
    resolver: Resolver = system_resolver,
    fetch: Fetch | None = None,
) -> web.Application:
    settings = settings or Tier2Settings()
    clock = clock or SystemClock()
    rng = rng or random.Random()
    metrics = Tier2Metrics(agent.registry)
    store = EndpointStore()
    defaults = Saturation()
    admission = Admission(
        clock,
        lambda now: False,
        max_queue=defaults.max_queue,
        timeout_s=defaults.queue_timeout_s,
        metrics=metrics,
    )
    proxy = Proxy(None, store, admission, metrics, clock, settings)
    admission.saturated = proxy.saturated  # the picker's view, ledger included
    sessions: dict[str, aiohttp.ClientSession] = {}

    def scrape_session() -> aiohttp.ClientSession:
        return sessions["scrape"]

    poller = MetricsPoller(
        store,
        fetch or http_fetch(scrape_session, settings.scrape_timeout_s),
        _unconfigured,
        interval_s=0.1,
        clock=clock,
        rng=rng,
        jitter=settings.scrape_jitter,
        unhealthy_after=settings.unhealthy_after_failures,
        metrics=metrics,
    )

    def membership(endpoints: tuple[str, ...]) -> None:
        _, removed = store.set_ids(endpoints)
        poller.set_targets(endpoints)
        metrics.forget(removed)

    discovery = Discovery(membership, resolver=resolver)
    follower = PoolFollower(
        agent,
        proxy,
        discovery,
        poller,
        picker_factory=picker_factory,
        parser_factory=parser_factory,
        rng=rng,
    )
    metrics.watch_endpoints(store.snapshot, clock.monotonic)
    metrics.watch_picker(proxy.picker_stats)

    app = web.Application(middlewares=[errors], client_max_size=settings.max_body_bytes)
    app[PROXY], app[METRICS], app[SETTINGS] = proxy, metrics, settings

    async def pod_sessions(app: web.Application) -> AsyncIterator[None]:
        pods = aiohttp.TCPConnector(limit=settings.upstream_connections)
        scrapes = aiohttp.TCPConnector(limit=0, limit_per_host=2)
        async with (
            aiohttp.ClientSession(connector=pods) as session,
            aiohttp.ClientSession(connector=scrapes) as scraper,
        ):
            proxy.session, sessions["scrape"] = session, scraper
            yield
            proxy.pods.close()

    async def background(app: web.Application) -> AsyncIterator[None]:
        task = guarded_task(follower.run(settings.tick_s), "tier2 follow config")
        yield
        await cancel_and_wait(task)
        await discovery.close()
        await poller.close()

    app.cleanup_ctx.append(pod_sessions)
    app.cleanup_ctx.append(background)
    add_routes(app)
    return app
