"""Consumer: who calls the gateway. Keys are stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets

from pydantic import Field, field_validator

from common.config.base import Frozen, Name

KEY_PREFIX = "sk-strata-"
HASH_PREFIX = "sha256:"


def hash_api_key(key: str) -> str:
    """SHA-256 is enough here: keys are 256-bit random, so no slow KDF is needed, and
    tier1 must look a key up in microseconds."""
    return HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKey(Frozen):
    id: str = Field(min_length=1, max_length=64)
    """Stable id to name (and revoke) the key without knowing it."""
    hash: str
    """`sha256:` + hex digest of the key. The key itself is never stored."""
    hint: str = ""
    """First characters of the key, to help people recognise it."""
    created_at: float = 0.0
    """Unix seconds."""

    @field_validator("hash")
    @classmethod
    def _is_hash(cls, v: str) -> str:
        digest = v.removeprefix(HASH_PREFIX)
        if (
            not v.startswith(HASH_PREFIX)
            or len(digest) != 64
            or not all(c in "0123456789abcdef" for c in digest)
        ):
            raise ValueError("must be 'sha256:' followed by 64 lower-case hex digits")
        return v


class ConsumerSpec(Frozen):
    keys: list[ApiKey] = Field(default_factory=list)
    """API keys (hashes only); create them with `strata key create CONSUMER`."""
    allowed_models: list[str] = Field(default_factory=list)
    """Model names or globs this consumer may use; empty means every routed model."""
    metadata: dict[str, str] = Field(default_factory=dict)
    """Free-form labels (team, tenant) copied into logs and usable by rate limits."""
    rate_limit_policies: list[Name] = Field(default_factory=list)

    @field_validator("keys")
    @classmethod
    def _unique(cls, v: list[ApiKey]) -> list[ApiKey]:
        if len({k.id for k in v}) != len(v) or len({k.hash for k in v}) != len(v):
            raise ValueError("key ids and hashes must be unique")
        return v
