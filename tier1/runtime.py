"""Tier1Runtime: a tier1 snapshot compiled once into what every request needs (pure).

Routes are indexed by exact model name, globs are tried longest first; each backend
gets its translator (from the registry table) and its static auth headers up front, so
the request path does dictionary lookups only. A snapshot this build cannot serve
raises ConfigError and is NACKed; the node keeps its last good runtime.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from common import jsonutil
from common.config import REVEAL, BackendSchema, Consumer, Pool, Route, Tier1Snapshot
from common.config.backend import (
    ApiKeyAuth,
    AwsAuth,
    AzureApiKeyAuth,
    AzureEntraAuth,
    BackendSpec,
    GcpAuth,
)
from common.errors import ConfigError
from tier1.providers.base import Ingress, Translator
from tier1.providers.openai_gemini import GEMINI_BASE_URL, vertex_base_url
from tier1.providers.registry import translator_factory
from tier1.ratelimit.policies import CompiledPolicy, compile_policies
from tier1.routing.plan import Candidate
from tier1.upstream.regions import region_from_url

# gen_ai.provider.name values from the OpenTelemetry GenAI conventions
PROVIDER_NAMES: Mapping[BackendSchema, str] = {
    BackendSchema.OPENAI: "openai",
    BackendSchema.AZURE_OPENAI: "azure.ai.openai",
    BackendSchema.ANTHROPIC: "anthropic",
    BackendSchema.BEDROCK: "aws.bedrock",
    BackendSchema.BEDROCK_ANTHROPIC: "aws.bedrock",
    BackendSchema.GEMINI: "gcp.gemini",
    BackendSchema.VERTEX: "gcp.vertex_ai",
    BackendSchema.VERTEX_ANTHROPIC: "gcp.vertex_ai",
    BackendSchema.POOL: "strata.pool",
}


@dataclass(frozen=True, slots=True)
class BackendRuntime:
    name: str
    spec: BackendSpec
    translators: tuple[Translator, ...]
    """OpenAI-ingress translators, one per target (pools have one per tier2 replica)."""
    auth_headers: tuple[tuple[str, str], ...]
    provider: str
    messages_translators: tuple[Translator, ...] = ()
    """The same targets for the Anthropic Messages ingress."""
    pool: str | None = None
    signing: SigningSpec | None = None
    """Set when requests are signed or carry a fetched token (AWS, Google, Entra)."""

    @property
    def schema(self) -> BackendSchema:
        return self.spec.schema_

    def translators_for(self, ingress: Ingress) -> tuple[Translator, ...]:
        return self.messages_translators if ingress == "anthropic" else self.translators


@dataclass(frozen=True, slots=True)
class RouteRuntime:
    route: Route
    candidates: tuple[Candidate[tuple[BackendRuntime, str | None]], ...]
    """(backend, per-ref model override) with priority and weight."""

    @property
    def name(self) -> str:
        return self.route.name

    def matches(self, host: str | None, headers: Mapping[str, str]) -> bool:
        m = self.route.spec.match
        if m.hostnames and (host or "").split(":")[0] not in m.hostnames:
            return False
        return all(headers.get(k) == v for k, v in m.headers.items())


@dataclass(frozen=True, slots=True)
class Tier1Runtime:
    revision: int
    exact: Mapping[str, tuple[RouteRuntime, ...]]
    globs: tuple[tuple[str, RouteRuntime], ...]
    backends: Mapping[str, BackendRuntime]
    consumers_by_key_hash: Mapping[str, Consumer]
    routes: tuple[RouteRuntime, ...] = field(default=())
    consumers_by_name: Mapping[str, Consumer] = field(default_factory=dict)
    policies: Mapping[str, CompiledPolicy] = field(default_factory=dict)
    """Rate-limit policies by name."""
    route_policies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Route name -> the rate-limit policies it names."""
    ratelimit: tuple[str, ...] = ()
    """Quota replicas (host:port) control publishes."""

    def route_for(
        self, model: str, host: str | None = None, headers: Mapping[str, str] | None = None
    ) -> RouteRuntime | None:
        hdrs = headers or {}
        for r in self.exact.get(model, ()):
            if r.matches(host, hdrs):
                return r
        for pattern, r in self.globs:
            if fnmatch.fnmatchcase(model, pattern) and r.matches(host, hdrs):
                return r
        return None

    def listed_models(self, consumer: Consumer | None) -> list[str]:
        names = sorted(
            {
                m
                for r in self.routes
                if r.route.spec.list_in_models
                for m in r.route.spec.match.models
                if not _is_glob(m)
            }
        )
        return [m for m in names if consumer is None or model_allowed(consumer, m)]


def model_allowed(consumer: Consumer, model: str) -> bool:
    allowed = consumer.spec.allowed_models
    return not allowed or any(fnmatch.fnmatchcase(model, pattern) for pattern in allowed)


def _is_glob(model: str) -> bool:
    return any(c in model for c in "*?[")


def _auth_headers(spec: BackendSpec) -> tuple[tuple[str, str], ...]:
    auth = spec.auth
    if isinstance(auth, ApiKeyAuth):
        key = auth.key.get_secret_value()
        header = (
            auth.header
            or {
                BackendSchema.ANTHROPIC: "x-api-key",
                BackendSchema.GEMINI: "x-goog-api-key",
            }.get(spec.schema_, "authorization")
        ).lower()
        return ((header, f"Bearer {key}" if header == "authorization" else key),)
    if isinstance(auth, AzureApiKeyAuth):
        return (("api-key", auth.key.get_secret_value()),)
    return ()


def default_base_url(spec: BackendSpec) -> str | None:
    """The provider's own host when the backend names none."""
    s = spec.schema_
    if s in (BackendSchema.BEDROCK, BackendSchema.BEDROCK_ANTHROPIC) and spec.region:
        return f"https://bedrock-runtime.{spec.region}.amazonaws.com"
    if s is BackendSchema.GEMINI:
        return GEMINI_BASE_URL
    if s in (BackendSchema.VERTEX, BackendSchema.VERTEX_ANTHROPIC) and spec.region:
        return vertex_base_url(spec.region)
    return None


@dataclass(frozen=True, slots=True)
class SigningSpec:
    kind: str
    """aws | gcp | entra"""
    auth: AwsAuth | GcpAuth | AzureEntraAuth
    region: str = ""

    @property
    def cache_key(self) -> str:
        # includes the secrets (hashed), so a rotated key gets a new signer
        dumped = self.auth.model_dump(mode="json", context=REVEAL)
        material = jsonutil.dumps(
            {"kind": self.kind, "auth": dumped, "region": self.region}, sort_keys=True
        )
        return hashlib.sha256(material).hexdigest()


def _signing(name: str, spec: BackendSpec, base_url: str) -> SigningSpec | None:
    auth = spec.auth
    if isinstance(auth, AwsAuth):
        region = auth.region or spec.region or region_from_url(base_url)
        if not region:
            raise ConfigError(f"backend {name!r}: set a region for SigV4 signing")
        return SigningSpec("aws", auth, region)
    if isinstance(auth, GcpAuth):
        return SigningSpec("gcp", auth)
    if isinstance(auth, AzureEntraAuth):
        return SigningSpec("entra", auth)
    return None


def _backend(b: Any, pools: Mapping[str, Pool]) -> BackendRuntime:
    spec: BackendSpec = b.spec
    factory = translator_factory("openai", spec.schema_)
    if spec.schema_ is BackendSchema.POOL:
        pool = pools.get(spec.pool or "")
        if pool is None:
            raise ConfigError(
                f"backend {b.name!r} names pool {spec.pool!r}, which the snapshot lacks"
            )
        bases = [f"http://{addr}/v1" for addr in pool.spec.tier2]
    else:
        base = spec.base_url or default_base_url(spec)
        if base is None:
            raise ConfigError(f"backend {b.name!r} needs a base_url")
        bases = [base]
    if spec.auth.type not in ("api_key", "azure_api_key", "azure_entra", "aws", "gcp", "none"):
        raise ConfigError(
            f"backend {b.name!r}: auth {spec.auth.type!r} is not supported by this tier1 build yet"
        )
    return BackendRuntime(
        name=b.name,
        spec=spec,
        translators=tuple(factory(spec, base) for base in bases),
        messages_translators=tuple(
            translator_factory("anthropic", spec.schema_)(spec, base) for base in bases
        ),
        auth_headers=_auth_headers(spec),
        provider=PROVIDER_NAMES[spec.schema_],
        pool=spec.pool,
        signing=_signing(b.name, spec, bases[0]),
    )


def build_runtime(snapshot: Any) -> Tier1Runtime:
    if not isinstance(snapshot, Tier1Snapshot):
        raise ConfigError("tier1 needs a tier1 snapshot")
    pools = {p.name: p for p in snapshot.pools}
    backends = {b.name: _backend(b, pools) for b in snapshot.backends}
    routes = []
    for route in snapshot.routes:
        cands = []
        for ref in route.spec.backends:
            backend = backends.get(ref.name)
            if backend is None:
                raise ConfigError(
                    f"route {route.name!r} names backend {ref.name!r}, which the snapshot lacks"
                )
            override = ref.model_name_override or backend.spec.model_name_override
            cands.append(Candidate((backend, override), ref.name, ref.priority, ref.weight))
        routes.append(RouteRuntime(route, tuple(cands)))
    exact: dict[str, list[RouteRuntime]] = {}
    globs: list[tuple[str, RouteRuntime]] = []
    for r in routes:
        for model in r.route.spec.match.models:
            if _is_glob(model):
                globs.append((model, r))
            else:
                exact.setdefault(model, []).append(r)
    # routes with host/header matchers first: the most specific match wins
    for lst in exact.values():
        lst.sort(
            key=lambda r: -(len(r.route.spec.match.hostnames) + len(r.route.spec.match.headers))
        )
    globs.sort(key=lambda item: -len(item[0]))
    by_hash = {k.hash: c for c in snapshot.consumers for k in c.spec.keys}
    return Tier1Runtime(
        revision=snapshot.revision,
        exact=MappingProxyType({k: tuple(v) for k, v in exact.items()}),
        globs=tuple(globs),
        backends=MappingProxyType(backends),
        consumers_by_key_hash=MappingProxyType(by_hash),
        routes=tuple(routes),
        consumers_by_name=MappingProxyType({c.name: c for c in snapshot.consumers}),
        policies=MappingProxyType(compile_policies(snapshot.rate_limit_policies)),
        route_policies=MappingProxyType(
            {r.name: tuple(r.spec.rate_limit_policies) for r in snapshot.routes}
        ),
        ratelimit=tuple(getattr(snapshot, "ratelimit", ())),
    )
