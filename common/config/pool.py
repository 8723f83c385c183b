"""Pool: a set of self-hosted model servers behind one tier2 service."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from common.config.base import Frozen
from common.config.scheduling import DEFAULT_PROFILE, PluginSpec, profile_errors, resolve_plugins


def _check_hostport(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not host:port")
    return value


HostPort = Annotated[str, Field(min_length=3)]


class StaticEndpoints(Frozen):
    type: Literal["static"] = "static"
    addresses: list[HostPort] = Field(min_length=1)
    """Model-server addresses as host:port."""

    @field_validator("addresses")
    @classmethod
    def _hostports(cls, v: list[str]) -> list[str]:
        for a in v:
            _check_hostport(a)
        if len(set(v)) != len(v):
            raise ValueError("addresses must be unique")
        return v


class DnsEndpoints(Frozen):
    """A DNS name resolved to many addresses, such as a Kubernetes headless Service."""

    type: Literal["dns"] = "dns"
    name: str = Field(min_length=1)
    port: int = Field(gt=0, lt=65536)
    refresh_s: float = Field(5.0, ge=0.5, le=3600)
    """Seconds between re-resolutions; pods come and go, so keep it short."""


Endpoints = Annotated[StaticEndpoints | DnsEndpoints, Field(discriminator="type")]


class PluginConfig(Frozen):
    """One scheduler plugin (filter, scorer or picker) with its parameters and weight."""

    type: str = Field(min_length=1)
    """Plugin type from tier2's registry, e.g. `queue-scorer`, `max-score-picker`."""
    weight: float = Field(1.0, ge=0)
    """Scorer weight; ignored for filters and pickers."""
    parameters: dict[str, Any] = Field(default_factory=dict)
    """Plugin-specific settings; tier2 validates them with the plugin's own model."""


class SchedulerProfile(Frozen):
    name: str = DEFAULT_PROFILE
    """A named profile shipped with tier2 (`strata`, `gie-default`; see
    common.config.scheduling). With `plugins` set it is only the profile's label."""
    plugins: list[PluginConfig] = Field(default_factory=list)
    """If set, replaces the named profile's plugin list."""

    def specs(self) -> tuple[PluginSpec, ...]:
        """The plugin list this profile runs (its own, or the named profile's)."""
        return resolve_plugins(
            self.name, [PluginSpec(p.type, p.weight, p.parameters) for p in self.plugins]
        )

    @model_validator(mode="after")
    def _known_plugins(self) -> SchedulerProfile:
        # Rejected here, so control refuses a pool tier2 could not assemble.
        errors = profile_errors(self.specs())
        if errors:
            raise ValueError("; ".join(errors))
        return self


class Saturation(Frozen):
    """When an endpoint counts as saturated (no room for more work)."""

    queue_depth: int = Field(5, ge=0)
    """Waiting requests at or above which an endpoint is saturated."""
    kv_cache_usage: float = Field(0.8, ge=0, le=1)
    """KV-cache usage fraction at or above which an endpoint is saturated."""
    max_queue: int = Field(256, ge=0)
    """Requests of standard priority that may wait in tier2 while the pool is saturated."""
    queue_timeout_s: float = Field(5.0, ge=0, le=600)
    """Seconds a standard request waits for capacity before the 503 overflow answer."""


class PoolSpec(Frozen):
    endpoints: Endpoints
    model: str = Field(min_length=1)
    """Base model name the servers serve (as in their /v1/models)."""
    adapters: list[str] = Field(default_factory=list)
    """LoRA adapters that may be requested by name."""
    engine: Literal["vllm", "sglang"] = "vllm"
    """Engine type; picks the metric-name mapping tier2 scrapes."""
    scrape_interval_s: float = Field(0.1, ge=0.01, le=10)
    """Seconds between metric scrapes per endpoint; 100 ms keeps picks fresh."""
    scheduler: SchedulerProfile = Field(default_factory=SchedulerProfile)
    tier2: list[HostPort] = Field(min_length=1)
    """Addresses (host:port) of this pool's tier2 replicas; tier1 forwards here."""
    saturation: Saturation = Field(default_factory=Saturation)

    @field_validator("tier2")
    @classmethod
    def _hostports(cls, v: list[str]) -> list[str]:
        for a in v:
            _check_hostport(a)
        return v
