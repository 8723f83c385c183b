"""OpenAI ingress → OpenAI or any OpenAI-compatible server (vLLM, Ollama, Groq, Mistral,
Together, DeepSeek …). A passthrough: the body goes out as received unless the model is
overridden or the gateway needs the usage chunk of a stream."""

from __future__ import annotations

from dataclasses import dataclass

from tier1.providers import _openai_common as oa
from tier1.providers.base import ParsedRequest, StreamTranslator, Translated, UpstreamRequest


@dataclass(frozen=True, slots=True)
class OpenAIPassthrough:
    base_url: str
    """e.g. https://api.openai.com/v1; the endpoint path is appended."""

    def url(self, req: ParsedRequest, upstream_model: str) -> str:
        return self.base_url + oa.PATHS[req.endpoint]

    def request(
        self, req: ParsedRequest, *, upstream_model: str, force_usage: bool
    ) -> UpstreamRequest:
        body = oa.request_body(req, upstream_model=upstream_model, force_usage=force_usage)
        headers = {"content-type": "application/json"}
        if req.stream:
            headers["accept"] = "text/event-stream"
        return UpstreamRequest("POST", self.url(req, upstream_model), headers, body)

    def response(self, req: ParsedRequest, status: int, body: bytes, *, rename: bool) -> Translated:
        return oa.response(req, body, renamed=rename)

    def stream(self, req: ParsedRequest, *, rename: bool) -> StreamTranslator:
        return oa.OpenAIStreamTap(
            client_model=req.model if rename else None, hide_usage=not req.include_usage
        )

    def error(self, status: int, body: bytes) -> tuple[int, bytes]:
        return oa.error(status, body)
