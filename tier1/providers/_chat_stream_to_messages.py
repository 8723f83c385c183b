"""OpenAI `chat.completion.chunk` SSE → Anthropic Messages SSE, sans-IO (the Anthropic
ingress over OpenAI-chat backends), plus the Anthropic error helpers it shares.

Theory of operation. Upstream bytes (split anywhere) go through `common.sse.SSEDecoder`.
Anthropic streams content as numbered blocks that open, grow and close one at a time
(https://docs.anthropic.com/en/docs/build-with-claude/streaming); OpenAI streams deltas
of one message. At most one block is open:

    first chunk          event: message_start (usage.input_tokens if the chunk has usage,
                         else 0: OpenAI reports usage only at the end)
    delta.reasoning_content / reasoning
                         a thinking block (thinking_delta)
    delta.content        a text block (text_delta)
    delta.tool_calls[i]  a new i: a tool_use block (id, name, input {}); its argument
                         fragments: input_json_delta on that block
    a change of kind     content_block_stop for the open block, then the new start
    finish_reason        closes the open block; the stop reason waits for the usage
    usage chunk          recorded (it comes after the finish chunk, choices [])
    data: [DONE]         message_delta (stop_reason, usage) and message_stop
    {"error": …}         event: error, and the stream ends

Tool-call indexes that interleave (rare: OpenAI sends calls one after another) get their
late fragments on the already-closed block, which the anthropic SDK still accumulates by
index. A stream that ends without [DONE] is finished normally if a finish_reason came,
otherwise it ends with an error event: a cut stream never looks complete.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from common import jsonutil
from common.sse import Event, SSEDecoder
from tier1.providers import _openai_common as oa
from tier1.providers.base import Usage

_STOP_REASONS: Final = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(finish: Any, *, tools: bool) -> str:
    """OpenAI finish_reason → Anthropic stop_reason. Some servers say "stop" after tool
    calls; Anthropic clients then need "tool_use" to run them."""
    if tools and finish in (None, "stop", "tool_calls", "function_call"):
        return "tool_use"
    return _STOP_REASONS.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"


def error_type_for_status(status: int) -> str:
    """Anthropic's error `type` for an HTTP status (https://docs.anthropic.com/en/api/errors)."""
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 404:
        return "not_found_error"
    if status == 413:
        return "request_too_large"
    if status == 429:
        return "rate_limit_error"
    if status in (503, 529):
        return "overloaded_error"
    if status >= 500:
        return "api_error"
    return "invalid_request_error"


def anthropic_error_body(type_: str, message: str) -> bytes:
    return jsonutil.dumps({"type": "error", "error": {"type": type_, "message": message}})


def _event(obj: Mapping[str, Any]) -> bytes:
    kind: str = obj["type"]
    return b"event: " + kind.encode() + b"\ndata: " + jsonutil.dumps(obj) + b"\n\n"


class ChatStreamToMessagesStream:
    """The StreamTranslator of the Anthropic ingress over OpenAI-chat backends."""

    def __init__(self, *, model: str) -> None:
        self._decoder = SSEDecoder()
        self._shown_model = model
        self._model: str | None = None
        self._usage: Usage | None = None
        self._started = False
        self._done = False
        self._finish: str | None = None
        self._finished = False
        self._next_index = 0
        self._open: tuple[str, int] | None = None  # (kind, Anthropic block index)
        self._tools: dict[int, int] = {}  # OpenAI tool-call index → Anthropic block index

    @property
    def usage(self) -> Usage | None:
        return self._usage

    @property
    def model(self) -> str | None:
        """The model the upstream named in its chunks (the client sees `model`)."""
        return self._model

    def feed(self, chunk: bytes) -> bytes:
        return self._run(self._decoder.feed(chunk))

    def close(self) -> bytes:
        out = self._run(self._decoder.flush())
        if self._done:
            return out
        if self._finished:
            return out + self._finalize()
        self._done = True
        return out + self._error("api_error", "the upstream stream ended early")

    def _run(self, events: list[Event]) -> bytes:
        out = []
        for ev in events:
            if self._done:
                break
            data = ev.data.strip()
            if data == b"[DONE]":
                out.append(self._finalize())
            elif data.startswith(b"{"):
                try:
                    obj = jsonutil.loads(data)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    out.append(self._chunk(obj))
        return b"".join(out)

    def _chunk(self, obj: Mapping[str, Any]) -> bytes:
        err = obj.get("error")
        if isinstance(err, Mapping):
            message = err.get("message") if isinstance(err.get("message"), str) else None
            code = err.get("code")
            kind = error_type_for_status(code) if isinstance(code, int) else "api_error"
            self._done = True
            return self._error(kind, message or "the upstream stream failed")
        if isinstance(obj.get("model"), str) and obj["model"]:
            self._model = obj["model"]
        usage = oa.usage_from(obj.get("usage"))
        if usage is not None:
            self._usage = usage
        out = self._start(obj)
        choices = obj.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, Mapping):
            return out
        delta = choice.get("delta")
        if isinstance(delta, Mapping):
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                out += self._delta("thinking", {"type": "thinking_delta", "thinking": reasoning})
            content = delta.get("content")
            if isinstance(content, str) and content:
                out += self._delta("text", {"type": "text_delta", "text": content})
            calls = delta.get("tool_calls")
            for position, call in enumerate(calls if isinstance(calls, list) else []):
                if isinstance(call, Mapping):
                    out += self._tool_delta(call, position)
        finish = choice.get("finish_reason")
        if isinstance(finish, str) and finish:
            self._finish, self._finished = finish, True
            out += self._close()
        return out

    def _start(self, obj: Mapping[str, Any]) -> bytes:
        if self._started:
            return b""
        self._started = True
        usage = self._usage
        message: dict[str, Any] = {
            "id": obj.get("id") if isinstance(obj.get("id"), str) else "msg_strata",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": self._shown_model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": usage.input - usage.cached_input if usage else 0,
                "output_tokens": 0,
            },
        }
        return _event({"type": "message_start", "message": message})

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        index = self._open[1]
        self._open = None
        return _event({"type": "content_block_stop", "index": index})

    def _open_block(self, kind: str, block: Mapping[str, Any]) -> tuple[bytes, int]:
        out = self._close()
        index = self._next_index
        self._next_index += 1
        self._open = (kind, index)
        start = {"type": "content_block_start", "index": index, "content_block": block}
        return out + _event(start), index

    def _delta(self, kind: str, delta: Mapping[str, Any]) -> bytes:
        out = b""
        if self._open is None or self._open[0] != kind:
            empty = {"type": "text", "text": ""}
            if kind == "thinking":
                empty = {"type": "thinking", "thinking": "", "signature": ""}
            out, _ = self._open_block(kind, empty)
        assert self._open is not None
        return out + _event({"type": "content_block_delta", "index": self._open[1], "delta": delta})

    def _tool_delta(self, call: Mapping[str, Any], position: int) -> bytes:
        n = call.get("index")
        n = n if isinstance(n, int) else position
        fn = call.get("function")
        fn = fn if isinstance(fn, Mapping) else {}
        out = b""
        if n not in self._tools:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id") or f"call_{n}",
                "name": fn.get("name") or "",
                "input": {},
            }
            out, self._tools[n] = self._open_block("tool_use", block)
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments:
            delta = {"type": "input_json_delta", "partial_json": arguments}
            event = {"type": "content_block_delta", "index": self._tools[n], "delta": delta}
            out += _event(event)
        return out

    def _finalize(self) -> bytes:
        self._done = True
        out = self._start({}) + self._close()
        usage: dict[str, int] = {"output_tokens": 0}
        if self._usage is not None:
            usage = {
                "input_tokens": self._usage.input - self._usage.cached_input,
                "cache_read_input_tokens": self._usage.cached_input,
                "output_tokens": self._usage.output,
            }
        reason = stop_reason(self._finish, tools=bool(self._tools))
        delta = {"stop_reason": reason, "stop_sequence": None}
        out += _event({"type": "message_delta", "delta": delta, "usage": usage})
        return out + _event({"type": "message_stop"})

    def _error(self, type_: str, message: str) -> bytes:
        body = {"type": "error", "error": {"type": type_, "message": message}}
        return _event(body)
