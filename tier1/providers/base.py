"""The translator contract: one sans-IO object per (ingress schema, backend schema).

A translator is built per attempt from the compiled backend, so a retry re-translates
from the untouched original request (never mutate `ParsedRequest.raw` or `.body`).
It never awaits and never imports aiohttp: bytes and plain values in, bytes out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Endpoint = Literal["chat", "completions", "embeddings", "messages"]
"""`messages` is Anthropic's Messages API (the Anthropic ingress); the rest are OpenAI's."""
Ingress = Literal["openai", "anthropic"]


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """The client's request, parsed once."""

    endpoint: Endpoint
    raw: bytes
    body: Mapping[str, Any]
    model: str
    stream: bool
    include_usage: bool
    """The client itself asked for the final usage chunk."""
    max_tokens: int | None
    headers: Mapping[str, str] = field(default_factory=dict)
    """Client headers that may be forwarded (credentials and hop-by-hop removed)."""


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class Usage:
    input: int = 0
    cached_input: int = 0
    output: int = 0
    reasoning: int = 0

    @property
    def total(self) -> int:
        return self.input + self.output


@dataclass(frozen=True, slots=True)
class Translated:
    body: bytes
    usage: Usage | None
    model: str | None
    """The model the upstream says answered (None if it did not say)."""


class StreamTranslator(Protocol):
    def feed(self, chunk: bytes) -> bytes:
        """Upstream bytes (split anywhere) → bytes for the client (maybe empty)."""
        ...

    def close(self) -> bytes:
        """End of the upstream stream: whatever is still owed to the client."""
        ...

    @property
    def usage(self) -> Usage | None: ...

    @property
    def model(self) -> str | None: ...


@runtime_checkable
class ErrorWithHeaders(Protocol):
    """Optional: providers whose error kind is in a header (Bedrock's x-amzn-errortype)."""

    def error_with_headers(
        self, status: int, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, bytes]: ...


class Translator(Protocol):
    def request(
        self, req: ParsedRequest, *, upstream_model: str, force_usage: bool
    ) -> UpstreamRequest:
        """`upstream_model` is the name to send; `force_usage` asks the upstream for the
        usage chunk of a stream (hidden again from a client that did not ask)."""
        ...

    def response(self, req: ParsedRequest, status: int, body: bytes, *, rename: bool) -> Translated:
        """A successful non-streamed answer in the ingress schema; with `rename` (the
        model was overridden) it carries the client's model name."""
        ...

    def stream(self, req: ParsedRequest, *, rename: bool) -> StreamTranslator: ...

    def error(self, status: int, body: bytes) -> tuple[int, bytes]:
        """An upstream error → (status, body) in the ingress schema's error shape."""
        ...
