"""Shared pieces of the configuration contract: the frozen base model, names, secrets.

Secrets are `Secret` fields. Dumped normally they render as `{"set": true}`, so any
API read, log line or error shows only that a value exists. Control's store and the
snapshot pushed to the tiers dump with `REVEAL` as context to carry the real value.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializationInfo,
    WrapSerializer,
)

REVEAL: Final = {"reveal_secrets": True}
SECRET_MASK: Final = {"set": True}

NAME_RE: Final = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
Name = Annotated[
    str,
    Field(
        pattern=NAME_RE.pattern,
        description="lower-case letters, digits, '.', '_' and '-'; 1-63 characters, "
        "starting and ending with a letter or digit",
    ),
]


def _check_url(value: str) -> str:
    parsed = urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL with a host")
    if parsed.query or parsed.fragment:
        raise ValueError("a base URL takes no query or fragment")
    return value.rstrip("/")


Url = Annotated[str, AfterValidator(_check_url)]
"""An http(s) base URL, kept as written minus any trailing slash."""


def _serialize_secret(value: SecretStr, _handler: Any, info: SerializationInfo) -> Any:
    context = info.context
    if isinstance(context, dict) and context.get("reveal_secrets"):
        return value.get_secret_value()
    return dict(SECRET_MASK)


Secret = Annotated[SecretStr, WrapSerializer(_serialize_secret, when_used="always")]


class Frozen(BaseModel):
    """Every config model: immutable, and unknown fields are an error, not a surprise."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)
