"""OpenAI chat request → Anthropic Messages / Claude on Vertex: golden bytes, path and
headers, the field mapping table, refusals, and an OpenAI → Anthropic → OpenAI
round-trip property. Every Anthropic body is checked against the anthropic SDK's types."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from common import jsonutil
from common.errors import BadRequest
from tests.support.anthropic_wire import assert_messages_request
from tier1.http.parse import parse
from tier1.providers import _anthropic_common as ac
from tier1.providers.base import ParsedRequest, Translator
from tier1.providers.openai_anthropic import ChatToMessages
from tier1.providers.openai_vertex_anthropic import ChatToVertexMessages

NOW = 1_700_000_000.0
ANTHROPIC: Translator = ChatToMessages("https://api.anthropic.com", 1024, clock=lambda: NOW)
VERTEX: Translator = ChatToVertexMessages(
    "https://us-east5-aiplatform.googleapis.com", "proj-1", "us-east5", 1024, clock=lambda: NOW
)


def _req(body: dict[str, Any], endpoint: str = "chat") -> ParsedRequest:
    return parse(endpoint, jsonutil.dumps(body), {})  # type: ignore[arg-type]


def _body(body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    out = ac.chat_to_messages(body, model="claude-x", default_max_tokens=kw.get("default", 1024))
    assert_messages_request(out)
    return out


FULL = {
    "model": "claude-x",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture, and the weather?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "3C"}]},
        {"role": "user", "content": "Thanks"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Weather by city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": False,
    "max_completion_tokens": 300,
    "stop": ["END"],
    "temperature": 0.2,
    "top_p": 0.9,
    "user": "user-42",
    "stream": True,
    "stream_options": {"include_usage": True},
    "seed": 7,
    "frequency_penalty": 0.5,
    "logit_bias": {"1": 2},
}

FULL_MESSAGES = {
    "model": "claude-x",
    "max_tokens": 300,
    "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use tools."}],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture, and the weather?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Oslo"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "3C"},
                {"type": "text", "text": "Thanks"},
            ],
        },
    ],
    "stop_sequences": ["END"],
    "temperature": 0.2,
    "top_p": 0.9,
    "tools": [
        {
            "name": "weather",
            "description": "Weather by city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    "metadata": {"user_id": "user-42"},
    "stream": True,
}


def test_anthropic_golden_request() -> None:
    req = _req(FULL)
    before = copy.deepcopy(req.body)
    up = ANTHROPIC.request(req, upstream_model="claude-x", force_usage=True)
    assert up.method == "POST"
    assert up.url == "https://api.anthropic.com/v1/messages"
    assert up.headers == {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "accept": "text/event-stream",
    }
    body = jsonutil.loads(up.body)
    assert body == FULL_MESSAGES
    assert list(body) == list(FULL_MESSAGES)  # stable key order: stable bytes
    assert_messages_request(body)
    assert req.body == before  # never mutated: a retry translates the same input


def test_model_override_goes_upstream() -> None:
    up = ANTHROPIC.request(_req(FULL), upstream_model="claude-real", force_usage=False)
    assert jsonutil.loads(up.body)["model"] == "claude-real"


@pytest.mark.parametrize(
    "base",
    ["https://api.anthropic.com", "https://api.anthropic.com/", "https://api.anthropic.com/v1"],
)
def test_base_url_forms(base: str) -> None:
    up = ChatToMessages(base, 10).request(_req(FULL), upstream_model="m", force_usage=False)
    assert up.url == "https://api.anthropic.com/v1/messages"


@pytest.mark.parametrize(("stream", "method"), [(False, "rawPredict"), (True, "streamRawPredict")])
def test_vertex_golden_request(stream: bool, method: str) -> None:
    up = VERTEX.request(
        _req({**FULL, "stream": stream}), upstream_model="claude-x@20250929", force_usage=True
    )
    assert up.url == (
        "https://us-east5-aiplatform.googleapis.com/v1/projects/proj-1/locations/us-east5"
        f"/publishers/anthropic/models/claude-x@20250929:{method}"
    )
    assert (
        "anthropic-version" not in up.headers and up.headers["content-type"] == "application/json"
    )
    body = jsonutil.loads(up.body)
    expected = {k: v for k, v in FULL_MESSAGES.items() if k != "model"}
    if not stream:
        del expected["stream"]
    assert body == {"anthropic_version": "vertex-2023-10-16", **expected}
    assert_messages_request(body, vertex=True)


@pytest.mark.parametrize("translator", [ANTHROPIC, VERTEX])
@pytest.mark.parametrize("endpoint", ["completions", "embeddings"])
def test_only_chat_is_served(translator: Translator, endpoint: str) -> None:
    body = {"model": "m", "prompt": "p", "input": "i"}
    with pytest.raises(BadRequest, match="only /v1/chat/completions"):
        translator.request(_req(body, endpoint), upstream_model="m", force_usage=False)


def test_minimal_request_uses_the_default_max_tokens() -> None:
    out = _body({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, default=777)
    assert out == {
        "model": "claude-x",
        "max_tokens": 777,
        "messages": [{"role": "user", "content": "hi"}],
    }


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    msgs = [{"role": "user", "content": "hi"}]
    assert _body({"messages": msgs, "max_tokens": 5})["max_tokens"] == 5
    assert _body({"messages": msgs, "max_tokens": 5, "max_completion_tokens": 9})["max_tokens"] == 9


def test_consecutive_same_role_turns_merge() -> None:
    out = _body(
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "user", "content": [{"type": "text", "text": "b"}]},
                {"role": "assistant", "content": "c"},
                {"role": "assistant", "content": ""},  # empty: left out
                {"role": "assistant", "content": "d"},
                {"role": "user", "content": ""},
            ]
        }
    )
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "c"}, {"type": "text", "text": "d"}],
        },
    ]


def test_single_system_is_a_string_and_cache_control_survives() -> None:
    cc = {"type": "ephemeral"}
    out = _body(
        {
            "messages": [
                {"role": "system", "content": "S"},
                {"role": "user", "content": [{"type": "text", "text": "u", "cache_control": cc}]},
            ]
        }
    )
    assert out["system"] == "S"
    assert out["messages"][0]["content"] == [{"type": "text", "text": "u", "cache_control": cc}]


def test_pdf_file_part_becomes_a_document() -> None:
    part = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0="}}
    out = _body({"messages": [{"role": "user", "content": [part]}]})
    assert out["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        }
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "f"}}, {"type": "tool", "name": "f"}),
        (None, None),
    ],
)
def test_tool_choice_table(choice: Any, expected: Any) -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "x"}], "tools": tools}
    if choice is not None:
        body["tool_choice"] = choice
    out = _body(body)
    assert out.get("tool_choice") == expected
    assert out["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]


def test_parallel_tool_calls_false_without_tool_choice() -> None:
    tools = [{"type": "function", "function": {"name": "f", "strict": True}}]
    out = _body(
        {
            "messages": [{"role": "user", "content": "x"}],
            "tools": tools,
            "parallel_tool_calls": False,
        }
    )
    assert out["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert out["tools"][0]["strict"] is True
    none = _body(
        {
            "messages": [{"role": "user", "content": "x"}],
            "tools": tools,
            "tool_choice": "none",
            "parallel_tool_calls": False,
        }
    )
    assert none["tool_choice"] == {"type": "none"}


def test_tool_choice_without_tools_is_dropped() -> None:
    out = _body({"messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"})
    assert "tool_choice" not in out and "tools" not in out


@pytest.mark.parametrize(
    ("extra", "thinking", "max_tokens"),
    [
        ({"reasoning_effort": "low"}, {"type": "enabled", "budget_tokens": 1024}, 1024 + 1024),
        ({"reasoning_effort": "medium"}, {"type": "enabled", "budget_tokens": 4096}, 1024 + 4096),
        ({"reasoning_effort": "high"}, {"type": "enabled", "budget_tokens": 16384}, 1024 + 16384),
        (
            {"reasoning_effort": "high", "max_completion_tokens": 8000},
            {"type": "enabled", "budget_tokens": 7999},
            8000,
        ),
        ({"reasoning_effort": "low", "max_tokens": 1000}, None, 1000),  # too small to think
        ({"reasoning_effort": "minimal"}, None, 1024),
        ({"reasoning_effort": "none"}, None, 1024),
        (
            {"reasoning_effort": "high", "thinking": {"type": "adaptive"}},
            {"type": "adaptive"},
            1024,
        ),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 2000}},
            {"type": "enabled", "budget_tokens": 2000},
            1024 + 2000,
        ),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 2000}, "max_tokens": 3000},
            {"type": "enabled", "budget_tokens": 2000},
            3000,
        ),
    ],
)
def test_reasoning_effort_to_thinking(
    extra: dict[str, Any], thinking: Any, max_tokens: int
) -> None:
    out = _body({"messages": [{"role": "user", "content": "x"}], **extra})
    assert out.get("thinking") == thinking
    assert out["max_tokens"] == max_tokens


def test_stop_sampling_and_structured_output() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "additionalProperties": False,
    }
    out = _body(
        {
            "messages": [{"role": "user", "content": "x"}],
            "stop": "STOP",
            "temperature": 1.7,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "n", "schema": schema},
            },
        }
    )
    assert out["stop_sequences"] == ["STOP"]
    assert out["temperature"] == 1.0  # Anthropic's range ends at 1
    assert out["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    plain = _body(
        {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}
    )
    assert "output_config" not in plain


def test_fields_without_an_anthropic_equivalent_are_dropped() -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "x"}, {"role": "user"}]}
    body |= {name: 1 for name in ac.DROPPED_FIELDS} | {"totally_unknown": {"x": 1}}
    out = _body(body)
    assert set(out) == {"model", "max_tokens", "messages"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].role"),
        ({"messages": ["hi"]}, "messages[0]"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "data:x"}}],
                    }
                ]
            },
            "messages[0].content[0].image_url",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}],
                    }
                ]
            },
            "messages[0].content[0].image_url",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}
                ]
            },
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": "[1"},
                            }
                        ],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        (
            {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search"}]},
            "tools[0]",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "max"},
            "reasoning_effort",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature"),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": "sometimes",
            },
            "tool_choice",
        ),
    ],
)
def test_refusals_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as e:
        ac.chat_to_messages(body, model="m", default_max_tokens=10)
    assert e.value.param == param
