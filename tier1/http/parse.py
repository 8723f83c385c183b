"""Parse a client request once: JSON body, the few fields the gateway reads, and the
headers that may travel upstream. Errors name the field to fix (400)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from common.errors import BadRequest
from common.requestbody import json_object, model_of
from tier1.providers.base import Endpoint, ParsedRequest

# never forwarded: the client's credentials, hop-by-hop headers, what aiohttp sets
# itself, and our own internal headers (x-strata-*)
DROPPED_HEADERS = frozenset(
    {
        "authorization",
        "api-key",
        "x-api-key",
        "cookie",
        "host",
        "content-length",
        "content-type",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "accept-encoding",
        "accept",
        "openai-organization",
        "openai-project",
        "x-request-id",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
    }
)

REQUIRED = {
    "chat": "messages",
    "completions": "prompt",
    "embeddings": "input",
    "messages": "messages",
}


def forwardable(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        k: v
        for k, v in ((k.lower(), v) for k, v in headers.items())
        if k not in DROPPED_HEADERS and not k.startswith("x-strata-")
    }


def _positive_int(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest(f"`{name}` must be a positive integer", param=name)
    return value


def parse(endpoint: Endpoint, raw: bytes, headers: Mapping[str, str]) -> ParsedRequest:
    if not raw:
        raise BadRequest("the request body is empty; send a JSON object")
    body = json_object(raw)
    model = model_of(body)
    required = REQUIRED[endpoint]
    value = body.get(required)
    if value is None:
        raise BadRequest(f"`{required}` is required", param=required)
    if endpoint == "chat" and (not isinstance(value, list) or not value):
        raise BadRequest("`messages` must be a non-empty array", param="messages")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise BadRequest("`stream` must be true or false", param="stream")
    if endpoint == "embeddings" and stream:
        raise BadRequest("embeddings cannot be streamed", param="stream")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise BadRequest("`stream_options` must be an object", param="stream_options")
        iu = options.get("include_usage", False)
        if not isinstance(iu, bool):
            raise BadRequest(
                "`stream_options.include_usage` must be true or false",
                param="stream_options.include_usage",
            )
        include_usage = iu
    if endpoint == "messages":
        # Anthropic's Messages API: max_tokens is required and usage always comes back
        max_tokens = _positive_int(body, "max_tokens")
        if max_tokens is None:
            raise BadRequest("`max_tokens` is required", param="max_tokens")
        if not isinstance(value, list) or not value:
            raise BadRequest("`messages` must be a non-empty array", param="messages")
        return ParsedRequest(
            endpoint, raw, body, model, stream, True, max_tokens, forwardable(headers)
        )
    max_tokens = _positive_int(body, "max_completion_tokens") or _positive_int(body, "max_tokens")
    return ParsedRequest(
        endpoint, raw, body, model, stream, include_usage, max_tokens, forwardable(headers)
    )
