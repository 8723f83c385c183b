"""Bedrock InvokeModelWithResponseStream → Anthropic SSE bytes.

Bedrock wraps each Anthropic stream event in an event-stream frame whose JSON payload
is {"bytes": base64(<event JSON>)}. Frames are decoded with botocore's parser; the
result is the exact SSE stream Anthropic itself would have sent, so the Anthropic
translators downstream need not know Bedrock was involved.
https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages.html
"""

from __future__ import annotations

import base64
import binascii

from botocore.eventstream import EventStreamBuffer, ParserError

from common import jsonutil


class BedrockEventsToAnthropicSSE:
    def __init__(self) -> None:
        self._buffer = EventStreamBuffer()
        self._failed = False

    def feed(self, chunk: bytes) -> bytes:
        if self._failed:
            return b""
        self._buffer.add_data(chunk)
        out = []
        try:
            for message in self._buffer:
                out.append(self._event(message.headers, message.payload))
        except ParserError:
            self._failed = True
            out.append(_error("api_error", "the upstream event stream is corrupt"))
        return b"".join(out)

    def _event(self, headers: dict[str, object], payload: bytes) -> bytes:
        kind = headers.get(":message-type")
        if kind != "event":
            name = str(headers.get(":exception-type") or headers.get(":error-code") or "api_error")
            try:
                message = str(jsonutil.loads(payload).get("message", name))
            except (ValueError, AttributeError):
                message = name
            self._failed = True
            overloaded = name in (
                "throttlingException",
                "ThrottlingException",
                "serviceUnavailableException",
            )
            return _error("overloaded_error" if overloaded else "api_error", message)
        try:
            raw = base64.b64decode(jsonutil.loads(payload)["bytes"])
            event = jsonutil.loads(raw)
        except (ValueError, KeyError, TypeError, binascii.Error):
            return b""
        return b"event: " + str(event.get("type", "message")).encode() + b"\ndata: " + raw + b"\n\n"


def _error(kind: str, message: str) -> bytes:
    body = jsonutil.dumps({"type": "error", "error": {"type": kind, "message": message}})
    return b"event: error\ndata: " + body + b"\n\n"
