"""Thin handlers: parse → authenticate → route → proxy. OpenAI-compatible endpoints."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from common import jsonutil
from common.config import Consumer
from common.configsync.http import AGENT
from common.errors import BadRequest, Forbidden, NotFound, Unauthorized, Unavailable
from tier1.auth.jwt import looks_like_jwt
from tier1.auth.keys import authenticate, presented_key
from tier1.http.middleware import REQUEST_ID
from tier1.http.parse import parse
from tier1.keys import PROXY
from tier1.providers.anthropic_openai import count_tokens_estimate
from tier1.providers.base import Endpoint
from tier1.proxy import Context
from tier1.runtime import Tier1Runtime, model_allowed


class ModelNotFound(NotFound):
    code = "model_not_found"


def _runtime(request: web.Request) -> Tier1Runtime:
    runtime: Tier1Runtime | None = request.app[AGENT].runtime
    if runtime is None:
        raise Unavailable("the gateway has no configuration yet; retry shortly")
    return runtime


async def _consumer(request: web.Request, runtime: Tier1Runtime) -> Consumer:
    verifier = request.app[PROXY].jwt
    if verifier is not None:
        token = presented_key(request.headers)
        if token is not None and looks_like_jwt(token):
            name = await verifier.consumer_name(token, request.app[PROXY].session)
            consumer = runtime.consumers_by_name.get(name)
            if consumer is None:
                raise Unauthorized(f"the token names consumer {name!r}, which is not configured")
            return consumer
    return authenticate(runtime.consumers_by_key_hash, request.headers)


def proxied(endpoint: Endpoint) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        runtime = _runtime(request)
        consumer = await _consumer(request, runtime)
        raw = await request.read()
        parsed = parse(endpoint, raw, request.headers)
        route = runtime.route_for(parsed.model, request.host, request.headers)
        if route is None:
            raise ModelNotFound(f"model {parsed.model!r} is not served here", param="model")
        if not model_allowed(consumer, parsed.model):
            raise Forbidden(f"this API key may not use model {parsed.model!r}", param="model")
        ctx = Context(request[REQUEST_ID], consumer, route, parsed, started)
        return await request.app[PROXY].handle(request, ctx)

    return handler


async def models(request: web.Request) -> web.Response:
    runtime = _runtime(request)
    consumer = await _consumer(request, runtime)
    data = [
        {"id": m, "object": "model", "created": 0, "owned_by": "strata"}
        for m in runtime.listed_models(consumer)
    ]
    return web.Response(
        body=jsonutil.dumps({"object": "list", "data": data}), content_type="application/json"
    )


async def not_found(request: web.Request) -> web.Response:
    raise NotFound(f"unknown path {request.path}")


async def count_tokens(request: web.Request) -> web.Response:
    """Anthropic's count_tokens, answered locally with an estimate (~4 characters a token)."""
    runtime = _runtime(request)
    consumer = await _consumer(request, runtime)
    raw = await request.read()
    try:
        body = jsonutil.loads(raw)
    except ValueError:
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise BadRequest("`model` is required and must be a string", param="model")
    model = body["model"]
    if runtime.route_for(model, request.host, request.headers) is None:
        raise ModelNotFound(f"model {model!r} is not served here", param="model")
    if not model_allowed(consumer, model):
        raise Forbidden(f"this API key may not use model {model!r}", param="model")
    return web.Response(
        body=jsonutil.dumps({"input_tokens": count_tokens_estimate(body)}),
        content_type="application/json",
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", proxied("chat"))
    app.router.add_post("/v1/completions", proxied("completions"))
    app.router.add_post("/v1/embeddings", proxied("embeddings"))
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/messages", proxied("messages"))
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
