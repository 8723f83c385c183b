"""The Anthropic (SDK types), Gemini (API reference) and Bedrock (botocore) request shapes."""

from __future__ import annotations

from typing import Any

import pytest

from bench.fakes.anthropic_shapes import ShapeError, validate_count_tokens, validate_messages
from bench.fakes.bedrock_shapes import BedrockShapeError, validate_converse
from bench.fakes.gemini_shapes import GeminiShapeError, validate_generate

HI = [{"role": "user", "content": "hello there"}]
TOOL = {
    "name": "get_weather",
    "description": "weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def messages(**fields: Any) -> dict[str, Any]:
    return {"model": "claude-x", "max_tokens": 100, "messages": HI, **fields}


# --- anthropic ---------------------------------------------------------------------------


def test_anthropic_accepts_a_full_conversation() -> None:
    req = validate_messages(
        messages(
            messages=[
                {"role": "user", "content": "what is the weather?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "checking"},
                        {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "sunny"},
                        {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                    ],
                },
            ],
            system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
            tools=[TOOL, {"type": "web_search_20250305", "name": "web_search"}],
            tool_choice={"type": "auto"},
            stream=True,
            metadata={"user_id": "u1"},
            stop_sequences=["END"],
            temperature=0.5,
            top_k=5,
        )
    )
    assert (req.model, req.max_tokens, req.stream, req.tools) == ("claude-x", 100, True, True)
    assert req.prompt_tokens == 9  # (20 + 8 + 8 characters of text + 3) // 4


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (messages(foo=1, bar=2), "foo: Extra inputs are not permitted; bar: Extra inputs are not permitted"),
        ({"model": "m", "messages": HI}, "max_tokens: Field required"),
        ({"max_tokens": 1, "messages": HI}, "model: Field required"),
        (messages(messages=[]), "messages: at least one message is required"),
        (messages(max_tokens="5"), "max_tokens: Input should be a valid integer"),
        (messages(max_tokens=-1), "max_tokens: Input should be greater than or equal to 0"),
        (messages(messages=[{"role": "tool", "content": "x"}]), "messages.0.role: Input tag 'tool' found using 'role'"),
        (messages(messages=[{"role": "user"}]), "messages.0.content: Field required"),
        (messages(messages=[{"role": "user", "content": [{"type": "video"}]}]), "messages.0.content.0.type: Input tag 'video' found using 'type' does not match any of the expected tags: "),
        (messages(messages=[{"role": "user", "content": [{"type": "text"}]}]), "messages.0.content.0.text: Field required"),
        (messages(messages=[{"role": "user", "content": [{"type": "text", "text": "a", "x": 1}]}]), "messages.0.content.0.x: Extra inputs are not permitted"),
        (messages(tools=[{"name": "f"}]), "tools.0.input_schema: Field required"),
        (messages(tool_choice={"type": "sometimes"}), "tool_choice.type: Input tag 'sometimes'"),
        (messages(stream="yes"), "stream: Input should be a valid boolean"),
        ([1], "body: Input should be a valid dictionary or object"),
    ],
)  # fmt: skip
def test_anthropic_rejections(body: Any, message: str) -> None:
    with pytest.raises(ShapeError) as info:
        validate_messages(body)
    assert info.value.message.startswith(message)


def test_anthropic_known_block_types_come_from_the_sdk() -> None:
    with pytest.raises(ShapeError) as info:
        validate_messages(messages(messages=[{"role": "user", "content": [{"type": "x"}]}]))
    for tag in ("'text'", "'image'", "'document'", "'tool_use'", "'tool_result'", "'thinking'"):
        assert tag in info.value.message


def test_bedrock_and_vertex_bodies_carry_the_version_and_no_model() -> None:
    bedrock = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": HI}
    assert validate_messages(bedrock, "bedrock").model is None
    vertex = {"anthropic_version": "vertex-2023-10-16", "max_tokens": 5, "messages": HI}
    assert validate_messages({**vertex, "stream": True}, "vertex").stream
    cases = [
        ({**bedrock, "model": "m"}, "bedrock", "model: Extra inputs are not permitted"),
        ({**bedrock, "stream": True}, "bedrock", "stream: Extra inputs are not permitted"),
        ({**bedrock, "anthropic_version": "2023-06-01"}, "bedrock", "anthropic_version: Input should be 'bedrock-2023-05-31'"),
        ({**vertex, "anthropic_version": "bedrock-2023-05-31"}, "vertex", "anthropic_version: Input should be 'vertex-2023-10-16'"),
        ({"max_tokens": 5, "messages": HI}, "vertex", "anthropic_version: Field required"),
    ]  # fmt: skip
    for body, platform, message in cases:
        with pytest.raises(ShapeError, match=message):
            validate_messages(body, platform)  # type: ignore[arg-type]


def test_count_tokens() -> None:
    assert validate_count_tokens({"model": "m", "messages": HI, "system": "abcd"}) == 4
    with pytest.raises(ShapeError, match="max_tokens: Extra inputs are not permitted"):
        validate_count_tokens({"model": "m", "messages": HI, "max_tokens": 5})


# --- gemini ------------------------------------------------------------------------------

CONTENTS = [{"role": "user", "parts": [{"text": "hello gemini"}]}]
FUNCTION = {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def generate(**fields: Any) -> dict[str, Any]:
    return {"contents": CONTENTS, **fields}


def test_gemini_accepts_camel_and_snake_case() -> None:
    req = validate_generate(
        generate(
            systemInstruction={"parts": [{"text": "be brief"}]},
            tools=[{"functionDeclarations": [FUNCTION]}, {"googleSearch": {}}],
            toolConfig={"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
            generationConfig={"maxOutputTokens": 7, "temperature": 0.2, "thinkingConfig": {"thinkingBudget": 0}},
            safetySettings=[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
            cachedContent="cachedContents/abc",
        )
    )  # fmt: skip
    assert (req.declares_functions, req.max_output_tokens(), req.prompt_tokens()) == (True, 7, 5)
    snake = validate_generate(
        {"contents": CONTENTS, "generation_config": {"max_output_tokens": 3}, "tool_config": {}}
    )
    assert snake.max_output_tokens() == 3


def test_gemini_parts_of_every_kind() -> None:
    parts = [
        {"text": "t", "thought": True, "thoughtSignature": "c2ln"},
        {"inlineData": {"mimeType": "image/png", "data": "aGk="}},
        {"fileData": {"fileUri": "gs://b/f.pdf", "mimeType": "application/pdf"}},
        {"functionCall": {"name": "f", "args": {"a": 1}}},
        {"functionResponse": {"name": "f", "response": {"ok": True}}},
    ]
    validate_generate({"contents": [{"role": "model", "parts": parts}]})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (generate(foo=1), 'Invalid JSON payload received. Unknown name "foo": Cannot find field.'),
        ({"contents": []}, "* GenerateContentRequest.contents: contents is not specified"),
        ({}, "* GenerateContentRequest.contents: contents is not specified"),
        ({"contents": [{"parts": [{}]}]}, "* GenerateContentRequest.contents[0].parts[0]: required oneof field 'data' must have one initialized field"),
        ({"contents": [{"parts": [{"text": "a", "inlineData": {"mimeType": "x", "data": "y"}}]}]}, "Oneof field 'data' is already set. Cannot set 'inlineData'"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "a"}]}]}, "Please use a valid role: user, model."),
        (generate(generationConfig={"maxOutputTokens": "many"}), "Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32), \"many\""),
        (generate(generationConfig={"topX": 1}), "Unknown name \"topX\" at 'generation_config': Cannot find field."),
        (generate(safetySettings=[{"category": "HARM_X", "threshold": "BLOCK_NONE"}]), "Invalid value at 'safety_settings[0].category' (enum), \"HARM_X\""),
        (generate(tools=[{"functionDeclarations": [{"name": "bad name!"}]}]), "Invalid value at 'tools[0].function_declarations[0].name'"),
        (generate(tools=[{"functionDeclarations": [{"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string", "additionalProperties": False}}}}]}]), "Unknown name \"additionalProperties\" at 'tools[0].function_declarations[0].parameters.properties[0].value': Cannot find field."),
        (generate(tools=[{"functionDeclarations": [{"name": "f", "parameters": {"type": ["string", "null"]}}]}]), "Unknown name \"type\" at 'tools[0].function_declarations[0].parameters': Proto field is not repeating, cannot start list."),
        (generate(labels={"team": "a"}), 'Unknown name "labels": Cannot find field.'),
    ],
)  # fmt: skip
def test_gemini_rejections(body: dict[str, Any], message: str) -> None:
    with pytest.raises(GeminiShapeError) as info:
        validate_generate(body)
    assert message in info.value.message
    assert info.value.violations


def test_vertex_takes_labels_and_additional_properties() -> None:
    schema = {"type": "OBJECT", "additionalProperties": False, "properties": {}}
    body = generate(
        labels={"team": "a"}, tools=[{"functionDeclarations": [{**FUNCTION, "parameters": schema}]}]
    )
    assert validate_generate(body, "vertex").declares_functions


def test_parameters_json_schema_is_free_form_but_exclusive() -> None:
    free = {
        "name": "f",
        "parametersJsonSchema": {"type": "object", "additionalProperties": False, "$schema": "x"},
    }
    validate_generate(generate(tools=[{"functionDeclarations": [free]}]))
    with pytest.raises(GeminiShapeError, match="mutually exclusive"):
        validate_generate(
            generate(tools=[{"functionDeclarations": [{**free, "parameters": {"type": "OBJECT"}}]}])
        )


# --- bedrock converse --------------------------------------------------------------------

CONVERSE = {"messages": [{"role": "user", "content": [{"text": "hello bedrock"}]}]}


def test_converse_accepts_a_full_request() -> None:
    req = validate_converse(
        {
            **CONVERSE,
            "system": [{"text": "be brief"}],
            "inferenceConfig": {"maxTokens": 4, "temperature": 0.1, "stopSequences": ["x"]},
            "toolConfig": {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}]},
            "additionalModelRequestFields": {"top_k": 5},
        },
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
    )  # fmt: skip
    assert (req.max_tokens, req.tools, req.prompt_tokens) == (4, True, 6)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**CONVERSE, "foo": 1}, 'Unknown parameter in input: "foo", must be one of: modelId, messages'),
        ({**CONVERSE, "modelId": "x"}, 'Unknown parameter in input: "modelId" (it belongs in the path)'),
        ({**CONVERSE, "inferenceConfig": {"maxTokens": "5"}}, "Invalid type for parameter inferenceConfig.maxTokens"),
        ({"messages": [{"role": "user", "content": [{}]}]}, "Must set one of the following keys for tagged union"),
        ({"messages": [{"role": "user", "content": [{"text": "a", "image": {"format": "png", "source": {"bytes": "aGk="}}}]}]}, "Invalid number of parameters set for tagged union structure messages[0].content[0]"),
        ({"messages": [{"content": [{"text": "a"}]}]}, 'Missing required parameter in messages[0]: "role"'),
        ({"messages": [{"role": "robot", "content": [{"text": "a"}]}]}, "Value 'robot' at 'messages.1.member.role' failed to satisfy constraint: Member must satisfy enum value set: [user, assistant"),
        ("x", "Malformed input request"),
    ],
)  # fmt: skip
def test_converse_rejections_are_botocores_report(body: Any, message: str) -> None:
    with pytest.raises(BedrockShapeError) as info:
        validate_converse(body, "m")
    assert message in info.value.message
