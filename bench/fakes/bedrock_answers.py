"""The bodies a Bedrock-dialect fake answers with (pure).

Errors follow AWS's REST-JSON protocol: ``{"message": ...}`` with the error type in the
``x-amzn-errortype`` header. Converse answers ``{output: {message}, stopReason, usage,
metrics}``; ConverseStream and InvokeModelWithResponseStream answer event-stream
frames (:mod:`bench.fakes.eventstream`): Converse's ``messageStart``,
``contentBlockDelta``..., ``messageStop``, ``metadata``; InvokeModel's ``chunk`` events,
each carrying one Anthropic streaming event as base64 ``bytes``. A scripted
``stream-exception`` ends the stream with an ``exception`` frame after the text.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from bench.fakes import anthropic_answers, eventstream
from bench.fakes.turns import TOOL_INPUT, Stream, Turn, tool_fragments

__all__ = [
    "ERROR_STATUS",
    "converse_body",
    "converse_stream",
    "error",
    "error_type",
    "exception_type",
    "invoke_stream",
    "scripted_error",
]

ERROR_STATUS: dict[str, int] = {
    "ValidationException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "ThrottlingException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}
_BY_STATUS = {status: name for name, status in ERROR_STATUS.items()}
_MESSAGES: dict[str, str] = {
    "ValidationException": "Malformed input request, please reformat your input and try again.",
    "AccessDeniedException": "You don't have access to the model with the specified model ID.",
    "ResourceNotFoundException": (
        "Could not resolve the foundation model from the provided model identifier."
    ),
    "ModelTimeoutException": (
        "Model has timed out in processing the request. Try your request again."
    ),
    "ModelErrorException": "The system encountered an unexpected error during processing.",
    "ThrottlingException": "Too many requests, please wait before trying again.",
    "InternalServerException": "The server encountered an internal error.",
    "ServiceUnavailableException": "Bedrock is unable to process your request.",
    "ModelStreamErrorException": "The model stream errored.",
}


def error(type_: str, message: str) -> tuple[bytes, dict[str, str]]:
    """An AWS REST-JSON error: the body and the ``x-amzn-errortype`` header."""
    return orjson.dumps({"message": message}), {"x-amzn-errortype": type_}


def error_type(status: int) -> str:
    found = _BY_STATUS.get(status)
    if found is not None:
        return found
    return "InternalServerException" if status >= 500 else "ValidationException"


def scripted_error(status: int) -> tuple[bytes, dict[str, str]]:
    type_ = error_type(status)
    return error(type_, _MESSAGES[type_])


def exception_type(name: str) -> str:
    """The event-stream member name for a scripted exception (``throttlingException``)."""
    return name[:1].lower() + name[1:]


def _exception_frame(name: str) -> bytes:
    member = exception_type(name)
    pascal = member[:1].upper() + member[1:]
    return eventstream.exception(member, _MESSAGES.get(pascal, f"Scripted {pascal}."))


def _stop_reason(turn: Turn) -> str:
    if turn.cut:
        return "max_tokens"
    return "tool_use" if turn.tool is not None else "end_turn"


def _tool_use_id(id_: str) -> str:
    return "tooluse_" + id_


def _usage(turn: Turn) -> dict[str, int]:
    out = {
        "inputTokens": turn.input_tokens,
        "outputTokens": turn.output_tokens,
        "totalTokens": turn.total_tokens,
    }
    if turn.cached_tokens:
        out["cacheReadInputTokens"] = turn.cached_tokens
    if turn.cache_creation_tokens:
        out["cacheWriteInputTokens"] = turn.cache_creation_tokens
    return out


def converse_body(turn: Turn, id_: str, latency_ms: int) -> bytes:
    content: list[dict[str, Any]] = []
    if turn.has_text:
        content.append({"text": turn.text})
    if turn.tool is not None:
        tool_use = {"toolUseId": _tool_use_id(id_), "name": turn.tool, "input": TOOL_INPUT}
        content.append({"toolUse": tool_use})
    return orjson.dumps(
        {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": _stop_reason(turn),
            "usage": _usage(turn),
            "metrics": {"latencyMs": latency_ms},
        }
    )


def converse_stream(turn: Turn, id_: str, latency_ms: int, exception: str | None = None) -> Stream:
    frames = [eventstream.event("messageStart", {"role": "assistant"})]
    head = len(frames)
    index = 0
    chunks = 0
    if turn.has_text:
        for piece in turn.pieces:
            delta = {"contentBlockIndex": index, "delta": {"text": piece}}
            frames.append(eventstream.event("contentBlockDelta", delta))
        chunks = len(turn.pieces)
        if exception is not None:
            return Stream([*frames, _exception_frame(exception)], head, chunks)
        frames.append(eventstream.event("contentBlockStop", {"contentBlockIndex": index}))
        index += 1
    elif exception is not None:
        return Stream([*frames, _exception_frame(exception)], head, chunks)
    if turn.tool is not None:
        start = {"toolUse": {"toolUseId": _tool_use_id(id_), "name": turn.tool}}
        frames.append(
            eventstream.event("contentBlockStart", {"contentBlockIndex": index, "start": start})
        )
        for fragment in tool_fragments():
            delta = {"contentBlockIndex": index, "delta": {"toolUse": {"input": fragment}}}
            frames.append(eventstream.event("contentBlockDelta", delta))
        frames.append(eventstream.event("contentBlockStop", {"contentBlockIndex": index}))
    frames.append(eventstream.event("messageStop", {"stopReason": _stop_reason(turn)}))
    metadata = {"usage": _usage(turn), "metrics": {"latencyMs": latency_ms}}
    frames.append(eventstream.event("metadata", metadata))
    return Stream(frames, head, chunks)


def invoke_stream(turn: Turn, id_: str, latency_ms: int, exception: str | None = None) -> Stream:
    """InvokeModelWithResponseStream for an Anthropic model: its events as ``chunk``s."""
    events, head = anthropic_answers.stream_events(turn, id_)
    chunks = len(turn.pieces) if turn.has_text else 0
    if exception is not None:
        events = events[: head + chunks]
    else:
        name, last = events[-1]
        metrics = {
            "inputTokenCount": turn.input_tokens,
            "outputTokenCount": turn.output_tokens,
            "invocationLatency": latency_ms,
            "firstByteLatency": latency_ms,
        }
        events[-1] = (name, {**last, "amazon-bedrock-invocationMetrics": metrics})
    frames = [
        eventstream.event("chunk", {"bytes": base64.b64encode(orjson.dumps(data)).decode()})
        for _, data in events
    ]
    if exception is not None:
        frames.append(_exception_frame(exception))
    return Stream(frames, head, chunks)
