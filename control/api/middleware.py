"""The one place control turns exceptions into HTTP responses, plus admin-token auth."""

from __future__ import annotations

import hmac
import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from common import jsonutil
from common.errors import Conflict, GatewayError, Unavailable, ValidationFailed
from control.store.base import StoreError

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=jsonutil.dumps(data), status=status, content_type="application/json")


def error_body(err: GatewayError) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message": str(err) if err.expose else "internal error",
        "type": err.type,
        "code": err.code,
        "param": err.param,
    }
    if isinstance(err, ValidationFailed):
        body["errors"] = [e.as_dict() for e in err.errors]
    if isinstance(err, Conflict) and err.current_revision is not None:
        body["current_revision"] = err.current_revision
    return {"error": body}


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as e:
        if not e.expose:
            log.error("%s %s failed: %s", request.method, request.path, type(e).__name__)
        return json_response(error_body(e), status=e.status)
    except StoreError as e:
        log.warning("%s %s: store unavailable: %s", request.method, request.path, e)
        return json_response(
            error_body(Unavailable("the configuration store is unavailable; retry shortly")),
            status=503,
        )
    except web.HTTPException as e:
        if e.status >= 400:
            code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
                e.status, "http_error"
            )
            body = {
                "error": {
                    "message": e.reason,
                    "type": "invalid_request_error",
                    "code": code,
                    "param": None,
                }
            }
            return json_response(body, status=e.status)
        raise
    except Exception:
        # never echo the exception: it may carry request data or secrets
        log.exception("unhandled error in %s %s", request.method, request.path)
        return json_response(
            {
                "error": {
                    "message": "internal error",
                    "type": "server_error",
                    "code": "internal_error",
                    "param": None,
                }
            },
            status=500,
        )


def auth_middleware(admin_token: str) -> Any:
    expected = f"Bearer {admin_token}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        given = request.headers.get("Authorization", "").encode()
        if not given:
            return json_response(
                {
                    "error": {
                        "message": "missing admin token: send Authorization: Bearer <token>",
                        "type": "authentication_error",
                        "code": "missing_token",
                        "param": None,
                    }
                },
                status=401,
            )
        if not hmac.compare_digest(given, expected):
            return json_response(
                {
                    "error": {
                        "message": "invalid admin token",
                        "type": "authentication_error",
                        "code": "invalid_token",
                        "param": None,
                    }
                },
                status=401,
            )
        return await handler(request)

    return check
