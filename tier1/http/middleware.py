"""The one place tier1 turns exceptions into answers: OpenAI's error body, the right
status, Retry-After where it applies, and the request id on every response."""

from __future__ import annotations

import logging
import math

from aiohttp import web
from aiohttp.typedefs import Handler

from common import jsonutil
from common.errors import GatewayError, RateLimited
from tier1.keys import SETTINGS
from tier1.proxy import AllAttemptsFailed, new_request_id

log = logging.getLogger(__name__)

REQUEST_ID = web.RequestKey("request_id", str)
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


# https://docs.anthropic.com/en/api/errors: error types by HTTP status
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def anthropic_error_body(status: int, message: str) -> bytes:
    kind = ANTHROPIC_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
    return jsonutil.dumps({"type": "error", "error": {"type": kind, "message": message}})


def is_anthropic(request: web.Request) -> bool:
    """Errors on the Anthropic Messages endpoints are rendered in Anthropic's shape."""
    return request.path.startswith("/v1/messages")


def error_response(
    status: int,
    message: str,
    type_: str,
    code: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    *,
    anthropic: bool = False,
) -> web.Response:
    if body is None and anthropic:
        body = anthropic_error_body(status, message)
    payload = body or jsonutil.dumps(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}
    )
    return web.Response(
        body=payload, status=status, content_type="application/json", headers=headers
    )


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = new_request_id(request.headers.get("x-request-id"))
    request[REQUEST_ID] = request_id
    headers = {"x-request-id": request_id}
    try:
        response = await handler(request)
    except GatewayError as e:
        retry_after = getattr(e, "retry_after_s", None)
        if isinstance(e, RateLimited | AllAttemptsFailed) and retry_after is not None:
            headers["retry-after"] = str(max(1, math.ceil(retry_after)))
        if isinstance(e, RateLimited):
            headers.update(e.headers)
        message = str(e) if e.expose else "internal error"
        body = e.body if isinstance(e, AllAttemptsFailed) else None
        return error_response(
            e.status,
            message,
            e.type,
            e.code,
            e.param,
            headers,
            body,
            anthropic=is_anthropic(request),
        )
    except web.HTTPException as e:
        if e.status < 400:
            raise
        if e.status == 413:
            message = (
                f"request body too large: the limit is {request.app[SETTINGS].max_body_bytes} bytes"
            )
        elif e.status == 404:
            message = f"unknown path {request.path}"
        else:
            message = e.reason
        return error_response(
            e.status,
            message,
            "invalid_request_error",
            _HTTP_CODES.get(e.status, "http_error"),
            headers=headers,
            anthropic=is_anthropic(request),
        )
    except Exception:
        log.exception(
            "unhandled error in %s %s (request %s)", request.method, request.path, request_id
        )
        return error_response(
            500,
            "internal error",
            "server_error",
            "internal_error",
            headers=headers,
            anthropic=is_anthropic(request),
        )
    if "x-request-id" not in response.headers and not response.prepared:
        response.headers["x-request-id"] = request_id
    return response
