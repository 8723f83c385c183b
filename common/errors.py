"""The error tree every Strata process raises and renders.

    GatewayError                    status 500, never shown to clients
    ├── BadRequest                  400, shown
    │   └── ValidationFailed        422, shown, carries field paths
    ├── Unauthorized                401, shown
    ├── Forbidden                   403, shown
    ├── NotFound                    404, shown
    ├── Conflict                    409, shown, carries the current revision
    ├── PayloadTooLarge             413, shown
    ├── RateLimited                 429, shown, carries retry_after_s
    ├── UpstreamError               502 (or the provider's status), retryable flag
    ├── Unavailable                 503, shown
    └── ConfigError                 a config that cannot be compiled or applied

Each class says its HTTP status, its error `code`, and whether `str(err)` is safe to
show a client (`expose`). Exceptions become HTTP responses in exactly one middleware per
service; that middleware hides the text of any error whose `expose` is False.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar


class GatewayError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    type: ClassVar[str] = "server_error"
    expose: ClassVar[bool] = False

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class BadRequest(GatewayError):
    status = 400
    code = "invalid_request"
    type = "invalid_request_error"
    expose = True


@dataclass(frozen=True, slots=True)
class FieldError:
    """One validation problem: where (dotted path) and what to fix."""

    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class ValidationFailed(BadRequest):
    status = 422
    code = "validation_failed"

    def __init__(self, message: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(message, param=errors[0].path if errors else None)
        self.errors = tuple(errors)

    def __str__(self) -> str:
        if not self.errors:
            return self.message
        details = "; ".join(f"{e.path}: {e.message}" for e in self.errors)
        return f"{self.message}: {details}"


class Unauthorized(GatewayError):
    status = 401
    code = "invalid_api_key"
    type = "authentication_error"
    expose = True


class Forbidden(GatewayError):
    status = 403
    code = "forbidden"
    type = "permission_error"
    expose = True


class NotFound(GatewayError):
    status = 404
    code = "not_found"
    type = "invalid_request_error"
    expose = True


class Conflict(GatewayError):
    status = 409
    code = "conflict"
    type = "invalid_request_error"
    expose = True

    def __init__(self, message: str, *, current_revision: int | None = None) -> None:
        super().__init__(message)
        self.current_revision = current_revision


class PayloadTooLarge(GatewayError):
    status = 413
    code = "payload_too_large"
    type = "invalid_request_error"
    expose = True


class RateLimited(GatewayError):
    status = 429
    code = "rate_limit_exceeded"
    type = "rate_limit_error"
    expose = True

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.headers = headers or {}
        """Extra response headers (x-ratelimit-*)."""


class UpstreamError(GatewayError):
    status = 502
    code = "upstream_error"
    type = "api_error"
    expose = True

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Unavailable(GatewayError):
    status = 503
    code = "unavailable"
    type = "api_error"
    expose = True


class ConfigError(GatewayError):
    """A configuration that cannot be compiled or applied; the text names what to fix."""

    status = 422
    code = "invalid_config"
    type = "invalid_request_error"
    expose = True
