"""OpenAI chat ingress → Claude on AWS Bedrock (InvokeModel with the Messages body).

The body is a Messages request without `model` (it is in the path) and with
`anthropic_version: "bedrock-2023-05-31"`; streams arrive as event-stream frames that
carry Anthropic's own events. The caller signs the request with SigV4.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from common import jsonutil
from tier1.providers import _anthropic_common as ac
from tier1.providers._anthropic_stream import MessagesStreamToChat
from tier1.providers._bedrock_anthropic_stream import BedrockEventsToAnthropicSSE
from tier1.providers.base import ParsedRequest, StreamTranslator, Translated, UpstreamRequest, Usage
from tier1.providers.openai_anthropic import translate_response

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"


def invoke_url(base_url: str, model: str, *, stream: bool) -> str:
    action = "invoke-with-response-stream" if stream else "invoke"
    return f"{base_url.rstrip('/')}/model/{quote(model, safe='')}/{action}"


class Chained:
    """Two stream stages: Bedrock frames → Anthropic SSE → the client's format."""

    def __init__(self, inner: BedrockEventsToAnthropicSSE, outer: StreamTranslator) -> None:
        self._inner, self._outer = inner, outer

    def feed(self, chunk: bytes) -> bytes:
        return self._outer.feed(self._inner.feed(chunk))

    def close(self) -> bytes:
        return self._outer.close()

    @property
    def usage(self) -> Usage | None:
        return self._outer.usage

    @property
    def model(self) -> str | None:
        return self._outer.model


@dataclass(frozen=True, slots=True)
class ChatToBedrockMessages:
    base_url: str
    default_max_tokens: int
    clock: Callable[[], float] = time.time

    def request(
        self, req: ParsedRequest, *, upstream_model: str, force_usage: bool
    ) -> UpstreamRequest:
        ac.require_chat(req)
        body = {
            "anthropic_version": BEDROCK_ANTHROPIC_VERSION,
            **ac.chat_to_messages(req.body, model=None, default_max_tokens=self.default_max_tokens),
        }
        body.pop("stream", None)  # the operation (invoke vs invoke-with-response-stream) decides
        headers = {
            "content-type": "application/json",
            "accept": "application/vnd.amazon.eventstream" if req.stream else "application/json",
        }
        return UpstreamRequest(
            "POST",
            invoke_url(self.base_url, upstream_model, stream=req.stream),
            headers,
            jsonutil.dumps(body),
        )

    def response(self, req: ParsedRequest, status: int, body: bytes, *, rename: bool) -> Translated:
        out = translate_response(req, body, rename=True, created=int(self.clock()))
        return Translated(out.body, out.usage, req.model)  # Bedrock's answers name no model

    def stream(self, req: ParsedRequest, *, rename: bool) -> StreamTranslator:
        outer = MessagesStreamToChat(
            client_model=req.model, include_usage=req.include_usage, created=int(self.clock())
        )
        return Chained(BedrockEventsToAnthropicSSE(), outer)

    def error(self, status: int, body: bytes) -> tuple[int, bytes]:
        return ac.error(status, body)
