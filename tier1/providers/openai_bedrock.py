"""OpenAI chat ingress → Amazon Bedrock Converse / ConverseStream.

    POST {base_url}/model/{url-encoded model id}/converse          (stream: false)
    POST {base_url}/model/{url-encoded model id}/converse-stream   (stream: true)

API reference: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
and https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html.
The body mapping is in `_openai_bedrock_request`, the event-stream relay in
`_openai_bedrock_stream`, stop reasons, usage and errors in `_bedrock_common`.

The request is built unsigned: the caller applies SigV4 (service `bedrock`) afterwards,
over the final URL, headers and body. The model id may be an ARN (`:` and `/`), so it is
percent-encoded as one path segment; the HTTP client must send the URL as given (already
encoded), or the signed path and the sent path differ.

Bedrock's answers carry no model name, so the client's requested model is reported.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from common import jsonutil
from common.clock import Clock, SystemClock
from common.errors import BadRequest, UpstreamError
from tier1.providers._bedrock_common import error_with_type, finish_reason, usage_from
from tier1.providers._openai_bedrock_request import converse_body
from tier1.providers._openai_bedrock_stream import ConverseStreamToChunks
from tier1.providers.base import ParsedRequest, StreamTranslator, Translated, UpstreamRequest

__all__ = ["ChatToConverse", "ConverseStreamToChunks", "error_with_type"]

EVENTSTREAM = "application/vnd.amazon.eventstream"


def _new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class ChatToConverse:
    base_url: str
    """e.g. https://bedrock-runtime.us-east-1.amazonaws.com (no trailing path)."""
    default_max_tokens: int
    """Converse needs maxTokens for some models; sent when the client set no limit."""
    clock: Clock = field(default_factory=SystemClock)
    """For the `created` timestamp of answers."""
    new_id: Callable[[], str] = _new_id
    """The `id` of each answer (Bedrock's own answers have none in the body)."""

    def url(self, upstream_model: str, *, stream: bool) -> str:
        operation = "converse-stream" if stream else "converse"
        return f"{self.base_url.rstrip('/')}/model/{quote(upstream_model, safe='')}/{operation}"

    def request(
        self, req: ParsedRequest, *, upstream_model: str, force_usage: bool
    ) -> UpstreamRequest:
        # force_usage needs nothing here: ConverseStream always ends with a metadata event
        if req.endpoint != "chat":
            raise BadRequest(
                f"Bedrock backends serve chat completions only, not {req.endpoint}: "
                "use /v1/chat/completions"
            )
        body = converse_body(req.body, max_tokens=req.max_tokens or self.default_max_tokens)
        headers = {
            "content-type": "application/json",
            "accept": EVENTSTREAM if req.stream else "application/json",
        }
        return UpstreamRequest(
            "POST", self.url(upstream_model, stream=req.stream), headers, jsonutil.dumps(body)
        )

    def response(self, req: ParsedRequest, status: int, body: bytes, *, rename: bool) -> Translated:
        try:
            obj = jsonutil.loads(body)
        except ValueError:
            obj = None
        output = obj.get("output") if isinstance(obj, dict) else None
        message = output.get("message") if isinstance(output, Mapping) else None
        if not isinstance(obj, dict) or not isinstance(message, Mapping):
            # a 200 without output.message (seen with some guardrail and framework errors)
            raise UpstreamError("the upstream answered without a message", retryable=False)
        content = message.get("content")
        answer = _message(content if isinstance(content, list) else [])
        converted = usage_from(obj.get("usage"))
        completion: dict[str, Any] = {
            "id": self.new_id(),
            "object": "chat.completion",
            "created": int(self.clock.wall()),
            "model": req.model,
            "choices": [
                {
                    "index": 0,
                    "message": answer,
                    "logprobs": None,
                    "finish_reason": finish_reason(obj.get("stopReason")),
                }
            ],
        }
        if converted is not None:
            completion["usage"] = converted[1]
        usage = converted[0] if converted is not None else None
        return Translated(jsonutil.dumps(completion), usage, req.model)

    def stream(self, req: ParsedRequest, *, rename: bool) -> StreamTranslator:
        return ConverseStreamToChunks(
            model=req.model,
            completion_id=self.new_id(),
            created=int(self.clock.wall()),
            include_usage=req.include_usage,
        )

    def error(self, status: int, body: bytes) -> tuple[int, bytes]:
        """Without the `x-amzn-errortype` header the kind is guessed from the status;
        callers holding the headers should use `error_with_type`."""
        return error_with_type(status, body, None)

    def error_with_headers(
        self, status: int, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        return error_with_type(status, body, headers.get("x-amzn-errortype"))


def _message(blocks: list[Any]) -> dict[str, Any]:
    """Converse output content blocks → an OpenAI assistant message."""
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in blocks:
        if not isinstance(block, Mapping):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), Mapping):
            tool = block["toolUse"]
            calls.append(
                {
                    "id": tool.get("toolUseId"),
                    "type": "function",
                    "function": {
                        "name": tool.get("name"),
                        "arguments": jsonutil.dumps(tool.get("input", {})).decode(),
                    },
                }
            )
        elif isinstance(block.get("reasoningContent"), Mapping):
            # reasoningText {text, signature}; redactedContent has no readable text
            thought = block["reasoningContent"].get("reasoningText")
            if isinstance(thought, Mapping) and isinstance(thought.get("text"), str):
                reasoning.append(thought["text"])
    content = "".join(texts) if texts or not calls else None
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    return message
