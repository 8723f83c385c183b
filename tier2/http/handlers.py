"""Thin handlers: parse the OpenAI request once, then admission → pick → stream-through.

tier2 serves the two generation endpoints of vLLM's OpenAI server; /v1/models lists
what the pool serves (its base model and LoRA adapters).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from common import jsonutil
from common.errors import Unavailable
from tier2.http.middleware import REQUEST_ID
from tier2.http.parse import Kind, parse_request
from tier2.keys import PROXY

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def inference(kind: Kind) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        req = parse_request(kind, await request.read(), request.headers)
        return await request.app[PROXY].handle(request, req, request[REQUEST_ID])

    return handler


async def models(request: web.Request) -> web.Response:
    runtime = request.app[PROXY].runtime
    if runtime is None:
        raise Unavailable("tier2 has no pool configuration yet; retry shortly")
    spec = runtime.pool.spec
    data = [
        {
            "id": name,
            "object": "model",
            "created": 0,
            "owned_by": f"strata-pool-{runtime.pool.name}",
        }
        for name in (spec.model, *spec.adapters)
    ]
    return web.Response(
        body=jsonutil.dumps({"object": "list", "data": data}), content_type="application/json"
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", inference("chat"))
    app.router.add_post("/v1/completions", inference("completions"))
    app.router.add_get("/v1/models", models)
