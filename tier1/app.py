"""build_app: the tier1 aiohttp application with its long-lived parts on AppKeys."""

from __future__ import annotations

import random
import sys
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

import aiohttp
from aiohttp import web

from common.clock import Clock, SystemClock
from common.configsync.agent import ConfigAgent
from common.quota.lease import LeaseBook
from tier1.accesslog import AccessLog, BufferedAccessLog, LoggingAccessLog, NoAccessLog
from tier1.auth.jwt import JwtVerifier
from tier1.http.handlers import add_routes
from tier1.http.middleware import errors
from tier1.keys import PROXY, SETTINGS
from tier1.metrics import Tier1Metrics
from tier1.proxy import Proxy
from tier1.quota import QuotaHook
from tier1.ratelimit.client import QuotaClient
from tier1.ratelimit.hook import GlobalQuota
from tier1.ratelimit.metrics import QuotaMetrics
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
    # built now, completed at startup: the app's state is fixed before it starts
    client: QuotaClient | None = None
    if quota is None:
        client = QuotaClient(
            LeaseBook(
                lease_s=settings.quota_lease_s,
                sync_interval_s=settings.quota_sync_interval_s,
                holders=settings.quota_holders,
            ),
            QuotaMetrics(agent.registry),
            clock=clock,
        )
        quota = GlobalQuota(
            lambda: agent.runtime,
            client,
            client.metrics,
            static_replicas=settings.ratelimit,
            clock=clock,
        )
    proxy = Proxy(
        None,
        Tier1Metrics(agent.registry),
        quota,
        clock or SystemClock(),
        health=BackendHealth(),
        rng=rng,
        log_bodies=settings.log_bodies,
        jwt=JwtVerifier(settings.jwt) if settings.jwt else None,
    )
    app[PROXY] = proxy

    async def access_log(app: web.Application) -> AsyncIterator[None]:
        sink, opened = _access_log(settings.access_log)
        proxy.access_log = sink
        await sink.start()
        yield
        await sink.close()
        if opened is not None:
            opened.close()

    async def upstream_session(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=settings.upstream_connections, ttl_dns_cache=60)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=True) as session:
            proxy.session = session
            yield

    async def quota_client(app: web.Application) -> AsyncIterator[None]:
        if client is None:
            yield
            return
        await client.start()
        yield
        await client.stop()

    app.cleanup_ctx.append(access_log)
    app.cleanup_ctx.append(quota_client)
    app.cleanup_ctx.append(upstream_session)
    add_routes(app)
    return app


def _access_log(where: str) -> tuple[AccessLog, BinaryIO | None]:
    if where == "logging":
        return LoggingAccessLog(), None
    if where == "off":
        return NoAccessLog(), None
    if where in ("stderr", "stdout"):
        return BufferedAccessLog(getattr(sys, where).buffer), None
    stream = open(where, "ab")
    return BufferedAccessLog(stream), stream
