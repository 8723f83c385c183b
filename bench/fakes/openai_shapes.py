"""The OpenAI request shapes a fake upstream checks (pure; pydantic, ``extra="allow"``).

Only what the API reference documents as required or typed is checked; unknown vendor
fields pass. A request that does not fit raises :class:`ShapeError`, which the app
answers as a 400 in the provider's error format, with OpenAI's ``param`` and ``code``
conventions (``messages[0].role``, ``missing_required_parameter``, ``invalid_type`` ...).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "ChatRequest",
    "CompletionRequest",
    "EmbeddingRequest",
    "Message",
    "ShapeError",
    "estimate_tokens",
    "StreamOptions",
    "Tool",
    "validate_chat",
    "validate_completion",
    "validate_embedding",
]

PositiveInt = Annotated[int, Field(strict=True, gt=0)]
Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ShapeError(ValueError):
    """A request the provider would refuse with 400."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class StreamOptions(_Wire):
    include_usage: StrictBool | None = None


class FunctionDef(_Wire):
    name: Annotated[str, Field(strict=True, pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: StrictStr | None = None
    parameters: dict[str, Any] | None = None
    strict: StrictBool | None = None


class Tool(_Wire):
    type: Literal["function"]
    function: FunctionDef


class Message(_Wire):
    role: Role
    content: Any = None
    name: StrictStr | None = None
    tool_calls: list[dict[str, Any]] | None = None
    function_call: dict[str, Any] | None = None
    tool_call_id: StrictStr | None = None

    @field_validator("content")
    @classmethod
    def _content(cls, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list):
            for part in value:
                if not (isinstance(part, dict) and isinstance(part.get("type"), str)):
                    raise ValueError("each content part must be an object with a string 'type'")
            return value
        raise ValueError("expected a string or an array of content parts")

    @model_validator(mode="after")
    def _content_required(self) -> Message:
        if self.content is None:
            if self.role != "assistant":
                raise ValueError(f"a message with role '{self.role}' needs 'content'")
            if not (self.tool_calls or self.function_call):
                raise ValueError("an assistant message needs 'content' or 'tool_calls'")
        if self.role == "tool" and self.tool_call_id is None:
            raise ValueError("a message with role 'tool' needs 'tool_call_id'")
        return self

    def text_chars(self) -> int:
        """Characters of text content (for the fake's prompt-token estimate)."""
        if isinstance(self.content, str):
            return len(self.content)
        if isinstance(self.content, list):
            return sum(len(p.get("text") or "") for p in self.content if p.get("type") == "text")
        return 0


class _Generation(_Wire):
    model: StrictStr | None = None
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: PositiveInt | None = None
    n: PositiveInt | None = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


class ChatRequest(_Generation):
    messages: Annotated[list[Message], Field(min_length=1)]
    max_completion_tokens: PositiveInt | None = None
    tools: list[Tool] | None = None
    temperature: Annotated[float, Field(strict=True, ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(strict=True, ge=0, le=1)] | None = None

    def prompt_tokens(self) -> int:
        return max(1, (sum(m.text_chars() for m in self.messages) + 3) // 4)


def estimate_tokens(item: str | list[int]) -> int:
    """The fake's token count: the ids of a token list, else ~4 characters a token."""
    if isinstance(item, list):
        return len(item)
    return max(1, (len(item) + 3) // 4)


def _token_list(value: Any) -> bool:
    return isinstance(value, list) and all(type(t) is int for t in value)


class CompletionRequest(_Generation):
    prompt: Any

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: Any) -> Any:
        if isinstance(value, str) or (_token_list(value) and value):
            return value
        if isinstance(value, list) and value:
            if all(isinstance(p, str) for p in value) or all(_token_list(p) for p in value):
                return value
        raise ValueError("expected a string, an array of strings or an array of tokens")

    def prompts(self) -> list[str | list[int]]:
        """One entry per prompt (each gets ``n`` choices)."""
        if isinstance(self.prompt, str) or _token_list(self.prompt):
            return [self.prompt]
        return list(self.prompt)

    def prompt_tokens(self) -> int:
        return sum(estimate_tokens(p) for p in self.prompts())


class EmbeddingRequest(_Wire):
    model: StrictStr | None = None
    input: Any
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: PositiveInt | None = None

    @field_validator("input")
    @classmethod
    def _input(cls, value: Any) -> Any:
        if isinstance(value, str) and value:
            return value
        if isinstance(value, list) and value:
            if all(isinstance(p, str) and p for p in value):
                return value
            if _token_list(value) or all(_token_list(p) and p for p in value):
                return value
        raise ValueError("expected a non-empty string or array (of strings or tokens)")

    def items(self) -> list[str | list[int]]:
        """One entry per embedding to return."""
        if isinstance(self.input, str) or _token_list(self.input):
            return [self.input]
        return list(self.input)

    def prompt_tokens(self) -> int:
        return sum(estimate_tokens(p) for p in self.items())


_M = TypeVar("_M", bound=_Wire)


def _validate(cls: type[_M], body: Any, *, model_required: bool) -> _M:
    if not isinstance(body, dict):
        raise ShapeError(
            "Invalid type for request body: expected a JSON object.", code="invalid_type"
        )
    if model_required and body.get("model") is None:
        raise ShapeError("you must provide a model parameter")
    try:
        return cls.model_validate(body)
    except ValidationError as exc:
        raise _shape_error(exc) from None


def validate_chat(body: Any, *, model_required: bool = True) -> ChatRequest:
    req = _validate(ChatRequest, body, model_required=model_required)
    _stream_options(req)
    return req


def validate_completion(body: Any, *, model_required: bool = True) -> CompletionRequest:
    req = _validate(CompletionRequest, body, model_required=model_required)
    _stream_options(req)
    return req


def validate_embedding(body: Any, *, model_required: bool = True) -> EmbeddingRequest:
    return _validate(EmbeddingRequest, body, model_required=model_required)


def _stream_options(req: _Generation) -> None:
    if req.stream_options is not None and req.stream is not True:
        raise ShapeError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )


_TYPE_ERRORS = frozenset(
    {
        "string_type",
        "int_type",
        "bool_type",
        "float_type",
        "list_type",
        "dict_type",
        "model_type",
        "model_attributes_type",
    }
)


def _shape_error(exc: ValidationError) -> ShapeError:
    err = exc.errors(include_url=False)[0]
    param = _param(err["loc"])
    if err["type"] == "missing":
        return ShapeError(
            f"Missing required parameter: '{param}'.",
            param=param,
            code="missing_required_parameter",
        )
    if err["type"] == "too_short":
        return ShapeError(
            f"Invalid '{param}': empty array. Expected an array with minimum length 1.",
            param=param,
            code="empty_array",
        )
    msg = str(err["msg"]).removeprefix("Value error, ")
    code = "invalid_type" if err["type"] in _TYPE_ERRORS else "invalid_value"
    return ShapeError(f"Invalid value for '{param}': {msg}", param=param, code=code)


def _param(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "body"
