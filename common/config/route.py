"""Route: which models it serves and the ordered backends that serve them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from common.config.base import Frozen, Name

RetryOn = Literal["connect_error", "timeout", "429", "5xx"] | int
DEFAULT_RETRY_ON: tuple[RetryOn, ...] = ("connect_error", "timeout", "429", "5xx")


class RouteMatch(Frozen):
    models: list[str] = Field(min_length=1)
    """Model names this route serves: exact names, or globs with `*` (e.g. `gpt-4o*`).
    Exact matches win over globs; among globs the longest pattern wins."""
    hostnames: list[str] = Field(default_factory=list)
    """If set, only requests whose Host is one of these match."""
    headers: dict[str, str] = Field(default_factory=dict)
    """If set, only requests carrying all these header values match."""

    @field_validator("models")
    @classmethod
    def _no_blank(cls, v: list[str]) -> list[str]:
        for m in v:
            if not m.strip():
                raise ValueError("model names must not be blank")
        return v

    @field_validator("headers")
    @classmethod
    def _lower_names(cls, v: dict[str, str]) -> dict[str, str]:
        return {k.lower(): val for k, val in v.items()}


class BackendRef(Frozen):
    name: Name
    """A Backend resource."""
    priority: int = Field(0, ge=0, le=100)
    """Lower runs first; the next priority is tried only when this one fails."""
    weight: float = Field(1.0, ge=0)
    """Share of traffic within its priority group; 0 keeps it as a standby."""
    model_name_override: str | None = None
    """Model sent to this backend; wins over the Backend's own override."""


class RetryPolicy(Frozen):
    attempts: int = Field(3, ge=1, le=10)
    """Total attempts per request, the first included."""
    on: list[RetryOn] = Field(default_factory=lambda: list(DEFAULT_RETRY_ON))
    """Failures that move to the next attempt: connect_error, timeout (before the first
    byte), 429, 5xx, or specific status codes."""
    backoff_base_s: float = Field(0.0, ge=0, le=10)
    """Pause before the n-th retry is base × 2^(n-1), capped; 0 because the next
    attempt usually goes to another backend."""
    backoff_max_s: float = Field(1.0, ge=0, le=60)
    honor_retry_after: bool = True
    """Skip a backend that answered 429/503 with Retry-After until that time passes."""
    deadline_s: float | None = Field(None, gt=0, le=3600)
    """Overall time budget for all attempts; None = the backends' own timeouts."""

    @field_validator("on")
    @classmethod
    def _codes_are_errors(cls, v: list[RetryOn]) -> list[RetryOn]:
        for item in v:
            if isinstance(item, int) and not 400 <= item <= 599:
                raise ValueError(f"retry status {item} is not an HTTP error status (400-599)")
        return v


class RouteSpec(Frozen):
    match: RouteMatch
    backends: list[BackendRef] = Field(min_length=1)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    rate_limit_policies: list[Name] = Field(default_factory=list)
    """RateLimitPolicy resources applied to every request on this route."""
    list_in_models: bool = True
    """Whether the route's exact model names appear in GET /v1/models."""

    @model_validator(mode="after")
    def _some_weight(self) -> RouteSpec:
        names = [b.name for b in self.backends]
        if len(set(names)) != len(names):
            raise ValueError("a backend may appear only once in a route's backends")
        if all(b.weight == 0 for b in self.backends):
            raise ValueError("at least one backend needs a weight above 0")
        return self
