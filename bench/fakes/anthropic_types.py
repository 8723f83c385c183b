"""The Anthropic request bodies as TypedDicts built on the ``anthropic`` SDK's types.

Imported lazily by :mod:`bench.fakes.anthropic_shapes` (importing the SDK takes ~2 s).
Bedrock and Vertex bodies carry ``anthropic_version`` (their documented values) and no
``model``; the sampling parameters the installed SDK's types no longer list, but the API
still takes for the models that support them, are added.
"""

from __future__ import annotations

from typing import Literal, Required

from anthropic.types.message_count_tokens_params import MessageCountTokensParams
from anthropic.types.message_create_params import MessageCreateParamsBase

__all__ = ["BedrockInvoke", "Create", "MessageCountTokensParams", "VertexCount", "VertexPredict"]


class Sampling(MessageCreateParamsBase, total=False):
    temperature: float
    top_p: float
    top_k: int


class Create(Sampling, total=False):
    """``POST /v1/messages``."""

    stream: bool


class BedrockInvoke(Sampling, total=False):
    """Bedrock ``InvokeModel`` (the path says whether it streams)."""

    anthropic_version: Required[Literal["bedrock-2023-05-31"]]
    anthropic_beta: list[str]


class VertexPredict(Sampling, total=False):
    """Vertex ``rawPredict`` / ``streamRawPredict``."""

    anthropic_version: Required[Literal["vertex-2023-10-16"]]
    stream: bool


class VertexCount(MessageCountTokensParams, total=False):
    """Vertex ``count-tokens:rawPredict``."""

    anthropic_version: str
