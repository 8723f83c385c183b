"""/healthz, /readyz and /metrics for a tier process, backed by its ConfigAgent."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client import generate_latest

from common import jsonutil
from common.configsync.agent import ConfigAgent

AGENT: web.AppKey[ConfigAgent[Any]] = web.AppKey("config_agent", ConfigAgent)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=jsonutil.dumps(data), status=status, content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    status, body = request.app[AGENT].readiness()
    return _json(body, status)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[AGENT].registry)
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


def add_config_routes(app: web.Application, agent: ConfigAgent[Any]) -> None:
    app[AGENT] = agent
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
