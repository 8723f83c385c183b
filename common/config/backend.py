"""Backend: one upstream a route can send traffic to (a provider API or a pool)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from common.config.base import Frozen, Name, Secret, Url


class BackendSchema(StrEnum):
    """The API dialect a backend speaks; tier1 picks a translator per (ingress, schema)."""

    OPENAI = "openai"
    AZURE_OPENAI = "azure_openai"
    ANTHROPIC = "anthropic"
    BEDROCK = "bedrock"
    GEMINI = "gemini"
    VERTEX = "vertex"
    VERTEX_ANTHROPIC = "vertex_anthropic"
    BEDROCK_ANTHROPIC = "bedrock_anthropic"
    POOL = "pool"


class ApiKeyAuth(Frozen):
    """A static key sent in a header (OpenAI, Anthropic, Gemini, OpenAI-compatible servers)."""

    type: Literal["api_key"] = "api_key"
    key: Secret
    """The provider key. Write-only: reads show {"set": true}."""
    header: str | None = None
    """Header to carry the key; None means the schema's usual one (Authorization:
    Bearer for openai, x-api-key for anthropic, x-goog-api-key for gemini)."""


class AzureApiKeyAuth(Frozen):
    type: Literal["azure_api_key"] = "azure_api_key"
    key: Secret
    """Sent as the `api-key` header Azure OpenAI expects."""


class AzureEntraAuth(Frozen):
    """Microsoft Entra ID client credentials; tier1 fetches and refreshes the bearer token."""

    type: Literal["azure_entra"] = "azure_entra"
    tenant_id: str
    client_id: str
    client_secret: Secret
    scope: str = "https://cognitiveservices.azure.com/.default"
    """OAuth scope; the default is Azure OpenAI's resource scope."""
    authority: Url = "https://login.microsoftonline.com"
    """Token issuer host; other clouds (e.g. Azure Government) use their own."""


class AwsAuth(Frozen):
    """SigV4 credentials. Leave the keys empty to use the AWS default chain (env, profile,
    instance or pod identity) of the tier1 process."""

    type: Literal["aws"] = "aws"
    access_key_id: Secret | None = None
    secret_access_key: Secret | None = None
    session_token: Secret | None = None
    region: str | None = None
    """Signing region; None means the backend's `region` or the one in its host name."""

    @model_validator(mode="after")
    def _keys_come_in_pairs(self) -> AwsAuth:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError(
                "set both access_key_id and secret_access_key, or neither to use the default chain"
            )
        return self


class GcpAuth(Frozen):
    """A service-account key (JSON), or application default credentials when empty."""

    type: Literal["gcp"] = "gcp"
    service_account_json: Secret | None = None


class NoAuth(Frozen):
    type: Literal["none"] = "none"


BackendAuth = Annotated[
    ApiKeyAuth | AzureApiKeyAuth | AzureEntraAuth | AwsAuth | GcpAuth | NoAuth,
    Field(discriminator="type"),
]

# Which auth kinds make sense for which schema; anything else is a config error.
ALLOWED_AUTH: dict[BackendSchema, frozenset[str]] = {
    BackendSchema.OPENAI: frozenset({"api_key", "none"}),
    BackendSchema.AZURE_OPENAI: frozenset({"azure_api_key", "azure_entra"}),
    BackendSchema.ANTHROPIC: frozenset({"api_key"}),
    BackendSchema.BEDROCK: frozenset({"aws"}),
    BackendSchema.BEDROCK_ANTHROPIC: frozenset({"aws"}),
    BackendSchema.GEMINI: frozenset({"api_key"}),
    BackendSchema.VERTEX: frozenset({"gcp"}),
    BackendSchema.VERTEX_ANTHROPIC: frozenset({"gcp"}),
    BackendSchema.POOL: frozenset({"none"}),
}


class Timeouts(Frozen):
    connect_s: float = Field(5.0, gt=0, le=120)
    """Seconds to open a connection. Short, so a dead host fails over quickly."""
    request_s: float = Field(600.0, gt=0, le=3600)
    """Seconds for a whole non-streamed answer; long because reasoning models are slow."""
    stream_idle_s: float = Field(60.0, gt=0, le=3600)
    """Seconds a stream may stay silent before tier1 gives up on it (fails over if no
    byte has reached the client yet)."""


class OutlierDetection(Frozen):
    """Passive health: a backend that keeps failing is skipped for a while."""

    consecutive_failures: int = Field(5, ge=1, le=1000)
    """Failed attempts in a row (connect errors, timeouts, 5xx, 429) that start a cooldown."""
    cooldown_s: float = Field(10.0, gt=0, le=3600)
    """Seconds the backend is skipped; the first request after that is a probe."""


class HeaderMutation(Frozen):
    set: dict[str, str] = Field(default_factory=dict)
    """Headers added to (or overwriting) every upstream request."""
    remove: list[str] = Field(default_factory=list)
    """Header names stripped from every upstream request."""


class Price(Frozen):
    """List price, used for cost metrics. Units: currency per one million tokens."""

    input_per_1m: float = Field(ge=0)
    output_per_1m: float = Field(ge=0)
    cached_input_per_1m: float | None = Field(None, ge=0)


class BackendSpec(Frozen):
    schema_: BackendSchema = Field(alias="schema")
    """API dialect of the upstream."""
    base_url: Url | None = None
    """Root URL of the API, e.g. https://api.openai.com/v1. Required for openai,
    azure_openai and anthropic; optional where the provider's default host is derived
    (bedrock from region, gemini, vertex from location); not used for pool."""
    pool: Name | None = None
    """For schema=pool: the Pool resource whose tier2 service receives the traffic."""
    auth: BackendAuth = Field(default_factory=NoAuth)
    model_name_override: str | None = None
    """Model name sent upstream instead of the client's (clients still see theirs)."""
    api_version: str | None = None
    """Azure OpenAI `api-version` query parameter, e.g. 2024-10-21."""
    region: str | None = None
    """AWS region (bedrock) or Google location (vertex), e.g. us-east-1, us-central1."""
    project: str | None = None
    """Google Cloud project id (vertex)."""
    default_max_tokens: int = Field(4096, ge=1)
    """max_tokens sent when the client sets none and the provider requires one
    (Anthropic's Messages API does)."""
    timeouts: Timeouts = Field(default_factory=Timeouts)
    headers: HeaderMutation = Field(default_factory=HeaderMutation)
    outlier: OutlierDetection = Field(default_factory=OutlierDetection)
    price: Price | None = None

    model_config = Frozen.model_config | {"populate_by_name": True}

    @model_validator(mode="after")
    def _schema_needs(self) -> BackendSpec:
        s = self.schema_
        if s is BackendSchema.POOL:
            if self.pool is None:
                raise ValueError("schema 'pool' needs `pool`: the name of a Pool resource")
            if self.base_url is not None:
                raise ValueError(
                    "schema 'pool' takes no base_url; the Pool lists its tier2 addresses"
                )
        elif self.pool is not None:
            raise ValueError(f"`pool` is only for schema 'pool', not {s.value!r}")
        if s in (BackendSchema.OPENAI, BackendSchema.AZURE_OPENAI, BackendSchema.ANTHROPIC):
            if self.base_url is None:
                raise ValueError(f"schema {s.value!r} needs base_url")
        if s is BackendSchema.AZURE_OPENAI and not self.api_version:
            raise ValueError("schema 'azure_openai' needs api_version, e.g. 2024-10-21")
        if s in (BackendSchema.BEDROCK, BackendSchema.BEDROCK_ANTHROPIC):
            if self.base_url is None and self.region is None:
                raise ValueError(f"schema {s.value!r} needs region (or a base_url)")
        if s in (BackendSchema.VERTEX, BackendSchema.VERTEX_ANTHROPIC):
            if not self.project or not self.region:
                raise ValueError(f"schema {s.value!r} needs project and region (location)")
        allowed = ALLOWED_AUTH[s]
        if self.auth.type not in allowed:
            raise ValueError(
                f"auth type {self.auth.type!r} does not fit schema {s.value!r}; "
                f"use one of: {', '.join(sorted(allowed))}"
            )
        return self
