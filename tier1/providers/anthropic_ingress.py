"""Translators for the Anthropic Messages ingress (`POST /v1/messages`).

- Anthropic-family backends (Anthropic, Claude on Vertex, Claude on Bedrock) get the
  client's Messages body, adjusted only where the platform differs (version field,
  model in the path), and answer in Messages format already: usage is tapped on the way.
- Every other backend is reached through its OpenAI-ingress translator: Messages →
  OpenAI chat → that backend → OpenAI chat → Messages (`MessagesVia`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from common import jsonutil
from common.sse import SSEDecoder
from tier1.providers import _anthropic_common as ac
from tier1.providers._bedrock_anthropic_stream import BedrockEventsToAnthropicSSE
from tier1.providers.anthropic_openai import (
    ChatStreamToMessagesStream,
    chat_to_messages_response,
    messages_to_chat,
    openai_error_to_anthropic,
)
from tier1.providers.base import (
    ParsedRequest,
    StreamTranslator,
    Translated,
    Translator,
    UpstreamRequest,
    Usage,
)
from tier1.providers.openai_bedrock_anthropic import BEDROCK_ANTHROPIC_VERSION, invoke_url
from tier1.providers.openai_vertex_anthropic import VERTEX_ANTHROPIC_VERSION

_MODEL = re.compile(rb'"model"\s*:\s*"(?:[^"\\]|\\.)*"')


def _rename(payload: bytes, model: str) -> bytes:
    return _MODEL.sub(b'"model":' + jsonutil.dumps(model), payload, count=1)


def _upstream_error(status: int, body: bytes) -> tuple[int, bytes]:
    """Anthropic errors pass as they are, but a refused gateway credential (401/403)
    becomes a 502 that never quotes the provider."""
    if status in (401, 403):
        return 502, jsonutil.dumps(
            {
                "type": "error",
                "error": {
                    "type": "api_error",
                    "message": "the upstream rejected the gateway's credentials",
                },
            }
        )
    try:
        obj = jsonutil.loads(body)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and obj.get("type") == "error" and isinstance(obj.get("error"), dict):
        return status, body
    status_out, openai_body = ac.error(status, body)
    return openai_error_to_anthropic(status_out, openai_body)


class MessagesTap:
    """Relays Anthropic SSE untouched (renaming the model if overridden) and reads usage
    from message_start (input, cache) and message_delta (output)."""

    def __init__(
        self, *, rename_to: str | None, source: BedrockEventsToAnthropicSSE | None = None
    ) -> None:
        self._decoder = SSEDecoder()
        self._rename_to = rename_to
        self._source = source
        self.usage: Usage | None = None
        self.model: str | None = None

    def feed(self, chunk: bytes) -> bytes:
        if self._source is not None:
            chunk = self._source.feed(chunk)
        return self._relay(self._decoder.feed(chunk))

    def close(self) -> bytes:
        return self._relay(self._decoder.flush())

    def _relay(self, events: list[Any]) -> bytes:
        out = []
        for ev in events:
            raw = ev.raw
            if b'"message_start"' in ev.data or b'"message_delta"' in ev.data:
                self._read(ev.data)
                if self._rename_to is not None and b'"message_start"' in ev.data:
                    raw = raw.replace(ev.data, _rename(ev.data, self._rename_to))
            out.append(raw)
        return b"".join(out)

    def _read(self, data: bytes) -> None:
        try:
            obj = jsonutil.loads(data)
        except ValueError:
            return
        if not isinstance(obj, dict):
            return
        if obj.get("type") == "message_start" and isinstance(obj.get("message"), dict):
            msg = obj["message"]
            self.model = msg.get("model") if isinstance(msg.get("model"), str) else self.model
            self.usage = ac.usage_from(msg.get("usage"))
        elif obj.get("type") == "message_delta":
            late = ac.usage_from(obj.get("usage"))
            if late is not None:
                base = self.usage or Usage()
                base.output = late.output or base.output
                self.usage = base


@dataclass(frozen=True, slots=True)
class MessagesPassthrough:
    """Anthropic ingress → Anthropic (platform: anthropic | vertex | bedrock)."""

    base_url: str
    platform: str = "anthropic"
    project: str = ""
    region: str = ""

    def request(
        self, req: ParsedRequest, *, upstream_model: str, force_usage: bool
    ) -> UpstreamRequest:
        headers = {"content-type": "application/json"}
        if self.platform == "anthropic":
            headers["anthropic-version"] = req.headers.get(
                "anthropic-version", ac.ANTHROPIC_VERSION
            )
            root = self.base_url.rstrip("/")
            url = (root if root.endswith("/v1") else root + "/v1") + "/messages"
            body = (
                req.raw
                if upstream_model == req.model
                else jsonutil.dumps({**req.body, "model": upstream_model})
            )
            return UpstreamRequest("POST", url, headers, body)
        payload: dict[str, Any] = {k: v for k, v in req.body.items() if k != "model"}
        if self.platform == "vertex":
            from urllib.parse import quote

            method = "streamRawPredict" if req.stream else "rawPredict"
            url = (
                f"{self.base_url.rstrip('/')}/v1/projects/{quote(self.project, safe='')}/locations/"
                f"{quote(self.region, safe='')}/publishers/anthropic/models/{quote(upstream_model, safe='@')}:{method}"
            )
            payload["anthropic_version"] = VERTEX_ANTHROPIC_VERSION
        else:
            payload.pop("stream", None)
            payload["anthropic_version"] = BEDROCK_ANTHROPIC_VERSION
            url = invoke_url(self.base_url, upstream_model, stream=req.stream)
            headers["accept"] = (
                "application/vnd.amazon.eventstream" if req.stream else "application/json"
            )
        return UpstreamRequest("POST", url, headers, jsonutil.dumps(payload))

    def response(self, req: ParsedRequest, status: int, body: bytes, *, rename: bool) -> Translated:
        try:
            obj = jsonutil.loads(body)
        except ValueError:
            return Translated(body, None, None)
        usage = ac.usage_from(obj.get("usage")) if isinstance(obj, dict) else None
        model = (
            obj.get("model")
            if isinstance(obj, dict) and isinstance(obj.get("model"), str)
            else None
        )
        if rename or self.platform == "bedrock":
            body = _rename(body, req.model) if model is not None else body
        return Translated(body, usage, model or req.model)

    def stream(self, req: ParsedRequest, *, rename: bool) -> StreamTranslator:
        source = BedrockEventsToAnthropicSSE() if self.platform == "bedrock" else None
        return MessagesTap(rename_to=req.model if rename else None, source=source)

    def error(self, status: int, body: bytes) -> tuple[int, bytes]:
        return _upstream_error(status, body)


class _ViaStream:
    def __init__(self, inner: StreamTranslator, outer: ChatStreamToMessagesStream) -> None:
        self._inner, self._outer = inner, outer

    def feed(self, chunk: bytes) -> bytes:
        return self._outer.feed(self._inner.feed(chunk))

    def close(self) -> bytes:
        return self._outer.feed(self._inner.close()) + self._outer.close()

    @property
    def usage(self) -> Usage | None:
        return self._inner.usage or self._outer.usage

    @property
    def model(self) -> str | None:
        return self._inner.model


@dataclass(frozen=True, slots=True)
class MessagesVia:
    """Anthropic ingress over any backend that the OpenAI ingress reaches."""

    inner: Translator
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    """OpenAI's own API wants max_completion_tokens (its reasoning models refuse max_tokens)."""

    def _view(
        self,
        req: ParsedRequest,
        model: str,
        body: Mapping[str, Any] | None = None,
        raw: bytes = b"",
    ) -> ParsedRequest:
        return ParsedRequest(
            "chat",
            raw,
            body or {"model": model},
            model,
            req.stream,
            True,
            req.max_tokens,
            req.headers,
        )

    def request(
        self, req: ParsedRequest, *, upstream_model: str, force_usage: bool
    ) -> UpstreamRequest:
        chat = messages_to_chat(
            dict(req.body),
            upstream_model=upstream_model,
            force_usage=True,
            max_tokens_field=self.max_tokens_field,
        )
        view = self._view(req, upstream_model, chat, jsonutil.dumps(chat))
        return self.inner.request(view, upstream_model=upstream_model, force_usage=True)

    def response(self, req: ParsedRequest, status: int, body: bytes, *, rename: bool) -> Translated:
        out = self.inner.response(self._view(req, req.model), status, body, rename=False)
        try:
            chat = jsonutil.loads(out.body)
        except ValueError:
            return out
        message = chat_to_messages_response(chat, model=req.model)
        return Translated(jsonutil.dumps(message), out.usage, out.model)

    def stream(self, req: ParsedRequest, *, rename: bool) -> StreamTranslator:
        return _ViaStream(
            self.inner.stream(self._view(req, req.model), rename=False),
            ChatStreamToMessagesStream(model=req.model),
        )

    def error(self, status: int, body: bytes) -> tuple[int, bytes]:
        s, b = self.inner.error(status, body)
        return openai_error_to_anthropic(s, b)
