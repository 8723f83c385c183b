"""The bodies a fake upstream answers with, shaped as OpenAI's API does (pure; bytes out).

Hot path: a non-streamed answer or a whole SSE stream depends, beside the per-request
``id``, ``created`` and ``usage``, only on a :class:`Generation` (model, token count,
choices, finish reason). Each is encoded once into :class:`Template` s with slots for the
three per-request values and cached, so serving a request is a few ``bytes.join`` calls.
"""

from __future__ import annotations

import array
import base64
import math
import re
import sys
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import orjson

__all__ = [
    "DONE",
    "TOOL_ARGUMENTS",
    "Generation",
    "Template",
    "azure_error",
    "completion_body",
    "completion_events",
    "embedding_body",
    "embedding_vector",
    "fake_error",
    "model_list",
    "model_object",
    "openai_error",
    "pieces",
    "scripted_error",
    "scripted_error_body",
    "sse_events",
    "stall_index",
    "usage_dict",
]

DONE = b"data: [DONE]\n\n"
_WORDS = (
    "This",
    " is",
    " a",
    " fake",
    " answer",
    " from",
    " a",
    " scripted",
    " upstream",
    ".",
)
_SLOT = re.compile(rb'"@@fake:(id|created|usage)@@"')
_ID = "@@fake:id@@"
_CREATED = "@@fake:created@@"
_USAGE = "@@fake:usage@@"
MODELS_CREATED = 1_700_000_000


class Template:
    """JSON bytes with slots for ``id``, ``created`` and ``usage``, filled per request."""

    __slots__ = ("_parts",)

    def __init__(self, obj: Any, *, prefix: bytes = b"", suffix: bytes = b"") -> None:
        parts = _SLOT.split(prefix + orjson.dumps(obj) + suffix)
        self._parts: tuple[bytes, ...] = tuple(parts)

    def render(self, values: Mapping[bytes, bytes]) -> bytes:
        parts = self._parts
        if len(parts) == 1:
            return parts[0]
        out = list(parts)
        for i in range(1, len(out), 2):
            out[i] = values[out[i]]
        return b"".join(out)


@dataclass(frozen=True, slots=True)
class Generation:
    """What the fake 'generated', apart from per-request values."""

    kind: Literal["chat", "text"]
    model: str
    tokens: int
    choices: int = 1
    finish_reason: str = "stop"
    tool: str | None = None
    """Chat: a tool the answer calls (``tool_calls``, after the text)."""


TOOL_ARGUMENTS = '{"query":"fake","count":1}'
"""The arguments of every scripted OpenAI tool call (the other dialects' tool input)."""


def _tool_call(gen: Generation) -> dict[str, Any]:
    function = {"name": gen.tool, "arguments": TOOL_ARGUMENTS}
    return {"id": f"call_fake_{gen.tool}", "type": "function", "function": function}


@lru_cache(maxsize=64)
def pieces(count: int) -> tuple[str, ...]:
    """The content of ``count`` chunks: a fixed sentence, repeated as needed."""
    return tuple(_WORDS[i % len(_WORDS)] for i in range(count))


def usage_dict(
    prompt_tokens: int, completion_tokens: int, overrides: Mapping[str, int], *, details: bool
) -> dict[str, Any]:
    prompt = overrides.get("prompt_tokens", prompt_tokens)
    completion = overrides.get("completion_tokens", completion_tokens)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": overrides.get("total_tokens", prompt + completion),
    }
    if details:
        out["prompt_tokens_details"] = {"cached_tokens": overrides.get("cached_tokens", 0)}
        out["completion_tokens_details"] = {
            "reasoning_tokens": overrides.get("reasoning_tokens", 0)
        }
    return out


def _values(id_: str, created: int, usage: Mapping[str, Any] | None) -> dict[bytes, bytes]:
    return {
        b"id": orjson.dumps(id_),
        b"created": str(created).encode(),
        b"usage": orjson.dumps(usage),
    }


def _head(gen: Generation, obj: str) -> dict[str, Any]:
    return {"id": _ID, "object": obj, "created": _CREATED, "model": gen.model}


@lru_cache(maxsize=512)
def _body_template(gen: Generation) -> Template:
    text = "".join(pieces(gen.tokens))
    if gen.kind == "chat":
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if gen.tool is not None:
            message = {**message, "content": text or None, "tool_calls": [_tool_call(gen)]}
        choices: list[dict[str, Any]] = [
            {
                "index": i,
                "message": message,
                "logprobs": None,
                "finish_reason": gen.finish_reason,
            }
            for i in range(gen.choices)
        ]
        obj = _head(gen, "chat.completion")
    else:
        choices = [
            {"text": text, "index": i, "logprobs": None, "finish_reason": gen.finish_reason}
            for i in range(gen.choices)
        ]
        obj = _head(gen, "text_completion")
    obj["choices"] = choices
    obj["usage"] = _USAGE
    return Template(obj)


def completion_body(gen: Generation, *, id_: str, created: int, usage: Mapping[str, Any]) -> bytes:
    """A ``chat.completion`` or ``text_completion`` object."""
    return _body_template(gen).render(_values(id_, created, usage))


def _chunk(gen: Generation, choice: dict[str, Any], include_usage: bool) -> Template:
    obj = _head(gen, "chat.completion.chunk" if gen.kind == "chat" else "text_completion")
    obj["choices"] = [choice]
    if include_usage:
        obj["usage"] = None  # OpenAI sends "usage": null on every chunk but the last
    return Template(obj, prefix=b"data: ", suffix=b"\n\n")


@lru_cache(maxsize=512)
def _event_templates(gen: Generation, include_usage: bool) -> tuple[Template, ...]:
    out: list[Template] = []
    n = range(gen.choices)
    if gen.kind == "chat":
        for i in n:
            delta = {"role": "assistant", "content": ""}
            out.append(_chunk(gen, _delta(i, delta, None), include_usage))
        for piece in pieces(gen.tokens):
            out.extend(_chunk(gen, _delta(i, {"content": piece}, None), include_usage) for i in n)
        if gen.tool is not None:
            for delta in _tool_deltas(gen):
                out.extend(_chunk(gen, _delta(i, delta, None), include_usage) for i in n)
        out.extend(_chunk(gen, _delta(i, {}, gen.finish_reason), include_usage) for i in n)
    else:
        for piece in pieces(gen.tokens):
            out.extend(_chunk(gen, _text(i, piece, None), include_usage) for i in n)
        out.extend(_chunk(gen, _text(i, "", gen.finish_reason), include_usage) for i in n)
    if include_usage:
        obj = _head(gen, "chat.completion.chunk" if gen.kind == "chat" else "text_completion")
        obj["choices"] = []
        obj["usage"] = _USAGE
        out.append(Template(obj, prefix=b"data: ", suffix=b"\n\n"))
    return tuple(out)


def _tool_deltas(gen: Generation) -> list[dict[str, Any]]:
    """The tool call as streamed: id and name first, then the arguments in three parts."""
    call = _tool_call(gen)
    first = {**call, "index": 0, "function": {"name": gen.tool, "arguments": ""}}
    third = len(TOOL_ARGUMENTS) // 3
    parts = [TOOL_ARGUMENTS[:third], TOOL_ARGUMENTS[third : 2 * third], TOOL_ARGUMENTS[2 * third :]]
    rest = [{"index": 0, "function": {"arguments": part}} for part in parts]
    return [{"tool_calls": [d]} for d in [first, *rest]]


def _delta(index: int, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


def _text(index: int, text: str, finish: str | None) -> dict[str, Any]:
    return {"text": text, "index": index, "logprobs": None, "finish_reason": finish}


def completion_events(
    gen: Generation, *, id_: str, created: int, usage: Mapping[str, Any] | None
) -> list[bytes]:
    """The SSE events of a streamed answer, ``data: [DONE]`` last.

    Chat: a role chunk per choice, ``tokens`` content chunks per choice, a finish chunk
    per choice, then (``usage`` given: ``stream_options.include_usage``) a chunk with
    ``choices: []`` and the usage.
    """
    values = _values(id_, created, usage)
    out = [t.render(values) for t in _event_templates(gen, usage is not None)]
    out.append(DONE)
    return out


def stall_index(gen: Generation, stall_after: int) -> int:
    """How many events to send before stalling after ``stall_after`` content chunks."""
    head = gen.choices if gen.kind == "chat" else 0
    return head + min(stall_after, gen.tokens) * gen.choices


def sse_events(body: bytes) -> list[bytes]:
    """Cut a raw SSE body after each blank line (the events keep their terminators)."""
    out: list[bytes] = []
    start = 0
    for m in re.finditer(rb"\r\n\r\n|\n\n|\r\r", body):
        out.append(body[start : m.end()])
        start = m.end()
    if start < len(body):
        out.append(body[start:])
    return out


# --- embeddings and models -----------------------------------------------------------


def embedding_vector(item: str | Sequence[int], dims: int) -> list[float]:
    """A deterministic vector: the same input always gets the same numbers."""
    raw = item.encode() if isinstance(item, str) else orjson.dumps(list(item))
    seed = zlib.crc32(raw)
    return [round(math.sin(seed + j), 6) for j in range(dims)]


def embedding_body(
    model: str,
    items: Sequence[str | Sequence[int]],
    *,
    dims: int,
    encoding: Literal["float", "base64"],
    prompt_tokens: int,
) -> bytes:
    data: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        vec = embedding_vector(item, dims)
        value: list[float] | str = vec if encoding == "float" else _b64_floats(vec)
        data.append({"object": "embedding", "index": i, "embedding": value})
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage})


def _b64_floats(vec: list[float]) -> str:
    arr = array.array("f", vec)
    if sys.byteorder != "little":  # pragma: no cover - the wire format is little-endian
        arr.byteswap()
    return base64.b64encode(arr.tobytes()).decode()


def model_object(model: str, owner: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": MODELS_CREATED, "owned_by": owner}


def model_list(models: Sequence[str], owner: str) -> bytes:
    return orjson.dumps({"object": "list", "data": [model_object(m, owner) for m in models]})


# --- errors --------------------------------------------------------------------------


def openai_error(message: str, type_: str | None, param: str | None, code: str | None) -> bytes:
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return orjson.dumps(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}
    )


def azure_error(code: str, message: str) -> bytes:
    """Azure's platform error body (auth, deployment, throttling): code and message."""
    return orjson.dumps({"error": {"code": code, "message": message}})


def fake_error(type_: str, message: str) -> bytes:
    """An error of the fake itself (bad script, failed expectation), in OpenAI's shape."""
    return openai_error(message, type_, None, None)


_SCRIPTED: dict[int, tuple[str, str, str | None]] = {
    400: ("Scripted bad request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model.", "invalid_request_error", None),
    404: ("The model does not exist or you do not have access to it.", "invalid_request_error",
          "model_not_found"),
    413: ("Request too large.", "invalid_request_error", None),
    429: ("Rate limit reached for requests. Please try again later.", "requests",
          "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!",
          "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}  # fmt: skip


def scripted_error_body(dialect: Literal["openai", "azure"], status: int) -> bytes:
    """The body of a scripted error status in the provider's format."""
    message, type_, code = scripted_error(status)
    if dialect == "azure":
        return azure_error(str(status), message)
    return openai_error(message, type_, None, code)


def scripted_error(status: int) -> tuple[str, str, str | None]:
    """(message, type, code) OpenAI uses for ``status``, for scripted error answers."""
    found = _SCRIPTED.get(status)
    if found is not None:
        return found
    if status >= 500:
        return (f"Upstream error (HTTP {status}).", "server_error", None)
    return (f"Request failed (HTTP {status}).", "invalid_request_error", None)
