"""Bedrock ConverseStream (`application/vnd.amazon.eventstream`) → OpenAI chat chunks (SSE).

Theory of operation. The upstream body is a sequence of binary event-stream messages
(prelude, headers, JSON payload, CRCs), split anywhere by the network. botocore's
`EventStreamBuffer` reassembles and checks them; each message has `:message-type`
(`event`, `exception` or `error`) and, for events, `:event-type`
(https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html):

    messageStart       → the role chunk (OpenAI's first chunk carries role "assistant")
    contentBlockStart  → a toolUse start: a tool_calls delta with index, id, name
    contentBlockDelta  → text → content; toolUse.input fragment → tool_calls arguments;
                         reasoningContent.text → reasoning_content
    contentBlockStop   → nothing
    messageStop        → the finish_reason chunk
    metadata           → usage (kept; sent as a usage chunk only if the client asked)
    exception / error  → an OpenAI error event, then [DONE]; later bytes are ignored

close() sends [DONE]; if the upstream ended before messageStop, an error event first, so
a cut stream is never mistaken for a complete answer. Tool calls are numbered 0, 1, … in
the order their blocks start, independent of Bedrock's contentBlockIndex. Output depends
only on the decoded messages, never on how the bytes were split.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.eventstream import EventStreamBuffer, ParserError

from common import jsonutil
from common.sse import encode_data
from tier1.providers._bedrock_common import finish_reason, message_of, stream_error, usage_from
from tier1.providers._openai_common import error_body
from tier1.providers.base import Usage

DONE = b"data: [DONE]\n\n"


class ConverseStreamToChunks:
    """A StreamTranslator for one ConverseStream answer."""

    def __init__(
        self, *, model: str, completion_id: str, created: int, include_usage: bool
    ) -> None:
        self._buffer = EventStreamBuffer()
        self._head: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        self._include_usage = include_usage
        self._tools: dict[int | None, int] = {}
        """Bedrock contentBlockIndex → OpenAI tool_calls index."""
        self._role_sent = False
        self._stopped = False
        """messageStop seen: the answer is complete."""
        self._ended = False
        """[DONE] sent: ignore everything after."""
        self.usage: Usage | None = None
        self.model: str | None = model

    def feed(self, chunk: bytes) -> bytes:
        if self._ended or not chunk:
            return b""
        out: list[bytes] = []
        self._buffer.add_data(bytes(chunk))
        try:
            for message in self._buffer:
                if self._handle(message.headers, message.payload, out):
                    break
        except ParserError:
            self._fail(
                error_body("the upstream event stream is corrupt", "api_error", "upstream_error"),
                out,
            )
        return b"".join(out)

    def close(self) -> bytes:
        if self._ended:
            return b""
        out: list[bytes] = []
        if not self._stopped:
            self._fail(
                error_body(
                    "the upstream stream ended before the answer was complete",
                    "api_error",
                    "upstream_truncated",
                ),
                out,
            )
        else:
            out.append(DONE)
            self._ended = True
        return b"".join(out)

    # events

    def _handle(self, headers: Mapping[str, Any], payload: bytes, out: list[bytes]) -> bool:
        """One decoded message; True when it ended the stream."""
        self._message(headers, payload, out)
        return self._ended

    def _message(self, headers: Mapping[str, Any], payload: bytes, out: list[bytes]) -> None:
        kind = headers.get(":message-type", "event")
        if kind == "exception":
            exception = headers.get(":exception-type")
            self._fail(stream_error(exception, message_of(payload)), out)
            return
        if kind == "error":
            code, text = headers.get(":error-code"), headers.get(":error-message")
            self._fail(stream_error(code, text if isinstance(text, str) else None), out)
            return
        try:
            event = jsonutil.loads(payload) if payload else {}
        except ValueError:
            event = None
        if not isinstance(event, dict):
            self._fail(
                error_body("the upstream sent an unreadable event", "api_error", "upstream_error"),
                out,
            )
            return
        name = headers.get(":event-type")
        if name == "messageStart":
            self._role(out)
        elif name == "contentBlockStart":
            self._block_start(event, out)
        elif name == "contentBlockDelta":
            self._delta(event, out)
        elif name == "messageStop":
            self._role(out)
            self._stopped = True
            out.append(self._chunk({}, finish_reason(event.get("stopReason"))))
        elif name == "metadata":
            self._metadata(event, out)
        # contentBlockStop and event types added later carry nothing for the client

    def _role(self, out: list[bytes]) -> None:
        if not self._role_sent:
            self._role_sent = True
            out.append(self._chunk({"role": "assistant", "content": ""}))

    def _tool_index(self, block: object) -> int:
        key = block if isinstance(block, int) else None
        index = self._tools.get(key)
        if index is None:
            index = self._tools[key] = len(self._tools)
        return index

    def _block_start(self, event: Mapping[str, Any], out: list[bytes]) -> None:
        start = event.get("start")
        tool = start.get("toolUse") if isinstance(start, Mapping) else None
        if not isinstance(tool, Mapping):
            return
        self._role(out)
        call = {
            "index": self._tool_index(event.get("contentBlockIndex")),
            "id": tool.get("toolUseId"),
            "type": "function",
            "function": {"name": tool.get("name"), "arguments": ""},
        }
        out.append(self._chunk({"tool_calls": [call]}))

    def _delta(self, event: Mapping[str, Any], out: list[bytes]) -> None:
        delta = event.get("delta")
        if not isinstance(delta, Mapping):
            return
        text = delta.get("text")
        tool = delta.get("toolUse")
        reasoning = delta.get("reasoningContent")
        if isinstance(text, str) and text:
            self._role(out)
            out.append(self._chunk({"content": text}))
        elif isinstance(tool, Mapping) and isinstance(tool.get("input"), str) and tool["input"]:
            self._role(out)
            index = self._tool_index(event.get("contentBlockIndex"))
            call = {"index": index, "function": {"arguments": tool["input"]}}
            out.append(self._chunk({"tool_calls": [call]}))
        elif isinstance(reasoning, Mapping):
            # signature and redactedContent deltas have no OpenAI counterpart
            thought = reasoning.get("text")
            if isinstance(thought, str) and thought:
                self._role(out)
                out.append(self._chunk({"reasoning_content": thought}))

    def _metadata(self, event: Mapping[str, Any], out: list[bytes]) -> None:
        converted = usage_from(event.get("usage"))
        if converted is None:
            return
        self.usage, openai_usage = converted
        if self._include_usage:
            body = {**self._head, "choices": [], "usage": openai_usage}
            out.append(encode_data(jsonutil.dumps(body)))

    # output

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return encode_data(jsonutil.dumps({**self._head, "choices": [choice]}))

    def _fail(self, error: bytes, out: list[bytes]) -> None:
        out.append(encode_data(error))
        out.append(DONE)
        self._ended = True
