"""The one place tier2 turns exceptions into answers: OpenAI's error body, the right
status, `x-strata-overflow: 1` where it applies, the request id.

Shedding (429) and overflow (503) carry no Retry-After on purpose: tier1 reads it as
"skip this backend until then" for every request, while tier2's refusal depends on the
request's priority (a critical request would still be served a moment later)."""

from __future__ import annotations

import logging
import os

from aiohttp import web
from aiohttp.typedefs import Handler

from common import jsonutil
from common.errors import GatewayError
from tier2.admission import OVERFLOW_HEADER, Overflow
from tier2.keys import METRICS

log = logging.getLogger(__name__)

REQUEST_ID = web.RequestKey("request_id", str)
_INCOMING_IDS = ("x-strata-request-id", "x-request-id")
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def request_id_of(request: web.Request) -> str:
    for name in _INCOMING_IDS:
        given = request.headers.get(name)
        if given and len(given) <= 128 and given.isprintable() and " " not in given:
            return given
    return os.urandom(16).hex()


def error_response(
    status: int,
    message: str,
    type_: str,
    code: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return web.Response(
        body=jsonutil.dumps(body), status=status, content_type="application/json", headers=headers
    )


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request_id_of(request)
    request[REQUEST_ID] = request_id
    headers = {"x-request-id": request_id}
    try:
        response = await handler(request)
    except GatewayError as e:
        if isinstance(e, Overflow):
            headers[OVERFLOW_HEADER] = "1"
        message = str(e) if e.expose else "internal error"
        response = error_response(e.status, message, e.type, e.code, e.param, headers)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        message = f"unknown path {request.path}" if e.status == 404 else e.reason
        response = error_response(
            e.status,
            message,
            "invalid_request_error",
            _HTTP_CODES.get(e.status, "http_error"),
            headers=headers,
        )
    except Exception:
        log.exception(
            "unhandled error in %s %s (request %s)", request.method, request.path, request_id
        )
        response = error_response(
            500, "internal error", "server_error", "internal_error", headers=headers
        )
    if not response.prepared and "x-request-id" not in response.headers:
        response.headers["x-request-id"] = request_id
    if request.path.startswith("/v1/"):
        request.app[METRICS].requests.labels(str(response.status)).inc()
    return response
