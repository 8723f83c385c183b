"""The one table that chooses a translator: (ingress schema, backend schema) → factory.

Checked when a snapshot is compiled, so a missing pair is a rejected config (NACK),
never a request-time 500. The provider issue adds rows here, nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

from common.config import BackendSchema, BackendSpec
from common.errors import ConfigError
from tier1.providers.anthropic_ingress import MessagesPassthrough, MessagesVia
from tier1.providers.base import Ingress, Translator
from tier1.providers.openai_anthropic import ChatToMessages
from tier1.providers.openai_azure import AzureOpenAI
from tier1.providers.openai_bedrock import ChatToConverse
from tier1.providers.openai_bedrock_anthropic import ChatToBedrockMessages
from tier1.providers.openai_gemini import ChatToGemini, ChatToVertex
from tier1.providers.openai_openai import OpenAIPassthrough
from tier1.providers.openai_vertex_anthropic import ChatToVertexMessages

Factory = Callable[[BackendSpec, str], Translator]
"""(backend spec, base URL) → translator."""


def _openai(spec: BackendSpec, base_url: str) -> Translator:
    return OpenAIPassthrough(base_url)


def _azure(spec: BackendSpec, base_url: str) -> Translator:
    return AzureOpenAI(base_url, api_version=spec.api_version or "2024-10-21")


def _bedrock(spec: BackendSpec, base_url: str) -> Translator:
    return ChatToConverse(base_url, spec.default_max_tokens)


def _gemini(spec: BackendSpec, base_url: str) -> Translator:
    return ChatToGemini(base_url)


def _vertex(spec: BackendSpec, base_url: str) -> Translator:
    return ChatToVertex(base_url, spec.project or "", spec.region or "")


def _pool(spec: BackendSpec, base_url: str) -> Translator:
    # tier2 speaks OpenAI's schema under /v1
    return OpenAIPassthrough(base_url)


def _anthropic(spec: BackendSpec, base_url: str) -> Translator:
    return ChatToMessages(base_url, spec.default_max_tokens)


def _vertex_anthropic(spec: BackendSpec, base_url: str) -> Translator:
    return ChatToVertexMessages(
        base_url, spec.project or "", spec.region or "", spec.default_max_tokens
    )


def _bedrock_anthropic(spec: BackendSpec, base_url: str) -> Translator:
    return ChatToBedrockMessages(base_url, spec.default_max_tokens)


OPENAI_INGRESS: Final[dict[BackendSchema, Factory]] = {
    BackendSchema.OPENAI: _openai,
    BackendSchema.AZURE_OPENAI: _azure,
    BackendSchema.POOL: _pool,
    BackendSchema.BEDROCK: _bedrock,
    BackendSchema.GEMINI: _gemini,
    BackendSchema.VERTEX: _vertex,
    BackendSchema.ANTHROPIC: _anthropic,
    BackendSchema.VERTEX_ANTHROPIC: _vertex_anthropic,
    BackendSchema.BEDROCK_ANTHROPIC: _bedrock_anthropic,
}


def _messages_passthrough(platform: str) -> Factory:
    def factory(spec: BackendSpec, base_url: str) -> Translator:
        return MessagesPassthrough(base_url, platform, spec.project or "", spec.region or "")

    return factory


def _messages_via(schema: BackendSchema) -> Factory:
    field: Literal["max_tokens", "max_completion_tokens"] = (
        "max_completion_tokens"
        if schema in (BackendSchema.OPENAI, BackendSchema.AZURE_OPENAI)
        else "max_tokens"
    )

    def factory(spec: BackendSpec, base_url: str) -> Translator:
        return MessagesVia(OPENAI_INGRESS[schema](spec, base_url), field)

    return factory


ANTHROPIC_PLATFORMS = {
    BackendSchema.ANTHROPIC: "anthropic",
    BackendSchema.VERTEX_ANTHROPIC: "vertex",
    BackendSchema.BEDROCK_ANTHROPIC: "bedrock",
}

TRANSLATORS: Final[dict[tuple[Ingress, BackendSchema], Factory]] = {
    **{("openai", schema): f for schema, f in OPENAI_INGRESS.items()},
    **{
        ("anthropic", schema): _messages_passthrough(p) for schema, p in ANTHROPIC_PLATFORMS.items()
    },
    **{
        ("anthropic", schema): _messages_via(schema)
        for schema in OPENAI_INGRESS
        if schema not in ANTHROPIC_PLATFORMS
    },
}
"""Every (ingress, backend schema) pair this build serves."""


def translator_factory(ingress: Ingress, schema: BackendSchema) -> Factory:
    try:
        return TRANSLATORS[(ingress, schema)]
    except KeyError:
        raise ConfigError(
            f"this tier1 cannot translate {ingress} requests to {schema.value!r} backends yet"
        ) from None
