"""The one table that chooses a translator: (ingress schema, backend schema) → factory.

Checked when a snapshot is compiled, so a missing pair is a rejected config (NACK),
never a request-time 500. The provider issue adds rows here, nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

from common.config import BackendSchema, BackendSpec
from common.errors import ConfigError
from tier1.providers.base import Translator
from tier1.providers.openai_azure import AzureOpenAI
from tier1.providers.openai_bedrock import ChatToConverse
from tier1.providers.openai_gemini import ChatToGemini, ChatToVertex
from tier1.providers.openai_openai import OpenAIPassthrough

Ingress = Literal["openai"]
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


TRANSLATORS: Final[dict[tuple[Ingress, BackendSchema], Factory]] = {
    ("openai", BackendSchema.OPENAI): _openai,
    ("openai", BackendSchema.AZURE_OPENAI): _azure,
    ("openai", BackendSchema.POOL): _pool,
    ("openai", BackendSchema.BEDROCK): _bedrock,
    ("openai", BackendSchema.GEMINI): _gemini,
    ("openai", BackendSchema.VERTEX): _vertex,
}


def translator_factory(ingress: Ingress, schema: BackendSchema) -> Factory:
    try:
        return TRANSLATORS[(ingress, schema)]
    except KeyError:
        raise ConfigError(
            f"this tier1 cannot translate {ingress} requests to {schema.value!r} backends yet"
        ) from None
