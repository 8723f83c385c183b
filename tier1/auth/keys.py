"""Consumer API keys: which header carries the key, and the hash lookup (pure)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from common.config import Consumer
from common.config.consumer import HASH_PREFIX
from common.errors import Unauthorized

CREDENTIAL_HEADERS = ("authorization", "api-key", "x-api-key")
"""OpenAI style (Bearer), Azure style and Anthropic style. None of them is ever sent
upstream."""


def presented_key(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization")
    if value:
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return headers.get("api-key") or headers.get("x-api-key") or None


def authenticate(consumers_by_hash: Mapping[str, Consumer], headers: Mapping[str, str]) -> Consumer:
    key = presented_key(headers)
    if key is None:
        raise Unauthorized(
            "missing API key: send Authorization: Bearer <key> (or api-key / x-api-key)"
        )
    digest = HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()
    consumer = consumers_by_hash.get(digest)
    if consumer is None:
        raise Unauthorized("invalid API key")
    # the lookup was by hash; confirm in constant time all the same
    if not any(hmac.compare_digest(k.hash, digest) for k in consumer.spec.keys):
        raise Unauthorized("invalid API key")
    return consumer
