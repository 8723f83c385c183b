"""Resources: kind + name + spec + server-set revision, and their file format.

A resource file holds one or more YAML (or JSON) documents, each with a `kind:`, like
kubectl manifests. Parsing turns pydantic's errors into `FieldError`s whose paths say
which document and field to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Final, Literal, TypeAlias

import yaml
from pydantic import Field, TypeAdapter, ValidationError

from common.config.backend import BackendSpec
from common.config.base import REVEAL, Frozen, Name
from common.config.consumer import ConsumerSpec
from common.config.pool import PoolSpec
from common.config.ratelimit import RateLimitPolicySpec
from common.config.route import RouteSpec
from common.errors import FieldError, ValidationFailed


class _Resource(Frozen):
    name: Name
    revision: int | None = None
    """Store revision of the last write, set by the server. Send back the revision you
    read when you replace a resource; a stale one is a 409 conflict."""


class Backend(_Resource):
    kind: Literal["Backend"] = "Backend"
    spec: BackendSpec


class Route(_Resource):
    kind: Literal["Route"] = "Route"
    spec: RouteSpec


class Pool(_Resource):
    kind: Literal["Pool"] = "Pool"
    spec: PoolSpec


class Consumer(_Resource):
    kind: Literal["Consumer"] = "Consumer"
    spec: ConsumerSpec


class RateLimitPolicy(_Resource):
    kind: Literal["RateLimitPolicy"] = "RateLimitPolicy"
    spec: RateLimitPolicySpec


Resource: TypeAlias = Backend | Route | Pool | Consumer | RateLimitPolicy
AnyResource = Annotated[Resource, Field(discriminator="kind")]
_ADAPTER: Final[TypeAdapter[Resource]] = TypeAdapter(AnyResource)  # type: ignore[arg-type]

KINDS: Final[dict[str, type[Resource]]] = {
    "Backend": Backend,
    "Route": Route,
    "Pool": Pool,
    "Consumer": Consumer,
    "RateLimitPolicy": RateLimitPolicy,
}
# URL segment and CLI word per kind: /v1/backends, `strata get routes`.
PLURALS: Final[dict[str, str]] = {
    "Backend": "backends",
    "Route": "routes",
    "Pool": "pools",
    "Consumer": "consumers",
    "RateLimitPolicy": "ratelimitpolicies",
}
KIND_BY_PLURAL: Final[dict[str, str]] = {v: k for k, v in PLURALS.items()}


def kind_from_word(word: str) -> str:
    """`backend`, `Backends`, `ratelimitpolicy` … → the kind; ValueError if none fits."""
    w = word.lower()
    for kind, plural in PLURALS.items():
        if w in (kind.lower(), plural):
            return kind
    raise ValueError(f"unknown kind {word!r}; use one of: {', '.join(PLURALS.values())}")


def _field_errors(err: ValidationError, prefix: str) -> list[FieldError]:
    out = []
    for e in err.errors(include_url=False):
        loc = e["loc"][1:] if e["loc"] and e["loc"][0] in KINDS else e["loc"]
        path = ".".join(str(p) for p in loc)
        msg = e["msg"].removeprefix("Value error, ")
        out.append(FieldError(f"{prefix}{path}" if path else prefix.rstrip("."), msg))
    return out


def parse_resource(data: Any, *, where: str = "") -> Resource:
    """One resource from a dict; ValidationFailed names each bad field."""
    prefix = f"{where}." if where else ""
    if not isinstance(data, Mapping):
        raise ValidationFailed("invalid resource", [FieldError(where or "$", "expected an object")])
    kind = data.get("kind")
    if kind not in KINDS:
        raise ValidationFailed(
            "invalid resource",
            [FieldError(f"{prefix}kind", f"must be one of {', '.join(KINDS)}; got {kind!r}")],
        )
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as e:
        raise ValidationFailed(f"invalid {kind}", _field_errors(e, prefix)) from None


def parse_documents(text: str, *, source: str = "input") -> list[Resource]:
    """Every document in a YAML/JSON text. Errors of all documents are reported at once."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise ValidationFailed(
            f"{source} is not valid YAML", [FieldError(source, str(e))]
        ) from None
    resources: list[Resource] = []
    errors: list[FieldError] = []
    for i, doc in enumerate(docs):
        name = doc.get("name") if isinstance(doc, Mapping) else None
        where = f"{source}[{i}]" + (f"({doc.get('kind')}/{name})" if name else "")
        try:
            resources.append(parse_resource(doc, where=where))
        except ValidationFailed as e:
            errors.extend(e.errors)
    if errors:
        raise ValidationFailed(f"{source} has invalid resources", errors)
    return resources


def to_public(resource: Resource) -> dict[str, Any]:
    """The API's view: secrets shown as {"set": true}."""
    return resource.model_dump(mode="json", by_alias=True)


def to_stored(resource: Resource) -> dict[str, Any]:
    """The stored view: secrets in clear, revision left out (the store owns it)."""
    return resource.model_dump(mode="json", by_alias=True, context=REVEAL, exclude={"revision"})


def with_revision(resource: Resource, revision: int | None) -> Resource:
    return resource.model_copy(update={"revision": revision})


def dump_documents(resources: Iterable[Resource]) -> str:
    """YAML text of public views, the format `strata apply -f` reads back."""
    return yaml.safe_dump_all(
        [to_public(r) for r in resources], sort_keys=False, default_flow_style=False
    )
