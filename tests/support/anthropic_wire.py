"""Check Anthropic Messages wire JSON against the official `anthropic` SDK's types, and
replay bytes through the real anthropic and openai SDK clients (over an in-memory
transport) to prove they can consume what the translators produce.

The SDK's request types are TypedDicts (`MessageCreateParams`), which nothing validates
at runtime; `check_typed` walks one recursively: unknown keys, missing required keys,
literals and unions. `temperature`/`top_p`/`top_k` left the SDK's typed signature in
1.0 (the SDK's migration guide sends them via `extra_body`) while the API still accepts
them, so they are allowed next to the typed keys.
"""

from __future__ import annotations

import collections.abc as cabc
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NotRequired, Required

import anthropic
import httpx2
import openai
import pydantic
from anthropic.types import message_create_params as mcp
from typing_extensions import is_typeddict

from common import jsonutil

SAMPLING_KEYS = frozenset({"temperature", "top_p", "top_k"})


def _required_keys(td: Any, hints: Mapping[str, Any]) -> set[str]:
    # `__required_keys__` honours each class's totality but cannot see Required[...]
    # inside the SDK's string annotations, so those are read from the hints
    out = set(getattr(td, "__required_keys__", ()))
    for key, hint in hints.items():
        origin = typing.get_origin(hint)
        if origin is Required:
            out.add(key)
        elif origin is NotRequired:
            out.discard(key)
    return out


def check_typed(value: Any, tp: Any, path: str = "$") -> None:
    """Raise AssertionError if `value` does not fit the (TypedDict-based) type `tp`."""
    if tp is Any or tp is object:
        return
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated or origin in (Required, NotRequired):
        return check_typed(value, args[0], path)
    if origin is typing.Union or origin is types.UnionType:
        errors = []
        for option in args:
            try:
                check_typed(value, option, path)
                return
            except AssertionError as e:
                errors.append(str(e))
        raise AssertionError(f"{path}: fits no option of the union: {errors}")
    if origin is typing.Literal:
        assert value in args, f"{path}: {value!r} not in {args}"
        return
    if is_typeddict(tp):
        assert isinstance(value, Mapping), f"{path}: expected an object, got {value!r}"
        hints = typing.get_type_hints(tp, include_extras=True)
        unknown = set(value) - set(hints)
        assert not unknown, f"{path}: unknown keys {sorted(unknown)} for {tp.__name__}"
        missing = _required_keys(tp, hints) - set(value)
        assert not missing, f"{path}: missing keys {sorted(missing)} for {tp.__name__}"
        for key, item in value.items():
            check_typed(item, hints[key], f"{path}.{key}")
        return
    if origin in (list, cabc.Iterable, cabc.Sequence) or (
        origin is not None and getattr(origin, "__name__", "") == "SequenceNotStr"
    ):
        assert isinstance(value, list), f"{path}: expected an array, got {value!r}"
        for i, item in enumerate(value):
            check_typed(item, args[0] if args else Any, f"{path}[{i}]")
        return
    if origin in (dict, cabc.Mapping) or tp is dict:
        assert isinstance(value, Mapping), f"{path}: expected an object, got {value!r}"
        return
    if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
        assert isinstance(value, Mapping), f"{path}: expected an object, got {value!r}"
        try:
            tp.model_validate(value)
        except pydantic.ValidationError as e:
            raise AssertionError(f"{path}: not a {tp.__name__}: {e}") from None
        return
    if tp is type(None):
        assert value is None, f"{path}: expected null"
    elif tp is bool:
        assert isinstance(value, bool), f"{path}: expected a boolean"
    elif tp is int:
        assert isinstance(value, int) and not isinstance(value, bool), f"{path}: expected int"
    elif tp is float:
        assert isinstance(value, int | float) and not isinstance(value, bool), f"{path}: number"
    elif tp is str:
        assert isinstance(value, str), f"{path}: expected a string, got {value!r}"
    # anything else (file inputs, pydantic helpers) is accepted as is


def assert_messages_request(body: Mapping[str, Any], *, vertex: bool = False) -> None:
    """A Messages request body that the SDK's `MessageCreateParams` types accept."""
    typed = {k: v for k, v in body.items() if k not in SAMPLING_KEYS}
    for key in SAMPLING_KEYS & set(body):
        value = body[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), key
    if vertex:
        assert typed.pop("anthropic_version") == "vertex-2023-10-16"
        assert "model" not in typed
        typed["model"] = "placeholder"  # Vertex takes it from the path
    kind = (
        mcp.MessageCreateParamsStreaming
        if body.get("stream")
        else mcp.MessageCreateParamsNonStreaming
    )
    check_typed(typed, kind)


def sse_events(raw: bytes) -> Iterator[dict[str, Any]]:
    """The JSON payloads of an SSE byte string (no [DONE])."""
    for block in raw.split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                yield jsonutil.loads(line[6:])


def _client_transport(status: int, body: bytes, content_type: str) -> httpx2.Client:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, content=body, headers={"content-type": content_type})

    return httpx2.Client(transport=httpx2.MockTransport(handler))


def anthropic_client(status: int, body: bytes, *, stream: bool = False) -> anthropic.Anthropic:
    """An anthropic SDK client whose every request gets (status, body)."""
    kind = "text/event-stream" if stream else "application/json"
    return anthropic.Anthropic(
        api_key="test",
        base_url="http://gateway.test",
        max_retries=0,
        http_client=_client_transport(status, body, kind),
    )


def openai_client(status: int, body: bytes, *, stream: bool = False) -> openai.OpenAI:
    """An openai SDK client whose every request gets (status, body)."""
    kind = "text/event-stream" if stream else "application/json"
    return openai.OpenAI(
        api_key="test",
        base_url="http://gateway.test/v1",
        max_retries=0,
        http_client=_client_transport(status, body, kind),
    )


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


def run_stream(new: Callable[[], Any], chunks: list[bytes]) -> bytes:
    tap = new()
    return b"".join(tap.feed(c) for c in chunks) + bytes(tap.close())
