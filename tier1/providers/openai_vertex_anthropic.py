"""OpenAI chat ingress → Claude on Vertex AI (`rawPredict` / `streamRawPredict`).

The body is a Messages request without `model` (the model is in the path) and with
`anthropic_version: "vertex-2023-10-16"`; answers and streams are the Messages API's,
so they reuse the Anthropic translation. The caller adds the Google bearer token.
https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from common import jsonutil
from tier1.providers import _anthropic_common as ac
from tier1.providers._anthropic_stream import MessagesStreamToChat
from tier1.providers.base import ParsedRequest, StreamTranslator, Translated, UpstreamRequest
from tier1.providers.openai_anthropic import translate_response

VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"


@dataclass(frozen=True, slots=True)
class ChatToVertexMessages:
    base_url: str
    """e.g. https://us-east5-aiplatform.googleapis.com (runtime.default_base_url picks it)."""
    project: str
    region: str
    default_max_tokens: int
    clock: Callable[[], float] = time.time

    def url(self, upstream_model: str, *, stream: bool) -> str:
        method = "streamRawPredict" if stream else "rawPredict"
        return (
            f"{self.base_url.rstrip('/')}/v1/projects/{quote(self.project, safe='')}"
            f"/locations/{quote(self.region, safe='')}/publishers/anthropic/models/"
            f"{quote(upstream_model, safe='@')}:{method}"
        )

    def request(
        self, req: ParsedRequest, *, upstream_model: str, force_usage: bool
    ) -> UpstreamRequest:
        ac.require_chat(req)
        body = {
            "anthropic_version": VERTEX_ANTHROPIC_VERSION,
            **ac.chat_to_messages(req.body, model=None, default_max_tokens=self.default_max_tokens),
        }
        headers = {"content-type": "application/json"}
        if req.stream:
            headers["accept"] = "text/event-stream"
        url = self.url(upstream_model, stream=req.stream)
        return UpstreamRequest("POST", url, headers, jsonutil.dumps(body))

    def response(self, req: ParsedRequest, status: int, body: bytes, *, rename: bool) -> Translated:
        return translate_response(req, body, rename=rename, created=int(self.clock()))

    def stream(self, req: ParsedRequest, *, rename: bool) -> StreamTranslator:
        return MessagesStreamToChat(
            client_model=req.model if rename else None,
            include_usage=req.include_usage,
            created=int(self.clock()),
        )

    def error(self, status: int, body: bytes) -> tuple[int, bytes]:
        return ac.error(status, body)
