"""OpenAI chat → Gemini / Vertex generateContent requests: URL, headers, body (golden),
each body also validated against Google's own types (tests/support/gemini_wire.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from common import jsonutil
from common.errors import BadRequest
from tests.support.gemini_wire import assert_gemini_request
from tier1.http.parse import parse
from tier1.providers.base import ParsedRequest, Translator
from tier1.providers.openai_gemini import (
    GEMINI_BASE_URL,
    ChatToGemini,
    ChatToVertex,
    vertex_base_url,
)

GEMINI = ChatToGemini(GEMINI_BASE_URL, clock=lambda: 1_700_000_000.0)
VERTEX = ChatToVertex(vertex_base_url("us-central1"), "my-proj", "us-central1")


def _req(body: dict[str, Any], endpoint: str = "chat") -> ParsedRequest:
    return parse(endpoint, jsonutil.dumps(body), {})  # type: ignore[arg-type]


def _body(body: dict[str, Any], translator: Translator = GEMINI) -> dict[str, Any]:
    req = _req({"model": "gemini-2.5-flash", **body})
    before = copy.deepcopy(req.body)
    up = translator.request(req, upstream_model="gemini-2.5-flash", force_usage=True)
    assert req.body == before, "the client's request must never be mutated"
    out: dict[str, Any] = jsonutil.loads(up.body)
    assert_gemini_request(out)
    return out


def test_text_request_golden() -> None:
    req = _req(
        {
            "model": "gemini-2.5-flash",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Bonjour"},
                {"role": "user", "content": "Weather?"},
            ],
            "max_tokens": 100,
            "temperature": 0.2,
            "top_p": 0.9,
            "stop": ["END"],
            "n": 2,
            "seed": 7,
            "presence_penalty": 0.5,
            "frequency_penalty": -0.5,
        }
    )
    up = GEMINI.request(req, upstream_model="gemini-2.5-flash", force_usage=True)
    assert up.method == "POST"
    assert up.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert up.headers == {"content-type": "application/json"}
    body = jsonutil.loads(up.body)
    assert body == {
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Bonjour"}]},
            {"role": "user", "parts": [{"text": "Weather?"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use French."}]},
        "generationConfig": {
            "maxOutputTokens": 100,
            "temperature": 0.2,
            "topP": 0.9,
            "presencePenalty": 0.5,
            "frequencyPenalty": -0.5,
            "candidateCount": 2,
            "seed": 7,
            "stopSequences": ["END"],
        },
    }
    assert_gemini_request(body)


@pytest.mark.parametrize(
    ("translator", "model", "stream", "url"),
    [
        (
            GEMINI,
            "gemini-2.5-pro",
            True,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
        ),
        (
            GEMINI,
            "models/gemini-2.5-pro",
            False,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:generateContent",
        ),
        (
            ChatToGemini("https://proxy.test/v1/"),
            "gemini-2.5-pro",
            False,
            "https://proxy.test/v1/models/gemini-2.5-pro:generateContent",
        ),
        (
            GEMINI,
            "tunedModels/my-tune",
            False,
            "https://generativelanguage.googleapis.com/v1beta/tunedModels/my-tune:generateContent",
        ),
        (
            VERTEX,
            "gemini-2.5-flash",
            False,
            "https://us-central1-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent",
        ),
        (
            VERTEX,
            "gemini-2.5-flash",
            True,
            "https://us-central1-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        ),
        (
            ChatToVertex(vertex_base_url("global"), "p", "global"),
            "publishers/google/models/gemini-2.5-flash",
            False,
            "https://aiplatform.googleapis.com/v1/projects/p/locations/global/publishers/google/models/gemini-2.5-flash:generateContent",
        ),
    ],
)
def test_urls(translator: Translator, model: str, stream: bool, url: str) -> None:
    req = _req(
        {"model": "client-name", "messages": [{"role": "user", "content": "x"}], "stream": stream}
    )
    up = translator.request(req, upstream_model=model, force_usage=False)
    assert up.url == url
    if stream:
        assert up.headers["accept"] == "text/event-stream"
    # the model travels in the URL only; auth headers are the caller's job
    assert "model" not in jsonutil.loads(up.body)
    assert set(up.headers) <= {"content-type", "accept"}


def test_vertex_and_gemini_bodies_are_the_same() -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 5}
    assert _body(body, VERTEX) == _body(body, GEMINI)


def test_images_and_media() -> None:
    content = [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://img.test/a/cat.JPG?x=1"}},
        {"type": "image_url", "image_url": {"url": "gs://bucket/doc.pdf"}},
        {"type": "image_url", "image_url": {"url": "https://img.test/render"}},
        {"type": "image_url", "image_url": {"url": "data:text/plain,hi%20there"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
        },
    ]
    body = _body({"messages": [{"role": "user", "content": content}]})
    assert body["contents"][0]["parts"] == [
        {"text": "Compare"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://img.test/a/cat.JPG?x=1"}},
        {"fileData": {"mimeType": "application/pdf", "fileUri": "gs://bucket/doc.pdf"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://img.test/render"}},
        {"inlineData": {"mimeType": "text/plain", "data": "aGkgdGhlcmU="}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
    ]


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name"},
                    "unit": {"type": ["string", "null"], "enum": ["c", "f", None]},
                },
                "required": ["city"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    },
    {
        "type": "function",
        "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
    },
]


def test_tools_tool_calls_and_results_golden() -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    "extra_content": {"google": {"thought_signature": "c2lnLTE="}},
                },
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "now", "arguments": ""},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_0", "content": '{"temp": 21, "sky": "clear"}'},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "12:00"}]},
        {"role": "user", "content": "Thanks"},
    ]
    body = _body({"messages": messages, "tools": TOOLS, "tool_choice": "auto"})
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris and Oslo?"}]},
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": "c2lnLTE=",
                },
                {"functionCall": {"name": "now", "args": {}}},
            ],
        },
        {
            # parallel results: one turn, one functionResponse per call, then the text
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "get_weather",
                        "response": {"temp": 21, "sky": "clear"},
                    }
                },
                {"functionResponse": {"name": "now", "response": {"content": "12:00"}}},
                {"text": "Thanks"},
            ],
        },
    ]
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Current weather",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {
                            "city": {"type": "STRING", "description": "City name"},
                            "unit": {"type": "STRING", "enum": ["c", "f"], "nullable": True},
                        },
                        "required": ["city"],
                    },
                },
                {"name": "now"},  # no arguments: Gemini rejects an empty OBJECT
            ]
        }
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


def test_tool_result_names_follow_the_latest_matching_call() -> None:
    def turn(name: str) -> list[dict[str, Any]]:
        call = {"id": "call_0", "type": "function", "function": {"name": name, "arguments": "{}"}}
        return [
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_0", "content": "[1, 2]"},
        ]

    messages = [{"role": "user", "content": "go"}, *turn("a"), *turn("b")]
    body = _body({"messages": messages, "tools": TOOLS})
    responses = [
        p["functionResponse"]
        for c in body["contents"]
        for p in c["parts"]
        if "functionResponse" in p
    ]
    # ids repeat across turns (call_<n> per answer); a JSON array is not an object
    assert responses == [
        {"name": "a", "response": {"content": "[1, 2]"}},
        {"name": "b", "response": {"content": "[1, 2]"}},
    ]


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "now"}},
            {"mode": "ANY", "allowedFunctionNames": ["now"]},
        ),
    ],
)
def test_tool_choice(choice: Any, config: dict[str, Any]) -> None:
    body = _body(
        {"messages": [{"role": "user", "content": "x"}], "tools": TOOLS, "tool_choice": choice}
    )
    assert body["toolConfig"] == {"functionCallingConfig": config}


def test_no_tool_config_without_tools() -> None:
    body = _body({"messages": [{"role": "user", "content": "x"}], "tool_choice": "none"})
    assert "tools" not in body and "toolConfig" not in body


def test_response_format() -> None:
    assert _body(
        {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}
    )["generationConfig"] == {"responseMimeType": "application/json"}
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z]+$"},
            "pet": {"$ref": "#/definitions/Pet", "description": "dropped next to $ref"},
        },
        "required": ["name", "pet"],
        "additionalProperties": False,
        "definitions": {"Pet": {"type": "string", "enum": ["cat", "dog"], "examples": ["cat"]}},
    }
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "person", "strict": True, "schema": schema},
    }
    config = _body({"messages": [{"role": "user", "content": "x"}], "response_format": fmt})[
        "generationConfig"
    ]
    assert config == {
        "responseMimeType": "application/json",
        "responseJsonSchema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "pet": {"$ref": "#/$defs/Pet"}},
            "required": ["name", "pet"],
            "additionalProperties": False,
            "$defs": {"Pet": {"type": "string", "enum": ["cat", "dog"]}},
        },
    }


@pytest.mark.parametrize(
    ("effort", "thinking"),
    [
        ("none", {"thinkingBudget": 0}),
        ("minimal", {"thinkingBudget": 1024, "includeThoughts": True}),
        ("low", {"thinkingBudget": 1024, "includeThoughts": True}),
        ("medium", {"thinkingBudget": 8192, "includeThoughts": True}),
        ("high", {"thinkingBudget": 24576, "includeThoughts": True}),
    ],
)
def test_reasoning_effort(effort: str, thinking: dict[str, Any]) -> None:
    body = _body({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": effort})
    assert body["generationConfig"] == {"thinkingConfig": thinking}


def test_max_completion_tokens_and_empty_text() -> None:
    body = _body(
        {
            "messages": [
                {"role": "user", "content": ""},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": ""}, {"type": "text", "text": "x"}],
                },
                {"role": "assistant", "content": ""},
            ],
            "max_completion_tokens": 9,
            "stop": "S",
        }
    )
    assert body["contents"] == [{"role": "user", "parts": [{"text": "x"}]}]
    assert body["generationConfig"] == {"maxOutputTokens": 9, "stopSequences": ["S"]}


USER = {"role": "user", "content": "x"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "system", "content": "only rules"}]}, "messages"),
        ({"messages": [{"role": "critic", "content": "x"}]}, "messages[0].role"),
        ({"messages": ["hi"]}, "messages[0]"),
        (
            {"messages": [{"role": "tool", "tool_call_id": "call_9", "content": "x"}]},
            "messages[0].tool_call_id",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}],
                    }
                ]
            },
            "messages[0].tool_calls[0].function",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "video", "video": {}}]}]},
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "ftp://h/a.png"}}],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
        ({"messages": [USER], "tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"messages": [USER], "tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
        ({"messages": [USER], "reasoning_effort": "max"}, "reasoning_effort"),
        ({"messages": [USER], "response_format": {"type": "yaml"}}, "response_format"),
        ({"messages": [USER], "stop": 3}, "stop"),
        ({"messages": [USER], "temperature": "hot"}, "temperature"),
        ({"messages": [USER], "n": 1.5}, "n"),
    ],
)
def test_bad_requests_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as e:
        GEMINI.request(_req({"model": "m", **body}), upstream_model="m", force_usage=False)
    assert e.value.param == param


def test_only_chat_is_served() -> None:
    req = _req({"model": "m", "input": "x"}, "embeddings")
    for translator in (GEMINI, VERTEX):
        with pytest.raises(BadRequest, match="only chat"):
            translator.request(req, upstream_model="m", force_usage=False)
