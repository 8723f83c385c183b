"""The Gemini ``generateContent`` request shape, written from Google's API reference (pure).

Sources: the Gemini API reference (``GenerateContentRequest``, ``Content``, ``Part``,
``Tool``, ``FunctionDeclaration``, ``Schema``, ``ToolConfig``, ``GenerationConfig``,
``SafetySetting``) and Vertex AI's ``projects.locations.publishers.models
.generateContent``, cross-checked against the field lists of the ``google-genai`` types.
Field names are proto3 JSON: lowerCamelCase, and the proto's snake_case names are
accepted too, as Google's parsers do. Unknown fields are refused at every modelled level
(``Invalid JSON payload received. Unknown name "x" at 'path': Cannot find field.``);
free-form values (``args``, ``response``, JSON schemas, server tool configs) are not
looked into. A ``Part`` carries exactly one of its ``data`` fields. The Gemini API's
``Schema`` refuses ``additionalProperties``/``ref``/``defs`` and top-level ``labels``,
which Vertex takes. A body that does not fit raises :class:`GeminiShapeError`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel, to_snake
from pydantic_core import PydanticCustomError

__all__ = [
    "Content",
    "GenerateContentRequest",
    "GeminiShapeError",
    "Part",
    "Schema",
    "validate_generate",
]

Api = Literal["gemini", "vertex"]

HarmCategory = Literal[
    "HARM_CATEGORY_UNSPECIFIED",
    "HARM_CATEGORY_DEROGATORY",
    "HARM_CATEGORY_TOXICITY",
    "HARM_CATEGORY_VIOLENCE",
    "HARM_CATEGORY_SEXUAL",
    "HARM_CATEGORY_MEDICAL",
    "HARM_CATEGORY_DANGEROUS",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_CIVIC_INTEGRITY",
    "HARM_CATEGORY_JAILBREAK",
    "HARM_CATEGORY_IMAGE_HATE",
    "HARM_CATEGORY_IMAGE_DANGEROUS_CONTENT",
    "HARM_CATEGORY_IMAGE_HARASSMENT",
    "HARM_CATEGORY_IMAGE_SEXUALLY_EXPLICIT",
]
HarmBlockThreshold = Literal[
    "HARM_BLOCK_THRESHOLD_UNSPECIFIED",
    "BLOCK_LOW_AND_ABOVE",
    "BLOCK_MEDIUM_AND_ABOVE",
    "BLOCK_ONLY_HIGH",
    "BLOCK_NONE",
    "OFF",
]
HarmBlockMethod = Literal["HARM_BLOCK_METHOD_UNSPECIFIED", "SEVERITY", "PROBABILITY"]
Modality = Literal["MODALITY_UNSPECIFIED", "TEXT", "IMAGE", "AUDIO", "VIDEO"]
MediaResolution = Literal[
    "MEDIA_RESOLUTION_UNSPECIFIED",
    "MEDIA_RESOLUTION_LOW",
    "MEDIA_RESOLUTION_MEDIUM",
    "MEDIA_RESOLUTION_HIGH",
]
SchemaType = Literal[
    "TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"
]
FunctionName = Annotated[str, Field(strict=True, pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")]

_DATA_FIELDS = (
    "text",
    "inline_data",
    "file_data",
    "function_call",
    "function_response",
    "executable_code",
    "code_execution_result",
    "tool_call",
    "tool_response",
)
_VERTEX_ONLY_SCHEMA = ("additionalProperties", "additional_properties", "ref", "defs")
_VERTEX_ONLY_REQUEST = ("labels", "modelArmorConfig", "model_armor_config")


class GeminiShapeError(ValueError):
    """A request Google would refuse with 400 ``INVALID_ARGUMENT``."""

    def __init__(self, message: str, violations: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.message = message
        self.violations = violations
        """(field, description) pairs, for ``google.rpc.BadRequest`` details."""


class _Proto(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, validate_by_name=True, validate_by_alias=True
    )


def _api(info: ValidationInfo) -> Api:
    context = info.context if isinstance(info.context, dict) else {}
    return "vertex" if context.get("api") == "vertex" else "gemini"


def _vertex_only(data: Any, names: tuple[str, ...], info: ValidationInfo) -> Any:
    if isinstance(data, dict) and _api(info) == "gemini":
        for name in names:
            if name in data:
                raise PydanticCustomError("unknown_name", "{name}", {"name": name})
    return data


# --- Content and Part ------------------------------------------------------------------


class Blob(_Proto):
    mime_type: StrictStr
    data: StrictStr
    display_name: StrictStr | None = None


class FileData(_Proto):
    file_uri: StrictStr
    mime_type: StrictStr | None = None
    display_name: StrictStr | None = None


class FunctionCall(_Proto):
    name: StrictStr
    args: dict[str, Any] | None = None
    id: StrictStr | None = None
    partial_args: list[Any] | None = None
    will_continue: StrictBool | None = None


class FunctionResponse(_Proto):
    name: StrictStr
    response: dict[str, Any]
    id: StrictStr | None = None
    will_continue: StrictBool | None = None
    scheduling: Literal["SCHEDULING_UNSPECIFIED", "SILENT", "WHEN_IDLE", "INTERRUPT"] | None = None
    parts: list[dict[str, Any]] | None = None


class ExecutableCode(_Proto):
    language: Literal["LANGUAGE_UNSPECIFIED", "PYTHON"]
    code: StrictStr
    id: StrictStr | None = None


class CodeExecutionResult(_Proto):
    outcome: Literal[
        "OUTCOME_UNSPECIFIED", "OUTCOME_OK", "OUTCOME_FAILED", "OUTCOME_DEADLINE_EXCEEDED"
    ]
    output: StrictStr | None = None
    id: StrictStr | None = None


class Part(_Proto):
    """One piece of content: exactly one ``data`` field, plus optional metadata."""

    text: StrictStr | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None
    function_call: FunctionCall | None = None
    function_response: FunctionResponse | None = None
    executable_code: ExecutableCode | None = None
    code_execution_result: CodeExecutionResult | None = None
    tool_call: dict[str, Any] | None = None
    tool_response: dict[str, Any] | None = None
    thought: StrictBool | None = None
    thought_signature: StrictStr | None = None
    video_metadata: dict[str, Any] | None = None
    part_metadata: dict[str, Any] | None = None
    media_resolution: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_data_field(self) -> Part:
        found = [name for name in _DATA_FIELDS if getattr(self, name) is not None]
        if not found:
            raise PydanticCustomError(
                "oneof_unset", "required oneof field 'data' must have one initialized field"
            )
        if len(found) > 1:
            raise PydanticCustomError(
                "oneof_twice",
                "Oneof field 'data' is already set. Cannot set '{name}'",
                {"name": to_camel(found[1])},
            )
        return self


class Content(_Proto):
    parts: Annotated[list[Part], Field(min_length=1)]
    role: Literal["user", "model"] | None = None


class SystemInstruction(_Proto):
    """``systemInstruction``: a Content whose role is not checked (text parts only)."""

    parts: Annotated[list[Part], Field(min_length=1)]
    role: StrictStr | None = None


# --- tools ---------------------------------------------------------------------------------


class Schema(_Proto):
    """The OpenAPI 3.0 subset of ``FunctionDeclaration.parameters`` and ``responseSchema``."""

    type: SchemaType | None = None
    format: StrictStr | None = None
    title: StrictStr | None = None
    description: StrictStr | None = None
    nullable: StrictBool | None = None
    enum: list[StrictStr] | None = None
    items: Schema | None = None
    max_items: int | None = None
    min_items: int | None = None
    properties: dict[str, Schema] | None = None
    required: list[StrictStr] | None = None
    min_properties: int | None = None
    max_properties: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: StrictStr | None = None
    example: Any = None
    any_of: list[Schema] | None = None
    property_ordering: list[StrictStr] | None = None
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    additional_properties: Any = None
    ref: StrictStr | None = None
    defs: dict[str, Schema] | None = None

    @model_validator(mode="before")
    @classmethod
    def _before(cls, data: Any, info: ValidationInfo) -> Any:
        data = _vertex_only(data, _VERTEX_ONLY_SCHEMA, info)
        if isinstance(data, dict) and isinstance(data.get("type"), str):
            data = {**data, "type": data["type"].upper()}  # "object" is taken as OBJECT
        return data


class FunctionDeclaration(_Proto):
    name: FunctionName
    description: StrictStr | None = None
    parameters: Schema | None = None
    parameters_json_schema: Any = None
    response: Schema | None = None
    response_json_schema: Any = None
    behavior: Literal["UNSPECIFIED", "BLOCKING", "NON_BLOCKING"] | None = None

    @model_validator(mode="after")
    def _one_parameters(self) -> FunctionDeclaration:
        if self.parameters is not None and self.parameters_json_schema is not None:
            raise PydanticCustomError(
                "exclusive", "parameters and parameters_json_schema are mutually exclusive"
            )
        return self


class Tool(_Proto):
    function_declarations: list[FunctionDeclaration] | None = None
    google_search_retrieval: dict[str, Any] | None = None
    code_execution: dict[str, Any] | None = None
    google_search: dict[str, Any] | None = None
    url_context: dict[str, Any] | None = None
    computer_use: dict[str, Any] | None = None
    file_search: dict[str, Any] | None = None
    google_maps: dict[str, Any] | None = None
    retrieval: dict[str, Any] | None = None
    enterprise_web_search: dict[str, Any] | None = None
    mcp_servers: list[dict[str, Any]] | None = None
    parallel_ai_search: dict[str, Any] | None = None
    exa_ai_search: dict[str, Any] | None = None


class FunctionCallingConfig(_Proto):
    mode: Literal["MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"] | None = None
    allowed_function_names: list[StrictStr] | None = None
    stream_function_call_arguments: StrictBool | None = None


class ToolConfig(_Proto):
    function_calling_config: FunctionCallingConfig | None = None
    retrieval_config: dict[str, Any] | None = None
    include_server_side_tool_invocations: StrictBool | None = None


# --- generation and safety -----------------------------------------------------------------


class ThinkingConfig(_Proto):
    include_thoughts: StrictBool | None = None
    thinking_budget: int | None = None
    thinking_level: (
        Literal["THINKING_LEVEL_UNSPECIFIED", "MINIMAL", "LOW", "MEDIUM", "HIGH", "XHIGH"] | None
    ) = None


class GenerationConfig(_Proto):
    stop_sequences: list[StrictStr] | None = None
    response_mime_type: StrictStr | None = None
    response_schema: Schema | None = None
    response_json_schema: Any = None
    response_modalities: list[Modality] | None = None
    candidate_count: int | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_logprobs: StrictBool | None = None
    logprobs: int | None = None
    enable_enhanced_civic_answers: StrictBool | None = None
    speech_config: dict[str, Any] | None = None
    thinking_config: ThinkingConfig | None = None
    image_config: dict[str, Any] | None = None
    media_resolution: MediaResolution | None = None
    audio_timestamp: StrictBool | None = None
    routing_config: dict[str, Any] | None = None
    model_selection_config: dict[str, Any] | None = None
    enable_affective_dialog: StrictBool | None = None
    response_format: dict[str, Any] | None = None
    translation_config: dict[str, Any] | None = None
    audio_transcription_config: dict[str, Any] | None = None


class SafetySetting(_Proto):
    category: HarmCategory
    threshold: HarmBlockThreshold
    method: HarmBlockMethod | None = None


class GenerateContentRequest(_Proto):
    """The body of ``models/{model}:generateContent`` and ``:streamGenerateContent``."""

    contents: Annotated[list[Content], Field(min_length=1)]
    system_instruction: SystemInstruction | None = None
    tools: list[Tool] | None = None
    tool_config: ToolConfig | None = None
    generation_config: GenerationConfig | None = None
    safety_settings: list[SafetySetting] | None = None
    cached_content: StrictStr | None = None
    labels: dict[str, StrictStr] | None = None
    model_armor_config: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _before(cls, data: Any, info: ValidationInfo) -> Any:
        return _vertex_only(data, _VERTEX_ONLY_REQUEST, info)

    @property
    def declares_functions(self) -> bool:
        return any(t.function_declarations for t in self.tools or ())

    def max_output_tokens(self) -> int | None:
        config = self.generation_config
        return config.max_output_tokens if config is not None else None

    def prompt_tokens(self) -> int:
        """~4 characters a token over the text parts of the system instruction and contents."""
        contents: list[Content | SystemInstruction] = list(self.contents)
        if self.system_instruction is not None:
            contents.append(self.system_instruction)
        chars = sum(len(p.text or "") for c in contents for p in c.parts)
        return max(1, (chars + 3) // 4)


def validate_generate(body: Any, api: Api = "gemini") -> GenerateContentRequest:
    """Check a ``generateContent`` body for the Gemini API or Vertex AI."""
    if not isinstance(body, dict):
        message = "Invalid JSON payload received. Expected an object."
        raise GeminiShapeError(message, [("", message)])
    try:
        return GenerateContentRequest.model_validate(body, context={"api": api})
    except ValidationError as exc:
        raise _shape_error(exc, body) from None


def _shape_error(exc: ValidationError, body: Any) -> GeminiShapeError:
    violations: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        if kind == "unknown_name":
            name = str(err.get("ctx", {}).get("name"))
            loc = (*loc, name)
            kind = "extra_forbidden"
        if kind == "extra_forbidden":
            parent = _path(loc[:-1], body)
            where = f" at '{parent}'" if parent else ""
            text = f'Invalid JSON payload received. Unknown name "{loc[-1]}"{where}: Cannot find field.'
            violations.append((parent, text))
            continue
        path = _path(loc, body)
        if loc and loc[-1] == "role" and kind == "literal_error":
            text = "Please use a valid role: user, model."
        elif kind in ("missing", "too_short") and loc:
            field = to_snake(str(loc[-1]))
            text = f"* GenerateContentRequest.{path}: {field} is not specified"
        elif kind in ("oneof_unset", "oneof_twice", "exclusive"):
            text = f"* GenerateContentRequest.{path}: {err['msg']}"
        elif isinstance(err.get("input"), list) and loc:
            text = (
                f'Invalid JSON payload received. Unknown name "{to_camel(str(loc[-1]))}" at '
                f"'{_path(loc[:-1], body)}': Proto field is not repeating, cannot start list."
            )
        else:
            value = err.get("input")
            shown = f'"{value}"' if isinstance(value, str) else repr(value)
            text = f"Invalid value at '{path}' ({_type_name(kind)}), {shown}"
        violations.append((path, text))
    return GeminiShapeError("\n".join(text for _, text in violations), violations)


def _type_name(kind: str) -> str:
    if kind in ("literal_error", "enum"):
        return "enum"
    if kind.startswith("int"):
        return "TYPE_INT32"
    if kind.startswith(("float", "number")):
        return "TYPE_FLOAT"
    if kind.startswith("bool"):
        return "TYPE_BOOL"
    if kind.startswith("string"):
        return "TYPE_STRING"
    return "TYPE_MESSAGE"


def _path(loc: tuple[Any, ...], body: Any) -> str:
    """Google's field path: snake_case names, ``[i]`` indexes, map entries by position."""
    out = ""
    node = body
    i = 0
    while i < len(loc):
        part = loc[i]
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
        else:
            name = to_snake(str(part))
            out += f".{name}" if out else name
            node = node.get(part) if isinstance(node, dict) else None
            if name in ("properties", "defs") and isinstance(node, dict) and i + 1 < len(loc):
                key = loc[i + 1]
                index = list(node).index(key) if key in node else key
                out += f"[{index}].value"
                node = node.get(key)
                i += 1
        i += 1
    return out
