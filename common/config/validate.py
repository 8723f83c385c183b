"""Cross-resource validation: references resolve, no two routes claim one model.

Each resource is valid on its own once parsed; these rules need the whole set. Errors
name the resource and field path and say what to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from common.config.backend import BackendSchema
from common.config.resources import (
    KINDS,
    Backend,
    Consumer,
    Pool,
    RateLimitPolicy,
    Resource,
    Route,
)
from common.errors import FieldError, ValidationFailed


@dataclass(frozen=True, slots=True)
class ConfigSet:
    """All resources at one store revision, by kind then name."""

    by_kind: Mapping[str, Mapping[str, Resource]] = field(
        default_factory=lambda: MappingProxyType({k: MappingProxyType({}) for k in KINDS})
    )

    @classmethod
    def of(cls, resources: Iterable[Resource]) -> ConfigSet:
        acc: dict[str, dict[str, Resource]] = {k: {} for k in KINDS}
        for r in resources:
            acc[r.kind][r.name] = r
        return cls(MappingProxyType({k: MappingProxyType(v) for k, v in acc.items()}))

    def __iter__(self) -> Iterator[Resource]:
        for kind in KINDS:
            yield from (self.by_kind[kind][n] for n in sorted(self.by_kind[kind]))

    def get(self, kind: str, name: str) -> Resource | None:
        return self.by_kind[kind].get(name)

    def replaced(self, resource: Resource) -> ConfigSet:
        return ConfigSet.of(
            [r for r in self if not _same(r, resource.kind, resource.name)] + [resource]
        )

    def removed(self, kind: str, name: str) -> ConfigSet:
        return ConfigSet.of(r for r in self if not _same(r, kind, name))

    @property
    def backends(self) -> list[Backend]:
        return [r for r in self if isinstance(r, Backend)]

    @property
    def routes(self) -> list[Route]:
        return [r for r in self if isinstance(r, Route)]

    @property
    def pools(self) -> list[Pool]:
        return [r for r in self if isinstance(r, Pool)]

    @property
    def consumers(self) -> list[Consumer]:
        return [r for r in self if isinstance(r, Consumer)]

    @property
    def policies(self) -> list[RateLimitPolicy]:
        return [r for r in self if isinstance(r, RateLimitPolicy)]


def _same(r: Resource, kind: str, name: str) -> bool:
    return r.kind == kind and r.name == name


def _is_glob(model: str) -> bool:
    return "*" in model or "?" in model or "[" in model


def cross_errors(cfg: ConfigSet) -> list[FieldError]:
    errors: list[FieldError] = []
    backends = cfg.by_kind["Backend"]
    pools = cfg.by_kind["Pool"]
    policies = cfg.by_kind["RateLimitPolicy"]

    for b in cfg.backends:
        if b.spec.schema_ is BackendSchema.POOL and b.spec.pool not in pools:
            errors.append(
                FieldError(
                    f"backends/{b.name}.spec.pool",
                    f"pool {b.spec.pool!r} does not exist; create the Pool first",
                )
            )

    claims: dict[tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]], str] = {}
    for r in cfg.routes:
        for i, ref in enumerate(r.spec.backends):
            if ref.name not in backends:
                errors.append(
                    FieldError(
                        f"routes/{r.name}.spec.backends.{i}.name",
                        f"backend {ref.name!r} does not exist; create it or fix the name",
                    )
                )
        for i, p in enumerate(r.spec.rate_limit_policies):
            if p not in policies:
                errors.append(
                    FieldError(
                        f"routes/{r.name}.spec.rate_limit_policies.{i}",
                        f"rate-limit policy {p!r} does not exist",
                    )
                )
        scope = (tuple(sorted(r.spec.match.hostnames)), tuple(sorted(r.spec.match.headers.items())))
        for model in r.spec.match.models:
            if _is_glob(model):
                continue
            owner = claims.setdefault((model, *scope), r.name)
            if owner != r.name:
                errors.append(
                    FieldError(
                        f"routes/{r.name}.spec.match.models",
                        f"model {model!r} is already served by route {owner!r}; "
                        "a model may belong to one route (per hostname/header match)",
                    )
                )

    key_owner: dict[str, str] = {}
    for c in cfg.consumers:
        for i, p in enumerate(c.spec.rate_limit_policies):
            if p not in policies:
                errors.append(
                    FieldError(
                        f"consumers/{c.name}.spec.rate_limit_policies.{i}",
                        f"rate-limit policy {p!r} does not exist",
                    )
                )
        for i, k in enumerate(c.spec.keys):
            other = key_owner.setdefault(k.hash, c.name)
            if other != c.name:
                errors.append(
                    FieldError(
                        f"consumers/{c.name}.spec.keys.{i}.hash",
                        f"the same key is already held by consumer {other!r}",
                    )
                )
    return errors


def referrers(cfg: ConfigSet, kind: str, name: str) -> list[str]:
    """Resources that name `kind/name`; deleting it while they exist is refused."""
    out: list[str] = []
    if kind == "Backend":
        out += [
            f"routes/{r.name}" for r in cfg.routes if any(b.name == name for b in r.spec.backends)
        ]
    elif kind == "Pool":
        out += [f"backends/{b.name}" for b in cfg.backends if b.spec.pool == name]
    elif kind == "RateLimitPolicy":
        out += [f"routes/{r.name}" for r in cfg.routes if name in r.spec.rate_limit_policies]
        out += [f"consumers/{c.name}" for c in cfg.consumers if name in c.spec.rate_limit_policies]
    return out


def validate_config(cfg: ConfigSet) -> None:
    """Raise ValidationFailed listing every cross-resource problem."""
    errors = cross_errors(cfg)
    if errors:
        raise ValidationFailed("the configuration would be inconsistent", errors)
