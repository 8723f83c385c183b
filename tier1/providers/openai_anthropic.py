"""OpenAI chat ingress → Anthropic's Messages API (https://docs.anthropic.com/en/api/messages).

Only chat: Anthropic has no legacy completions or embeddings endpoint. Auth headers
(`x-api-key`) are added by the caller; this module sets the API version header.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from common import jsonutil
from tier1.providers import _anthropic_common as ac
from tier1.providers._anthropic_stream import MessagesStreamToChat
from tier1.providers.base import ParsedRequest, StreamTranslator, Translated, UpstreamRequest


@dataclass(frozen=True, slots=True)
class ChatToMessages:
    base_url: str
    """e.g. https://api.anthropic.com; `/v1/messages` is appended (a trailing /v1 in the
    configured URL is tolerated)."""
    default_max_tokens: int
    """max_tokens when the client sets none (the Messages API requires one)."""
    clock: Callable[[], float] = time.time
    """Wall clock for `created` (Anthropic answers carry no timestamp)."""

    @property
    def url(self) -> str:
        root = self.base_url.rstrip("/")
        return (root if root.endswith("/v1") else root + "/v1") + "/messages"

    def request(
        self, req: ParsedRequest, *, upstream_model: str, force_usage: bool
    ) -> UpstreamRequest:
        # force_usage needs nothing here: Anthropic streams always carry usage
        ac.require_chat(req)
        body = ac.chat_to_messages(
            req.body, model=upstream_model, default_max_tokens=self.default_max_tokens
        )
        headers = {"content-type": "application/json", "anthropic-version": ac.ANTHROPIC_VERSION}
        if req.stream:
            headers["accept"] = "text/event-stream"
        return UpstreamRequest("POST", self.url, headers, jsonutil.dumps(body))

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


def translate_response(
    req: ParsedRequest, body: bytes, *, rename: bool, created: int
) -> Translated:
    """Shared with the Vertex translator: a Messages answer → `chat.completion`."""
    msg = ac.parse_message(body)
    upstream_model = msg.get("model") if isinstance(msg.get("model"), str) else None
    shown = req.model if rename or upstream_model is None else upstream_model
    chat, usage = ac.messages_to_chat_response(msg, model=shown, created=created)
    return Translated(jsonutil.dumps(chat), usage, upstream_model)
