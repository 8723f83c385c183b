"""The Anthropic Messages request shape, checked against the ``anthropic`` SDK's types.

The SDK's request types (``MessageCreateParams``, ``MessageCountTokensParams`` and the
TypedDicts they reference) are walked at run time: required keys present, no unknown
key at any level (the API rejects extra inputs), literals (roles, ``type`` tags) among
the allowed values, and scalars of the right JSON type. Type constructs the walker does
not know (file inputs, protocols, the SDK's response models) are accepted.

Unions of TypedDicts are told apart by a key all of them type as a Literal (``type``
for content blocks and tools, ``role`` for messages), so an unknown block type or role
is named as such, and the allowed ones are the installed SDK's: with anthropic 2.14 that includes a ``system`` message
role. Two deliberate departures, in :mod:`bench.fakes.anthropic_types`: the sampling
parameters ``temperature``/``top_p``/``top_k``, which SDK 2.x dropped from its types but
the API still documents for the models that take them, are accepted; Bedrock and Vertex
bodies must carry their documented ``anthropic_version`` and no ``model``.

Messages are pydantic-style, as Anthropic words them: ``max_tokens: Field required``,
``foo: Extra inputs are not permitted``, ``messages.0.role: Input tag 'tool' found using
'role' does not match any of the expected tags: ...``. A body that does not fit raises
:class:`ShapeError`.
"""

from __future__ import annotations

import collections.abc
import functools
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

import typing_extensions

__all__ = [
    "BEDROCK_VERSION",
    "VERTEX_VERSION",
    "MessagesRequest",
    "ShapeError",
    "validate_count_tokens",
    "validate_messages",
    "warm",
]

BEDROCK_VERSION = "bedrock-2023-05-31"
VERTEX_VERSION = "vertex-2023-10-16"
Platform = Literal["anthropic", "bedrock", "vertex"]

_REQUIRED = {typing.Required, typing_extensions.Required}
_NOT_REQUIRED = {typing.NotRequired, typing_extensions.NotRequired}
_WRAPPERS = _REQUIRED | _NOT_REQUIRED | {typing_extensions.ReadOnly}
_LISTS = {list, tuple, collections.abc.Iterable, collections.abc.Sequence}
_DICTS = {dict, collections.abc.Mapping}


class ShapeError(ValueError):
    """A request Anthropic would refuse with 400 ``invalid_request_error``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class _Fields:
    types: dict[str, Any]
    required: frozenset[str]
    literals: dict[str, frozenset[Any]]
    """The allowed values of each key typed as a Literal (``type``, ``role`` ...)."""


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    """What the fake needs from an accepted Messages body."""

    model: str | None
    max_tokens: int
    stream: bool
    tools: bool
    prompt_tokens: int


def _strip(tp: Any) -> tuple[Any, bool | None]:
    """``tp`` without Annotated/Required/NotRequired, and whether it was (Not)Required."""
    required: bool | None = None
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in _WRAPPERS:
            if origin in _REQUIRED:
                required = True
            elif origin in _NOT_REQUIRED:
                required = False
            tp = typing.get_args(tp)[0]
        else:
            return tp, required


@functools.cache
def _fields(cls: Any) -> _Fields | None:
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception:  # an unresolvable annotation: accept any object for this type
        return None
    # With postponed annotations ``__required_keys__`` misses ``Required[...]`` but still
    # holds the keys of a ``total=True`` class.
    by_totality = set(getattr(cls, "__required_keys__", ()))
    out: dict[str, Any] = {}
    required: set[str] = set()
    literals: dict[str, frozenset[Any]] = {}
    for name, hint in hints.items():
        tp, req = _strip(hint)
        out[name] = tp
        if req or (req is None and name in by_totality):
            required.add(name)
        found = _literals(tp)
        if found:
            literals[name] = frozenset(found)
    return _Fields(out, frozenset(required), literals)


def _literals(tp: Any) -> list[Any] | None:
    """The values of a Literal (or Optional/Union of Literals); None if not literals."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return list(typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(tp):
            if arg is type(None):
                continue
            sub = _literals(arg)
            if sub is None:
                return None
            out.extend(sub)
        return out
    return None


def _join(path: str, key: str | int) -> str:
    return f"{path}.{key}" if path else str(key)


def _where(path: str) -> str:
    return path or "body"


def _check(value: Any, tp: Any, path: str) -> str | None:
    """The first problem with ``value`` as a ``tp``, or None."""
    tp, _ = _strip(tp)
    if tp is Any or tp is object:
        return None
    if tp is type(None):
        return None if value is None else f"{_where(path)}: Input should be None"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _union(value, typing.get_args(tp), path)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if any(value == a and type(value) is type(a) for a in allowed):
            return None
        shown = " or ".join(repr(a) for a in allowed)
        return f"{_where(path)}: Input should be {shown}"
    if tp is str:
        return None if isinstance(value, str) else f"{_where(path)}: Input should be a valid string"
    if tp is bool:
        ok = isinstance(value, bool)
        return None if ok else f"{_where(path)}: Input should be a valid boolean"
    if tp is int:
        ok = type(value) is int or (type(value) is float and value.is_integer())
        return None if ok else f"{_where(path)}: Input should be a valid integer"
    if tp is float:
        ok = type(value) in (int, float)
        return None if ok else f"{_where(path)}: Input should be a valid number"
    if typing_extensions.is_typeddict(tp):
        return _typed(value, tp, path)
    if origin in _LISTS or getattr(origin, "__name__", "") == "SequenceNotStr":
        if not isinstance(value, list):
            return f"{_where(path)}: Input should be a valid list"
        args = typing.get_args(tp)
        item = args[0] if args else Any
        for i, element in enumerate(value):
            problem = _check(element, item, _join(path, i))
            if problem:
                return problem
        return None
    if origin in _DICTS or tp in _DICTS:
        if not isinstance(value, dict):
            return f"{_where(path)}: Input should be a valid dictionary"
        args = typing.get_args(tp)
        if len(args) == 2:
            for key, element in value.items():
                problem = _check(element, args[1], _join(path, key))
                if problem:
                    return problem
        return None
    return None  # a construct this walker does not model: accept


def _typed(value: Any, cls: Any, path: str, drop: frozenset[str] = frozenset()) -> str | None:
    if not isinstance(value, dict):
        return f"{_where(path)}: Input should be a valid dictionary or object"
    fields = _fields(cls)
    if fields is None:
        return None
    unknown = [k for k in value if k not in fields.types or k in drop]
    if unknown:
        return "; ".join(f"{_join(path, k)}: Extra inputs are not permitted" for k in unknown)
    for name in sorted(fields.required - drop):
        if name not in value:
            return f"{_join(path, name)}: Field required"
    for name, element in value.items():
        if name in fields.types:
            problem = _check(element, fields.types[name], _join(path, name))
            if problem:
                return problem
    return None


def _union(value: Any, options: tuple[Any, ...], path: str) -> str | None:
    flat = _flatten(options)
    if value is None and type(None) in flat:
        return None
    # The SDK also lets callers pass its response models (pydantic) back; their wire
    # form is the TypedDict's, so only the modelled options are checked.
    options = tuple(o for o in flat if o is not type(None) and _modelled(o))
    if not options:
        return None
    dicts = [o for o in options if typing_extensions.is_typeddict(o)]
    if isinstance(value, dict) and len(dicts) > 1:
        key = _discriminator(dicts)
        untagged = [o for o in options if o not in dicts]
        if key is not None and not any(_accepts_dict(o) for o in untagged):
            tag = value.get(key)
            matching = [o for o in dicts if _tag_matches(o, key, tag)]
            if not matching:
                if key not in value:
                    return f"{_join(path, key)}: Field required"
                expected = sorted({repr(t) for o in dicts for t in _tag_values(o, key)})
                return (
                    f"{_join(path, key)}: Input tag {tag!r} found using {key!r} does not "
                    f"match any of the expected tags: {', '.join(expected)}"
                )
            options = tuple(matching) + tuple(untagged)
    problems: list[str] = []
    for option in options:
        problem = _check(value, option, path)
        if problem is None:
            return None
        if _same_kind(value, option):
            problems.append(problem)
    if problems:
        return problems[0]
    return f"{_where(path)}: Input should be a valid value of the documented types"


def _flatten(options: tuple[Any, ...]) -> list[Any]:
    out: list[Any] = []
    for option in options:
        tp, _ = _strip(option)
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            out.extend(_flatten(typing.get_args(tp)))
        else:
            out.append(tp)
    return out


def _modelled(tp: Any) -> bool:
    if tp in (str, int, float, bool, Any, object) or tp in _DICTS:
        return True
    origin = typing.get_origin(tp)
    return (
        typing_extensions.is_typeddict(tp)
        or origin is Literal
        or origin in _LISTS
        or origin in _DICTS
        or getattr(origin, "__name__", "") == "SequenceNotStr"
    )


def _discriminator(dicts: list[Any]) -> str | None:
    """A key every TypedDict of a union types as a Literal (``type`` first), or None."""
    shared: set[str] | None = None
    for cls in dicts:
        fields = _fields(cls)
        if fields is None:
            return None
        keys = set(fields.literals)
        shared = keys if shared is None else shared & keys
    if not shared:
        return None
    return "type" if "type" in shared else sorted(shared)[0]


def _tag_values(cls: Any, key: str) -> frozenset[Any]:
    fields = _fields(cls)
    return fields.literals.get(key, frozenset()) if fields is not None else frozenset()


def _tag_matches(cls: Any, key: str, tag: Any) -> bool:
    fields = _fields(cls)
    if fields is None:
        return True
    if tag is None:
        return key not in fields.required
    return tag in fields.literals.get(key, frozenset())


def _accepts_dict(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    return origin in _DICTS or tp in _DICTS or tp is Any or tp is object


def _same_kind(value: Any, tp: Any) -> bool:
    """Could ``tp`` be meant for a JSON value of this kind? (to pick the error to show)"""
    origin = typing.get_origin(tp)
    if isinstance(value, dict):
        return typing_extensions.is_typeddict(tp) or _accepts_dict(tp)
    if isinstance(value, list):
        return origin in _LISTS or getattr(origin, "__name__", "") == "SequenceNotStr"
    if isinstance(value, str):
        return tp is str or origin is Literal
    return True


# --- the request types ------------------------------------------------------------------


@functools.cache
def _request_types() -> dict[str, tuple[Any, frozenset[str]]]:
    """The request TypedDicts (importing the SDK takes ~2 s, so only on first use)."""
    from bench.fakes import anthropic_types as t

    create = frozenset({"model", "max_tokens", "messages"})
    platform = frozenset({"max_tokens", "messages", "anthropic_version"})
    count = frozenset({"model", "messages"})
    return {
        "anthropic": (t.Create, create),
        "bedrock": (t.BedrockInvoke, platform),
        "vertex": (t.VertexPredict, platform),
        "count": (t.MessageCountTokensParams, count),
        "vertex_count": (t.VertexCount, count),
    }


_NO_MODEL = "model: Extra inputs are not permitted"


def _top(body: Any, cls: Any, required: frozenset[str], *, model_in_path: bool) -> None:
    if not isinstance(body, dict):
        raise ShapeError("body: Input should be a valid dictionary or object")
    if model_in_path and "model" in body:
        raise ShapeError(_NO_MODEL)
    for name in ("model", "max_tokens", "messages", "anthropic_version"):
        if name in required and name not in body:
            raise ShapeError(f"{name}: Field required")
    drop = frozenset({"model"}) if model_in_path else frozenset()
    problem = _typed(body, cls, "", drop)
    if problem:
        raise ShapeError(problem)


def validate_messages(body: Any, platform: Platform = "anthropic") -> MessagesRequest:
    """Check a Messages body (``POST /v1/messages``, Bedrock invoke, Vertex rawPredict).

    Bedrock and Vertex bodies carry ``anthropic_version`` and no ``model`` (it is in the
    path); Bedrock's carry no ``stream`` either (the path says it).
    """
    cls, required = _request_types()[platform]
    _top(body, cls, required, model_in_path=platform != "anthropic")
    if not body["messages"]:
        raise ShapeError("messages: at least one message is required")
    if body["max_tokens"] < 0:
        raise ShapeError("max_tokens: Input should be greater than or equal to 0")
    return MessagesRequest(
        model=body.get("model"),
        max_tokens=int(body["max_tokens"]),
        stream=body.get("stream") is True,
        tools=bool(body.get("tools")),
        prompt_tokens=prompt_tokens(body),
    )


def validate_count_tokens(body: Any, platform: Platform = "anthropic") -> int:
    """Check a ``count_tokens`` body; the fake's input token estimate for it."""
    cls, required = _request_types()["vertex_count" if platform == "vertex" else "count"]
    _top(body, cls, required, model_in_path=False)
    return prompt_tokens(body)


def prompt_tokens(body: dict[str, Any]) -> int:
    """~4 characters a token over the system prompt and text of every message."""
    chars = _text_chars(body.get("system"))
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            chars += _text_chars(message.get("content"))
    return max(1, (chars + 3) // 4)


def _text_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(
            len(b["text"])
            for b in content
            if isinstance(b, dict) and isinstance(b.get("text"), str)
        )
    return 0


def warm() -> None:
    """Import the SDK and resolve its types now rather than on the first request."""
    validate_messages(
        {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}
    )
