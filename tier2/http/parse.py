"""Read one inference request once: the JSON body, the fields tier2 needs, the headers
that travel on to the pod (pure; errors are 400s naming the field)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from common.errors import BadRequest
from common.requestbody import json_object, model_of
from tier2.admission import PRIORITY_HEADER, parse_priority
from tier2.scheduling.types import Priority

Kind = Literal["chat", "completions"]
SESSION_HEADER = "x-session-id"

# hop-by-hop headers, what aiohttp sets itself, and tier1's internal x-strata-* headers
_DROPPED = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "accept-encoding",
    }
)
_REQUIRED: dict[Kind, str] = {"chat": "messages", "completions": "prompt"}


@dataclass(frozen=True, slots=True)
class InferenceRequest:
    kind: Kind
    raw: bytes
    """The body as received; forwarded untouched."""
    body: dict[str, Any]
    model: str
    stream: bool
    priority: Priority
    session: str | None
    headers: dict[str, str]
    """What travels on to the pod."""


def upstream_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        k: v
        for k, v in ((k.lower(), v) for k, v in headers.items())
        if k not in _DROPPED and not k.startswith("x-strata-")
    }


def parse_request(kind: Kind, raw: bytes, headers: Mapping[str, str]) -> InferenceRequest:
    body = json_object(raw)
    model = model_of(body)
    field = _REQUIRED[kind]
    if field not in body:
        raise BadRequest(f"`{field}` is required", param=field)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("`stream` must be a boolean", param="stream")
    session = headers.get(SESSION_HEADER) or None
    forwarded = upstream_headers(headers)
    forwarded.setdefault("content-type", "application/json")
    return InferenceRequest(
        kind,
        raw,
        body,
        model,
        stream,
        parse_priority(headers.get(PRIORITY_HEADER)),
        session,
        forwarded,
    )
