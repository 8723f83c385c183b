"""The vocabulary shared by admission and answers: dialects, requests, refusals (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from bench.fakes.openai_shapes import EmbeddingRequest
from bench.fakes.sigv4 import AwsTestCredentials

__all__ = [
    "DIALECTS",
    "NOT_JSON",
    "Call",
    "Dialect",
    "FakeConfig",
    "Incoming",
    "Kind",
    "Rejected",
]

Dialect = Literal["openai", "azure", "anthropic", "bedrock", "gemini", "vertex"]
DIALECTS: Final[tuple[Dialect, ...]] = (
    "openai",
    "azure",
    "anthropic",
    "bedrock",
    "gemini",
    "vertex",
)
Kind = Literal[
    "chat",
    "completions",
    "embeddings",
    "models",
    "model",
    "messages",
    "count_tokens",
    "converse",
    "converse_stream",
    "invoke",
    "invoke_stream",
    "google",
    "unknown",
]
"""What a route serves. ``google``: a Gemini or Vertex ``models/{model}:{method}`` path,
resolved by admission into ``generate`` (Gemini models) or ``messages``/``count_tokens``
(Anthropic models on Vertex)."""
NOT_JSON: Final = object()
"""``Incoming.body`` when the request had no body or not a JSON one."""


@dataclass(frozen=True, slots=True)
class FakeConfig:
    """What a fake upstream is: its name, dialect and what it accepts."""

    name: str
    dialect: Dialect = "openai"
    api_key: str | None = None
    """The only key accepted; ``None`` accepts any non-empty key. Vertex: the OAuth
    access token; Bedrock: an API key (Bearer) accepted beside SigV4."""
    deployments: Mapping[str, str] | None = None
    """Azure: deployment -> model name answered; ``None`` accepts any deployment."""
    models: tuple[str, ...] | None = None
    """The models accepted (OpenAI: and listed); ``None`` accepts any model."""
    aws: AwsTestCredentials | None = None
    """Bedrock: the identity requests must be signed with (SigV4, service ``bedrock``)."""
    gcp_project: str | None = None
    """Vertex: the project in the path; ``None`` accepts any."""
    gcp_location: str | None = None
    """Vertex: the location in the path; ``None`` accepts any."""


@dataclass(slots=True)
class Incoming:
    """A received request. ``headers`` must look names up case-insensitively."""

    kind: Kind
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    params: Mapping[str, str]
    """Route parameters: ``deployment`` (Azure), ``model`` (``GET /v1/models/{model}``,
    Bedrock), ``target`` (Gemini/Vertex ``model:method``), ``project``, ``location``,
    ``publisher`` (Vertex)."""
    body: Any
    """The parsed JSON body, or :data:`NOT_JSON`."""
    raw_path: str = ""
    """The request target as received (percent-encoded, with the query): SigV4 signs it."""
    raw_body: bytes = b""


class Rejected(Exception):
    """The answer is an error decided before the script runs."""

    def __init__(self, status: int, body: bytes, headers: Mapping[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers: Mapping[str, str] = headers or {}


@dataclass(slots=True)
class Call:
    """An accepted request: what to generate."""

    kind: Kind | Literal["generate"]
    model: str
    stream: bool = False
    include_usage: bool = False
    choices: int = 1
    max_tokens: int | None = None
    prompt_tokens: int = 0
    embedding: EmbeddingRequest | None = None
    tools: bool = False
    """The request declares tools (a scripted ``tool-call`` is answered only then)."""
    sse: bool = True
    """Gemini streams: ``alt=sse`` (else a streamed JSON array)."""
