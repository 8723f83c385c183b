"""The Bedrock Converse request shape, checked against botocore's bedrock-runtime model.

The service model is loaded once with ``botocore.loaders`` and the body (plus the
``modelId`` from the path) goes through ``botocore.validate.ParamValidator`` on the
Converse (or ConverseStream) operation's input shape: unknown parameters, missing
required members, wrong types, lengths and tagged unions (a content block sets exactly
one member). The validator does not look at enums, so string enums (roles, formats) are
checked by a walk of the same shapes. Members bound to the URI or headers (``modelId``)
are not body parameters. A body that does not fit raises :class:`BedrockShapeError`
with the validator's report, which the fake answers as a 400 ``ValidationException``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from botocore.loaders import create_loader
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape
from botocore.validate import ParamValidator

__all__ = ["BedrockShapeError", "ConverseRequest", "service_model", "validate_converse"]


class BedrockShapeError(ValueError):
    """A request Bedrock would refuse with 400 ``ValidationException``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class ConverseRequest:
    max_tokens: int | None
    tools: bool
    prompt_tokens: int


@functools.cache
def service_model() -> ServiceModel:
    """botocore's bedrock-runtime service model (loaded once; ~0.3 s)."""
    data = create_loader().load_service_model("bedrock-runtime", "service-2")
    return ServiceModel(data, "bedrock-runtime")


@functools.cache
def _operation(name: str) -> OperationModel:
    return service_model().operation_model(name)


def validate_converse(body: Any, model_id: str, *, stream: bool = False) -> ConverseRequest:
    """Check a Converse/ConverseStream body for model ``model_id``."""
    if not isinstance(body, dict):
        raise BedrockShapeError(
            "Malformed input request, please reformat your input and try again."
        )
    shape = _operation("ConverseStream" if stream else "Converse").input_shape
    assert isinstance(shape, StructureShape)
    outside = [
        name
        for name, member in shape.members.items()
        if member.serialization.get("location") is not None and name in body
    ]
    if outside:
        raise BedrockShapeError(
            "\n".join(
                f'Unknown parameter in input: "{name}" (it belongs in the path)' for name in outside
            )
        )
    report = ParamValidator().validate({**body, "modelId": model_id}, shape)
    if report.has_errors():
        raise BedrockShapeError(report.generate_report())
    problems: list[str] = []
    _enums(body, shape, "", problems)
    if problems:
        count = len(problems)
        plural = "s" if count > 1 else ""
        raise BedrockShapeError(
            f"{count} validation error{plural} detected: " + "; ".join(problems)
        )
    inference = body.get("inferenceConfig") or {}
    tool_config = body.get("toolConfig") or {}
    return ConverseRequest(
        max_tokens=inference.get("maxTokens"),
        tools=bool(tool_config.get("tools")),
        prompt_tokens=_prompt_tokens(body),
    )


def _enums(value: Any, shape: Shape, path: str, out: list[str]) -> None:
    """Smithy-style messages for string values outside their shape's enum."""
    if shape.type_name == "string":
        allowed = shape.enum
        if allowed and isinstance(value, str) and value not in allowed:
            out.append(
                f"Value '{value}' at '{path}' failed to satisfy constraint: Member must "
                f"satisfy enum value set: [{', '.join(allowed)}]"
            )
    elif isinstance(shape, StructureShape) and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                _enums(value[name], member, f"{path}.{name}" if path else name, out)
    elif isinstance(shape, ListShape) and isinstance(value, list):
        for i, item in enumerate(value):
            _enums(item, shape.member, f"{path}.{i + 1}.member", out)
    elif isinstance(shape, MapShape) and isinstance(value, dict):
        for key, item in value.items():
            _enums(item, shape.value, f"{path}.{key}", out)


def _prompt_tokens(body: dict[str, Any]) -> int:
    chars = 0
    for block in body.get("system") or ():
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            chars += len(block["text"])
    for message in body.get("messages") or ():
        for block in message.get("content") or ():
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                chars += len(block["text"])
    return max(1, (chars + 3) // 4)
