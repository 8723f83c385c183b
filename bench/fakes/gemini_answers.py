"""The bodies a Gemini- or Vertex-dialect fake answers with (pure).

Errors are Google's ``{"error": {"code", "message", "status"}}``. ``generateContent``
answers a ``GenerateContentResponse``; ``streamGenerateContent`` one per text chunk
(``data: {...}`` then ``\\r\\n\\r\\n`` with ``alt=sse``, else the elements of one JSON
array), the last carrying ``finishReason`` and ``usageMetadata``. A scripted tool call
is a ``functionCall`` part; a scripted ``stream-exception`` (a status name) ends the
stream with an ``{"error": ...}`` element after the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from bench.fakes.turns import TOOL_INPUT, Stream, Turn

__all__ = [
    "STATUS_NAMES",
    "error",
    "error_message",
    "generate_body",
    "generate_stream",
    "scripted_error",
    "status_name",
]

STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_CODES = {name: code for code, name in STATUS_NAMES.items()}
_MESSAGES: dict[str, str] = {
    "INVALID_ARGUMENT": "Request contains an invalid argument.",
    "UNAUTHENTICATED": (
        "Request had invalid authentication credentials. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential."
    ),
    "PERMISSION_DENIED": "The caller does not have permission",
    "NOT_FOUND": "Requested entity was not found.",
    "ABORTED": "The operation was aborted.",
    "RESOURCE_EXHAUSTED": "Resource has been exhausted (e.g. check quota).",
    "CANCELLED": "The operation was cancelled.",
    "INTERNAL": "An internal error has occurred. Please retry or report the problem.",
    "NOT_IMPLEMENTED": "Method not implemented.",
    "UNAVAILABLE": "The model is overloaded. Please try again later.",
    "DEADLINE_EXCEEDED": "Deadline expired before operation could complete.",
}
_SSE_END = b"\r\n\r\n"


def status_name(code: int) -> str:
    found = STATUS_NAMES.get(code)
    if found is not None:
        return found
    return "INTERNAL" if code >= 500 else "FAILED_PRECONDITION"


def _error_obj(
    code: int, message: str, status: str, violations: Sequence[tuple[str, str]] = ()
) -> dict[str, Any]:
    out: dict[str, Any] = {"code": code, "message": message, "status": status}
    if violations:
        out["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": f, "description": d} for f, d in violations],
            }
        ]
    return {"error": out}


def error(
    code: int, message: str, status: str | None = None, violations: Sequence[tuple[str, str]] = ()
) -> bytes:
    """Google's error body; ``violations`` become ``google.rpc.BadRequest`` details."""
    return orjson.dumps(_error_obj(code, message, status or status_name(code), violations))


def error_message(status: str) -> str:
    """Google's usual message for a status name."""
    return _MESSAGES.get(status, status)


def scripted_error(code: int) -> bytes:
    name = status_name(code)
    return error(code, _MESSAGES.get(name, f"Request failed (HTTP {code})."), name)


def _finish(turn: Turn) -> str:
    return "MAX_TOKENS" if turn.cut else "STOP"


def _usage(turn: Turn) -> dict[str, int]:
    out = {
        "promptTokenCount": turn.input_tokens,
        "candidatesTokenCount": turn.output_tokens,
        "totalTokenCount": turn.total_tokens,
    }
    if turn.cached_tokens:
        out["cachedContentTokenCount"] = turn.cached_tokens
    if turn.reasoning_tokens:
        out["thoughtsTokenCount"] = turn.reasoning_tokens
    return out


def _call_part(turn: Turn) -> dict[str, Any]:
    return {"functionCall": {"name": turn.tool, "args": TOOL_INPUT}}


def _response(turn: Turn, id_: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    candidate = {"content": {"role": "model", "parts": parts}, "index": 0}
    return {"candidates": [candidate], "modelVersion": turn.model, "responseId": id_}


def _finished(obj: dict[str, Any], turn: Turn) -> dict[str, Any]:
    obj["candidates"][0]["finishReason"] = _finish(turn)
    obj["usageMetadata"] = _usage(turn)
    return obj


def generate_body(turn: Turn, id_: str) -> bytes:
    parts: list[dict[str, Any]] = []
    if turn.has_text:
        parts.append({"text": turn.text})
    if turn.tool is not None:
        parts.append(_call_part(turn))
    return orjson.dumps(_finished(_response(turn, id_, parts), turn))


def generate_stream(
    turn: Turn, id_: str, *, sse: bool = True, exception: str | None = None
) -> Stream:
    """One chunk per text piece (then the function call); ``exception`` ends it early."""
    chunks: list[dict[str, Any]] = [_response(turn, id_, [{"text": p}]) for p in turn.pieces]
    count = len(chunks)
    if exception is not None:
        code = _CODES.get(exception, 500)
        message = _MESSAGES.get(exception, f"Scripted {exception}.")
        chunks.append(_error_obj(code, message, exception))
    else:
        if turn.tool is not None:
            chunks.append(_response(turn, id_, [_call_part(turn)]))
        if not chunks:
            chunks.append(_response(turn, id_, [{"text": ""}]))
        _finished(chunks[-1], turn)
    raw = [orjson.dumps(c) for c in chunks]
    if sse:
        return Stream([b"data: " + r + _SSE_END for r in raw], 0, count)
    events = [(b"[" if i == 0 else b",\r\n") + r for i, r in enumerate(raw)]
    events[-1] += b"]"
    return Stream(events, 0, count)
