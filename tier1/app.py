"""build_app: the tier1 aiohttp application with its long-lived parts on AppKeys."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from common.clock import Clock, SystemClock
from common.configsync.agent import ConfigAgent
from tier1.http.handlers import add_routes
from tier1.http.middleware import errors
from tier1.keys import PROXY, SETTINGS
from tier1.metrics import Tier1Metrics
from tier1.proxy import Proxy
from tier1.quota import NoQuota, QuotaHook
from tier1.routing.health import BackendHealth
from tier1.settings import Tier1Settings


def build_app(
    agent: ConfigAgent[Any],
    settings: Tier1Settings | None = None,
    *,
    quota: QuotaHook | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> web.Application:
    settings = settings or Tier1Settings()
    app = web.Application(middlewares=[errors], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    metrics = Tier1Metrics(agent.registry)
    health = BackendHealth()

    async def upstream_session(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(
            limit=settings.upstream_connections, ttl_dns_cache=60, enable_cleanup_closed=True
        )
        async with aiohttp.ClientSession(connector=connector, auto_decompress=True) as session:
            app[PROXY] = Proxy(
                session,
                metrics,
                quota or NoQuota(),
                clock or SystemClock(),
                health=health,
                rng=rng,
                log_bodies=settings.log_bodies,
            )
            yield

    app.cleanup_ctx.append(upstream_session)
    add_routes(app)
    return app
