"""The first checks every OpenAI-style request body gets, in tier1 and tier2 alike (pure)."""

from __future__ import annotations

from typing import Any

from common import jsonutil
from common.errors import BadRequest


def json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or BadRequest saying what is wrong with it."""
    try:
        body = jsonutil.loads(raw)
    except ValueError:
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def model_of(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("`model` is required and must be a non-empty string", param="model")
    return model
