"""The bodies an Anthropic-dialect fake answers with, as the Messages API shapes them (pure).

A ``message`` object for a whole answer; for ``stream: true`` the documented event
sequence ``message_start``, ``content_block_start``, ``ping``, ``content_block_delta``
(``text_delta``) per chunk, ``content_block_stop``, a ``tool_use`` block streamed as
``input_json_delta`` fragments when a tool call is scripted, ``message_delta`` (stop
reason, output tokens) and ``message_stop``. :func:`stream_events` gives the events as
``(type, data)`` pairs so Bedrock can wrap the same events in event-stream frames.
"""

from __future__ import annotations

from typing import Any

import orjson

from bench.fakes.turns import TOOL_INPUT, Stream, Turn, tool_fragments

__all__ = [
    "ERROR_TYPES",
    "count_tokens_body",
    "error",
    "error_event",
    "message",
    "scripted_error",
    "sse",
    "stream",
    "stream_events",
    "usage",
]

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_MESSAGES: dict[str, str] = {
    "invalid_request_error": "Scripted bad request.",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "The requested resource could not be found.",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit.",
    "api_error": "Internal server error",
    "timeout_error": "Request timed out",
    "overloaded_error": "Overloaded",
}


def error(type_: str, message: str) -> bytes:
    """Anthropic's error body: ``{"type": "error", "error": {"type", "message"}}``."""
    return orjson.dumps({"type": "error", "error": {"type": type_, "message": message}})


def error_type(status: int) -> str:
    found = ERROR_TYPES.get(status)
    if found is not None:
        return found
    return "api_error" if status >= 500 else "invalid_request_error"


def scripted_error(status: int) -> bytes:
    """The body of a scripted error status."""
    type_ = error_type(status)
    return error(type_, _MESSAGES[type_])


def usage(turn: Turn) -> dict[str, Any]:
    return {
        "input_tokens": turn.input_tokens,
        "output_tokens": turn.output_tokens,
        "cache_creation_input_tokens": turn.cache_creation_tokens,
        "cache_read_input_tokens": turn.cached_tokens,
    }


def stop_reason(turn: Turn) -> str:
    if turn.cut:
        return "max_tokens"
    return "tool_use" if turn.tool is not None else "end_turn"


def _tool_id(id_: str) -> str:
    return "toolu_" + id_.removeprefix("msg_")


def message(turn: Turn, id_: str) -> dict[str, Any]:
    """A ``message`` object (``POST /v1/messages`` without ``stream``)."""
    content: list[dict[str, Any]] = []
    if turn.has_text:
        content.append({"type": "text", "text": turn.text})
    if turn.tool is not None:
        content.append(
            {"type": "tool_use", "id": _tool_id(id_), "name": turn.tool, "input": TOOL_INPUT}
        )
    return {
        "id": id_,
        "type": "message",
        "role": "assistant",
        "model": turn.model,
        "content": content,
        "stop_reason": stop_reason(turn),
        "stop_sequence": None,
        "usage": usage(turn),
    }


def count_tokens_body(input_tokens: int) -> bytes:
    return orjson.dumps({"input_tokens": input_tokens})


def stream_events(turn: Turn, id_: str) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """The events of a streamed answer, and how many come before the first text delta."""
    start = message(turn, id_)
    start.update(content=[], stop_reason=None)
    start["usage"] = {**start["usage"], "output_tokens": 1}
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    index = 0
    if turn.has_text:
        block = {"type": "text", "text": ""}
        events.append(_block_start(index, block))
        events.append(("ping", {"type": "ping"}))
        head = len(events)
        events.extend(_delta(index, {"type": "text_delta", "text": p}) for p in turn.pieces)
        events.append(_block_stop(index))
        index += 1
    else:
        events.append(("ping", {"type": "ping"}))
        head = len(events)
    if turn.tool is not None:
        tool_block: dict[str, Any] = {
            "type": "tool_use",
            "id": _tool_id(id_),
            "name": turn.tool,
            "input": {},
        }
        events.append(_block_start(index, tool_block))
        events.extend(
            _delta(index, {"type": "input_json_delta", "partial_json": f}) for f in tool_fragments()
        )
        events.append(_block_stop(index))
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason(turn), "stop_sequence": None},
        "usage": {"output_tokens": turn.output_tokens},
    }
    events.append(("message_delta", delta))
    events.append(("message_stop", {"type": "message_stop"}))
    return events, head


def _block_start(index: int, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    data = {"type": "content_block_start", "index": index, "content_block": block}
    return "content_block_start", data


def _delta(index: int, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}


def _block_stop(index: int) -> tuple[str, dict[str, Any]]:
    return "content_block_stop", {"type": "content_block_stop", "index": index}


def error_event(type_: str) -> tuple[str, dict[str, Any]]:
    """The ``error`` event a stream that fails mid-way ends with."""
    message_ = _MESSAGES.get(type_, f"Scripted {type_}.")
    return "error", {"type": "error", "error": {"type": type_, "message": message_}}


def sse(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def stream(turn: Turn, id_: str, exception: str | None = None) -> Stream:
    """The SSE body of a streamed answer; ``exception``: end with that error after the text."""
    events, head = stream_events(turn, id_)
    chunks = len(turn.pieces) if turn.has_text else 0
    if exception is not None:
        events = [*events[: head + chunks], error_event(exception)]
    return Stream([sse(name, data) for name, data in events], head, chunks)
