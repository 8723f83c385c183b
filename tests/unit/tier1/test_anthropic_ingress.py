"""The Anthropic Messages ingress over OpenAI-chat backends: request, answer and error
translation and the count_tokens estimate; answers and errors are read back by the real
anthropic SDK, OpenAI request bodies checked against the openai SDK's types. Streaming
is in test_anthropic_ingress_stream.py."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types.chat import completion_create_params as ccp

from common import jsonutil
from common.errors import BadRequest
from tests.support.anthropic_wire import (
    anthropic_client,
    assert_messages_request,
    check_typed,
)
from tier1.providers.anthropic_openai import (
    DROPPED_FIELDS,
    chat_to_messages_response,
    count_tokens_estimate,
    messages_to_chat,
    openai_error_to_anthropic,
)

PNG = "iVBORw0KGgo="
REQUEST: dict[str, Any] = {
    "model": "claude-alias",
    "max_tokens": 2048,
    "system": [
        {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Use tools."},
    ],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather here?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                },
                {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Two cities.", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_A",
                    "name": "weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_B", "name": "weather", "input": {"city": "Oslo"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_A", "content": "18C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_B",
                    "content": [{"type": "text", "text": "3C"}],
                    "is_error": False,
                },
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ],
    "tools": [
        {
            "name": "weather",
            "description": "Weather by city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    "stop_sequences": ["END"],
    "temperature": 0.3,
    "thinking": {"type": "enabled", "budget_tokens": 5000},
    "metadata": {"user_id": "u-1"},
    "stream": True,
    "service_tier": "auto",
}

CHAT_REQUEST = {
    "model": "gpt-up",
    "messages": [
        {
            "role": "system",
            "content": [
                {"type": "text", "text": "You are terse."},
                {"type": "text", "text": "Use tools."},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather here?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_A",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "toolu_B",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_A", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_B", "content": "3C"},
        {"role": "user", "content": "And tomorrow?"},
    ],
    "max_tokens": 2048,
    "stop": ["END"],
    "temperature": 0.3,
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
    "tool_choice": "required",
    "parallel_tool_calls": False,
    "reasoning_effort": "medium",
    "user": "u-1",
    "stream": True,
    "stream_options": {"include_usage": True},
}


def test_golden_request() -> None:
    assert_messages_request({k: v for k, v in REQUEST.items() if k != "service_tier"})
    out = messages_to_chat(REQUEST, upstream_model="gpt-up", force_usage=True)
    assert out == CHAT_REQUEST
    check_typed(out, ccp.CompletionCreateParamsStreaming)


def test_minimal_request_and_options() -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    out = messages_to_chat(body, upstream_model="up", force_usage=True)
    assert out == {"model": "up", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
    check_typed(out, ccp.CompletionCreateParamsNonStreaming)
    alt = messages_to_chat(
        {**body, "stream": True},
        upstream_model="up",
        force_usage=False,
        max_tokens_field="max_completion_tokens",
    )
    assert alt["max_completion_tokens"] == 10 and "max_tokens" not in alt
    assert alt["stream"] is True and "stream_options" not in alt


@pytest.mark.parametrize(
    ("extra", "effort"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "low"),
        ({"thinking": {"type": "enabled", "budget_tokens": 4096}}, "medium"),
        ({"thinking": {"type": "enabled", "budget_tokens": 20000}}, "high"),
        ({"thinking": {"type": "adaptive"}}, None),
        ({"thinking": {"type": "disabled"}}, None),
        ({"output_config": {"effort": "max"}}, "high"),
        ({"output_config": {"effort": "low"}, "thinking": {"type": "adaptive"}}, "low"),
    ],
)
def test_thinking_to_reasoning_effort(extra: dict[str, Any], effort: str | None) -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}], **extra}
    assert (
        messages_to_chat(body, upstream_model="u", force_usage=False).get("reasoning_effort")
        == effort
    )


def test_structured_output_and_tool_choices() -> None:
    schema = {"type": "object", "properties": {}, "additionalProperties": False}
    body = {
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "x"}],
        "output_config": {"format": {"type": "json_schema", "schema": schema}},
        "tools": [{"name": "f", "input_schema": {"type": "object"}, "strict": True}],
        "tool_choice": {"type": "tool", "name": "f"},
    }
    out = messages_to_chat(body, upstream_model="u", force_usage=False)
    assert out["messages"][0] == {"role": "system", "content": "S"}
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }
    assert out["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert out["tools"][0]["function"]["strict"] is True
    for kind, expected in (("auto", "auto"), ("none", "none")):
        body["tool_choice"] = {"type": kind}
        assert (
            messages_to_chat(body, upstream_model="u", force_usage=False)["tool_choice"] == expected
        )


def test_dropped_fields_are_not_forwarded() -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    out = messages_to_chat(
        body | {k: 1 for k in DROPPED_FIELDS}, upstream_model="u", force_usage=False
    )
    assert set(out) == {"model", "messages", "max_tokens"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0]"),
        (
            {"messages": [{"role": "user", "content": [{"type": "search_result"}]}]},
            "messages[0].content[0]",
        ),
        (
            {"messages": [{"role": "assistant", "content": [{"type": "server_tool_use"}]}]},
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            },
            "tools[0]",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "system": 5}, "system"),
    ],
)
def test_refusals_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as e:
        messages_to_chat(
            {"model": "m", "max_tokens": 1, **body}, upstream_model="u", force_usage=False
        )
    assert e.value.param == param


COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-up-2025",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Checking.",
                "reasoning_content": "Two cities.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "weather", "arguments": "not json"},
                    },
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 100},
    },
}


def test_golden_response_read_by_the_anthropic_sdk() -> None:
    out = chat_to_messages_response(COMPLETION, model="claude-alias")
    assert out == {
        "id": "chatcmpl-1",
        "type": "message",
        "role": "assistant",
        "model": "claude-alias",
        "content": [
            {"type": "thinking", "thinking": "Two cities.", "signature": ""},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"_raw": "not json"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 20, "output_tokens": 30, "cache_read_input_tokens": 100},
    }
    message = anthropic_client(200, jsonutil.dumps(out)).messages.create(
        model="claude-alias", max_tokens=10, messages=[{"role": "user", "content": "x"}]
    )
    assert message.stop_reason == "tool_use" and message.usage.cache_read_input_tokens == 100


def test_a_refusal_is_text_with_stop_reason_refusal() -> None:
    message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    chat = {"id": "c", "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
    out = chat_to_messages_response(chat, model="m")
    assert out["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert out["stop_reason"] == "refusal"


@pytest.mark.parametrize(
    ("finish", "tools", "stop"),
    [
        ("stop", False, "end_turn"),
        ("length", False, "max_tokens"),
        ("content_filter", False, "refusal"),
        ("tool_calls", True, "tool_use"),
        ("stop", True, "tool_use"),  # some servers say "stop" after tool calls
        (None, False, "end_turn"),
    ],
)
def test_stop_reasons(finish: str | None, tools: bool, stop: str) -> None:
    message: dict[str, Any] = {"role": "assistant", "content": "x"}
    if tools:
        message["tool_calls"] = [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}
        ]
    chat = {"id": "c", "choices": [{"index": 0, "message": message, "finish_reason": finish}]}
    out = chat_to_messages_response(chat, model="m")
    assert out["stop_reason"] == stop
    assert out["usage"] == {"input_tokens": 0, "output_tokens": 0}


# --- errors and count_tokens -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "exc"),
    [
        (400, "invalid_request_error", anthropic.BadRequestError),
        (404, "not_found_error", anthropic.NotFoundError),
        (413, "request_too_large", anthropic.RequestTooLargeError),
        (429, "rate_limit_error", anthropic.RateLimitError),
        (500, "api_error", anthropic.InternalServerError),
        (503, "overloaded_error", anthropic.InternalServerError),
    ],
)
def test_errors(status: int, kind: str, exc: type[Exception]) -> None:
    upstream = jsonutil.dumps({"error": {"message": "details", "type": "x", "code": None}})
    out_status, body = openai_error_to_anthropic(status, upstream)
    assert out_status == status
    assert jsonutil.loads(body) == {"type": "error", "error": {"type": kind, "message": "details"}}
    with pytest.raises(exc, match="details"):
        anthropic_client(out_status, body).messages.create(
            model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}]
        )


@pytest.mark.parametrize("status", [401, 403])
def test_upstream_auth_errors_never_reach_the_client(status: int) -> None:
    upstream = b'{"error": {"message": "Incorrect API key provided: sk-proj-SECRET"}}'
    out_status, body = openai_error_to_anthropic(status, upstream)
    assert out_status == 502 and b"SECRET" not in body
    assert jsonutil.loads(body)["error"]["type"] == "api_error"


def test_non_json_error_gets_a_generic_message() -> None:
    assert openai_error_to_anthropic(502, b"<html>")[1] == (
        b'{"type":"error","error":{"type":"api_error","message":"upstream answered HTTP 502"}}'
    )


def test_count_tokens_estimate() -> None:
    body = {
        "system": "x" * 40,
        "messages": [
            {"role": "user", "content": "y" * 40},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t", "content": "z" * 8}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "A" * 9999},
                    }
                ],
            },
        ],
        "tools": [{"name": "f", "input_schema": {}}],
    }
    tool_chars = len(b'{"name":"f","description":null,"input_schema":{}}')
    assert count_tokens_estimate(body) == -(-(40 + 40 + 2 + 8 + tool_chars) // 4) + 1600
    assert count_tokens_estimate({"messages": []}) == 1


@given(st.text(max_size=200), st.text(min_size=1, max_size=200))
def test_count_tokens_grows_with_text(a: str, b: str) -> None:
    small = {"messages": [{"role": "user", "content": a}]}
    big = {"messages": [{"role": "user", "content": a + b * 4}]}
    assert count_tokens_estimate(big) >= count_tokens_estimate(small) >= 1
