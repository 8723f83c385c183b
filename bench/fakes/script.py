"""What a request asks a fake upstream to do: ``x-fake-*`` headers parsed into a Script.

Pure: header pairs in, a frozen :class:`Script` out. The header contract:

- ``x-fake-<key>: <value>`` applies to every fake instance;
- ``x-fake-<instance>-<key>: <value>`` applies only to the instance named ``<instance>``
  (lower-case ``[a-z0-9]+``) and wins over the shared form.

Keys and their values (see :data:`KEYS`)::

    status          HTTP status to answer (100-599; default 200)
    headers         JSON object of extra response headers
    body            base64 of the exact response body
    content-type    content type of ``body`` (default application/json)
    delay-ms        wait before sending the response headers
    chunks          content chunks of a streamed answer (default 5)
    chunk-delay-ms  pause between SSE events
    stall-after     stop after N content chunks (or N events of a raw SSE body), stay open
    hang            "1": never answer (until the client goes away)
    usage           JSON object: prompt_tokens, completion_tokens, total_tokens,
                    cached_tokens, cache_creation_tokens, reasoning_tokens (each dialect
                    maps them onto its own usage fields)
    response-model  the ``model`` field of the answer (Gemini: ``modelVersion``)
    tool-call       a tool name: when the request declares tools, the answer calls this
                    one (Anthropic ``tool_use``, Bedrock ``toolUse``, Gemini
                    ``functionCall``, OpenAI ``tool_calls``) with a small JSON input
    stream-exception  an error type sent mid-stream after the content chunks, ending the
                    stream: Bedrock an exception frame (``:exception-type``), Anthropic an
                    ``error`` event (e.g. ``overloaded_error``), Gemini an ``error`` chunk
                    (a status name, e.g. ``RESOURCE_EXHAUSTED``); ignored by openai/azure
    expect-path     exact request path
    expect-query    JSON object: query parameter -> exact value, or null (must be absent)
    expect-headers  JSON object: header name -> exact value, or null (must be absent)
    expect-body     JSON object the request body must contain (deep; null = key absent)
    expect-model    the request's model (Azure: the deployment in the path; Bedrock,
                    Gemini and Vertex: the model in the path)

A fake built with ``defaults=Script(...)`` starts from those values; headers override.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

__all__ = [
    "KEYS",
    "PREFIX",
    "USAGE_KEYS",
    "Script",
    "ScriptError",
    "check_instance_name",
    "encode_value",
    "script_headers",
    "script_pairs",
]

PREFIX = "x-fake-"
USAGE_KEYS = frozenset(
    {
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cached_tokens",
        "cache_creation_tokens",
        "reasoning_tokens",
    }
)
_INSTANCE = re.compile(r"[a-z0-9]+")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
# The response header every answer carries; a client echoing it back is not scripting.
_IGNORED = frozenset({"instance"})


class ScriptError(ValueError):
    """A scripting header (or default) that cannot be understood."""


@dataclass(frozen=True, slots=True)
class Script:
    """One request's instructions. Field names are the keys with ``_`` for ``-``."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    content_type: str | None = None
    delay_ms: float = 0.0
    chunks: int = 5
    chunk_delay_ms: float = 0.0
    stall_after: int | None = None
    hang: bool = False
    usage: Mapping[str, int] = field(default_factory=dict)
    response_model: str | None = None
    tool_call: str | None = None
    stream_exception: str | None = None
    expect_path: str | None = None
    expect_query: Mapping[str, str | None] | None = None
    expect_headers: Mapping[str, str | None] | None = None
    expect_body: Mapping[str, Any] | None = None
    expect_model: str | None = None

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise ScriptError(f"status must be 100-599, got {self.status}")
        if self.delay_ms < 0 or self.chunk_delay_ms < 0:
            raise ScriptError("delays must be >= 0")
        if self.chunks < 0 or (self.stall_after is not None and self.stall_after < 0):
            raise ScriptError("chunks and stall-after must be >= 0")
        unknown = set(self.usage) - USAGE_KEYS
        if unknown:
            raise ScriptError(f"unknown usage keys {sorted(unknown)}")

    @property
    def has_expectations(self) -> bool:
        return (
            self.expect_path is not None
            or self.expect_query is not None
            or self.expect_headers is not None
            or self.expect_body is not None
            or self.expect_model is not None
        )

    def merged(self, pairs: Mapping[str, str]) -> Script:
        """This script with header-style ``key -> value`` pairs applied on top."""
        if not pairs:
            return self
        changes: dict[str, Any] = {}
        for key, value in pairs.items():
            spec = _PARSERS.get(key)
            if spec is None:
                raise ScriptError(f"unknown scripting key {key!r}")
            name, parse = spec
            try:
                changes[name] = parse(value)
            except ScriptError as exc:
                raise ScriptError(f"{PREFIX}{key}: {exc}") from None
        return replace(self, **changes)


# --- value parsers -------------------------------------------------------------------


def _int(value: str, low: int, high: int | None = None) -> int:
    try:
        n = int(value.strip())
    except ValueError:
        raise ScriptError(f"expected an integer, got {value!r}") from None
    if n < low or (high is not None and n > high):
        bound = f"{low}-{high}" if high is not None else f">= {low}"
        raise ScriptError(f"expected {bound}, got {n}")
    return n


def _status(value: str) -> int:
    return _int(value, 100, 599)


def _count(value: str) -> int:
    return _int(value, 0)


def _ms(value: str) -> float:
    try:
        ms = float(value.strip())
    except ValueError:
        raise ScriptError(f"expected milliseconds, got {value!r}") from None
    if not math.isfinite(ms) or ms < 0:
        raise ScriptError(f"expected milliseconds >= 0, got {value!r}")
    return ms


def _flag(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes"):
        return True
    if v in ("0", "false", "no", ""):
        return False
    raise ScriptError(f"expected 1 or 0, got {value!r}")


def _text(value: str) -> str:
    return value


def _name(value: str) -> str:
    name = value.strip()
    if not _NAME.fullmatch(name):
        raise ScriptError(f"expected a name of [A-Za-z0-9_.-], got {value!r}")
    return name


def _base64(value: str) -> bytes:
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ScriptError("expected base64") from None


def _object(value: str) -> dict[str, Any]:
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise ScriptError(f"expected a JSON object, got {value!r}") from None
    if not isinstance(obj, dict):
        raise ScriptError(f"expected a JSON object, got {value!r}")
    return obj


def _str_map(value: str) -> dict[str, str]:
    obj = _object(value)
    if not all(isinstance(v, str) for v in obj.values()):
        raise ScriptError("every value must be a string")
    return obj


def _expect_map(value: str) -> dict[str, str | None]:
    obj = _object(value)
    if not all(v is None or isinstance(v, str) for v in obj.values()):
        raise ScriptError("every value must be a string or null")
    return obj


def _usage(value: str) -> dict[str, int]:
    obj = _object(value)
    unknown = set(obj) - USAGE_KEYS
    if unknown:
        raise ScriptError(f"unknown usage keys {sorted(unknown)}")
    for k, v in obj.items():
        if type(v) is not int or v < 0:
            raise ScriptError(f"{k} must be an integer >= 0")
    return obj


_PARSERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "status": ("status", _status),
    "headers": ("headers", _str_map),
    "body": ("body", _base64),
    "content-type": ("content_type", _text),
    "delay-ms": ("delay_ms", _ms),
    "chunks": ("chunks", _count),
    "chunk-delay-ms": ("chunk_delay_ms", _ms),
    "stall-after": ("stall_after", _count),
    "hang": ("hang", _flag),
    "usage": ("usage", _usage),
    "response-model": ("response_model", _text),
    "tool-call": ("tool_call", _name),
    "stream-exception": ("stream_exception", _name),
    "expect-path": ("expect_path", _text),
    "expect-query": ("expect_query", _expect_map),
    "expect-headers": ("expect_headers", _expect_map),
    "expect-body": ("expect_body", _object),
    "expect-model": ("expect_model", _text),
}
KEYS = frozenset(_PARSERS)
# An instance named like the first word of a key would make x-fake-<name>-<rest> ambiguous.
_RESERVED_NAMES = frozenset(k.split("-", 1)[0] for k in KEYS if "-" in k)


def check_instance_name(name: str) -> str:
    """Return ``name`` if it can be addressed by ``x-fake-<name>-<key>``; else ValueError."""
    if not _INSTANCE.fullmatch(name):
        raise ValueError(f"fake instance name must match [a-z0-9]+, got {name!r}")
    if name in _RESERVED_NAMES:
        raise ValueError(f"fake instance name {name!r} clashes with a scripting key")
    return name


def script_pairs(name: str, headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The ``key -> value`` pairs meant for instance ``name``; its own headers win.

    Raises ScriptError on an ``x-fake-*`` header that names no known key.
    """
    shared: dict[str, str] = {}
    own: dict[str, str] = {}
    own_prefix = name + "-"
    for raw_key, value in headers:
        key = raw_key.lower()
        if not key.startswith(PREFIX):
            continue
        rest = key[7:]
        if rest.startswith(own_prefix) and rest[len(own_prefix) :] in KEYS:
            own[rest[len(own_prefix) :]] = value
        elif rest in KEYS:
            shared[rest] = value
        elif rest not in _IGNORED:
            instance, _, sub = rest.partition("-")
            if not (_INSTANCE.fullmatch(instance) and sub in KEYS):
                raise ScriptError(f"unknown scripting header {raw_key!r}")
    shared.update(own)
    return shared


def script_headers(instance: str | None = None, /, **values: object) -> dict[str, str]:
    """Request headers that script a fake: ``script_headers("a", status=503)``.

    Keyword names are the keys with ``_`` for ``-``. ``bytes`` (``body``) become base64,
    dicts and lists JSON, booleans ``1``/``0``. ``instance=None`` scripts every fake.
    """
    prefix = PREFIX if instance is None else f"{PREFIX}{check_instance_name(instance)}-"
    out: dict[str, str] = {}
    for name, value in values.items():
        key = name.replace("_", "-")
        if key not in KEYS:
            raise ValueError(f"unknown scripting key {key!r}")
        out[prefix + key] = encode_value(value)
    return out


def encode_value(value: object) -> str:
    """A Python value as a scripting header value (the inverse of the key's parser)."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)
