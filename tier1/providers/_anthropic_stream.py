"""Anthropic Messages SSE → OpenAI `chat.completion.chunk` SSE, sans-IO.

Theory of operation. Upstream bytes (split anywhere) go through `common.sse.SSEDecoder`;
each complete event is dispatched on its JSON `type` (the `event:` line repeats it and
is not needed). The event order is documented at
https://docs.anthropic.com/en/docs/build-with-claude/streaming:

    message_start → (content_block_start → content_block_delta* → content_block_stop)*
                  → message_delta → message_stop          (ping may come anywhere)

    message_start        first chunk: delta {role: assistant, content: ""}; input usage
    content_block_start  tool_use: a tool_calls delta (index, id, type, name, args "");
                         text/thinking: their initial text, if any
    content_block_delta  text_delta → content; thinking_delta → reasoning_content;
                         input_json_delta → tool_calls arguments for the block's index
    message_delta        finish_reason chunk; output usage (cumulative)
    message_stop         usage chunk (choices [], only if the client asked), data: [DONE]
    error                data: {"error": {...}} and the stream ends (never [DONE])

Each tool_use block gets the next OpenAI tool-call index in order of appearance, so
parallel calls keep distinct indexes. Blocks with no OpenAI equivalent (server tools,
redacted thinking, signatures, citations) are skipped. After message_stop or error the
rest of the input is ignored; if the upstream ends without either, `close()` sends an
error event so the client never mistakes a cut stream for a complete one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from common import jsonutil
from common.sse import Event, SSEDecoder, encode_data
from tier1.providers import _anthropic_common as ac
from tier1.providers.base import Usage

_DONE = b"data: [DONE]\n\n"


class MessagesStreamToChat:
    """The StreamTranslator for every Anthropic-schema backend."""

    def __init__(self, *, client_model: str | None, include_usage: bool, created: int) -> None:
        self._decoder = SSEDecoder()
        self._rename_to = client_model
        self._include_usage = include_usage
        self._created = created
        self._id = ""
        self._model: str | None = None
        self._usage: Usage | None = None
        self._usage_fields: dict[str, Any] = {}  # latest non-null value of each field
        self._tool_index: dict[int, int] = {}  # Anthropic block index → OpenAI tool index
        self._finished = False  # finish_reason chunk sent
        self._done = False  # message_stop or error seen: ignore the rest
        self._handlers: dict[str, Callable[[Mapping[str, Any]], bytes]] = {
            "message_start": self._message_start,
            "content_block_start": self._block_start,
            "content_block_delta": self._block_delta,
            "message_delta": self._message_delta,
            "message_stop": self._message_stop,
            "error": self._error,
        }

    @property
    def usage(self) -> Usage | None:
        return self._usage

    @property
    def model(self) -> str | None:
        return self._model

    def feed(self, chunk: bytes) -> bytes:
        return self._run(self._decoder.feed(chunk))

    def close(self) -> bytes:
        out = self._run(self._decoder.flush())
        if not self._done:
            self._done = True
            out += _error_event(
                {
                    "message": "the upstream stream ended before message_stop",
                    "type": "api_error",
                    "param": None,
                    "code": "upstream_incomplete",
                }
            )
        return out

    def _run(self, events: list[Event]) -> bytes:
        out = []
        for ev in events:
            if self._done:
                break
            if not ev.data.startswith(b"{"):
                continue
            try:
                obj = jsonutil.loads(ev.data)
            except ValueError:
                continue
            kind = obj.get("type") if isinstance(obj, dict) else None
            handler = self._handlers.get(kind) if isinstance(kind, str) else None
            if handler is not None:  # ping, content_block_stop, unknown: nothing to say
                out.append(handler(obj))
        return b"".join(out)

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        payload = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._rename_to or self._model or "",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        return encode_data(jsonutil.dumps(payload))

    def _message_start(self, ev: Mapping[str, Any]) -> bytes:
        msg = ev.get("message")
        if not isinstance(msg, Mapping):
            return b""
        if isinstance(msg.get("id"), str):
            self._id = msg["id"]
        if isinstance(msg.get("model"), str):
            self._model = msg["model"]
        self._update_usage(msg.get("usage"))
        return self._chunk({"role": "assistant", "content": ""})

    def _update_usage(self, usage: Any) -> None:
        # counts are cumulative; message_delta may repeat some fields and null others
        if isinstance(usage, Mapping):
            self._usage_fields.update((k, v) for k, v in usage.items() if v is not None)
            self._usage = ac.usage_from(self._usage_fields)

    def _block_start(self, ev: Mapping[str, Any]) -> bytes:
        block = ev.get("content_block")
        index = ev.get("index")
        if not isinstance(block, Mapping) or not isinstance(index, int):
            return b""
        kind = block.get("type")
        if kind == "tool_use":
            n = self._tool_index[index] = len(self._tool_index)
            call = {
                "index": n,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            out = self._chunk({"tool_calls": [call]})
            initial = block.get("input")
            if isinstance(initial, Mapping) and initial:  # a server that sent it whole
                out += self._arguments(n, jsonutil.dumps(initial).decode())
            return out
        if kind == "text" and block.get("text"):
            return self._chunk({"content": block["text"]})
        if kind == "thinking" and block.get("thinking"):
            return self._chunk({"reasoning_content": block["thinking"]})
        return b""

    def _arguments(self, n: int, fragment: str) -> bytes:
        return self._chunk({"tool_calls": [{"index": n, "function": {"arguments": fragment}}]})

    def _block_delta(self, ev: Mapping[str, Any]) -> bytes:
        delta = ev.get("delta")
        if not isinstance(delta, Mapping):
            return b""
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return self._chunk({"content": delta["text"]})
        if kind == "thinking_delta" and delta.get("thinking"):
            return self._chunk({"reasoning_content": delta["thinking"]})
        if kind == "input_json_delta" and delta.get("partial_json"):
            index = ev.get("index")
            n = self._tool_index.get(index) if isinstance(index, int) else None
            if n is not None:
                return self._arguments(n, delta["partial_json"])
        return b""

    def _message_delta(self, ev: Mapping[str, Any]) -> bytes:
        self._update_usage(ev.get("usage"))
        delta = ev.get("delta")
        stop = delta.get("stop_reason") if isinstance(delta, Mapping) else None
        if stop is None or self._finished:
            return b""
        self._finished = True
        return self._chunk({}, ac.finish_reason(stop))

    def _message_stop(self, ev: Mapping[str, Any]) -> bytes:
        self._done = True
        out = b"" if self._finished else self._chunk({}, "stop")
        self._finished = True
        if self._include_usage:
            payload = {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._rename_to or self._model or "",
                "choices": [],
                "usage": ac.openai_usage(self._usage or Usage()),
            }
            out += encode_data(jsonutil.dumps(payload))
        return out + _DONE

    def _error(self, ev: Mapping[str, Any]) -> bytes:
        self._done = True
        fields = ac.openai_error_fields(ev.get("error")) or {
            "message": "the upstream stream failed",
            "type": "api_error",
            "param": None,
            "code": "upstream_error",
        }
        return _error_event(fields)


def _error_event(fields: Mapping[str, Any]) -> bytes:
    return encode_data(jsonutil.dumps({"error": fields}))
