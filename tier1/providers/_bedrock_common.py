"""Shared by every Bedrock translator: stop reasons, token usage, errors.

Errors (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html#API_runtime_Converse_Errors)
follow AWS's REST-JSON protocol: the kind is in the `x-amzn-errortype` header, whose value
may carry a `:<namespace>` suffix (`ThrottlingException:http://internal.amazon.com/...`),
and the body is `{"message": "..."}`. Inside a ConverseStream an exception is an event with
`:message-type: exception` and `:exception-type: throttlingException` (the lowerCamel member
name of ConverseStreamOutput). Both spellings normalise to the PascalCase shape name here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from common import jsonutil
from tier1.providers._openai_common import error_body
from tier1.providers.base import Usage

# https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseResponse.html
FINISH_REASONS: Final[Mapping[str, str]] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
"""Bedrock stopReason → OpenAI finish_reason; anything else (malformed_model_output,
malformed_tool_use, a reason added later) is reported as "stop"."""

ERROR_TYPES: Final[Mapping[str, str]] = {
    "ValidationException": "invalid_request_error",
    "ResourceNotFoundException": "invalid_request_error",
    "ThrottlingException": "rate_limit_error",
    "ServiceQuotaExceededException": "rate_limit_error",
    "ModelNotReadyException": "rate_limit_error",  # HTTP 429; the AWS SDKs retry it
    "ModelTimeoutException": "api_error",  # 408
    "ModelErrorException": "api_error",  # 424
    "ModelStreamErrorException": "api_error",  # 424, inside a stream
    "InternalServerException": "api_error",  # 500
    "ServiceUnavailableException": "api_error",  # 503
}
"""Bedrock error shape → OpenAI error `type`. The shape name itself becomes `code`."""

CREDENTIAL_ERRORS: Final[frozenset[str]] = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "ExpiredTokenException",
    }
)
"""Errors about *our* AWS credentials: the client gets a generic 502, never AWS's text
(it may name the account, role or key id)."""

AUTH_FAILED_MESSAGE: Final = "the upstream rejected the gateway's credentials"


def finish_reason(stop_reason: object) -> str:
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def _count(obj: Mapping[str, Any], name: str) -> int:
    value = obj.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from(obj: object) -> tuple[Usage, dict[str, Any]] | None:
    """Bedrock TokenUsage → (our Usage, the OpenAI `usage` object), or None.

    Bedrock's `inputTokens` excludes prompt-cache reads and writes, so the OpenAI
    `prompt_tokens` is their sum; cache reads are `prompt_tokens_details.cached_tokens`.
    """
    if not isinstance(obj, Mapping) or not isinstance(obj.get("inputTokens"), int):
        return None
    read = _count(obj, "cacheReadInputTokens")
    prompt = _count(obj, "inputTokens") + read + _count(obj, "cacheWriteInputTokens")
    completion = _count(obj, "outputTokens")
    openai: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if "cacheReadInputTokens" in obj or "cacheWriteInputTokens" in obj:
        openai["prompt_tokens_details"] = {"cached_tokens": read}
    return Usage(input=prompt, cached_input=read, output=completion), openai


def error_kind(value: object) -> str | None:
    """`x-amzn-errortype`, `__type` or `:exception-type` → the error shape name."""
    if not isinstance(value, str):
        return None
    kind = value.split(":", 1)[0].rsplit("#", 1)[-1].strip()
    return kind[:1].upper() + kind[1:] if kind else None


def error_type(kind: str | None, status: int) -> str:
    if kind is not None and kind in ERROR_TYPES:
        return ERROR_TYPES[kind]
    if status == 429:
        return "rate_limit_error"
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def _message(obj: object) -> str | None:
    if not isinstance(obj, Mapping):
        return None
    message = obj.get("message", obj.get("Message"))
    return message if isinstance(message, str) and message else None


def error_with_type(status: int, body: bytes, amzn_error_type: str | None) -> tuple[int, bytes]:
    """A Bedrock error answer → (status, OpenAI error body).

    The status is kept, except that any credential error becomes a 502 with a generic
    message. `type` comes from the error kind (header first, then a `__type` body field,
    then the status); `code` is the kind itself, or "upstream_error" when unknown.
    """
    try:
        obj: object = jsonutil.loads(body) if body else None
    except ValueError:
        obj = None
    kind = error_kind(amzn_error_type)
    if kind is None and isinstance(obj, Mapping):
        kind = error_kind(obj.get("__type"))
    if status in (401, 403) or kind in CREDENTIAL_ERRORS:
        return 502, error_body(AUTH_FAILED_MESSAGE, "api_error", "upstream_auth_failed")
    message = _message(obj) or f"upstream answered HTTP {status}"
    return status, error_body(message, error_type(kind, status), kind or "upstream_error")


def stream_error(exception_type: str | None, message: str | None) -> bytes:
    """An exception inside a ConverseStream → the OpenAI error body to send as SSE data
    (the stream has already answered 200, so the status cannot change)."""
    kind = error_kind(exception_type)
    if kind in CREDENTIAL_ERRORS:
        return error_body(AUTH_FAILED_MESSAGE, "api_error", "upstream_auth_failed")
    return error_body(
        message or "the upstream failed while streaming",
        error_type(kind, 500),
        kind or "upstream_error",
    )


def message_of(payload: bytes) -> str | None:
    """The `message` of a Bedrock error body or exception event payload."""
    try:
        return _message(jsonutil.loads(payload)) if payload else None
    except ValueError:
        return None
